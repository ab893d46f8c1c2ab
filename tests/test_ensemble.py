"""Several networks as one checkpoint (model.FaceEnsemble, inference.join_checkpoints): what the default model is."""
import cv2
import numpy as np
import pytest
import torch
from conftest import run_args

from deep_emotion import calibrate
from deep_emotion.emotions import FaceInput
from deep_emotion.face_detectors import fit_faces
from deep_emotion.inference import CheckpointError, Ensemble, join_checkpoints, load_model
from deep_emotion.model import DeepEmotion, DeepEmotionVGG, area_resize_matrix
from deep_emotion.recognizer import build_classifier


def save(path, model, arch, arch_args, normalization, temperature=1.0, **extra):
    torch.save({"model": model.state_dict(), "arch": arch, "arch_args": arch_args, "normalization": normalization,
                "class_names": ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"],
                "temperature": temperature, **extra}, path)
    return path


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two small two-head networks: one reads 48x48 grey faces, the other 64x64 colour; each with a temperature."""
    folder = tmp_path_factory.mktemp("members")
    torch.manual_seed(0)
    grey_args = {"width": 8, "heads": ["ferplus", "fer2013"]}
    colour_args = {"width": 8, "heads": ["ferplus", "fer2013"], "in_channels": 3, "image_size": 64}
    grey, colour = DeepEmotionVGG(**grey_args).eval(), DeepEmotionVGG(**colour_args).eval()
    for model in (grey, colour):  # heads that disagree, so that a weight shows in the answer
        for layer in [model.classifier, *model.extra_heads.values()]:
            torch.nn.init.normal_(layer.weight, std=20.0)
    return [save(folder / "grey.pt", grey, "deep_emotion_vgg", grey_args, [0.5, 0.25], 0.8),
            save(folder / "colour.pt", colour, "deep_emotion_vgg", colour_args, [0.4, 0.3], 1.3)]


def faces(face_input, count=12, seed=0):
    return np.random.default_rng(seed).integers(0, 256, face_input.shape(count), dtype=np.uint8)


def test_the_area_resize_is_opencvs():
    image = np.random.default_rng(0).integers(0, 256, (150, 150)).astype(np.float32)
    matrix = area_resize_matrix(150, 48).numpy()
    expected = cv2.resize(image, (48, 48), interpolation=cv2.INTER_AREA)
    assert np.abs(matrix @ image @ matrix.T - expected).max() < 1e-3


def test_each_member_reads_the_face_as_fit_face_gives_it(members, tmp_path):
    model, _ = load_model(join_checkpoints(members, tmp_path / "pair.pt"))
    assert model.face_input == FaceInput(64, 3)  # the widest: each member shrinks and greys it
    given = faces(model.face_input)
    x = torch.from_numpy(given).permute(0, 3, 1, 2).float() / 255
    for i, (mean, std) in enumerate(model.normalizations):
        seen = (model.member_faces(x, i) * std + mean) * 255  # back to pixels
        expected = fit_faces(given, model.members[i].face_input).astype(np.float32)
        seen = seen.squeeze(1).numpy() if seen.shape[1] == 1 else seen.permute(0, 2, 3, 1).numpy()
        assert seen.shape == expected.shape and np.abs(seen - expected).max() <= 1.0  # OpenCV rounds to whole levels


def test_the_ensemble_answers_the_members_mean_and_its_weights_per_head(members, tmp_path):
    given = faces(FaceInput(64, 3))
    alone = [Ensemble(path) for path in members]  # each with its own temperature, no decision rule
    equal = Ensemble(join_checkpoints(members, tmp_path / "equal.pt"))
    mean = sum(member.predict(given) for member in alone) / 2
    # within OpenCV's rounding: alone, the grey member reads faces greyed and shrunk to whole levels
    assert np.abs(equal.predict(given) - mean).max() < 1e-3
    weighted = Ensemble(join_checkpoints(members, tmp_path / "weighted.pt", weights={"fer2013": [1, 0]}))
    assert np.abs(weighted.predict(given) - mean).max() < 1e-3  # the default head keeps equal weights
    weighted.use_head("fer2013")
    alone[0].use_head("fer2013")
    assert np.abs(weighted.predict(given) - alone[0].predict(given)).max() < 1e-3
    equal.use_head("fer2013")
    assert np.abs(equal.predict(given) - weighted.predict(given)).max() > 0.01  # ten times the bound above


def test_an_ensemble_answers_alike_on_both_engines_in_every_head(members, tmp_path):
    pytest.importorskip("onnxruntime")
    path = join_checkpoints(members, tmp_path / "pair.pt", weights={"fer2013": [3, 1]})
    engines = [build_classifier(path, backend=backend) for backend in ("torch", "onnx")]
    assert [engine.backend for engine in engines] == ["torch", "onnx"]
    for head in ("ferplus", "fer2013"):
        for engine in engines:
            engine.use_head(head)
        for given in (faces(FaceInput(64, 3)), faces(FaceInput(48, 1))):  # its own faces, and smaller grey ones
            answers = [engine.predict(given) for engine in engines]
            assert np.abs(answers[0] - answers[1]).max() < 1e-4


def test_an_ensemble_is_calibrated_as_a_whole(members, prepared, tmp_path):
    path = join_checkpoints(members, tmp_path / "pair.pt")
    report = calibrate.main(run_args(calibrate, "--data", prepared, "--model", path, "--decision", "fit", "--write",
                                     "--figures", tmp_path))
    stored = torch.load(path, weights_only=True)
    assert stored["arch"] == "ensemble" and stored["temperature"] == report["temperature"] != 1.0
    assert stored["prior_exponent"] == report["prior_exponent"]
    assert [m["file"] for m in stored["members"]] == ["grey.pt", "colour.pt"]


def test_an_ensemble_takes_single_networks_only(members, checkpoint, tmp_path):
    pair = join_checkpoints(members, tmp_path / "pair.pt")
    with pytest.raises(CheckpointError, match="one network"):
        join_checkpoints([pair, members[0]], tmp_path / "nested.pt")
    one_head = join_checkpoints([checkpoint, members[0]], tmp_path / "mixed.pt")  # the paper's one-head network
    model, _ = load_model(one_head)
    assert model.heads == ["default"]  # fer2013 is not a head every member has
    assert isinstance(model.members[0], DeepEmotion)


def test_an_ensembles_weights_are_one_per_member_and_not_all_zero(members, tmp_path):
    for weights in ({"ferplus": [1]}, {"fer2013": [0, 0]}, {"ferplus": [1, -1]}):
        with pytest.raises(ValueError, match="weights must be 2 numbers"):
            join_checkpoints(members, tmp_path / "bad.pt", weights=weights)
    assert not (tmp_path / "bad.pt").exists()


def test_attention_draws_the_stn_of_an_ensembles_first_network_that_has_one(members, prepared, tmp_path, capsys):
    from deep_emotion import visualize
    from deep_emotion.model import FaceResNet
    pair = join_checkpoints(members, tmp_path / "pair.pt")
    visualize.main(run_args(visualize, "--attention", "--data", prepared, "--split", "val", "-m", pair,
                            "--figures", tmp_path))
    assert (tmp_path / "attention.png").stat().st_size > 0 and "attention:" in capsys.readouterr().out
    no_stn = save(tmp_path / "trunk.pt", FaceResNet(), "face_resnet", {}, [0.0, 1.0])
    with pytest.raises(CheckpointError, match="face_resnet model has none"):
        visualize.main(run_args(visualize, "--attention", "--data", prepared, "-m", no_stn, "--figures", tmp_path))
