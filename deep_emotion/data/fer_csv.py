"""FER2013's own shapes, read into faces: Kaggle's CSVs (pixels parsed in parallel processes) and the
image-folder mirror. generate_data.py finds the shape and writes the splits; face_sources.py reads the others.
"""
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from deep_emotion.data import face_sources
from deep_emotion.data.prepared import UNLABELED, DataError
from deep_emotion.emotions import CLASS_NAMES
from deep_emotion.utils import IMAGE_SUFFIXES

SPLIT_OF_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SPLIT_OF_PREFIX = {"training": "train", "publictest": "val", "privatetest": "test"}
PIXELS_PER_FACE = 48 * 48


class Faces:
    """Valid faces of a source, their FER+ votes where it has them, and the bad rows it skipped."""

    def __init__(self):
        self.images, self.labels, self.splits, self.origins, self.votes = [], [], [], [], []
        self.bad = []  # (origin, reason)
        self.framing, self.missed_by_detector, self.votes_file = None, 0, None

    def extend(self, images, labels, splits, origins, votes=None):
        self.images.append(images)
        self.labels += list(labels)
        self.splits += list(splits)
        self.origins += list(origins)
        self.votes.append(np.full((len(images), len(face_sources.VOTE_COLUMNS)), -1) if votes is None
                          else np.asarray(votes))

    def arrays(self):
        """(images, labels, splits, origins, votes (N, 10), -1 rows where a face has none)."""
        images = np.concatenate(self.images) if self.images else np.zeros((0, 48, 48), np.uint8)
        votes = np.concatenate(self.votes) if self.votes else np.zeros((0, len(face_sources.VOTE_COLUMNS)))
        return images, np.asarray(self.labels, dtype=np.int64), np.asarray(self.splits), self.origins, votes


def _parse_block(texts):
    """Parses a list of `pixels` strings: returns (uint8 faces (N, 48, 48), {row: reason}).

    One vectorised parse when every row has the right number of separators; row by row otherwise.
    """
    values = None
    if all(text.count(" ") == PIXELS_PER_FACE - 1 for text in texts):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns (rather than fails) on text it cannot parse
            try:
                values = np.fromstring(" ".join(texts), dtype=np.int32, sep=" ")
            except (DeprecationWarning, ValueError):
                values = None
    reasons = {}
    if values is not None and values.size == len(texts) * PIXELS_PER_FACE:
        values = values.reshape(len(texts), 48, 48)
    else:
        values = np.zeros((len(texts), 48, 48), dtype=np.int32)
        for row, text in enumerate(texts):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                try:
                    parsed = np.fromstring(text, dtype=np.int32, sep=" ")
                except (DeprecationWarning, ValueError):
                    parsed = None
            if parsed is None or parsed.size != PIXELS_PER_FACE or len(text.split()) != PIXELS_PER_FACE:
                reasons[row] = f"pixels is not {PIXELS_PER_FACE} integers"
            else:
                values[row] = parsed.reshape(48, 48)
    for row in np.flatnonzero(((values < 0) | (values > 255)).any(axis=(1, 2))):
        reasons.setdefault(int(row), "a pixel is outside 0..255")
    return values.clip(0, 255).astype(np.uint8), reasons


_TEXTS = []  # the column being parsed; forked workers read it from the parent's memory


def _parse_rows(bounds):
    return _parse_block(_TEXTS[bounds[0]:bounds[1]])


def _init_worker(parent_pid):
    """Makes a parsing worker die with its parent, however the parent ends (Ctrl-C, SIGTERM, SIGKILL).

    Without this, a setup killed by an out-of-memory killer or a job scheduler leaves its
    workers (about 650 MB each on FER2013) running for good.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends the pool
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:  # no parent-death signal: watch for the parent to go
        def watch():
            while os.getppid() == parent_pid:
                time.sleep(0.5)
            os._exit(1)
        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the signal was set up
        os._exit(1)


def parsing_pool(workers):
    """A pool of forked workers that die with this process; closing it (`with`) terminates them."""
    return multiprocessing.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(os.getpid(),))


def parse_pixels(pixels, workers=1):
    """Parses FER2013 `pixels` strings into faces, in `workers` processes where fork is available.

    Returns (images uint8 (N, 48, 48), ok bool (N,), reasons {row: text}).
    """
    global _TEXTS
    texts = pixels.fillna("").astype(str).tolist()
    bounds = [(len(texts) * k // workers, len(texts) * (k + 1) // workers) for k in range(workers)]
    if workers > 1 and len(texts) >= 4096 and "fork" in multiprocessing.get_all_start_methods():
        _TEXTS = texts
        try:
            with parsing_pool(workers) as pool:
                blocks = pool.map(_parse_rows, bounds)
        finally:
            _TEXTS = []
    else:
        bounds, blocks = [(0, len(texts))], [_parse_block(texts)]
    images = np.concatenate([block for block, _ in blocks])
    reasons = {start + row: reason for (start, _), (_, block_reasons) in zip(bounds, blocks)
               for row, reason in block_reasons.items()}
    ok = np.ones(len(texts), dtype=bool)
    ok[list(reasons)] = False
    return images, ok, reasons


def parse_labels(emotion):
    """Returns (labels int (N,), ok bool (N,)) for an `emotion` column."""
    numbers = pd.to_numeric(emotion, errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(numbers) & (numbers == np.round(numbers)) & (numbers >= 0) & (numbers < len(CLASS_NAMES))
    return np.where(ok, numbers, UNLABELED).astype(np.int64), ok


def read_csv_faces(path, faces, split=None, labelled=True, workers=1):
    """Reads a FER2013-style CSV into `faces`; `split` fixes the split when it has no Usage column."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as error:  # pandas raises many kinds for unreadable files
        raise DataError(f"cannot read {path}: {str(error).splitlines()[0]}") from None
    table.columns = [str(c).strip() for c in table.columns]  # icml_face_data.csv: ' Usage', ' pixels'
    needed = ["pixels"] + (["emotion"] if labelled else []) + ([] if split else ["Usage"])
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise DataError(f"{path} lacks the column(s) {', '.join(missing)} (it has: {', '.join(table.columns)})")
    images, ok, reasons = parse_pixels(table["pixels"], workers)
    if labelled:
        labels, label_ok = parse_labels(table["emotion"])
        for row in np.flatnonzero(~label_ok):
            reasons.setdefault(int(row), f"label {table['emotion'].iloc[row]!r} is not in 0..6")
        ok &= label_ok
    else:
        labels = np.full(len(table), UNLABELED)
    if split:
        splits = np.full(len(table), split, dtype=object)
    else:
        splits = table["Usage"].str.strip().map(SPLIT_OF_USAGE).to_numpy()
        for row in np.flatnonzero(pd.isna(splits)):
            reasons.setdefault(int(row), f"Usage {table['Usage'].iloc[row]!r} is not a FER2013 split")
        ok &= ~pd.isna(splits)
    votes_file = face_sources.ferplus_votes_file(path) if labelled and not split else None
    votes = None
    if votes_file is not None:  # FER+ relabelled fer2013.csv row by row: its row i is this file's row i
        votes, bad_votes = face_sources.read_votes_csv(votes_file, len(table))
        for row, reason in bad_votes.items():
            reasons.setdefault(row, reason)
        ok[list(bad_votes)] = False
        faces.votes_file = str(votes_file)
    # line numbers as an editor shows them: the header is line 1
    origins = np.array([f"{path.name}:{row + 2}" for row in range(len(table))], dtype=object)
    faces.bad += [(origins[row], reason) for row, reason in sorted(reasons.items())]
    faces.extend(images[ok], labels[ok], splits[ok], origins[ok], votes[ok] if votes is not None else None)


def read_image_folder_faces(root, faces):
    """Reads the image-folder mirror; the split comes from the file name prefix, else the folder."""
    entries = []
    for top, default_split in (("train", "train"), ("test", "test")):
        for folder, label in face_sources.class_folders(Path(root) / top).items():
            for path in sorted(folder.iterdir()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    prefix = path.name.split("_", 1)[0].lower()
                    entries.append((path, label, SPLIT_OF_PREFIX.get(prefix, default_split)))
    images = np.zeros((len(entries), 48, 48), dtype=np.uint8)
    ok = np.zeros(len(entries), dtype=bool)

    def decode(index):
        image = cv2.imread(str(entries[index][0]), cv2.IMREAD_GRAYSCALE)
        if image is not None:
            if image.shape != (48, 48):
                image = cv2.resize(image, (48, 48), interpolation=cv2.INTER_AREA)
            images[index], ok[index] = image, True

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(tqdm(pool.map(decode, range(len(entries)), chunksize=256), total=len(entries),
                  desc="reading images", leave=False))
    origins = np.array([str(path.relative_to(root)) for path, _, _ in entries], dtype=object)
    faces.bad += [(origins[i], "unreadable image") for i in np.flatnonzero(~ok)]
    faces.extend(images[ok], [e[1] for e, good in zip(entries, ok) if good],
                 [e[2] for e, good in zip(entries, ok) if good], origins[ok])
