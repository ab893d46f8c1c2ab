"""Prepared splits as training and evaluation read them: a torchvision-style Dataset and an in-memory loader.

The folders' layout (prepared.py) is written by prepare.py; augment.py augments the batches.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from deep_emotion.data.prepared import DataError, check_prepared
from deep_emotion.emotions import CLASS_NAMES, FaceInput
from deep_emotion.face_detectors import fit_face, read_face_image
from deep_emotion.utils import command_hint


class FER2013(Dataset):
    """One prepared split as a map-style dataset of (PIL grayscale image, label), the faces as stored.

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


def load_split(data_dir, split, require_labels=True, face_input=FaceInput()):
    """Decodes a whole split once into memory, each face as face_input reads it (resized, grey or RGB).

    Returns (images, labels, files): a uint8 tensor face_input.shape(N) ((N, 48, 48) by default), an
    int64 tensor (N,) (-1 where unlabeled) and the file names. FER2013 is about 83 MB this way, so
    training never decodes images file by file.
    """
    directory, files, labels = check_prepared(data_dir, split, require_labels)
    images = np.empty(face_input.shape(len(files)), dtype=np.uint8)

    def decode(index):
        image = read_face_image(directory / "images" / files[index], face_input)
        if image is None:
            raise DataError(f"{directory / 'images' / files[index]} is unreadable; "
                            f"rebuild with {command_hint('prepare', '--force --data DIR')}")
        images[index] = fit_face(image, face_input)

    # cv2 releases the GIL while decoding, so threads decode in parallel
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(decode, range(len(files)), chunksize=512))
    return torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64), files


# ---------------------------------------------------------------- face images as given (evaluation)

def load_face_crops(paths, face_input=FaceInput()):
    """Face images as given, as face_input reads them (resized by area): uint8 face_input.shape(N)."""
    faces = np.empty(face_input.shape(len(paths)), np.uint8)
    for i, path in enumerate(paths):
        image = read_face_image(path, face_input)
        if image is None:
            raise DataError(f"{path} is not a readable image")
        faces[i] = fit_face(image, face_input)
    return faces
