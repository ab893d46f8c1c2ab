"""Deep-Emotion: facial expression recognition with an attentional CNN (Minaee & Abdolrashidi 2019).

    from deep_emotion import EmotionRecognizer
    recognizer = EmotionRecognizer()                  # the shipped default model, YuNet face detection
    for face in recognizer.detect_emotions(frame):     # frame: BGR uint8 (H, W, 3), e.g. from cv2.imread
        print(face["box"], face["label"], face["confidence"], face["face"])   # "face": its track id

The API imports no training code, and none of PyTorch until a network runs on it: the ONNX
backend (`EmotionRecognizer(backend="onnx")` on .onnx files) works without PyTorch installed.
The command line is `deep-emotion` (deep_emotion/cli.py).
"""
from deep_emotion.recognizer import DEFAULT_MODEL, PAPER_MODEL, EmotionDetector, EmotionRecognizer, draw

__version__ = "1.1.0"
__all__ = ["EmotionRecognizer", "EmotionDetector", "draw", "DEFAULT_MODEL", "PAPER_MODEL", "load_model",
           "load_checkpoint", "__version__"]


def load_model(path, device="cpu"):
    """(network in eval mode on device, its checkpoint dict) of a checkpoint file; imports PyTorch when called."""
    from deep_emotion import inference
    return inference.load_model(path, device)


def load_checkpoint(path, map_location="cpu"):
    """The checkpoint dict of a file (main.py's, or an original state_dict); imports PyTorch when called."""
    from deep_emotion import inference
    return inference.load_checkpoint(path, map_location)
