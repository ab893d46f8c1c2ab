"""What the networks, the ONNX runtime, the detectors and the plots share, with no PyTorch or OpenCV import.

FER2013's seven classes in its label order, and the size of the face every network reads.
"""
CLASS_NAMES = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
IMAGE_SIZE = 48  # faces are IMAGE_SIZE x IMAGE_SIZE greyscale
