"""What a run trains and validates on: one or more prepared data folders, their targets and each epoch's draws.

    python main.py --train --data data/fer data/raf --source_weights 1 1 --targets votes

Each --data folder is a source. Training draws from the union of their train splits, each source
taking its --source_weights share of an epoch's draws; every source keeps its own val split, scored
on its own. Targets (--targets): "label" is each face's label; where a source has FER+ votes,
"majority" trains on FER+'s majority label instead and "votes" on FER+'s vote distribution (the
FER+ paper's "probability" scheme), leaving out the faces FER+ gives no FER2013 class.
"""
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from deep_emotion.data.face_sources import majority_class, vote_distribution
from deep_emotion.data.loaders import load_split
from deep_emotion.data.prepared import DataError, load_votes, split_dir
from deep_emotion.emotions import CLASS_NAMES, FER2013_HEAD, FaceInput

TARGETS = ("label", "majority", "votes")
SELECT_RULES = ("auto", "accuracy", "mean")


@dataclass
class Source:
    """One --data folder: its train faces and targets, its val faces, FER2013 labels and FER+ majority."""
    name: str
    train_images: torch.Tensor  # uint8 (N, 48, 48): the network's FaceInput.shape
    train_labels: torch.Tensor  # int64 (N,): the class each face counts as (accuracy, class prior)
    train_soft: torch.Tensor    # float (N, 7): FER+'s vote distribution, or None
    train_fer2013: torch.Tensor  # int64 (N,): FER2013's own label where FER+ votes replaced it, or None
    val_images: torch.Tensor
    val_labels: torch.Tensor
    val_majority: torch.Tensor  # FER+'s majority label of each val face (-1: none), or None


def source_names(data_dirs):
    """A short, unique name per --data folder (its folder name; the path where two names clash)."""
    names = [Path(d).name or str(d) for d in data_dirs]
    return [str(d) if names.count(n) > 1 else n for n, d in zip(names, data_dirs)]


def load_source(data_dir, name, targets, face_input=FaceInput()):
    """Loads one prepared folder's train and val splits with the targets asked for, faces as face_input."""
    train_images, train_labels, _ = load_split(data_dir, "train", face_input=face_input)
    val_images, val_labels, _ = load_split(data_dir, "val", face_input=face_input)
    train_votes, val_votes = load_votes(data_dir, "train"), load_votes(data_dir, "val")
    train_soft = train_fer2013 = None
    if targets != "label" and train_votes is not None:
        soft, keep = vote_distribution(train_votes)
        majority = torch.from_numpy(majority_class(train_votes))
        keep = torch.from_numpy(keep) & (majority >= 0)  # faces FER+ gives no FER2013 class are left out
        train_fer2013 = train_labels[keep]
        train_images, train_labels = train_images[keep], majority[keep]
        train_soft = torch.from_numpy(soft)[keep] if targets == "votes" else None
    val_majority = torch.from_numpy(majority_class(val_votes)) if val_votes is not None else None
    return Source(name, train_images, train_labels, train_soft, train_fer2013, val_images, val_labels, val_majority)


def load_sources(data_dirs, targets="label", face_input=FaceInput()):
    """One Source per --data folder, its faces as face_input reads them; raises DataError when one is not
    prepared."""
    if targets not in TARGETS:
        raise DataError(f"--targets {targets!r} is not one of {', '.join(TARGETS)}")
    return [load_source(d, name, targets, face_input) for d, name in zip(data_dirs, source_names(data_dirs))]


def union(sources, label_smoothing=0.0):
    """The training union: images (N, ...), labels (N,), soft targets (N, 7) or None, and each source's size.

    Soft targets exist when any source has them: the others' faces then get their label as a
    distribution, smoothed as the hard loss would smooth it, so one loss serves every face.
    """
    images = torch.cat([s.train_images for s in sources])
    labels = torch.cat([s.train_labels for s in sources])
    soft = None
    if any(s.train_soft is not None for s in sources):
        classes = len(CLASS_NAMES)
        parts = []
        for s in sources:
            if s.train_soft is not None:
                parts.append(s.train_soft)
            else:
                one_hot = torch.nn.functional.one_hot(s.train_labels, classes).float()
                parts.append(one_hot * (1 - label_smoothing) + label_smoothing / classes)
        soft = torch.cat(parts)
    return images, labels, soft, [len(s.train_images) for s in sources]


def second_head_labels(heads, sources):
    """What a two-head network's second head trains on: each union face's FER2013 label (N,), -1 where its
    source has none (a face set without FER+ votes); None for a one-head network. Raises DataError.

    The default head learns the union's targets (FER+'s sense where a folder has votes), the
    fer2013 head FER2013's own labels of the same faces.
    """
    if len(heads or []) < 2:
        return None
    if list(heads[1:]) != [FER2013_HEAD]:
        raise DataError(f"a second head learns FER2013's labels and is named {FER2013_HEAD!r}; got heads {heads}")
    if not any(s.train_fer2013 is not None for s in sources):
        raise DataError("a fer2013 head needs a FER2013 folder with FER+ votes and --targets votes or majority")
    return torch.cat([s.train_fer2013 if s.train_fer2013 is not None else torch.full_like(s.train_labels, -1)
                      for s in sources])


def epoch_draws(sizes, weights, generator):
    """The indices (into the union) an epoch trains on, shuffled: as many as the union holds.

    Source s takes weights[s] / sum(weights) of them; a source asked for more faces than it has
    repeats them (each face once per pass, in a new order each pass), one asked for fewer takes a
    random subset. weights=None is the plain union: each face once.
    """
    total = sum(sizes)
    if weights is None:
        return torch.randperm(total, generator=generator)
    shares = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    counts = np.floor(shares * total).astype(int)
    counts[np.argmax(shares)] += total - counts.sum()  # rounding's remainder goes to the largest share
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    drawn = []
    for size, count, offset in zip(sizes, counts, offsets):
        passes = -(-count // size) if size else 0
        order = torch.cat([torch.randperm(size, generator=generator) for _ in range(passes)]) if passes else \
            torch.zeros(0, dtype=torch.int64)
        drawn.append(order[:count] + int(offset))
    order = torch.cat(drawn)
    return order[torch.randperm(len(order), generator=generator)]


def select_rule(rule, sources):
    """The declared score best.pt is chosen on, as a readable string."""
    if rule == "auto":
        rule = "accuracy" if len(sources) == 1 else "mean"
    if rule == "accuracy":
        return f"val accuracy of {sources[0].name}"
    return ("mean of " + f"{sources[0].name} val accuracy"
            + "".join(f", {s.name} val balanced accuracy" for s in sources[1:]))


def selection_score(rule, per_source):
    """The number best.pt is chosen on, from evaluate_sources' figures, per select_rule's string."""
    first, *others = per_source.values()
    if rule.startswith("val accuracy"):
        return first["accuracy"]
    return float(np.mean([first["accuracy"]] + [o["balanced_accuracy"] for o in others]))


def data_identity(data_dir):
    """A short hash of what a --data folder holds for training: its manifest and the train and val label files."""
    digest = hashlib.sha256()
    for part in ("manifest.json", "train/labels.csv", "val/labels.csv"):
        path = split_dir(data_dir, "") / part
        digest.update(path.read_bytes() if path.is_file() else b"")
    return digest.hexdigest()[:16]


def sources_identity(data_dirs):
    """data_identity of one folder (as runs with one --data always recorded it), else a hash of each in order."""
    identities = [data_identity(d) for d in data_dirs]
    if len(identities) == 1:
        return identities[0]
    return hashlib.sha256(",".join(identities).encode()).hexdigest()[:16]
