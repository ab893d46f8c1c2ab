"""Faces from the user's files to training batches, in three stages (each module names its stage):

    reading sources      fer_csv.py (FER2013's CSV shapes and its image-folder mirror), face_sources.py (labelled
                         face folders, FER+ votes, RAF-DB, framing), synthetic_faces.py (the demo set)
    prepared folders     prepare.py (writes DIR/prepared/, `deep-emotion prepare`), prepared.py (its layout, read
                         back; DataError)
    training batches     loaders.py (a split in memory, the Dataset), training_data.py (several sources, targets,
                         teachers), augment.py (batch augmentation)

The first two stages import no PyTorch: preparing data needs numpy, OpenCV and pandas alone.
"""
