"""Face detection + expression classification on BGR frames: the Python API behind `visualize.py --cam`.

    from emotion_detector import EmotionDetector
    detector = EmotionDetector("weights/deep_emotion_vgg.pt")
    for face in detector.detect_emotions(frame):   # frame: BGR uint8 (H, W, 3)
        print(face["box"], face["label"], face["confidence"], face["emotions"])
"""
import time

import cv2
import numpy as np
import torch

from face_detectors import build_detector, crop_face
from model import Ensemble


class EmotionDetector:
    """Finds every face in a frame and classifies all of them in one batch.

    model_path: one checkpoint, or a list whose probabilities are averaged (an ensemble).
    detector: "haar" (OpenCV's cascade, the default: nothing to download) or "yunet"
    (OpenCV's CNN detector; detector_model is its .onnx file, see face_detectors.py);
    with YuNet each face is turned upright on its eyes before the crop unless align=False.
    `smooth` in [0, 1) averages each face's probabilities with those of the
    overlapping face in the previous frame (exponential moving average), so
    labels do not flicker; 0 turns it off. `tta` ("flip" or "shifts", see
    `model.TTA_MODES`) also classifies mirrored (and shifted) copies of each face
    and averages: 2 or 10 times the classification time. balanced=True divides
    out FER2013's class prior (`model.balance`).
    """

    def __init__(self, model_path, device="cpu", smooth=0.0, min_face=None, tta=None, detector="haar",
                 detector_model=None, align=True, balanced=False):
        self.classifier = Ensemble(model_path, device, tta, balanced)
        self.class_names = self.classifier.class_names
        self.detector = build_detector(detector, detector_model, min_face)
        self.smooth, self.align = smooth, align
        self.previous = []  # (box, probabilities) of the last frame, for smoothing
        self.timings = {"detect": 0.0, "crop": 0.0, "classify": 0.0}

    def find_faces(self, frame):
        """The faces of a frame, largest first: {"box": (x, y, w, h), "landmarks": (5, 2) or None, "score"}."""
        return self.detector.detect(frame)

    def classify(self, faces):
        """Probabilities (N, 7) for uint8 faces (N, 48, 48)."""
        return self.classifier.predict(torch.from_numpy(np.stack(faces))).numpy()

    def _smoothed(self, boxes, probabilities):
        if self.smooth <= 0:
            return probabilities
        smoothed = probabilities.copy()
        for i, box in enumerate(boxes):
            best = max(self.previous, key=lambda prev: iou(box, prev[0]), default=None)
            if best is not None and iou(box, best[0]) > 0.3:
                smoothed[i] = self.smooth * best[1] + (1 - self.smooth) * probabilities[i]
        return smoothed

    def detect_emotions(self, frame):
        """Every face in a BGR frame: a list of {"box": (x, y, w, h), "label", "confidence", "emotions"}.

        "emotions" maps each class name to its probability, as the `fer` package does.
        """
        start = time.perf_counter()
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        found = self.find_faces(frame)
        detected = time.perf_counter()
        if not found:
            self.previous = []
            self.timings["detect"] += detected - start
            return []
        boxes = [face["box"] for face in found]
        crops = [crop_face(gray, face, self.align) for face in found]
        cropped = time.perf_counter()
        probabilities = self._smoothed(boxes, self.classify(crops))
        classified = time.perf_counter()
        self.previous = list(zip(boxes, probabilities))
        self.timings["detect"] += detected - start
        self.timings["crop"] += cropped - detected
        self.timings["classify"] += classified - cropped
        results = []
        for box, p in zip(boxes, probabilities):
            k = int(p.argmax())
            results.append({"box": box, "label": self.class_names[k], "confidence": float(p[k]),
                            "emotions": dict(zip(self.class_names, map(float, p)))})
        return results


def iou(a, b):
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter) if inter else 0.0


def draw(frame, results, fps=None):
    """Draws each face's box, label, confidence and a bar chart of the 7 probabilities, in place."""
    for face in results:
        x, y, w, h = face["box"]
        cv2.rectangle(frame, (x, y), (x + w, y + h), (0, 255, 0), 2)
        cv2.putText(frame, f"{face['label']} {face['confidence']:.0%}", (x, max(12, y - 6)),
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
