"""Face detection + expression classification on BGR frames: the Python API behind `visualize.py --cam`.

    from emotion_detector import EmotionDetector
    detector = EmotionDetector("weights/deep_emotion_vgg.pt")
    for face in detector.detect_emotions(frame):   # frame: BGR uint8 (H, W, 3)
        print(face["box"], face["label"], face["confidence"], face["emotions"])
"""
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from data_loaders import CLASS_NAMES
from model import load_model, predict

HAAR_CASCADE = "haarcascade_frontalface_default.xml"
# A FER2013 face spans 1.03x the Haar box around it, centred on it: the median over
# 600 Training faces upscaled into a larger frame (benchmarks/haar_framing.py).
# Crops are taken at this framing so that the network sees what it was trained on.
FER_CROP_SCALE = 1.03
DETECT_WIDTH = 320  # faces are found on a frame downscaled to this width, for speed...
HAAR_WINDOW = 24  # ...but never below the cascade's 24-pixel window at min_face: smaller faces would be lost


class EmotionDetector:
    """Finds every face in a frame and classifies all of them in one batch.

    `smooth` in [0, 1) averages each face's probabilities with those of the
    overlapping face in the previous frame (exponential moving average), so
    labels do not flicker; 0 turns it off. `tta` ("flip" or "shifts", see
    `model.TTA_MODES`) also classifies mirrored (and shifted) copies of each face
    and averages: 2 or 10 times the classification time.
    """

    def __init__(self, model_path, device="cpu", smooth=0.0, min_face=48, tta=None):
        self.device = torch.device(device)
        self.model, checkpoint = load_model(model_path, self.device)
        self.normalization = tuple(checkpoint["normalization"])
        self.class_names = list(checkpoint.get("class_names", CLASS_NAMES))
        self.cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / HAAR_CASCADE))
        if self.cascade.empty():
            raise RuntimeError(f"could not load {HAAR_CASCADE} from {cv2.data.haarcascades}")
        self.smooth = smooth
        self.tta = tta
        self.min_face = min_face
        self.previous = []  # (box, probabilities) of the last frame, for smoothing
        self.timings = {"detect": 0.0, "crop": 0.0, "classify": 0.0}

    def find_faces(self, gray):
        """Haar boxes (x, y, w, h) in full-frame pixels, largest first, found on a downscaled copy."""
        factor = min(1.0, max(DETECT_WIDTH / gray.shape[1], HAAR_WINDOW / self.min_face))
        small = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else gray
        min_side = max(HAAR_WINDOW, int(round(self.min_face * factor)))
        boxes = self.cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        boxes = sorted(boxes, key=lambda box: -box[2] * box[3])
        return [tuple(int(round(v / factor)) for v in box) for box in boxes]

    @staticmethod
    def crop(gray, box):
        """The 48x48 FER-framed face around a Haar box; the frame edge is replicated where needed."""
        x, y, w, h = box
        side = int(round(max(w, h) * FER_CROP_SCALE))
        cx, cy = x + w / 2, y + h / 2
        left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
        pad = max(0, -left, -top, left + side - gray.shape[1], top + side - gray.shape[0])
        if pad:
            gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            left, top = left + pad, top + pad
        face = gray[top:top + side, left:left + side]
        return cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA)

    def classify(self, faces):
        """Probabilities (N, 7) for uint8 faces (N, 48, 48)."""
        images = torch.from_numpy(np.stack(faces))
        return predict(self.model, images, self.normalization, self.device, tta=self.tta).numpy()

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
        boxes = self.find_faces(gray)
        detected = time.perf_counter()
        if not boxes:
            self.previous = []
            self.timings["detect"] += detected - start
            return []
        faces = [self.crop(gray, box) for box in boxes]
        cropped = time.perf_counter()
        probabilities = self._smoothed(boxes, self.classify(faces))
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
