import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import ROOT, shipped

from deep_emotion.emotions import SHIFT_PIXELS
from deep_emotion.inference import CheckpointError, load_checkpoint, load_model, predict, tta_views
from deep_emotion.model import (
    ARCHS,
    DeepEmotion,
    STNAttention,
    build_model,
    count_flops,
    count_parameters,
    fold_for_inference,
)
from deep_emotion.recipes import RECIPES

STN_ARCHS = sorted(name for name, network in ARCHS.items() if issubclass(network, STNAttention))
TRAINED = sorted(RECIPES)  # every network one trains (an ensemble joins trained ones: test_ensemble.py)


class OriginalDeepEmotion(nn.Module):
    """The popular unofficial implementation's network, as published (the parity reference)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, 3)
        self.conv2 = nn.Conv2d(10, 10, 3)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.conv3 = nn.Conv2d(10, 10, 3)
        self.conv4 = nn.Conv2d(10, 10, 3)
        self.pool4 = nn.MaxPool2d(2, 2)
        self.norm = nn.BatchNorm2d(10)
        self.fc1 = nn.Linear(810, 50)
        self.fc2 = nn.Linear(50, 7)
        self.localization = nn.Sequential(nn.Conv2d(1, 8, kernel_size=7), nn.MaxPool2d(2, stride=2), nn.ReLU(True),
                                          nn.Conv2d(8, 10, kernel_size=5), nn.MaxPool2d(2, stride=2), nn.ReLU(True))
        self.fc_loc = nn.Sequential(nn.Linear(640, 32), nn.ReLU(True), nn.Linear(32, 3 * 2))

    def forward(self, x):
        theta = self.fc_loc(self.localization(x).view(-1, 640)).view(-1, 2, 3)
        x = F.grid_sample(x, F.affine_grid(theta, x.size(), align_corners=False), align_corners=False)
        out = F.relu(self.conv1(x))
        out = F.relu(self.pool2(self.conv2(out)))
        out = F.relu(self.conv3(out))
        out = F.relu(self.pool4(self.norm(self.conv4(out))))
        out = F.dropout(out)
        return self.fc2(F.relu(self.fc1(out.view(-1, 810))))


def test_default_network_is_the_original_size():
    assert count_parameters(DeepEmotion()) == 66_877


def test_vgg_depth_adds_one_conv_bn_per_stage_and_keeps_the_shipped_layout():
    shipped_vgg = load_model(shipped("deep_emotion_vgg.pt"))[0]  # loads strictly: the default layout is unchanged
    assert count_parameters(shipped_vgg) == count_parameters(build_model("deep_emotion_vgg")) == 2_662_599
    deeper = load_model(shipped("deep_emotion_vgg_depth3.pt"))[0]  # stored fp16, restored fp32
    assert count_parameters(deeper) == count_parameters(build_model("deep_emotion_vgg", depth=3)) == 4_426_599
    assert all(p.dtype == torch.float32 for p in deeper.parameters())
    two, three = build_model("deep_emotion_vgg", width=8), build_model("deep_emotion_vgg", width=8, depth=3)
    extra = sum(9 * c * c + 2 * c for c in (8, 16, 32, 64))  # a bias-free 3x3 conv and its batch norm per stage
    assert count_parameters(three) - count_parameters(two) == extra
    assert three(torch.randn(2, 1, 48, 48)).shape == (2, 7)
    with pytest.raises(ValueError):
        build_model("deep_emotion_vgg", depth=0)


@pytest.mark.parametrize("arch", TRAINED)
@pytest.mark.parametrize("batch", [1, 64])
def test_forward_shapes(arch, batch):
    model = build_model(arch).eval()
    assert model(torch.randn(batch, 1, 48, 48)).shape == (batch, 7)
    if arch not in STN_ARCHS:
        return
    warped, theta = model.stn(torch.randn(batch, 1, 48, 48))
    assert warped.shape == (batch, 1, 48, 48) and theta.shape == (batch, 2, 3)


@pytest.mark.parametrize("arch", STN_ARCHS)
def test_stn_is_identity_at_initialisation(arch):
    x = torch.randn(4, 1, 48, 48)
    warped, _ = build_model(arch).stn(x)
    assert torch.allclose(warped, x, atol=1e-5)


@pytest.mark.parametrize("arch", TRAINED)
def test_eval_mode_is_deterministic(arch):
    model = build_model(arch, dropout=0.5).eval()
    x = torch.randn(8, 1, 48, 48)
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("arch, arch_args", [("deep_emotion", {}), ("deep_emotion_vgg", {"width": 8}),
                                              ("face_resnet", {"image_size": 112, "in_channels": 3})])
def test_folding_for_inference_removes_the_norm_layers_and_keeps_the_answers(arch, arch_args):
    from deep_emotion.face_trunk import Affine
    torch.manual_seed(0)
    model = build_model(arch, **arch_args)
    for module in model.modules():  # trained-looking statistics and scales, so that folding has work to do
        if isinstance(module, (nn.BatchNorm2d, Affine)):
            nn.init.uniform_(module.weight, 0.5, 2.0)
            nn.init.normal_(module.bias, std=0.5)
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(std=0.5)
            module.running_var.uniform_(0.5, 2.0)
    model.eval()
    size, channels = model.face_input.size, model.face_input.channels
    x = torch.rand(3, channels, size, size)
    with torch.no_grad():
        expected = model(x)
        folded = fold_for_inference(model)
        answered = folded(x)
    left = [type(m).__name__ for m in folded.modules() if isinstance(m, (nn.BatchNorm2d, Affine))]
    # the paper's network calls its layers by name rather than chaining them: its one norm stays
    kept = {"deep_emotion": ["BatchNorm2d"]}.get(arch, [])
    assert left == kept
    assert torch.allclose(answered, expected, rtol=1e-4, atol=1e-4)
    assert not torch.equal(answered, torch.zeros_like(answered))


def test_original_state_dict_loads_strictly_and_computes_the_same():
    torch.manual_seed(0)
    original = OriginalDeepEmotion()
    nn.init.normal_(original.fc_loc[2].weight, std=0.01)  # a non-identity warp, so the STN is exercised
    ours = DeepEmotion()
    ours.load_state_dict(original.state_dict(), strict=True)
    x = torch.randn(16, 1, 48, 48)
    # in training mode both draw the same dropout mask from the same seed
    torch.manual_seed(1)
    expected = original.train()(x)
    torch.manual_seed(1)
    assert torch.allclose(ours.train()(x), expected, atol=1e-5)


def test_original_checkpoint_file_predicts_as_the_reference_network(tmp_path, monkeypatch):
    torch.manual_seed(0)
    original = OriginalDeepEmotion()
    nn.init.normal_(original.fc_loc[2].weight, std=0.01)
    path = tmp_path / "model.pt"
    torch.save(original.state_dict(), path)
    model, checkpoint = load_model(path)
    assert checkpoint["arch"] == "deep_emotion" and not model.training
    assert tuple(checkpoint["normalization"]) == (0.5, 0.5)  # the unofficial implementation's Normalize
    faces = torch.randint(0, 256, (16, 48, 48), dtype=torch.uint8)
    ours = predict(model, faces, checkpoint["normalization"], "cpu")
    monkeypatch.setattr(F, "dropout", lambda x, *a, **k: x)  # its dropout never switched off: take it out here
    with torch.no_grad():
        expected = original.eval()((faces.unsqueeze(1).float() / 255 - 0.5) / 0.5).softmax(1)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_flops_of_the_paper_network_by_hand():
    conv = lambda c_in, c_out, k, out: 2 * c_in * c_out * k * k * out * out  # noqa: E731
    by_hand = (conv(1, 8, 7, 42) + conv(8, 10, 5, 17) + 2 * 640 * 32 + 2 * 32 * 6        # localization
               + conv(1, 10, 3, 46) + conv(10, 10, 3, 44) + conv(10, 10, 3, 20) + conv(10, 10, 3, 18)
               + 2 * 810 * 50 + 2 * 50 * 7)
    flops = count_flops(DeepEmotion())
    assert by_hand <= flops <= by_hand + 2 * 48 * 48 * 3 * 2  # + affine_grid's (1, 2304, 3) x (3, 2) product


def test_tiny_batch_overfits():
    torch.manual_seed(0)
    model = DeepEmotion(dropout=0.0)
    x, y = torch.randn(14, 1, 48, 48), torch.arange(14) % 7
    # lr 0.01 collapsed to one class with two threads (their summation order differs); 0.003 learns with both
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    for _ in range(200):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert (model.eval()(x).argmax(1) == y).float().mean().item() == 1.0


def test_checkpoint_round_trip_and_rejections(tmp_path):
    model = build_model("deep_emotion_vgg", width=8).eval()
    path = tmp_path / "ck.pt"
    torch.save({"model": model.state_dict(), "arch": "deep_emotion_vgg", "arch_args": {"width": 8},
                "normalization": [0.5, 0.25]}, path)
    loaded, checkpoint = load_model(path)
    x = torch.randn(2, 1, 48, 48)
    assert torch.equal(loaded(x), model(x)) and checkpoint["normalization"] == [0.5, 0.25]
    torch.save({"model": model.state_dict(), "arch": "deep_emotion", "arch_args": {}}, path)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(path)
    for text in ["hello", "# a README\n"]:  # '#' reads as a pickle opcode weights_only does not support
        (tmp_path / "notes.txt").write_text(text)
        with pytest.raises(CheckpointError, match="notes.txt is not a PyTorch checkpoint"):
            load_checkpoint(tmp_path / "notes.txt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_exported_half_precision_weights_predict_the_same(tmp_path):
    from deep_emotion.inference import export_weights
    torch.manual_seed(0)
    model = build_model("deep_emotion_vgg", width=8).eval()
    full = tmp_path / "full.pt"
    torch.save({"model": model.state_dict(), "arch": "deep_emotion_vgg", "arch_args": {"width": 8},
                "normalization": [0.5, 0.25], "optimizer": {}}, full)
    export_weights(full, tmp_path / "shipped.pt", half=True)
    shipped, checkpoint = load_model(tmp_path / "shipped.pt")
    assert "optimizer" not in checkpoint
    assert next(iter(checkpoint["model"].values())).dtype == torch.float16
    x = torch.randn(32, 1, 48, 48)
    assert torch.equal(shipped(x).argmax(1), model(x).argmax(1))


def test_tta_views_are_mirrored_and_shifted_copies():
    face = torch.arange(48 * 48, dtype=torch.float32).view(1, 1, 48, 48)
    p = SHIFT_PIXELS
    assert [len(tta_views(face, tta)) for tta in (None, "flip", "shifts")] == [1, 2, 10]
    views = tta_views(face, "shifts")
    assert torch.equal(views[0], face) and torch.equal(views[5], face.flip(3))
    # view 1 is the face moved p pixels down, its top row repeated into the gap
    assert torch.equal(views[1][..., p:, :], face[..., :-p, :]) and torch.equal(views[1][..., 0, :], face[..., 0, :])
    assert torch.equal(views[4][..., :, :-p], face[..., :, p:])  # view 4: moved p pixels left
    assert all(torch.equal(views[5 + i], views[i].flip(3)) for i in range(5))


def test_predict_averages_the_probabilities_of_the_tta_views():
    torch.manual_seed(0)
    network = build_model("deep_emotion").eval()
    faces = torch.randint(0, 256, (5, 48, 48), dtype=torch.uint8)
    normalization = (0.5, 0.25)
    x = (faces.unsqueeze(1).float() / 255 - 0.5) / 0.25
    with torch.no_grad():
        by_hand = torch.stack([network(view).softmax(1) for view in tta_views(x, "shifts")]).mean(0)
        one_view = predict(network, faces, normalization, "cpu")
        shifts = predict(network, faces, normalization, "cpu", batch_size=2, tta="shifts")
    assert torch.allclose(shifts, by_hand, atol=1e-6) and not torch.allclose(shifts, one_view, atol=1e-4)
    assert torch.allclose(predict(network, faces, normalization, "cpu", tta=True),
                          predict(network, faces, normalization, "cpu", tta="flip"))
    with pytest.raises(ValueError):
        predict(network, faces, normalization, "cpu", tta="ten_crop")


def test_ensemble_averages_its_members_and_balance_divides_out_the_prior(tmp_path):
    from deep_emotion.emotions import balance
    from deep_emotion.inference import FER2013_TRAIN_COUNTS, Ensemble
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        network = build_model("deep_emotion_vgg", width=8).eval()
        paths.append(tmp_path / f"m{seed}.pt")
        torch.save({"model": network.state_dict(), "arch": "deep_emotion_vgg", "arch_args": {"width": 8},
                    "normalization": [0.5, 0.25]}, paths[-1])
    faces = torch.randint(0, 256, (6, 48, 48), dtype=torch.uint8)
    members = [torch.from_numpy(Ensemble(path).predict(faces)) for path in paths]
    both = torch.from_numpy(Ensemble(paths).predict(faces))
    assert torch.allclose(both, (members[0] + members[1]) / 2, atol=1e-6)
    prior = torch.tensor(FER2013_TRAIN_COUNTS, dtype=torch.float32) / sum(FER2013_TRAIN_COUNTS)
    balanced = torch.from_numpy(Ensemble(paths, balanced=True).predict(faces))
    by_hand = both / prior / (both / prior).sum(1, keepdim=True)
    assert torch.allclose(balanced, by_hand, atol=1e-6) and torch.allclose(balanced.sum(1), torch.ones(6))
    # a flat prediction becomes a vote for the rarest class once FER2013's prior is divided out
    assert balance(torch.full((1, 7), 1 / 7), prior).argmax().item() == 1  # disgust


@pytest.mark.parametrize("name, arch", [("deep_emotion_vgg_fer_raf", "deep_emotion_vgg"),
                                        ("deep_emotion_vgg_ferplus_raf", "deep_emotion_vgg"),
                                        ("deep_emotion_ferplus_raf", "deep_emotion")])
def test_real_faces_weights_load_and_their_cards_quote_the_committed_results(name, arch):
    import json
    path = shipped(f"{name}.pt")
    model, checkpoint = load_model(path)
    assert checkpoint["arch"] == arch and "optimizer" not in checkpoint and path.stat().st_size < 16e6
    assert model(torch.zeros(2, 1, 48, 48)).shape == (2, 7)
    assert len(checkpoint["config"]["data"]) in (2, 3)  # FER2013 and RAF-DB (in one or two framings)
    card = (shipped(f"{name}.md")).read_text()
    assert "research use only" in card and "RAF-DB" in card
    crop = json.loads((ROOT / "results" / "cross" / "real_faces" / f"{name}_crop.json").read_text())  # on this file
    raf = crop["sets"]["raf_val"]
    assert f"{100 * raf['accuracy']:.2f}%" in card and f"{100 * raf['balanced_accuracy']:.2f}%" in card
    assert f"{100 * crop['sets']['fer2013_publictest']['accuracy']:.2f}%" in card
