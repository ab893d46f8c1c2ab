"""Inference with the networks of model.py: checkpoints (read, written, shipped), the device, test-time
views, class probabilities (`predict`), the class-balanced decision and ensembles (`Ensemble`).
"""
import argparse
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deep_emotion.emotions import (
    CLASS_NAMES,
    DEFAULT_HEAD,
    SHIFT_ORIGINS,
    SHIFT_PIXELS,
    TTA_MODES,
    decide,
    normalize,
    widest_face_input,
)
from deep_emotion.face_detectors import equalize_contrast, fit_faces
from deep_emotion.model import ARCHS, build_model, fold_for_inference, set_head
from deep_emotion.utils import UserError, atomic_write, file_sha256


class CheckpointError(UserError):
    """A file that is not a usable checkpoint, reported as one line (exit code 2)."""


# the unofficial implementation trained on ToTensor() + Normalize((0.5,), (0.5,))
ORIGINAL_NORMALIZATION = (0.5, 0.5)


def load_checkpoint(path, map_location="cpu"):
    """Reads a checkpoint safely (weights_only: a file from the internet cannot run code).

    Returns this repo's checkpoint dict. A bare state_dict saved by the
    unofficial implementation is wrapped as one: arch deep_emotion, its
    normalisation, no optimizer.
    """
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):  # a pickled object: weights_only refused to build it
            raise CheckpointError(f"refused {path}: it holds Python objects besides tensors, and loading it "
                                  "would run code; re-save it as a state_dict or a main.py checkpoint") from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (its bytes are not a pickle of tensors)") from None
    except Exception as error:  # torch raises many kinds for files that are not checkpoints
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({str(error).splitlines()[0][:120]})") from None
    if isinstance(state, dict) and "model" in state and "arch" in state:
        return state
    if isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return {"model": state, "arch": "deep_emotion", "arch_args": {}, "class_names": list(CLASS_NAMES),
                "normalization": list(ORIGINAL_NORMALIZATION)}
    raise CheckpointError(f"{path} holds neither a main.py checkpoint nor a model state_dict")


def load_model(path, device="cpu"):
    """Returns (network in eval mode on device, its checkpoint dict)."""
    checkpoint = load_checkpoint(path, "cpu")
    if checkpoint["arch"] not in ARCHS:
        raise CheckpointError(f"{path} is for an unknown architecture {checkpoint['arch']!r}")
    model = build_model(checkpoint["arch"], **checkpoint.get("arch_args", {}))
    try:
        weights = {k: v.float() if v.is_floating_point() else v for k, v in checkpoint["model"].items()}
        model.load_state_dict(weights)
    except (RuntimeError, AttributeError, TypeError):
        raise CheckpointError(f"{path} does not fit the {checkpoint['arch']} network "
                              f"{checkpoint.get('arch_args') or ''} (different layers or sizes)") from None
    return model.to(device).eval(), checkpoint


def load_initial_weights(model, path, arch):
    """--init: the weights of a checkpoint of the same architecture, with a fresh optimizer and schedule."""
    initial = load_checkpoint(path, "cpu")
    if initial["arch"] != arch:
        raise CheckpointError(f"--init {path} is a {initial['arch']} checkpoint, not --arch {arch}")
    weights = {k: v.float() if v.is_floating_point() else v for k, v in initial["model"].items()}
    for name in getattr(model, "extra_heads", {}):  # a head the initial network lacks starts as its default head
        for key in ("weight", "bias"):
            weights.setdefault(f"extra_heads.{name}.{key}", weights[f"classifier.{key}"].clone())
    model.load_state_dict(weights)


def export_weights(checkpoint_path, out_path, half=False):
    """Writes a checkpoint without its optimizer, scheduler and RNG state, for shipping; returns out_path.

    With half=True the floating-point weights are stored as fp16 (load_model restores fp32).
    """
    checkpoint = load_checkpoint(checkpoint_path)
    shipped = {k: v for k, v in checkpoint.items()
               if k not in ("optimizer", "scheduler", "rng", "trained_model", "averaged_steps")}
    if half:
        shipped["model"] = {k: v.half() if v.is_floating_point() else v for k, v in checkpoint["model"].items()}
    return atomic_write(out_path, lambda tmp: torch.save(shipped, tmp))


def join_checkpoints(paths, out_path, weights=None):
    """Writes the networks of several checkpoints as one checkpoint of arch "ensemble" (model.FaceEnsemble):
    their weights as stored, each member's normalisation and temperature; returns out_path. Its class prior is
    the members' mean. Calibrate it as a whole afterwards (deep-emotion calibrate --decision fit --write): the
    members' own decision rules are not used inside it. weights: {head: one weight per member} (default: equal).
    """
    checkpoints = [load_checkpoint(path) for path in paths]
    for path, checkpoint in zip(paths, checkpoints):
        if checkpoint["arch"] not in ARCHS or checkpoint["arch"] == "ensemble" or checkpoint.get("clahe"):
            kind = f"{checkpoint['arch']} checkpoint" + (" with CLAHE" if checkpoint.get("clahe") else "")
            raise CheckpointError(f"{path}: an ensemble member is one network read without CLAHE, not a {kind}")
    members = [{"arch": c["arch"], "arch_args": c.get("arch_args", {}), "normalization": list(c["normalization"]),
                "temperature": float(c.get("temperature", 1.0))} for c in checkpoints]
    # the members' training counts, or where they differ their mean prior as counts per million faces
    counts = [list(c.get("train_class_counts", FER2013_TRAIN_COUNTS)) for c in checkpoints]
    if any(c != counts[0] for c in counts):
        counts[0] = (sum(class_prior(c) for c in checkpoints) / len(checkpoints) * 1e6).round().tolist()
    joined = {"arch": "ensemble", "arch_args": {"members": members, "weights": weights},
              "model": {f"members.{i}.{k}": v for i, c in enumerate(checkpoints) for k, v in c["model"].items()},
              "class_names": list(checkpoints[0].get("class_names", CLASS_NAMES)), "normalization": [0.0, 1.0],
              # what calibrate.py reads of a training config: the labels the members learnt (FER+'s votes)
              "config": {"targets": checkpoints[0].get("config", {}).get("targets", "label")},
              "train_class_counts": counts[0],
              "members": [{"file": Path(path).name, "sha256": file_sha256(path)} for path in paths]}
    build_model("ensemble", **joined["arch_args"]).load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in joined["model"].items()})  # it loads, or raises
    return atomic_write(out_path, lambda tmp: torch.save(joined, tmp))


def pick_device(name="auto"):
    """The torch.device for a --device value: auto = cuda, then mps, then cpu."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_arg(text):
    """argparse type of --device: auto, cpu, cuda[:N] or mps, refused when this machine lacks it."""
    try:
        device = torch.device(text) if text != "auto" else None
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device is not None and device.type == "cuda" and not (
            torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        raise argparse.ArgumentTypeError(f"{text}: no such CUDA GPU here ({torch.cuda.device_count()} found); "
                                         "use --device cpu")
    if device is not None and device.type == "mps" and not (
            getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise argparse.ArgumentTypeError("mps: no Apple GPU here; use --device cpu")
    return text


def tta_views(x, tta):
    """The views of a batch (B, C, H, W) that test-time augmentation `tta` (None, "flip", "shifts") averages."""
    views = [x]
    if tta == "shifts":
        p = SHIFT_PIXELS
        h, w = x.shape[-2:]
        padded = F.pad(x, (p, p, p, p), mode="replicate")  # the edge is repeated, as in training's warps
        for top, left in SHIFT_ORIGINS:
            views.append(padded[..., top:top + h, left:left + w])
    if tta:
        views += [view.flip(3) for view in views]
    return views


@torch.no_grad()
def predict(model, images, normalization, device, batch_size=512, tta=None, autocast_dtype=None, progress=None,
            temperature=1.0, clahe=False):
    """Class probabilities (N, 7) of uint8 faces as the model reads them (model.face_input: (N, 48, 48) grey,
    (N, S, S, 3) RGB), averaged over the views of `tta`.

    tta: None/False (one view), "flip" (True means this too) or "shifts"; see TTA_MODES.
    temperature divides the logits before the softmax (a checkpoint's calibration; 1 = none).
    autocast_dtype (e.g. torch.bfloat16) runs the network under autocast; None = fp32.
    clahe: equalise each face's contrast first, as a checkpoint trained with --clahe expects.
    progress: a callable given the number of faces done after each batch (a progress bar's update).
    """
    tta = "flip" if tta is True else (tta or None)
    if tta is not None and tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, not {tta!r}")
    device = torch.device(device)
    model.eval()
    probabilities = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        if clahe:
            batch = torch.from_numpy(equalize_contrast(batch.cpu().numpy()))
        x = normalize(batch.to(device), *normalization)
        views = tta_views(x, tta)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            probabilities.append((sum((model(view).float() / temperature).softmax(1) for view in views)
                                  / len(views)).cpu())
        if progress is not None:
            progress(len(x))
    return torch.cat(probabilities) if probabilities else torch.zeros(0, len(CLASS_NAMES))


# FER2013 Training's faces per class: the prior a class-balanced decision divides out, for checkpoints
# that do not record the counts of their own training split
FER2013_TRAIN_COUNTS = (3995, 436, 4097, 7215, 4830, 3171, 4965)


def class_prior(checkpoint):
    """The class frequencies (7,) of the split a checkpoint was trained on."""
    counts = torch.tensor(checkpoint.get("train_class_counts", FER2013_TRAIN_COUNTS), dtype=torch.float32)
    return counts / counts.sum()


def prior_exponent(checkpoint):
    """How much of its training prior a checkpoint's decision divides out (emotions.balance): the exponent
    calibrate.py fitted on its validation data and stored, 0 (the plain argmax) when none was."""
    return float(checkpoint.get("prior_exponent", 0.0))


def head_names(model):
    """The label sets a network answers in, its default first (one "default" head for most networks)."""
    return list(getattr(model, "heads", [DEFAULT_HEAD]))


class Ensemble:
    """One or more checkpoints read as one classifier, with PyTorch: their class probabilities are averaged.

    The interface both engines share (onnx_classifier.OnnxClassifier is the other): predict(faces) -> numpy
    (N, 7); class_names (the first member's); heads (the label sets every member has, the default first) and
    use_head(name); face_input (the faces it reads); backend ("torch"). Each checkpoint's calibration
    temperature (calibrate.py) is applied to its own logits, and the decision rule is emotions.decide:
    each member's fitted prior_exponent on its own probabilities, or with balanced=True the members' mean
    training prior divided whole out of the average. head: the label set every member answers in (None =
    each member's default head). Members may read different faces (a 48x48 grey network beside a 150x150
    colour one): the ensemble reads the widest (widest_face_input), and each member shrinks and greys them
    to its own.
    """

    backend = "torch"

    def __init__(self, paths, device="cpu", tta=None, balanced=False, head=None):
        paths = [paths] if isinstance(paths, (str, bytes)) or not hasattr(paths, "__iter__") else list(paths)
        self.device = torch.device(device)
        self.members = [(fold_for_inference(model), checkpoint)
                        for model, checkpoint in (load_model(path, self.device) for path in paths)]
        self.paths = paths
        self.face_input = widest_face_input(model.face_input for model, _ in self.members)
        if head is not None:
            self.use_head(head)
        self.class_names = list(self.members[0][1].get("class_names", CLASS_NAMES))
        self.heads = [h for h in head_names(self.members[0][0]) if all(h in head_names(m) for m, _ in self.members)]
        self.tta, self.balanced = tta, balanced

    def use_head(self, head):
        """Makes every member answer in head (None: each member's default head); raises CheckpointError."""
        for path, (model, _) in zip(self.paths, self.members):
            if head is not None and head not in head_names(model):
                raise CheckpointError(f"{path} has no head {head!r}; it has {', '.join(head_names(model))}")
            set_head(model, head or head_names(model)[0])

    def predict(self, images, batch_size=512):
        """Class probabilities (N, 7), a float32 numpy array, of uint8 faces (an array or a tensor): as
        self.face_input reads them, or of any other size and colour, which each member enlarges or shrinks and
        greys to its own (face_detectors.fit_faces)."""
        images = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        as_read = {}  # the faces as each member reads them, converted once per kind (as given when they fit)
        members = []
        for model, checkpoint in self.members:
            if model.face_input not in as_read:
                as_read[model.face_input] = torch.from_numpy(fit_faces(images, model.face_input))
            probabilities = predict(model, as_read[model.face_input], tuple(checkpoint["normalization"]), self.device,
                                    batch_size, self.tta, temperature=checkpoint.get("temperature", 1.0),
                                    clahe=checkpoint.get("clahe", False))
            # the fitted decision rule belongs to the default head; another head answers with its plain argmax
            in_default_head = getattr(model, "head", DEFAULT_HEAD) == head_names(model)[0]
            members.append((probabilities.numpy(), class_prior(checkpoint).numpy(),
                            prior_exponent(checkpoint) if in_default_head else 0.0))
        return decide(members, self.balanced).astype(np.float32)
