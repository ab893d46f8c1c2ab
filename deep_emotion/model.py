"""The Deep-Emotion network and a stronger variant, both with STN attention (inference.py runs them).

`DeepEmotion()` is the network of Minaee & Abdolrashidi, "Deep-Emotion: Facial
Expression Recognition Using Attentional Convolutional Network" (Sensors 2021,
arXiv:1902.01019), with the parameter names of the popular unofficial
implementation, so that its `state_dict`s load with `strict=True`.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from deep_emotion.emotions import ALL_HEADS, CLASS_NAMES, DEFAULT_HEAD, IMAGE_SIZE, FaceInput, widest_face_input
from deep_emotion.face_trunk import DLIB_INPUT_SIZE, DLIB_MIN_INPUT_SIZE, DLIB_STAGES, DlibResNet, standardize_rgb


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
        self.face_input = FaceInput(image_size, in_channels)  # what the crops, data and exports follow
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

    def scaled_lr_parameters(self):
        """The localization branch's parameters (trained at --loc_lr_scale x the learning rate)."""
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


class HeadsMixin:
    """One linear layer per label set over the same features (see DeepEmotionVGG); `head` picks the answer."""

    def _make_heads(self, heads, features, num_classes):
        self.heads = list(heads or [DEFAULT_HEAD])
        if len(set(self.heads)) != len(self.heads) or ALL_HEADS in self.heads:
            raise ValueError(f"heads must be distinct names other than {ALL_HEADS!r}, not {self.heads}")
        self.classifier = nn.Linear(features, num_classes)
        self.extra_heads = nn.ModuleDict({name: nn.Linear(features, num_classes) for name in self.heads[1:]})
        self.head = self.heads[0]

    def _answer(self, x):
        if self.head == ALL_HEADS:
            return torch.cat([self.classifier(x)] + [layer(x) for layer in self.extra_heads.values()], dim=1)
        return self.classifier(x) if self.head == self.heads[0] else self.extra_heads[self.head](x)


def _conv_bn_relu(in_channels, out_channels):
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class DeepEmotionVGG(HeadsMixin, STNAttention):
    """The same idea, STN attention in front of a CNN, with a VGG-style extractor.

    Four stages of `depth` 3x3 conv-BN-ReLU layers (`width`, 2x, 4x, 8x channels),
    each followed by 2x2 max-pooling (48 -> 3), then global average pooling,
    dropout and one linear classifier per label set. The STN is the paper's, unchanged.

    heads: names of the label sets the network answers in, one linear layer each over the
    same features; the first is the default (`classifier`, the one-head networks' name, so
    their checkpoints load unchanged), the others live in `extra_heads`. `head` picks which
    one forward() answers with; ALL_HEADS concatenates them (B, 7 * len(heads)) for training.
    Why heads rather than one network per label set: FER2013's labels and FER+'s majority
    agree on about 64% of the same faces, so each label set needs its own decision, while
    the features that find a face's expression can be shared.
    """

    def __init__(self, num_classes=len(CLASS_NAMES), width=48, depth=2, dropout=0.3, in_channels=1,
                 image_size=IMAGE_SIZE, heads=None):
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
        self._make_heads(heads, channels, num_classes)

    def forward(self, x):
        x, _ = self.stn(x)
        return self._answer(self.dropout(self.features(x).mean(dim=(2, 3))))  # (B, 8 * width) features


class FaceResNet(HeadsMixin, nn.Module):
    """dlib's face-recognition ResNet (face_trunk.py; ~3 million faces, CC0) with this project's heads.

    The trunk is cut after its last residual stage; its map, average-pooled to 2x2 (B, 1024), feeds
    one linear layer per label set, as in DeepEmotionVGG. It reads image_size x image_size faces, grey
    (in_channels 1, repeated as RGB) or RGB (3), in 0..1 (INPUT_NORMALIZATION): the network resizes
    them to `input_size` (dlib's own 150 by default; nothing is done when image_size equals it) and
    standardises them as dlib does. The first checkpoints read the pipeline's 48x48 grey crops;
    the network's face_input tells every consumer (data, crop, ONNX, page) what to give it.
    frozen_stages: the stem and this many residual stages keep dlib's weights in training (cheaper
    steps on a CPU; 0 fine-tunes everything). No STN: the trunk learnt from aligned faces already.
    """

    INPUT_NORMALIZATION = (0.0, 1.0)  # (mean, std) of 0..1 pixels: the network standardises itself

    def __init__(self, num_classes=len(CLASS_NAMES), input_size=DLIB_INPUT_SIZE, dropout=0.2, frozen_stages=0,
                 heads=None, in_channels=1, image_size=IMAGE_SIZE):
        super().__init__()
        if not 0 <= frozen_stages <= len(DLIB_STAGES):
            raise ValueError(f"frozen_stages must be 0..{len(DLIB_STAGES)}, not {frozen_stages}")
        if input_size < DLIB_MIN_INPUT_SIZE:
            raise ValueError(f"face_resnet's input_size must be at least {DLIB_MIN_INPUT_SIZE}, not {input_size}")
        self.face_input = FaceInput(image_size, in_channels)
        self.input_size, self.frozen_stages = input_size, frozen_stages
        self.trunk = DlibResNet()
        del self.trunk.descriptor  # the identity descriptor is the wrong layer for expressions
        self.dropout = nn.Dropout(dropout)
        self._make_heads(heads, self.trunk.out_channels * 4, num_classes)
        for module in self.frozen_modules():
            module.requires_grad_(False)

    def frozen_modules(self):
        """The stem and the first frozen_stages residual stages (empty when nothing is frozen)."""
        if not self.frozen_stages:
            return []
        blocks = sum(count for _, count, _ in DLIB_STAGES[:self.frozen_stages])
        return [self.trunk.conv, self.trunk.affine] + list(self.trunk.blocks[:blocks])

    def scaled_lr_parameters(self):
        """The pretrained trunk's trainable parameters (trained at --loc_lr_scale x the heads' learning rate)."""
        return [p for p in self.trunk.parameters() if p.requires_grad]

    def forward(self, x):
        if x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = standardize_rgb(x.expand(-1, 3, -1, -1) * 255)             # (B, 3, S, S); grey repeated
        x = F.adaptive_avg_pool2d(self.trunk(x), 2).flatten(1)          # (B, 1024)
        return self._answer(self.dropout(x))


# OpenCV's RGB -> grey weights (ITU-R BT.601): an ensemble's grey member sees the face fit_face would give it
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def area_resize_matrix(source, target):
    """The (target, source) matrix M that shrinks a row of `source` pixels to `target` by area averaging, with the
    weights of OpenCV's INTER_AREA: M @ image @ M.T shrinks a square image, two matrix products in an export."""
    scale = source / target
    matrix = torch.zeros(target, source)
    for j in range(target):
        start, end = j * scale, (j + 1) * scale
        for i in range(int(start), min(source, math.ceil(end))):
            matrix[j, i] = (min(end, i + 1) - max(start, i)) / scale
    return matrix


class FaceEnsemble(nn.Module):
    """Several trained networks answering as one (arch "ensemble", written by inference.join_checkpoints).

    Why one network rather than a list of checkpoints: the ensemble is then calibrated (its own temperature
    and decision rule, fitted on validation data as a whole), exported (one ONNX graph, one onnxruntime
    session) and shipped as one checkpoint, as any network is.

    members: each member's checkpoint as recorded: {"arch", "arch_args", "normalization": (mean, std),
    "temperature"}. The ensemble reads the widest face any member reads, in 0..1 (its checkpoint's
    normalisation is (0, 1)); each member gets it greyed (GREY_WEIGHTS) and shrunk by area averaging to its
    own face input, as fit_face would give it, standardised with its own statistics, and its logits divided
    by its own temperature. The answer in a head is the log of the members' weighted mean probabilities:
    logits whose softmax is that mean. weights: {head: one weight per member} (default: equal); a head
    missing from a member is left out of the ensemble's heads, except the default, which is each member's own.
    """

    def __init__(self, members, weights=None, num_classes=len(CLASS_NAMES)):
        super().__init__()
        self.members = nn.ModuleList(build_model(m["arch"], **m.get("arch_args", {})) for m in members)
        self.normalizations = [tuple(float(v) for v in m["normalization"]) for m in members]
        self.temperatures = [float(m.get("temperature", 1.0)) for m in members]
        self.face_input = widest_face_input(member.face_input for member in self.members)
        member_heads = [getattr(member, "heads", [DEFAULT_HEAD]) for member in self.members]
        # each member's own default head answers in the ensemble's default head
        self.heads = [member_heads[0][0]] + [h for h in member_heads[0][1:] if all(h in hs for hs in member_heads)]
        self.head = self.heads[0]
        self.head_index = [[0] + [hs.index(h) for h in self.heads[1:]] for hs in member_heads]  # [member][head]
        self.weights = {}  # {head: weights summing to 1}
        for head in self.heads:
            values = [float(w) for w in (weights or {}).get(head, [1.0] * len(members))]
            if len(values) != len(members) or min(values) < 0 or sum(values) <= 0:
                raise ValueError(f"the {head} head's weights must be {len(members)} numbers of at least 0, "
                                 f"not all 0: {values}")
            self.weights[head] = [w / sum(values) for w in values]
        self.num_classes = num_classes
        for i, member in enumerate(self.members):
            set_head(member, ALL_HEADS)
            size = member.face_input.size
            resize = area_resize_matrix(self.face_input.size, size) if size != self.face_input.size else None
            self.register_buffer(f"resize{i}", resize, persistent=False)
        self.register_buffer("grey", torch.tensor(GREY_WEIGHTS).view(1, 3, 1, 1), persistent=False)

    def member_faces(self, x, i):
        """The batch x (B, C, S, S) in 0..1 as member i reads it, standardised."""
        member = self.members[i]
        if x.shape[1] == 3 and not member.face_input.colour:
            x = (x * self.grey).sum(1, keepdim=True)
        resize = getattr(self, f"resize{i}")
        if resize is not None:
            x = resize @ x @ resize.T
        mean, std = self.normalizations[i]
        return (x - mean) / std

    def forward(self, x):
        heads = self.heads if self.head == ALL_HEADS else [self.head]
        logits = [(member(self.member_faces(x, i)).float() / self.temperatures[i]).unflatten(1, (-1, self.num_classes))
                  for i, member in enumerate(self.members)]
        answers = []
        for head in heads:
            k = self.heads.index(head)
            mean = sum(w * logits[i][:, self.head_index[i][k]].softmax(1)
                       for i, w in enumerate(self.weights[head]) if w)
            answers.append(mean.clamp_min(1e-12).log())
        return torch.cat(answers, dim=1)


def set_head(model, name):
    """Makes model answer in the label set `name` (or ALL_HEADS); returns the head it answered in before."""
    heads = getattr(model, "heads", [DEFAULT_HEAD])
    if name != ALL_HEADS and name not in heads:
        raise ValueError(f"the network has no head {name!r}; it has {', '.join(heads)}")
    before = getattr(model, "head", DEFAULT_HEAD)
    if hasattr(model, "heads"):
        model.head = name
    return before


# --arch name -> network class; main.py's --arch_args are passed to its constructor
ARCHS = {
    "deep_emotion": DeepEmotion,
    "deep_emotion_vgg": DeepEmotionVGG,
    "face_resnet": FaceResNet,
    "ensemble": FaceEnsemble,
}


def build_model(arch, **arch_args):
    """Returns a new network of the named architecture."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return ARCHS[arch](**arch_args)


def fold_for_inference(model):
    """The network, in place, readied to answer faster with the same answers (to float rounding): each batch
    norm and dlib affine layer folded into the convolution before it, and on a CPU its weights stored
    channels-last (about 1.5x faster a face on a 2-core CPU: benchmarks/README.md). Returns it in eval mode;
    not for training: the Ensemble of the API and the live pipeline reads networks this way."""
    model.eval()
    for module in list(model.modules()):
        if isinstance(module, DlibResNet):
            module.fold_affines()
        elif isinstance(module, nn.Sequential):
            for i in range(len(module) - 1):
                if isinstance(module[i], nn.Conv2d) and isinstance(module[i + 1], nn.BatchNorm2d):
                    module[i], module[i + 1] = fuse_conv_bn_eval(module[i], module[i + 1]), nn.Identity()
    if next(model.parameters()).device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    return model


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


def face_input_of(arch_args):
    """The FaceInput a network built with arch_args reads (every architecture: 48x48 grey unless told; an ensemble
    the widest of its members')."""
    if "members" in arch_args:
        return widest_face_input(face_input_of(m.get("arch_args", {})) for m in arch_args["members"])
    return FaceInput(arch_args.get("image_size", IMAGE_SIZE), arch_args.get("in_channels", 1))


def count_flops(model):
    """Floating-point operations of one forward pass on one face (a multiply-add is 2)."""
    from torch.utils.flop_counter import FlopCounterMode
    was_training = model.training
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        size, channels = model.face_input.size, model.face_input.channels
        model(torch.zeros(1, channels, size, size, device=next(model.parameters()).device))
    model.train(was_training)
    return counter.get_total_flops()
