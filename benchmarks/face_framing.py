"""Measures how a FER2013 face is framed relative to what a detector finds (the constants of face_detectors.py).

    python benchmarks/face_framing.py --data data --detector haar --count 600
    python benchmarks/face_framing.py --data data --detector yunet
    python benchmarks/face_framing.py --faces ../shared/rafdb --detector yunet --detector_model ...  # RAF_FRAMING

Training faces are upscaled 4x into a grey 480x480 frame. For each detected face: the FER
crop's side over the box's width and its centre's offset in box units; with landmarks,
its side over the eye distance and its centre's offset from between the eyes in eye distances.
Each figure comes with its 10th-90th percentile range: how much a detector's box wanders
around the FER2013 framing from face to face, which main.py's --scale and --shift imitate.

With --faces FOLDER (a labelled face folder of aligned crops, e.g. RAF-DB's), it measures the
other way round: where the pipeline's FER2013-framed square (YUNET_CROP_SCALE x the box, centred)
sits in each crop, as fractions of the crop (face_sources.RAF_FRAMING).
"""
import argparse

import cv2
import numpy as np
from common import add_json_flag, median_report, run_benchmark, write_json

from deep_emotion.data.face_sources import labelled_faces
from deep_emotion.data.loaders import load_split
from deep_emotion.face_detectors import (
    DETECTORS,
    HAAR_CROP_SCALE,
    YUNET_CROP_SCALE,
    bordered,
    build_detector,
    nearest_to_centre,
)


def spread_report(name, values):
    """The median, as median_report prints it, and the 10th-90th percentile range."""
    median = median_report(name, values, "")
    low, high = np.percentile(values, [10, 90])
    print(f"    10th-90th percentile: {low:.3f} .. {high:.3f}")
    return median


def crop_framing(folder, detector, count):
    """Median centre (x, y) and side of the pipeline's face square in a face folder's crops, as fractions."""
    paths, _ = labelled_faces(folder)
    chosen = np.random.default_rng(0).choice(len(paths), min(count, len(paths)), replace=False)
    centre_x, centre_y, side = [], [], []
    for i in chosen:
        image = cv2.imread(str(paths[i]), cv2.IMREAD_GRAYSCALE)
        frame = bordered(image)
        pad = (frame.shape[0] - image.shape[0]) // 2
        faces = detector.detect(frame)
        if not faces:
            continue
        x, y, w, h = nearest_to_centre(faces, frame)["box"]
        scale = YUNET_CROP_SCALE if faces[0]["landmarks"] is not None else HAAR_CROP_SCALE
        centre_x.append((x + w / 2 - pad) / image.shape[1])
        centre_y.append((y + h / 2 - pad) / image.shape[0])
        side.append(w * scale / image.shape[1])
    print(f"detected {len(side)} of {len(chosen)} faces in {folder}")
    return [spread_report(name, values) for name, values in
            (("square centre x / crop width", centre_x), ("square centre y / crop height", centre_y),
             ("square side / crop width", side))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data", help="prepared data folder (default: data)")
    parser.add_argument("--count", type=int, default=600, help="training faces to try (default: 600)")
    parser.add_argument("--detector", choices=DETECTORS, default="haar", help="face detector (default: haar)")
    parser.add_argument("--detector_model", default=None, help="YuNet's .onnx file (default: $DEEP_EMOTION_YUNET)")
    parser.add_argument("--faces", default="", help="measure the framing in this face folder's crops instead "
                                                     "(default: none)")
    add_json_flag(parser)
    args = parser.parse_args()
    if args.faces:
        crop_framing(args.faces, build_detector(args.detector, args.detector_model, stills=True), args.count)
        write_json(args.json)
        return
    images, _, _ = load_split(args.data, "train")
    detector = build_detector(args.detector, args.detector_model, min_face=60)
    side, corner = 192, 144
    centre = corner + side / 2
    chosen = np.random.default_rng(0).choice(len(images), min(args.count, len(images)), replace=False)
    box_ratio, box_dx, box_dy, eye_ratio, eye_dx, eye_dy, tilt = [], [], [], [], [], [], []
    for i in chosen:
        frame = np.full((480, 480), 128, np.uint8)
        frame[corner:corner + side, corner:corner + side] = cv2.resize(images[i].numpy(), (side, side),
                                                                       interpolation=cv2.INTER_CUBIC)
        faces = detector.detect(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        if not faces:
            continue
        x, y, w, h = faces[0]["box"]
        box_ratio.append(side / w)
        box_dx.append((centre - (x + w / 2)) / w)
        box_dy.append((centre - (y + h / 2)) / h)
        if faces[0]["landmarks"] is not None:
            left_eye, right_eye = faces[0]["landmarks"][:2]
            distance = np.linalg.norm(right_eye - left_eye)
            middle = (left_eye + right_eye) / 2
            eye_ratio.append(side / distance)
            eye_dx.append((centre - middle[0]) / distance)
            eye_dy.append((centre - middle[1]) / distance)
            tilt.append(np.degrees(np.arctan2(*(right_eye - left_eye)[::-1])))
    print(f"{args.detector} detected {len(box_ratio)} of {len(chosen)} faces")
    spread_report("FER side / box width", box_ratio)
    spread_report("centre offset x (box widths)", box_dx)
    spread_report("centre offset y (box heights)", box_dy)
    if eye_ratio:
        spread_report("FER side / eye distance", eye_ratio)
        spread_report("centre offset x (eye distances)", eye_dx)
        spread_report("centre below the eyes (eye distances)", eye_dy)
        spread_report("eye line tilt (degrees)", tilt)
    write_json(args.json, {"detected": len(box_ratio), "tried": len(chosen)})


if __name__ == "__main__":
    run_benchmark(main)
