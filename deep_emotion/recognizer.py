"""Face detection + expression classification on BGR frames: the Python API behind `visualize.py --cam`.

    from deep_emotion.recognizer import EmotionRecognizer
    recognizer = EmotionRecognizer()                # the default model; or a checkpoint, or several
    for face in recognizer.detect_emotions(frame):   # frame: BGR uint8 (H, W, 3)
        print(face["box"], face["label"], face["confidence"], face["emotions"])
"""
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from deep_emotion.face_detectors import build_detector, crop_face
from deep_emotion.tracking import Tracker

BACKENDS = ("torch", "onnx")
# The default model of the API, visualize.py and export_onnx.py: trained on FER2013 and RAF-DB, within
# a point of the FER2013-only network on FER2013 and far better on real-world faces (its model card)
PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"  # installed with the package
DEFAULT_MODEL = PACKAGE_WEIGHTS / "deep_emotion_vgg_fer_raf.pt"
PAPER_MODEL = PACKAGE_WEIGHTS / "deep_emotion.pt"  # the paper's network, trained on FER2013


def build_classifier(model_paths, device="cpu", tta=None, balanced=False, backend="torch", head=None):
    """The classifier of one or more checkpoints: inference.Ensemble (PyTorch), or OnnxClassifier (onnxruntime).

    The ONNX backend takes .onnx files as they are, and exports .pt checkpoints to a temporary
    folder first; given only .onnx files it runs without PyTorch installed. An exported file
    answers in its checkpoint's default head only; head (a multi-head checkpoint's label set,
    None = its default) is for the PyTorch backend.
    """
    paths = [model_paths] if isinstance(model_paths, (str, os.PathLike)) else list(model_paths)
    if backend == "onnx" or any(str(p).endswith(".onnx") for p in paths):
        if head is not None:
            from deep_emotion.onnx_classifier import OnnxError
            raise OnnxError(f"an ONNX model answers in its default head only; --head {head} needs --backend torch")
        from deep_emotion.onnx_classifier import OnnxClassifier, export
        with tempfile.TemporaryDirectory(prefix="deep-emotion-onnx-") as exported:  # sessions load the files
            paths = [p if str(p).endswith(".onnx") else export(p, Path(exported) / f"{i}.onnx")
                     for i, p in enumerate(paths)]
            return OnnxClassifier(paths, tta, balanced)
    from deep_emotion.inference import Ensemble  # here, so that the ONNX backend never imports PyTorch
    return Ensemble(paths, device, tta, balanced, head)


class EmotionRecognizer:
    """Finds every face in a frame and classifies all of them in one batch.

    model_path: one checkpoint, or a list whose probabilities are averaged (an ensemble).
    detector: "haar" (OpenCV's cascade, the default: nothing to download) or "yunet"
    (OpenCV's CNN detector; detector_model is its .onnx file, see face_detectors.py);
    with YuNet, align=True turns each face so its eyes are level before the crop.
    Each face gets a track id that follows it from frame to frame (tracking.Tracker);
    `smooth` in [0, 1) averages each track's probabilities over its frames
    (exponential moving average), so labels do not flicker; 0 turns it off.
    stills=True treats every frame as an unrelated photo: ids start again at 0 and
    nothing is smoothed. `tta` ("flip" or "shifts", see
    `inference.TTA_MODES`) also classifies mirrored (and shifted) copies of each face
    and averages: 2 or 10 times the classification time. balanced=True divides
    out the training prior (`emotions.balance`); head picks a multi-head checkpoint's
    label set (None: its default, FER+'s sense). backend="onnx" runs the network with
    onnxruntime (see build_classifier).
    """

    def __init__(self, model_path=DEFAULT_MODEL, device="cpu", smooth=0.0, min_face=None, tta=None, detector="haar",
                 detector_model=None, align=False, balanced=False, stills=False, backend="torch", head=None):
        self.classifier = build_classifier(model_path, device, tta, balanced, backend, head)
        self.class_names = self.classifier.class_names
        self.detector = build_detector(detector, detector_model, min_face, stills=stills)
        self.smooth, self.align, self.stills = smooth, align, stills
        self.tracker = Tracker()
        self.timings = {"detect": 0.0, "crop": 0.0, "classify": 0.0}

    def find_faces(self, frame):
        """The faces of a frame, largest first: {"box": (x, y, w, h), "landmarks": (5, 2) or None, "score"}."""
        return self.detector.detect(frame)

    def classify(self, faces):
        """Probabilities (N, 7) for uint8 faces (N, 48, 48)."""
        return np.asarray(self.classifier.predict(np.stack(faces)))

    def _find_and_crop(self, frame):
        """(boxes, 48x48 crops) of every face in a BGR frame."""
        start = time.perf_counter()
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        found = self.find_faces(frame)
        detected = time.perf_counter()
        crops = [crop_face(gray, face, self.align) for face in found]
        self.timings["detect"] += detected - start
        self.timings["crop"] += time.perf_counter() - detected
        return [face["box"] for face in found], crops

    def _classify_found(self, boxes, crops):
        """The result dicts of detect_emotions for faces already found and cropped."""
        if self.stills:
            self.tracker.reset()
        tracks = self.tracker.update(boxes)
        if not boxes:
            return []
        start = time.perf_counter()
        probabilities = self.classify(crops)
        self.timings["classify"] += time.perf_counter() - start
        results = []
        for box, track, p in zip(boxes, tracks, probabilities):
            if self.smooth > 0 and not self.stills and track.probabilities is not None:
                p = self.smooth * track.probabilities + (1 - self.smooth) * p
            track.probabilities = p
            k = int(p.argmax())
            results.append({"box": box, "face": track.id, "label": self.class_names[k], "confidence": float(p[k]),
                            "emotions": dict(zip(self.class_names, map(float, p)))})
        return results

    def detect_emotions(self, frame):
        """Every face in a BGR frame: a list of {"box": (x, y, w, h), "face", "label", "confidence", "emotions"}.

        "face" is the track id; "emotions" maps each class name to its probability, as the `fer` package does.
        """
        return self._classify_found(*self._find_and_crop(frame))

    def stream(self, frames):
        """detect_emotions over an iterable of (name, frame): yields (name, frame, results) in order.

        Faces of the next frame are found (on a second thread) while those of this one are
        classified: both release the GIL, so the two stages can overlap. (With the Haar cascade,
        which uses both cores itself, this gained little here: 46.3 against 45.0 frames/s.)
        """
        frames = iter(frames)
        with ThreadPoolExecutor(1) as pool:
            def ahead_of(item):  # (name, frame, the future of its faces), or None past the last frame
                return None if item is None else (*item, pool.submit(self._find_and_crop, item[1]))

            ahead = ahead_of(next(frames, None))
            while ahead is not None:
                name, frame, found = ahead
                ahead = ahead_of(next(frames, None))
                yield name, frame, self._classify_found(*found.result())


def draw(frame, results, fps=None):
    """Draws each face's box, label, confidence and a bar chart of the 7 probabilities, in place."""
    for face in results:
        x, y, w, h = face["box"]
        cv2.rectangle(frame, (x, y), (x + w, y + h), (0, 255, 0), 2)
        track = f"#{face['face']} " if "face" in face else ""
        cv2.putText(frame, f"{track}{face['label']} {face['confidence']:.0%}", (x, max(12, y - 6)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 2, cv2.LINE_AA)
        bar_x = x + w + 6 if x + w + 96 < frame.shape[1] else max(0, x - 96)
        for i, (name, p) in enumerate(face["emotions"].items()):
            top = y + i * 13
            cv2.rectangle(frame, (bar_x + 30, top), (bar_x + 30 + int(60 * p), top + 10), (0, 200, 255), -1)
            cv2.putText(frame, name[:3], (bar_x, top + 9), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                        cv2.LINE_AA)
    if fps is not None:
        cv2.putText(frame, f"{fps:.1f} FPS", (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 2, cv2.LINE_AA)
    return frame


# The class's name until it was renamed: "detector" now means the face detector alone
EmotionDetector = EmotionRecognizer
