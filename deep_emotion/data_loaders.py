"""FER2013 as prepared by generate_data.py: a Dataset and an in-memory loader (augment.py augments batches).

Layout under the data folder (written by generate_data.py):

    DIR/prepared/<split>/labels.csv     file,label,origin   (label empty when unlabeled)
    DIR/prepared/<split>/images/*.png   48x48 grayscale, lossless
    DIR/prepared/manifest.json          what was converted, from where

Splits: train (FER2013 Training), val (PublicTest), test (PrivateTest) and
unlabeled (the Kaggle competition's test.csv, which has no labels).
"""
import csv
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from deep_emotion.emotions import CLASS_NAMES, standardize

SPLITS = ("train", "val", "test", "unlabeled")
PREPARED_DIRNAME = "prepared"
UNLABELED = -1


class DataError(Exception):
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
        raise DataError(f"{data_dir} is not prepared: run `python generate_data.py --data {data_dir}` first")
    files, labels = read_labels_csv(directory)
    if not files:
        raise DataError(f"the '{split}' split in {directory} is empty")
    if require_labels and UNLABELED in labels:
        raise DataError(
            f"the '{split}' split in {directory} has no labels (Kaggle's test.csv ships without them); "
            "the labelled test faces are the PrivateTest rows of fer2013.csv or icml_face_data.csv")
    return directory, files, labels


class FER2013(Dataset):
    """One prepared split as a map-style dataset of (PIL grayscale image, label).

    `transform` and `target_transform` follow torchvision's conventions.
    """

    classes = CLASS_NAMES

    def __init__(self, data_dir, split="train", transform=None, target_transform=None, require_labels=True):
        self.directory, self.files, self.labels = check_prepared(data_dir, split, require_labels)
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        image = Image.open(self.directory / "images" / self.files[index]).convert("L")
        label = self.labels[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label


def load_split(data_dir, split, require_labels=True):
    """Decodes a whole split once into memory.

    Returns (images, labels, files): a uint8 tensor (N, 48, 48), an int64
    tensor (N,) (-1 where unlabeled) and the file names. FER2013 is about 83 MB
    this way, so training never decodes images file by file.
    """
    directory, files, labels = check_prepared(data_dir, split, require_labels)
    images = np.empty((len(files), 48, 48), dtype=np.uint8)

    def decode(index):
        image = cv2.imread(str(directory / "images" / files[index]), cv2.IMREAD_GRAYSCALE)
        if image is None or image.shape != (48, 48):
            raise DataError(f"{directory / 'images' / files[index]} is unreadable or not 48x48; "
                            "rebuild with `python generate_data.py --force`")
        images[index] = image

    # cv2 releases the GIL while decoding, so threads decode in parallel
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(decode, range(len(files)), chunksize=512))
    return torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64), files


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


def normalize(images, mean, std):
    """uint8 (B, 48, 48) -> float (B, 1, 48, 48), standardised with the training statistics."""
    return standardize(images.unsqueeze(1).float(), mean, std)


# ---------------------------------------------------------------- face images as given (evaluation)

def load_face_crops(paths):
    """Face images as given, greyscale, resized to 48x48 (area): uint8 (N, 48, 48)."""
    faces = np.empty((len(paths), 48, 48), np.uint8)
    for i, path in enumerate(paths):
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DataError(f"{path} is not a readable image")
        faces[i] = cv2.resize(image, (48, 48), interpolation=cv2.INTER_AREA)
    return faces
