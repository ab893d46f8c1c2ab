"""dlib's ResNet face descriptor in PyTorch: a trunk that has seen about 3 million faces, and its weights' reader.

dlib's `dlib_face_recognition_resnet_model_v1` (Davis King, 2017; CC0, public domain) is a 29-layer
ResNet trained for face identity. Its definition (dlib's `dnn_face_recognition_ex.cpp`):

    7x7 conv 32 /2, affine, ReLU, 3x3 max-pool /2          150 -> 72 -> 35
    3 residual blocks of 32                                  35
    4 of 64 (the first /2), 3 of 128, 3 of 256, 1 of 256     17, 8, 4, 2
    global average pool, 128-d descriptor (fc without bias)

A block is conv3x3-affine-ReLU-conv3x3-affine plus the input (a downsampling block's input
average-pooled 2x2 /2), then ReLU. `affine` is batch norm frozen into a scale and shift. Two dlib
details the port keeps: a stride-2 convolution has no padding, and the addition of differently
sized tensors pads the smaller with zeros at the bottom, right and in the extra channels.

The reader parses dlib's own serialisation (`dlib/serialize.h`, `dlib/cuda/tensor.h`): a
variable-length integer is one byte (its length, 0x80 set when negative) and that many
little-endian bytes; a string is its length and its bytes; a tensor is version 2, its four
dimensions and little-endian float32 values. Layers follow from the input to the loss.
"""
import hashlib
import importlib.util
import re
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from deep_emotion.utils import UserError

# dlib's input_rgb_image_sized<150>: RGB minus these means, divided by 256
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)
DLIB_SCALE = 256.0
DLIB_INPUT_SIZE = 150
DLIB_MIN_INPUT_SIZE = 104  # smaller faces leave the last residual stage nothing to convolve
# (channels, blocks, first block downsamples) of the residual stages, input to output
DLIB_STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
DESCRIPTOR_SIZE = 128
PACKAGE_NAME = "face_recognition_models"
DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"
INSTALL_HINT = 'pip install ".[pretrained]"'


class Affine(nn.Module):
    """Per-channel scale and shift: dlib's `affine` layer (batch norm with its statistics folded in)."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return x * self.weight[:, None, None] + self.bias[:, None, None]


def fold_affine(conv, affine):
    """Folds `affine` into `conv` before it, in place: conv's output is then what affine made of it."""
    with torch.no_grad():
        conv.weight.mul_(affine.weight[:, None, None, None])
        conv.bias.copy_(conv.bias * affine.weight + affine.bias)


def add_padded(a, b):
    """a + b as dlib's add_prev adds them: the result has the larger of each size, missing values are zero."""
    if a.shape == b.shape:  # all but the downsampling blocks: nothing to pad
        return a + b
    shape = [max(p, q) for p, q in zip(a.shape[1:], b.shape[1:])]  # (C, H, W)

    def pad(t):
        return F.pad(t, (0, shape[2] - t.shape[3], 0, shape[1] - t.shape[2], 0, shape[0] - t.shape[1]))
    return pad(a) + pad(b)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels, channels, downsample):
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, padding=0 if downsample else 1)
        self.affine1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, padding=1)
        self.affine2 = Affine(channels)
        self.downsample = downsample

    def forward(self, x):
        out = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.downsample else x
        return F.relu(add_padded(out, shortcut))

    def fold_affines(self):
        """Folds both affine layers into their convolutions, in place (inference only: the same answers)."""
        fold_affine(self.conv1, self.affine1)
        fold_affine(self.conv2, self.affine2)
        self.affine1 = self.affine2 = nn.Identity()


class DlibResNet(nn.Module):
    """dlib's face-recognition ResNet; forward() gives the last residual stage's map (B, 256, h, w).

    Input: RGB faces already standardised as dlib does, (pixels - DLIB_MEAN_RGB) / 256, (B, 3, H, W).
    `descriptor` maps pooled features to dlib's 128-d identity descriptor (kept for the port's tests).
    """

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 7, 2)
        self.affine = Affine(32)
        blocks, channels = [], 32
        for width, count, downsample in DLIB_STAGES:
            for i in range(count):
                blocks.append(ResidualBlock(channels, width, downsample and i == 0))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = channels
        self.descriptor = nn.Linear(channels, DESCRIPTOR_SIZE, bias=False)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.affine(self.conv(x))), 3, 2)  # (B, 32, 35, 35) at 150
        return self.blocks(x)                                        # (B, 256, 2, 2) at 150

    def fold_affines(self):
        """Folds every affine layer into the convolution before it, in place: the same answers with a pass
        over each feature map fewer (inference only; the folded layers no longer train as dlib's)."""
        fold_affine(self.conv, self.affine)
        self.affine = nn.Identity()
        for block in self.blocks:
            block.fold_affines()

    def describe(self, x):
        """dlib's 128-d face descriptor (B, 128); faces of one person lie within 0.6 of each other."""
        return self.descriptor(self(x).mean(dim=(2, 3)))


def standardize_rgb(rgb):
    """uint8-range RGB faces (B, 3, H, W) -> dlib's input: minus its channel means, divided by 256."""
    mean = torch.tensor(DLIB_MEAN_RGB, dtype=rgb.dtype, device=rgb.device)[:, None, None]
    return (rgb - mean) / DLIB_SCALE


class DlibFormatError(UserError):
    """A file that is not dlib's face-recognition network, reported as one line."""


class _Reader:
    """Reads dlib's serialised integers, strings and tensors from bytes."""

    def __init__(self, data, at=0):
        self.data, self.at = data, at

    def int(self):
        head = self.data[self.at]
        size, negative = head & 0x0F, head & 0x80
        value = int.from_bytes(self.data[self.at + 1:self.at + 1 + size], "little")
        self.at += 1 + size
        return -value if negative else value

    def string(self):
        size = self.int()
        text = self.data[self.at:self.at + size].decode("ascii")
        self.at += size
        return text

    def tensor(self):
        version = self.int()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} at byte {self.at}; only version 2 is read")
        dims = [self.int() for _ in range(4)]
        count = dims[0] * dims[1] * dims[2] * dims[3]
        values = torch.frombuffer(bytearray(self.data[self.at:self.at + 4 * count]), dtype=torch.float32)
        self.at += 4 * count
        return values.clone()


# each layer's name as dlib writes it, behind its length byte(s)
_LAYER = re.compile(rb"\x01[\x03-\x20](con_4|affine_|bn_con2|fc_2|max_pool_2|avg_pool_2)")


def read_dlib_layers(data):
    """The convolution, affine and fc layers of a serialised dlib network, input first.

    Returns a list of (kind, values): ("con", (weight (F, C, k, k), bias (F,), stride, padding)),
    ("affine", (scale (C,), shift (C,))), ("fc", weight (out, in)).
    """
    layers = []
    for match in _LAYER.finditer(data):
        reader = _Reader(data, match.start())
        name = reader.string()
        if name == "con_4":
            params = reader.tensor()
            filters, rows, cols, stride_y, stride_x, pad_y, pad_x = (reader.int() for _ in range(7))
            weight = params[:-filters].view(filters, -1, rows, cols)
            layers.append(("con", (weight, params[-filters:], (stride_y, stride_x), (pad_y, pad_x))))
        elif name == "affine_":
            params = reader.tensor()
            scale, shift = params.chunk(2)
            layers.append(("affine", (scale, shift)))
        elif name == "bn_con2":  # a network saved while training: fold the running statistics in
            params, _, _, means, variances = (reader.tensor() for _ in range(5))
            gamma, beta = params.chunk(2)
            scale = gamma / torch.sqrt(variances + 1e-5)
            layers.append(("affine", (scale, beta - means * scale)))
        elif name == "fc_2":
            outputs, inputs = reader.int(), reader.int()
            params = reader.tensor()
            layers.append(("fc", params[:inputs * outputs].view(inputs, outputs).t().contiguous()))
    return layers


def dlib_state_dict(data):
    """DlibResNet's state_dict from the bytes of dlib's `.dat` file; raises DlibFormatError."""
    layers = read_dlib_layers(data)
    net = DlibResNet()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    affines = [m for m in net.modules() if isinstance(m, Affine)]
    found = [kind for kind, _ in layers]
    if found.count("con") != len(convs) or found.count("affine") != len(affines) or found.count("fc") != 1:
        raise DlibFormatError(f"expected {len(convs)} convolutions, {len(affines)} affine layers and one fc, "
                              f"found {found.count('con')}, {found.count('affine')} and {found.count('fc')}")
    con_values = [v for kind, v in layers if kind == "con"]
    affine_values = [v for kind, v in layers if kind == "affine"]
    for conv, (weight, bias, stride, padding) in zip(convs, con_values):
        if weight.shape != conv.weight.shape or stride != conv.stride or padding != conv.padding:
            raise DlibFormatError(f"a convolution of shape {tuple(weight.shape)}, stride {stride}, padding "
                                  f"{padding} where the port has {tuple(conv.weight.shape)}, {conv.stride}, "
                                  f"{conv.padding}")
        conv.weight.data.copy_(weight)
        conv.bias.data.copy_(bias)
    for affine, (scale, shift) in zip(affines, affine_values):
        affine.weight.data.copy_(scale)
        affine.bias.data.copy_(shift)
    net.descriptor.weight.data.copy_(next(v for kind, v in layers if kind == "fc"))
    return net.state_dict()


def packaged_dat_path():
    """The path of dlib's network in the installed face_recognition_models package; raises ImportError."""
    # found, not imported: the package's __init__ needs setuptools' pkg_resources, which newer setuptools lack
    spec = importlib.util.find_spec(PACKAGE_NAME)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the face trunk's weights come from the {PACKAGE_NAME} package (dlib's ResNet, CC0), "
                          f"which is not installed: {INSTALL_HINT}")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / DAT_NAME


def load_dlib_trunk(path=None):
    """(DlibResNet with dlib's weights, sha256 of the file read); path None = the installed package's file."""
    path = path or packaged_dat_path()
    with open(path, "rb") as f:
        data = f.read()
    net = DlibResNet()
    net.load_state_dict(dlib_state_dict(data))
    return net.eval(), hashlib.sha256(data).hexdigest()


def load_dlib_weights(trunk):
    """Loads dlib's weights (the installed package's file) into a DlibResNet without its descriptor, as
    face_resnet's trunk; prints where from and returns the file's sha256. Raises ImportError naming the install."""
    net, sha256 = load_dlib_trunk()
    trunk.load_state_dict({k: v for k, v in net.state_dict().items() if not k.startswith("descriptor.")})
    print(f"face trunk: dlib's ResNet from {PACKAGE_NAME} (sha256 {sha256[:12]})")
    return sha256
