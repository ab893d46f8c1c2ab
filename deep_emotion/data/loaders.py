"""Prepared splits as training and evaluation read them: a torchvision-style Dataset and an in-memory loader.

The folders' layout (prepared.py) is written by prepare.py; augment.py augments the batches.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from deep_emotion.data.prepared import DataError, check_prepared
from deep_emotion.emotions import CLASS_NAMES, standardize
from deep_emotion.utils import command_hint


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
                            f"rebuild with {command_hint('prepare', '--force --data DIR')}")
        images[index] = image

    # cv2 releases the GIL while decoding, so threads decode in parallel
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(decode, range(len(files)), chunksize=512))
    return torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64), files


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
