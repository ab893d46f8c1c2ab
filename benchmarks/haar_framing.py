"""Measures how a FER2013 face relates to the Haar box OpenCV finds around it (emotion_detector.FER_CROP_SCALE).

    python benchmarks/haar_framing.py --data data --count 600

Training faces are upscaled 4x into a grey 480x480 frame; for each detected face,
the ratio (FER crop side / Haar box side) and the centre offset in box units.
"""
import argparse
from pathlib import Path

import cv2
import numpy as np

from common import median_report
from data_loaders import load_split
from emotion_detector import HAAR_CASCADE


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data", help="prepared data folder (default: data)")
    parser.add_argument("--count", type=int, default=600, help="training faces to try (default: 600)")
    args = parser.parse_args()
    images, _, _ = load_split(args.data, "train")
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / HAAR_CASCADE))
    side, corner = 192, 144
    chosen = np.random.default_rng(0).choice(len(images), min(args.count, len(images)), replace=False)
    ratio, dx, dy = [], [], []
    for i in chosen:
        frame = np.full((480, 480), 128, np.uint8)
        frame[corner:corner + side, corner:corner + side] = cv2.resize(images[i].numpy(), (side, side),
                                                                       interpolation=cv2.INTER_CUBIC)
        boxes = cascade.detectMultiScale(frame, 1.1, 5, minSize=(60, 60))
        if len(boxes):
            x, y, w, h = max(boxes, key=lambda b: b[2] * b[3])
            ratio.append(side / w)
            dx.append((corner + side / 2 - (x + w / 2)) / w)
            dy.append((corner + side / 2 - (y + h / 2)) / h)
    print(f"detected {len(ratio)} of {len(chosen)} faces")
    median_report("FER side / Haar side", ratio, "")
    median_report("centre offset x (box widths)", dx, "")
    median_report("centre offset y (box heights)", dy, "")


if __name__ == "__main__":
    main()
