"""Distillation's teachers: their probabilities on a run's training faces, computed once and cached.

train.py asks teacher_tables for the targets of --teacher (one or more checkpoints, averaged) in each head
the student learns from them (--distill_heads).
"""
import functools

import torch
from tqdm import tqdm

from deep_emotion.data.prepared import DataError, split_dir
from deep_emotion.data.training_data import load_sources, union
from deep_emotion.engine import autocast_dtype
from deep_emotion.inference import head_names, load_model, predict
from deep_emotion.model import fold_for_inference, set_head
from deep_emotion.recipes import resolve_teachers
from deep_emotion.utils import atomic_write


def teacher_targets(teacher, teacher_sha256, data_dir, data_identity, precision, faces_for, device, show_bar,
                    head=None):
    """The teacher's flip-averaged probabilities (N, 7) on the clean training faces (averaged over teachers).

    teacher: --teacher's comma-separated checkpoints. Computed once under the training precision and
    cached in data_dir/prepared/cache/, keyed by the teacher's (teacher_sha256) and the data's
    (data_identity) hashes, so a second run with the same teacher does not redo them. Each teacher
    reads the faces its own way (its normalisation, its --clahe, its crops: faces_for(face_input)
    gives the training union's faces as a network reading face_input gets them, so a 48x48 grey
    student may learn from a colour teacher). head: the label set the teachers answer in (None: each one's
    default); a teacher without it is a DataError.
    """
    in_head = f"-{head}" if head else ""
    cache = split_dir(data_dir, "") / "cache" / f"teacher-{teacher_sha256[:16]}-{data_identity}-{precision}{in_head}.pt"
    if cache.is_file():
        return torch.load(cache, map_location="cpu", weights_only=True)
    paths = resolve_teachers(teacher)
    probabilities = 0
    teachers = [(fold_for_inference(model), checkpoint)  # only read: folded, 1.5x faster on a CPU
                for model, checkpoint in (load_model(path, device) for path in paths)]
    if head is not None:
        for path, (teacher, _) in zip(paths, teachers):
            if head not in head_names(teacher):
                raise DataError(f"the teacher {path} has no {head!r} head to teach the student's")
            set_head(teacher, head)
    faces = {teacher.face_input: faces_for(teacher.face_input) for teacher, _ in teachers}  # one load per input
    with tqdm(total=sum(len(faces[teacher.face_input]) for teacher, _ in teachers), desc="teacher targets",
              unit="face", leave=False, disable=not show_bar) as bar:
        for teacher, teacher_checkpoint in teachers:
            probabilities = probabilities + predict(
                teacher, faces[teacher.face_input], tuple(teacher_checkpoint["normalization"]), device, tta="flip",
                autocast_dtype=autocast_dtype(precision), progress=bar.update,
                clahe=teacher_checkpoint.get("clahe", False)) / len(paths)
    try:
        cache.parent.mkdir(exist_ok=True)
        atomic_write(cache, lambda tmp: torch.save(probabilities, tmp))
    except OSError:  # a read-only data folder only costs the next run this step again
        pass
    return probabilities


def teacher_tables(teacher, teacher_sha256, data_dirs, targets, data_identity, precision, face_input, images, device,
                   show_bar, heads):
    """[teacher_targets in each of heads (None: the teachers' default head)] on the training union's faces,
    `images` as a network reading face_input gets them: a teacher reads them its own way, at its own size
    and colours (the union loaded again for it where it reads other faces, once for all heads)."""
    @functools.cache
    def faces_for(teacher_input):
        if teacher_input == face_input:
            return images
        return union(load_sources(data_dirs, targets, teacher_input))[0]

    return [teacher_targets(teacher, teacher_sha256, data_dirs[0], data_identity, precision, faces_for, device,
                            show_bar, head) for head in heads]

