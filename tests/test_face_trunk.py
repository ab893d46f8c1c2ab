"""dlib's face-recognition ResNet in PyTorch (face_trunk.py) and the face_resnet network built on it: the reader
on a file this test writes, the port against dlib's own weights (where the package is installed), and the
network's checkpoint, ONNX export and missing-package error."""
import importlib.util

import numpy as np
import pytest
import torch
from conftest import ROOT

from deep_emotion import face_trunk, onnx_classifier, onnx_export
from deep_emotion.emotions import ALL_HEADS, CLASS_NAMES
from deep_emotion.face_trunk import (
    DLIB_INPUT_SIZE,
    DLIB_MIN_INPUT_SIZE,
    DlibFormatError,
    DlibResNet,
    dlib_state_dict,
    standardize_rgb,
)
from deep_emotion.inference import Ensemble, load_model
from deep_emotion.model import FaceResNet, build_model, set_head

HAS_DLIB_WEIGHTS = importlib.util.find_spec(face_trunk.PACKAGE_NAME) is not None
SHARED_RAFDB = ROOT.parent / "shared" / "rafdb"


# ---------------------------------------------------------------- dlib's serialisation, written by hand

def dlib_int(value):
    """dlib's variable-length integer: a byte with the length (0x80 when negative), then little-endian bytes."""
    magnitude = abs(value)
    body = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(body) | (0x80 if value < 0 else 0)]) + body


def dlib_string(text):
    return dlib_int(len(text)) + text.encode()


def dlib_tensor(values):
    values = values.detach().float().contiguous().view(-1)
    return dlib_int(2) + b"".join(dlib_int(d) for d in (values.numel(), 1, 1, 1)) + values.numpy().tobytes()


def dlib_file(net):
    """The bytes dlib would write for net's layers, input first, with unrelated layers in between."""
    out = [dlib_string("loss_metric_2"), dlib_string("input_rgb_image_sized")]
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            params = torch.cat([module.weight.view(-1), module.bias])
            out += [dlib_string("con_4"), dlib_tensor(params),
                    *(dlib_int(v) for v in (module.out_channels, *module.kernel_size, *module.stride, *module.padding))]
        elif isinstance(module, face_trunk.Affine):
            out += [dlib_string("affine_"), dlib_tensor(torch.cat([module.weight, module.bias])), dlib_string("relu_1")]
    out += [dlib_string("avg_pool_2"), dlib_string("fc_2"), dlib_int(DESCRIPTOR), dlib_int(net.out_channels),
            dlib_tensor(net.descriptor.weight.t())]
    return b"".join(out)


DESCRIPTOR = face_trunk.DESCRIPTOR_SIZE


def test_the_reader_takes_every_layer_from_a_file_in_dlibs_format():
    torch.manual_seed(0)
    net = DlibResNet()
    for parameter in net.parameters():
        parameter.data.normal_()
    read = dlib_state_dict(dlib_file(net))
    assert read.keys() == net.state_dict().keys()
    assert all(torch.equal(read[k], v) for k, v in net.state_dict().items())


def test_a_file_of_another_network_is_refused_in_one_line():
    net = DlibResNet()
    data = dlib_file(net)
    cut = data[:data.rindex(b"\x01\x05con_4")]  # the last convolution and what follows are missing
    with pytest.raises(DlibFormatError, match="expected 29 convolutions, 29 affine layers and one fc, found 28"):
        dlib_state_dict(cut)


def test_dlibs_addition_pads_the_smaller_map_with_zeros():
    a, b = torch.ones(1, 2, 3, 3), torch.ones(1, 4, 4, 4)
    total = face_trunk.add_padded(a, b)
    assert total.shape == (1, 4, 4, 4)
    assert total[0, :2, :3, :3].eq(2).all() and total[0, 2:].eq(1).all() and total[0, :, 3].eq(1).all()


def test_the_trunk_ends_in_a_2x2_map_at_dlibs_input_size():
    assert DlibResNet()(torch.zeros(1, 3, DLIB_INPUT_SIZE, DLIB_INPUT_SIZE)).shape == (1, 256, 2, 2)


def test_faces_too_small_for_the_last_stage_are_refused_where_the_network_is_built():
    assert DlibResNet()(torch.zeros(1, 3, DLIB_MIN_INPUT_SIZE, DLIB_MIN_INPUT_SIZE)).shape[-1] == 1
    with pytest.raises(RuntimeError):  # two pixels less and the last stage has nothing to convolve
        DlibResNet()(torch.zeros(1, 3, DLIB_MIN_INPUT_SIZE - 2, DLIB_MIN_INPUT_SIZE - 2))
    with pytest.raises(ValueError, match="at least 104"):
        FaceResNet(input_size=96)


def test_a_missing_package_is_a_one_line_error_naming_the_install(monkeypatch):
    monkeypatch.setattr(face_trunk.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r'not installed: pip install "\.\[pretrained\]"'):
        face_trunk.load_dlib_trunk()


# ---------------------------------------------------------------- the port against dlib's own weights

def face_chip(image_rgb, box, padding=0.25):
    """The face in box (x, y, w, h), with dlib's padding around it, at dlib's 150x150, as (1, 3, 150, 150)."""
    import cv2
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * padding)
    centre = (x + w / 2, y + h / 2)
    left, top = int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2))
    pad = int(side)
    padded = cv2.copyMakeBorder(image_rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    chip = padded[top + pad:top + pad + int(side), left + pad:left + pad + int(side)]
    chip = cv2.resize(chip, (DLIB_INPUT_SIZE, DLIB_INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return standardize_rgb(torch.from_numpy(chip).permute(2, 0, 1)[None].float())


@pytest.mark.skipif(not HAS_DLIB_WEIGHTS, reason='dlib\'s weights come with pip install ".[pretrained]"')
def test_the_port_reads_dlibs_network_a_face_and_its_mirror_lie_within_0_6():
    skimage_data = pytest.importorskip("skimage.data")
    net, sha256 = face_trunk.load_dlib_trunk()
    assert sha256 == "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"
    astronaut = skimage_data.astronaut()  # RGB; her face is at about (178, 63, 90, 114)
    face = face_chip(astronaut, (178, 63, 90, 114))
    rocket = face_chip(astronaut, (400, 40, 90, 114))  # no face at all
    with torch.no_grad():
        descriptors = net.describe(torch.cat([face, face.flip(3), rocket]))
    # dlib: descriptors of one person lie within 0.6 of each other, of two people further apart
    assert (descriptors[0] - descriptors[1]).norm() < 0.4
    assert (descriptors[0] - descriptors[2]).norm() > 0.6


@pytest.mark.skipif(not HAS_DLIB_WEIGHTS or not SHARED_RAFDB.is_dir(),
                    reason="needs dlib's weights (.[pretrained]) and ../shared/rafdb")
def test_the_port_tells_different_people_apart():
    import cv2
    net, _ = face_trunk.load_dlib_trunk()
    paths = sorted((SHARED_RAFDB / "happy").glob("*"))[:8]
    # RAF-DB's aligned 100x100 faces, whole: framed about as dlib's 150x150 chips are
    faces = torch.cat([face_chip(cv2.imread(str(p))[:, :, ::-1].copy(), (20, 20, 60, 60), 1 / 3) for p in paths])
    with torch.no_grad():
        same = net.describe(faces) - net.describe(faces.flip(3))
        distances = torch.cdist(net.describe(faces), net.describe(faces))
    different = distances[~torch.eye(len(paths), dtype=torch.bool)]
    assert same.norm(dim=1).max() < 0.6 and different.median() > 0.6


# ---------------------------------------------------------------- face_resnet: the network behind the heads

def test_face_resnet_reads_48x48_grey_faces_with_a_head_per_label_set():
    model = build_model("face_resnet", heads=["default", "fer2013"]).eval()
    faces = torch.rand(3, 1, 48, 48)
    assert model(faces).shape == (3, 7)
    set_head(model, ALL_HEADS)
    assert model(faces).shape == (3, 14)
    frozen = FaceResNet(frozen_stages=2)
    assert not frozen.trunk.conv.weight.requires_grad and not frozen.trunk.blocks[6].conv1.weight.requires_grad
    assert frozen.trunk.blocks[7].conv1.weight.requires_grad  # the first block of the third stage trains
    assert {id(p) for p in frozen.scaled_lr_parameters()} == {
        id(p) for p in frozen.trunk.parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def face_resnet_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = FaceResNet(input_size=112, heads=["default", "fer2013"])
    path = tmp_path_factory.mktemp("face_resnet") / "face_resnet.pt"
    torch.save({"model": model.state_dict(), "arch": "face_resnet",
                "arch_args": {"input_size": 112, "heads": ["default", "fer2013"]}, "class_names": list(CLASS_NAMES),
                "normalization": list(FaceResNet.INPUT_NORMALIZATION)}, path)
    return path


def test_a_face_resnet_checkpoint_loads_and_exports_to_onnx_with_the_same_answers(face_resnet_checkpoint, tmp_path):
    model, checkpoint = load_model(face_resnet_checkpoint)
    assert isinstance(model, FaceResNet) and model.input_size == 112
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    expected = Ensemble(face_resnet_checkpoint).predict(faces)
    onnx_path = onnx_export.export(face_resnet_checkpoint, tmp_path / "face_resnet.onnx")
    got = onnx_classifier.OnnxClassifier(onnx_path).predict(faces)
    assert got.shape == (5, 7) and np.abs(got - expected).max() < 1e-4
