"""The prepared folders' layout, read without PyTorch: splits, labels, FER+ votes and the one-line DataError.

Layout under the data folder (written by generate_data.py):

    DIR/prepared/<split>/labels.csv     file,label,origin   (label empty when unlabeled)
    DIR/prepared/<split>/images/*.png   48x48 grayscale, lossless (a face folder's: --face_size, --colour)
    DIR/prepared/manifest.json          what was converted, from where

Splits: train (FER2013 Training), val (PublicTest), test (PrivateTest) and
unlabeled (the Kaggle competition's test.csv, which has no labels).
"""
import csv
import json
from pathlib import Path

import numpy as np

from deep_emotion.emotions import FaceInput
from deep_emotion.utils import UserError, command_hint

SPLITS = ("train", "val", "test", "unlabeled")
PREPARED_DIRNAME = "prepared"
UNLABELED = -1


class DataError(UserError):
    """A problem with the user's data, reported as one line (exit code 2)."""


# the prepared kinds whose labels are FER2013's own (Microsoft's FER+ folders carry FER+'s majority instead)
FER2013_LABEL_KINDS = ("fer2013", "icml", "competition", "image_folder", "synthetic")


def labels_are_fer2013(data_dir):
    """Whether a prepared folder's labels are FER2013's own, per its manifest (False when it has none)."""
    try:
        kind = json.loads((split_dir(data_dir, "") / "manifest.json").read_text()).get("kind")
    except (OSError, ValueError):
        return False
    return kind in FER2013_LABEL_KINDS


def stored_face_input(data_dir):
    """The FaceInput a prepared folder's faces were kept at, per its manifest (48x48 grey for FER2013 and folders
    prepared before the manifest said); None when it has no manifest."""
    try:
        manifest = json.loads((split_dir(data_dir, "") / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return FaceInput(**manifest["face_input"]) if "face_input" in manifest else FaceInput()


def split_dir(data_dir, split):
    return Path(data_dir) / PREPARED_DIRNAME / split


def read_labels_csv(directory):
    """Returns (file names, labels) of a prepared split; label is -1 where unknown."""
    labels_csv = Path(directory) / "labels.csv"
    files, labels = [], []
    with open(labels_csv, newline="") as f:
        for row in csv.DictReader(f):
            files.append(row["file"])
            labels.append(int(row["label"]) if row["label"] != "" else UNLABELED)
    return files, labels


def check_prepared(data_dir, split, require_labels=True):
    """The split's folder, file names and labels; raises DataError, in one line, when it is not prepared."""
    directory = split_dir(data_dir, split)
    if not (directory / "labels.csv").is_file():
        prepared = split_dir(data_dir, "")
        have = sorted(p.name for p in prepared.iterdir() if (p / "labels.csv").is_file()) if prepared.is_dir() else []
        if "unlabeled" in have and split == "test":
            raise DataError(f"{data_dir} has no labelled test split: Kaggle's test.csv ships without labels; "
                            "the labelled test faces are the PrivateTest rows of fer2013.csv or icml_face_data.csv")
        if have:
            raise DataError(f"{data_dir} has no prepared '{split}' split (it has: {', '.join(have)})")
        raise DataError(f"{data_dir} is not prepared: run {command_hint('prepare', f'--data {data_dir}')} first")
    files, labels = read_labels_csv(directory)
    if not files:
        raise DataError(f"the '{split}' split in {directory} is empty")
    if require_labels and UNLABELED in labels:
        raise DataError(
            f"the '{split}' split in {directory} has no labels (Kaggle's test.csv ships without them); "
            "the labelled test faces are the PrivateTest rows of fer2013.csv or icml_face_data.csv")
    return directory, files, labels


def load_votes(data_dir, split):
    """FER+'s ten vote counts of each face of a prepared split, int64 (N, 10), or None when it has none.

    Rows of faces without votes are -1 (the columns are face_sources.VOTE_COLUMNS).
    """
    with open(split_dir(data_dir, split) / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "votes" not in rows[0]:
        return None
    return np.array([[int(v) for v in row["votes"].split()] if row["votes"] else [-1] * 10 for row in rows],
                    dtype=np.int64)
