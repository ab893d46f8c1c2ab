"""Scores checkpoints on labelled face sets that are not FER2013's (and on FER2013 PublicTest beside them).

    python benchmarks/cross_dataset.py --sets ../shared/rafdb ../shared/sfew --fer data --mode crop
    python benchmarks/cross_dataset.py --sets ../shared/rafdb ../shared/sfew --fer data --mode pipeline \\
        --detector yunet --out cross.json
    python benchmarks/cross_dataset.py --model a.pt b.pt --balanced ...   # an ensemble, class-balanced
    python benchmarks/cross_dataset.py --val_of data/raf --fer data/fer ...  # a prepared face folder's val part

A set is a folder with a labels.csv (file, label: FER2013's order 0 angry .. 6 neutral) or one
subfolder per class named as FER2013's classes. Two modes:
- crop: the image as given (already a face crop), greyscale, resized to 48x48: the network alone.
- pipeline: the whole live pipeline (detector, framing, crop, classify) on the image with a
  replicated border of half its size on each side, since these sets hold tight crops that a
  detector cannot find as they are; the face nearest the image centre is the labelled one. A
  face not found counts as wrong, and the share found is reported.
Accuracy, balanced accuracy (the mean of per-class recall), macro-F1, per-class recall and the
confusion matrix are printed and, with --out, written as JSON. These sets are for evaluation
only: nothing is trained, calibrated or chosen on them. --val_of DIR scores the val part that
generate_data.py carved from a face folder (DIR is the prepared folder): its original images,
as a set, so a model trained on the rest of that folder is measured on faces it never saw. With
--fer, FER2013 PublicTest is scored against its FER2013 labels and, where the prepared folder has
FER+ votes, against FER+'s majority too (fer2013_publictest_ferplus).
"""
import argparse
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from common import run_benchmark
from tqdm import tqdm

from deep_emotion.data.face_sources import labelled_faces, majority_class
from deep_emotion.data.loaders import load_face_crops, load_split
from deep_emotion.data.prepared import load_votes, read_labels_csv, split_dir
from deep_emotion.emotions import FER2013_HEAD, TTA_MODES
from deep_emotion.face_detectors import DEFAULT_DETECTOR, DETECTORS, bordered, nearest_to_centre
from deep_emotion.metrics import classification_scores
from deep_emotion.recognizer import DEFAULT_MODEL, EmotionRecognizer


def scores(predictions, labels):
    """Accuracy (also on the faces found), balanced accuracy, macro-F1, per-class recall and the confusion
    matrix (its last column: no face found, prediction -1); metrics.classification_scores underneath."""
    result = classification_scores(predictions, labels, missed_column=True)
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    found = predictions >= 0
    return {"faces": result["total"], "found": result["found"], "accuracy": result["accuracy"],
            "accuracy_on_found": float((predictions == labels)[found].mean()) if found.any() else 0.0,
            "balanced_accuracy": result["balanced_accuracy"], "macro_f1": result["macro_f1"],
            "recall": {name: c["recall"] for name, c in result["per_class"].items()}, "confusion": result["confusion"]}


def predict_crops(recognizer, images):
    """Predicted classes of uint8 faces as the recognizer's network reads them (recognizer.face_input)."""
    return recognizer.classifier.predict(images).argmax(1)


def predict_pipeline(recognizer, images):
    """Predicted class of the face nearest the centre of each image (BGR or grey), -1 when none is found."""
    predictions = []
    for image in tqdm(images, desc="pipeline", leave=False):
        frame = bordered(image)
        results = recognizer.detect_emotions(frame)
        if not results:
            predictions.append(-1)
            continue
        nearest = nearest_to_centre(results, frame)
        predictions.append(recognizer.class_names.index(nearest["label"]))
    return np.array(predictions)


def val_part(prepared):
    """(source image paths, labels) of the val split generate_data.py carved from a face folder."""
    manifest = json.loads((split_dir(prepared, "") / "manifest.json").read_text())
    with open(split_dir(prepared, "val") / "labels.csv", newline="") as f:
        origins = [row["origin"] for row in csv.DictReader(f)]
    _, labels = read_labels_csv(split_dir(prepared, "val"))
    return [Path(manifest["source"]) / origin for origin in origins], labels


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=[str(DEFAULT_MODEL)],
                        help="checkpoint(s); several are averaged "
                             "(default: deep_emotion/weights/deep_emotion_pair.pt)")
    parser.add_argument("--sets", nargs="*", default=[], help="labelled face folders (default: none)")
    parser.add_argument("--val_of", nargs="*", default=[],
                        help="prepared face folders whose carved val part is scored, as <name>_val (default: none)")
    parser.add_argument("--fer", default="", help="prepared FER2013 folder: its PublicTest (val) joins the table "
                                                 "(default: none)")
    parser.add_argument("--mode", choices=["crop", "pipeline"], default="crop",
                        help="the given crop, or the whole live pipeline (default: crop)")
    parser.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR,
                        help="pipeline's detector (default: yunet, shipped)")
    parser.add_argument("--detector_model", default=None,
                        help="another YuNet .onnx file (default: $DEEP_EMOTION_YUNET, else the package's)")
    parser.add_argument("--align", action="store_true", help="YuNet with eye alignment (default: off)")
    parser.add_argument("--tta", nargs="?", const="flip", default=None, choices=TTA_MODES,
                        help="test-time augmentation (default: off)")
    parser.add_argument("--balanced", action="store_true", help="class-balanced decision (default: off)")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N faces of each set (default: all)")
    parser.add_argument("--out", default="", help="write the results as JSON here (default: none)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the live pipeline's setting (visualize.LIVE_TORCH_THREADS); crop mode batches anyway
    recognizer = EmotionRecognizer(args.model, tta=args.tta, detector=args.detector, detector_model=args.detector_model,
                                   align=args.align, balanced=args.balanced, stills=True)
    # FER2013's own labels are scored with the checkpoints' fer2013 head where every one has it
    classifier = recognizer.classifier
    has_fer2013_head = FER2013_HEAD in classifier.heads
    results = {"model": args.model, "mode": args.mode, "tta": args.tta, "balanced": args.balanced,
               "detector": args.detector if args.mode == "pipeline" else None,
               "aligned": args.align if args.mode == "pipeline" and args.detector == "yunet" else None,
               "sets": {}}
    sets = ([(Path(folder).name, folder) for folder in args.sets]
            + [(f"{Path(folder).name}_val", folder) for folder in args.val_of]
            + ([("fer2013_publictest", None)] if args.fer else []))
    for name, folder in sets:
        if folder is None:
            faces, labels, _ = load_split(args.fer, "val", face_input=recognizer.face_input)
            faces, labels = faces.numpy(), labels.tolist()
            images = list(faces)
        else:
            try:
                paths, labels = val_part(folder) if name.endswith("_val") and folder in args.val_of \
                    else labelled_faces(folder)
            except OSError as error:  # a folder's files; DataError is run_benchmark's one line
                raise SystemExit(f"error: {error}") from None
            if args.limit:
                paths, labels = paths[:args.limit], labels[:args.limit]
            faces = load_face_crops(paths, recognizer.face_input) if args.mode == "crop" else None
            images = None if args.mode == "crop" else [cv2.imread(str(p)) for p in paths]
        if args.limit:
            faces, labels = (faces[:args.limit] if faces is not None else None), labels[:args.limit]
            images = images[:args.limit] if images is not None else None
        predictions = predict_crops(recognizer, faces) if args.mode == "crop" else predict_pipeline(recognizer, images)
        default_predictions = predictions
        if folder is None and has_fer2013_head and args.mode == "crop":
            classifier.use_head(FER2013_HEAD)
            predictions = np.asarray(classifier.predict(faces)).argmax(1).tolist()
            classifier.use_head(None)
        results["sets"][name] = scores(predictions, labels)
        votes = load_votes(args.fer, "val") if folder is None else None
        if votes is not None:  # the default head's predictions against FER+'s majority, where FER+ gives one
            predictions = default_predictions
            majority = majority_class(votes)
            voted = majority >= 0
            results["sets"][f"{name}_ferplus"] = scores(np.asarray(predictions)[voted], majority[voted])
        for shown in [name] + ([f"{name}_ferplus"] if votes is not None else []):
            r = results["sets"][shown]
            print(f"{shown:<20} {r['faces']:>6} faces  found {r['found']:.1%}  accuracy {r['accuracy']:.2%}  "
                  f"balanced {r['balanced_accuracy']:.2%}  macro-F1 {r['macro_f1']:.3f}  recall "
                  + " ".join(f"{k[:3]} {v:.0%}" for k, v in r["recall"].items()), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(f"results: {args.out}")


if __name__ == "__main__":
    run_benchmark(main)
