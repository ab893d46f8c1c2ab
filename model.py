"""The Deep-Emotion network and a stronger variant, both with STN attention.

`DeepEmotion()` is the network of Minaee & Abdolrashidi, "Deep-Emotion: Facial
Expression Recognition Using Attentional Convolutional Network" (Sensors 2021,
arXiv:1902.01019), with the parameter names of the popular unofficial
implementation, so that its `state_dict`s load with `strict=True`.
"""
import argparse
import pickle

import torch
import torch.nn as nn
import torch.nn.functional as F

from data_loaders import normalize
from emotions import CLASS_NAMES, IMAGE_SIZE, SHIFT_ORIGINS, SHIFT_PIXELS, TTA_MODES, balance  # noqa: F401
from face_detectors import equalize_contrast
from utils import atomic_write



def _flat_size(module, channels, size):
    """Number of features `module` makes of one (channels, size, size) input."""
    with torch.no_grad():
        return module(torch.zeros(1, channels, size, size)).numel()


class STNAttention(nn.Module):
    """Spatial-transformer attention: predicts an affine warp of the input face.

    The localization network is the paper's: 7x7 conv 8, max-pool, ReLU, 5x5
    conv 10, max-pool, ReLU, then FC -> 32 -> 6. The last layer starts at zero
    with the identity as bias, so an untrained network looks at the whole face.
    """

    def __init__(self, in_channels=1, image_size=IMAGE_SIZE):
        super().__init__()
        self.localization = nn.Sequential(
            nn.Conv2d(in_channels, 8, kernel_size=7),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(True),
            nn.Conv2d(8, 10, kernel_size=5),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(True),
        )
        loc_features = _flat_size(self.localization, in_channels, image_size)  # 640 at 48x48
        self.fc_loc = nn.Sequential(
            nn.Linear(loc_features, 32),
            nn.ReLU(True),
            nn.Linear(32, 3 * 2),
        )
        self.fc_loc[2].weight.data.zero_()
        self.fc_loc[2].bias.data.copy_(torch.tensor([1, 0, 0, 0, 1, 0], dtype=torch.float))

    def stn(self, x):
        """Returns the warped input (B, C, H, W) and the affine transforms (B, 2, 3)."""
        theta = self.fc_loc(self.localization(x).flatten(1)).view(-1, 2, 3).float()  # fp32 under autocast too
        grid = F.affine_grid(theta, list(x.size()), align_corners=False)
        return F.grid_sample(x, grid.to(x.dtype), align_corners=False), theta

    def attention_parameters(self):
        """The localization branch's parameters (trained with a smaller learning rate)."""
        return list(self.localization.parameters()) + list(self.fc_loc.parameters())


class DeepEmotion(STNAttention):
    """Deep-Emotion (Minaee & Abdolrashidi 2019): 66,877 parameters with no arguments.

    Four 3x3 convolutions with 10 filters, max-pooling after every two, batch
    norm after the fourth, dropout, and FC 810 -> 50 -> 7, behind the STN.

    Where this departs from the paper, and why:
    - One batch norm (after conv4) and the layer order of the unofficial
      implementation, so that its checkpoints load unchanged; the paper does not
      say where its batch norm sits.
    - Dropout follows `self.training` (the unofficial `F.dropout(out)` stayed on
      at evaluation, so its test-time outputs were random). Its rate is an
      argument; the paper gives none.
    - The flattened size (810 at 48x48) is computed, not typed in.
    - The paper adds an L2 penalty on the weights; here that is the optimizer's
      weight decay (main.py).
    """

    def __init__(self, num_classes=len(CLASS_NAMES), dropout=0.5, in_channels=1, image_size=IMAGE_SIZE):
        super().__init__(in_channels, image_size)
        self.conv1 = nn.Conv2d(in_channels, 10, 3)
        self.conv2 = nn.Conv2d(10, 10, 3)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.conv3 = nn.Conv2d(10, 10, 3)
        self.conv4 = nn.Conv2d(10, 10, 3)
        self.pool4 = nn.MaxPool2d(2, 2)
        self.norm = nn.BatchNorm2d(10)
        self.dropout = nn.Dropout(dropout)
        features = _flat_size(self.features, in_channels, image_size)  # 10 * 9 * 9 = 810
        self.fc1 = nn.Linear(features, 50)
        self.fc2 = nn.Linear(50, num_classes)

    def features(self, x):
        x = F.relu(self.conv1(x))            # (B, 10, 46, 46)
        x = F.relu(self.pool2(self.conv2(x)))  # (B, 10, 22, 22)
        x = F.relu(self.conv3(x))            # (B, 10, 20, 20)
        x = F.relu(self.pool4(self.norm(self.conv4(x))))  # (B, 10, 9, 9)
        return x

    def forward(self, x):
        x, _ = self.stn(x)
        x = self.dropout(self.features(x)).flatten(1)
        return self.fc2(F.relu(self.fc1(x)))


def _conv_bn_relu(in_channels, out_channels):
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class DeepEmotionVGG(STNAttention):
    """The same idea, STN attention in front of a CNN, with a VGG-style extractor.

    Four stages of `depth` 3x3 conv-BN-ReLU layers (`width`, 2x, 4x, 8x channels),
    each followed by 2x2 max-pooling (48 -> 3), then global average pooling,
    dropout and one linear classifier. The STN is the paper's, unchanged.
    """

    def __init__(self, num_classes=len(CLASS_NAMES), width=48, depth=2, dropout=0.3, in_channels=1,
                 image_size=IMAGE_SIZE):
        super().__init__(in_channels, image_size)
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        layers, channels = [], in_channels
        for stage in range(4):
            out_channels = width * 2 ** stage
            for _ in range(depth):
                layers += _conv_bn_relu(channels, out_channels)
                channels = out_channels
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        x, _ = self.stn(x)
        x = self.features(x).mean(dim=(2, 3))  # (B, 8 * width)
        return self.classifier(self.dropout(x))


# --arch name -> network class; main.py's --arch_args are passed to its constructor
ARCHS = {
    "deep_emotion": DeepEmotion,
    "deep_emotion_vgg": DeepEmotionVGG,
}


def build_model(arch, **arch_args):
    """Returns a new network of the named architecture."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return ARCHS[arch](**arch_args)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def count_flops(model, image_size=IMAGE_SIZE):
    """Floating-point operations of one forward pass on one image (a multiply-add is 2)."""
    from torch.utils.flop_counter import FlopCounterMode
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 1, image_size, image_size, device=next(model.parameters()).device))
    model.train(was_training)
    return counter.get_total_flops()


class CheckpointError(Exception):
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
        if "weights_only" in str(error) or "Weights only load failed" in str(error):
            raise CheckpointError(f"refused {path}: it holds Python objects besides tensors, and loading it "
                                  "would run code; re-save it as a state_dict or a main.py checkpoint") from None
        raise CheckpointError(f"{path} is not a PyTorch checkpoint ({str(error).splitlines()[0][:120]})") from None
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


# ---------------------------------------------------------------- inference

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
    """Class probabilities (N, 7) of uint8 faces (N, 48, 48), averaged over the views of `tta`.

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


class Ensemble:
    """One or more checkpoints read as one classifier: their class probabilities are averaged.

    Each checkpoint's calibration temperature (calibrate.py) is applied to its own logits;
    balanced=True divides out the training prior (`balance`) after averaging.
    """

    def __init__(self, paths, device="cpu", tta=None, balanced=False):
        paths = [paths] if isinstance(paths, (str, bytes)) or not hasattr(paths, "__iter__") else list(paths)
        self.device = torch.device(device)
        self.members = [load_model(path, self.device) for path in paths]
        self.class_names = list(self.members[0][1].get("class_names", CLASS_NAMES))
        self.prior = torch.stack([class_prior(checkpoint) for _, checkpoint in self.members]).mean(0)
        self.tta, self.balanced = tta, balanced

    def predict(self, images, batch_size=512):
        """Class probabilities (N, 7) of uint8 faces (N, 48, 48), a tensor or an array."""
        images = torch.as_tensor(images)
        probabilities = sum(predict(model, images, tuple(checkpoint["normalization"]), self.device, batch_size,
                                    self.tta, temperature=checkpoint.get("temperature", 1.0),
                                    clahe=checkpoint.get("clahe", False))
                            for model, checkpoint in self.members) / len(self.members)
        return balance(probabilities, self.prior) if self.balanced else probabilities
