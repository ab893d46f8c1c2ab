"""Face sources beside FER2013's CSVs: FER+ votes, labelled face folders and RAF-DB, read for generate_data.py.

FER+ (Barsoum et al. 2016) had ten annotators relabel every FER2013 face. Its votes come as
Microsoft's `fer2013new.csv` (one row per row of `fer2013.csv`, in the same order) or as
Microsoft's folders (`FER2013Train/label.csv` + PNGs); either way each prepared face keeps its
ten vote counts, in FER+'s column order (VOTE_COLUMNS), in the `votes` column of labels.csv.

A labelled face folder is `<class>/<image>` folders, a `labels.csv` (file,label[,x,y,w,h]) or
RAF-DB's official layout (`basic/EmoLabel/list_patition_label.txt` + `basic/Image/aligned/`).
Its faces are stored as the live pipeline frames faces (see `frame_faces`).
"""
import csv
import re
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from deep_emotion.data.prepared import DataError
from deep_emotion.emotions import CLASS_NAMES, IMAGE_SIZE, FaceInput
from deep_emotion.face_detectors import (
    YUNET_CROP_SCALE,
    bordered,
    build_detector,
    crop_box,
    crop_face,
    fit_face,
    nearest_to_centre,
    read_face_image,
)
from deep_emotion.utils import IMAGE_SUFFIXES

# FER+'s vote columns, in its files' order, and the FER2013 class of each (None: no FER2013 class)
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                "unknown", "NF")
FER_CLASS_OF_VOTE = (6, 3, 5, 4, 0, 1, 2, None, None, None)

# Class names other datasets use, and RAF-DB's numbering (1 surprise .. 7 neutral), as FER2013 indices
CLASS_SYNONYMS = {"anger": 0, "angry": 0, "disgust": 1, "disgusted": 1, "fear": 2, "fearful": 2, "afraid": 2,
                  "happy": 3, "happiness": 3, "joy": 3, "sad": 4, "sadness": 4, "surprise": 5, "surprised": 5,
                  "neutral": 6, "calm": 6}
RAF_NUMBERING = {1: 5, 2: 2, 3: 1, 4: 3, 5: 4, 6: 0, 7: 6}
RAF_LABEL_LIST = Path("basic") / "EmoLabel" / "list_patition_label.txt"
RAF_ALIGNED = Path("basic") / "Image" / "aligned"
FERPLUS_FOLDERS = {"FER2013Train": "train", "FER2013Valid": "val", "FER2013Test": "test"}

# Where a FER2013-framed face sits in one of RAF-DB's aligned 100x100 crops: its centre and side as
# fractions of the crop. Measured once by benchmarks/face_framing.py --faces ../shared/rafdb --count 2000 (YuNet on
# each bordered crop, framed as the pipeline frames a YuNet box; medians over the faces found).
RAF_FRAMING = (0.49, 0.47, 1.17)
FRAMINGS = ("auto", "detect", "mapping", "as_given")


# ---------------------------------------------------------------- FER+ votes

def ferplus_votes_file(csv_path):
    """fer2013new.csv (or fer2013new*.csv) beside a FER2013 CSV, or None."""
    folder = Path(csv_path).parent
    exact = folder / "fer2013new.csv"
    if exact.is_file():
        return exact
    matches = sorted(folder.glob("fer2013new*.csv"))
    return matches[0] if matches else None


def read_votes_csv(path, rows):
    """The (rows, 10) vote counts of Microsoft's fer2013new.csv, whose row i is the FER2013 CSV's row i,
    and {row i: reason} of the rows whose counts are not whole numbers >= 0 (their faces are skipped)."""
    try:
        with open(path, newline="") as f:
            table = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"cannot read {path}: {error}") from None
    missing = [c for c in VOTE_COLUMNS if table and c not in table[0]]
    if not table or missing:
        raise DataError(f"{path} is not FER+'s fer2013new.csv: it lacks the column(s) "
                        f"{', '.join(missing or VOTE_COLUMNS)}")
    if len(table) != rows:
        raise DataError(f"{path} has {len(table)} rows but its FER2013 CSV has {rows}: the two join by row, "
                        "so they must come from the same release")
    votes = np.zeros((rows, len(VOTE_COLUMNS)), dtype=np.int64)
    bad = {}
    for i, row in enumerate(table):
        cells = [(row[c] or "0").strip() for c in VOTE_COLUMNS]
        if not all(cell.isdigit() for cell in cells):  # "-1", "x" and "2.5" alike
            bad[i] = f"its FER+ votes ({Path(path).name}:{i + 2}) are not all whole numbers >= 0"
            continue
        votes[i] = [int(cell) for cell in cells]
    return votes, bad


def majority_class(votes):
    """The FER2013 class (N,) that most of each face's FER+ votes name; -1 where that is contempt,
    unknown or not-a-face (no FER2013 class), or where no vote was cast."""
    votes = np.atleast_2d(np.asarray(votes))
    top = votes.argmax(1)
    mapped = np.array([FER_CLASS_OF_VOTE[t] if FER_CLASS_OF_VOTE[t] is not None else -1 for t in top])
    return np.where(votes.sum(1) > 0, mapped, -1)


def vote_distribution(votes):
    """FER+'s "probability" targets (N, 7) in FER2013's class order, and a bool (N,) of the faces that have them.

    As in FER+'s own code, a class named by a single annotator is taken as noise and dropped;
    contempt's votes are dropped too (FER2013 has no such class). A face whose majority is
    contempt, unknown or not-a-face has no target.
    """
    votes = np.atleast_2d(np.asarray(votes, dtype=np.float64))
    kept = np.where(votes > 1, votes, 0.0)
    distribution = np.zeros((len(votes), len(CLASS_NAMES)))
    for column, fer_class in enumerate(FER_CLASS_OF_VOTE):
        if fer_class is not None:
            distribution[:, fer_class] = kept[:, column]
    total = distribution.sum(1)
    ok = (majority_class(votes) >= 0) & (total > 0)
    distribution[ok] /= total[ok, None]
    return distribution.astype(np.float32), ok


def read_ferplus_folders(root, faces):
    """Microsoft's FER+ layout: FER2013Train/ (Valid, Test) each with label.csv (name, box, 10 votes) and PNGs.

    A face's label is its FER+ majority; faces whose majority has no FER2013 class are skipped as bad rows.
    """
    for folder_name, split in FERPLUS_FOLDERS.items():
        folder = Path(root) / folder_name
        if not (folder / "label.csv").is_file():
            continue
        with open(folder / "label.csv", newline="") as f:
            rows = [row for row in csv.reader(f) if row]
        images, votes, origins = [], [], []
        for line, row in enumerate(rows, start=1):
            origin = f"{folder_name}/label.csv:{line}"
            try:
                counts = [int(float(v)) for v in row[-len(VOTE_COLUMNS):]]
            except ValueError:
                counts = None
            if len(row) < 2 + len(VOTE_COLUMNS) or counts is None:
                faces.bad.append((origin, f"not a name, a box and {len(VOTE_COLUMNS)} vote counts"))
                continue
            image = cv2.imread(str(folder / row[0]), cv2.IMREAD_GRAYSCALE)
            if image is None:
                faces.bad.append((origin, f"{row[0]} is missing or unreadable"))
                continue
            if majority_class(counts)[0] < 0:
                faces.bad.append((origin, "FER+'s majority is contempt, unknown or not a face"))
                continue
            images.append(cv2.resize(image, (48, 48), interpolation=cv2.INTER_AREA) if image.shape != (48, 48)
                          else image)
            votes.append(counts)
            origins.append(f"{folder_name}/{row[0]}")
        if images:
            votes = np.array(votes)
            faces.extend(np.stack(images), majority_class(votes), [split] * len(images), origins, votes)


# ---------------------------------------------------------------- labelled face folders

def class_index(name):
    """FER2013's index of a class name (FER2013's, RAF-DB's or a common synonym; any case), or None."""
    name = str(name).strip().lower()
    index_of = {n.lower(): i for i, n in enumerate(CLASS_NAMES)}
    return index_of.get(name, CLASS_SYNONYMS.get(name))


def class_folders(root):
    """{folder: FER2013 class} of root's class subfolders: named (any case, synonyms too) or RAF-DB's 1..7."""
    if not Path(root).is_dir():
        return {}
    subfolders = [p for p in sorted(Path(root).iterdir()) if p.is_dir()]
    named = {p: class_index(p.name) for p in subfolders if class_index(p.name) is not None}
    if named:
        return named
    numbered = {p: int(p.name) for p in subfolders if re.fullmatch(r"[1-7]", p.name)}
    if len(numbered) == 7:  # RAF-DB's own numbering; a partial 0..6 or 1..7 set would be ambiguous
        return {p: RAF_NUMBERING[n] for p, n in numbered.items()}
    return {}


def find_face_folder(data_dir):
    """The kind of labelled face folder data_dir is ("rafdb", "labels_csv", "class_folders"), or None."""
    data_dir = Path(data_dir)
    if (data_dir / RAF_LABEL_LIST).is_file():
        return "rafdb"
    if (data_dir / "labels.csv").is_file():
        return "labels_csv"
    if class_folders(data_dir):
        return "class_folders"
    return None


def list_face_folder(data_dir, kind):
    """[(path, FER2013 label, split, box or None)] of a face folder, and [(origin, reason)] of its bad rows."""
    data_dir = Path(data_dir)
    entries, bad = [], []
    if kind == "rafdb":
        for line, text in enumerate((data_dir / RAF_LABEL_LIST).read_text().splitlines(), start=1):
            parts = text.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) not in RAF_NUMBERING:
                bad.append((f"{RAF_LABEL_LIST.name}:{line}", "not `<image> <label 1..7>`"))
                continue
            path = data_dir / RAF_ALIGNED / (Path(parts[0]).stem + "_aligned.jpg")
            split = "test" if parts[0].startswith("test") else "train"
            entries.append((path, RAF_NUMBERING[int(parts[1])], split, None))
    elif kind == "labels_csv":
        with open(data_dir / "labels.csv", newline="") as f:
            for line, row in enumerate(csv.DictReader(f), start=2):
                label = row.get("label", "")
                label = int(label) if label.strip().isdigit() and int(label) < len(CLASS_NAMES) else class_index(label)
                box = None
                if all(row.get(k, "") != "" for k in "xywh"):
                    try:
                        box = tuple(float(row[k]) for k in "xywh")
                    except ValueError:
                        box = ()
                if label is None or not row.get("file") or box == ():
                    bad.append((f"labels.csv:{line}", "needs file, a label (0..6 or a class name) and a numeric box"))
                    continue
                entries.append((data_dir / row["file"], label, "train", box))
    else:
        for folder, label in class_folders(data_dir).items():
            entries += [(p, label, "train", None) for p in sorted(folder.iterdir())
                        if p.suffix.lower() in IMAGE_SUFFIXES]
    return entries, bad


def labelled_faces(folder):
    """(image paths, FER2013 labels) of a labelled face folder, read as generate_data.py reads it.

    Any shape find_face_folder knows: RAF-DB's layout, a labels.csv (labels as 0..6 or class names),
    class-named or RAF-DB-numbered subfolders. Rows that are not a face with a label are left out.
    Raises DataError when the folder is none of these.
    """
    kind = find_face_folder(folder)
    if kind is None:
        raise DataError(f"{folder} has neither a labels.csv nor class-named subfolders of images")
    entries, _ = list_face_folder(folder, kind)
    return [path for path, *_ in entries], [label for _, label, *_ in entries]


def mapped_crop(image, framing=RAF_FRAMING, size=IMAGE_SIZE):
    """The size x size face at `framing` (centre x, centre y, side; fractions of the image's width and height)."""
    height, width = image.shape[:2]
    side = framing[2] * width
    box = (framing[0] * width - side / YUNET_CROP_SCALE / 2, framing[1] * height - side / YUNET_CROP_SCALE / 2,
           side / YUNET_CROP_SCALE, side / YUNET_CROP_SCALE)
    return crop_box(image, box, YUNET_CROP_SCALE, size)


def frame_faces(entries, framing, detector_model=None, face_input=FaceInput()):
    """Faces as face_input reads them (face_input.shape), framed as the live pipeline frames them, and the count
    the detector missed.

    framing: "detect" finds each face with YuNet on the image with a border (these are tight crops)
    and frames the face nearest the centre from its box, exactly as the pipeline does; a face
    it misses falls back to "mapping": RAF_FRAMING, the measured place of a FER2013-framed face in
    RAF-DB's aligned crops. "as_given": the whole image, resized. A labels.csv box is framed as a
    YuNet box. Unreadable images are left as None, for the caller to count.
    """
    detector = build_detector("yunet", detector_model, stills=True) if framing == "detect" else None
    faces, missed = [None] * len(entries), 0
    size = face_input.size
    for i, (path, _, _, box) in enumerate(tqdm(entries, desc=f"framing faces ({framing})", leave=False)):
        image = read_face_image(path, face_input)  # grey or RGB, as the network reads faces
        if image is None:
            continue
        if box is not None:
            faces[i] = crop_box(image, box, YUNET_CROP_SCALE, size)
        elif framing == "as_given":
            faces[i] = fit_face(image, face_input)
        elif detector is not None:
            frame = bordered(image)
            found = detector.detect(frame if image.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            if found:
                faces[i] = crop_face(frame, nearest_to_centre(found, frame), size=size)
            else:
                missed += 1
                faces[i] = mapped_crop(image, size=size)
        else:
            faces[i] = mapped_crop(image, size=size)
    return faces, missed
