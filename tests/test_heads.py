"""One network, two label sets: the FER+-sense default head and FER2013's own head (DeepEmotionVGG(heads=...))."""
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import add_votes, run_args, shipped

from deep_emotion import engine, recipes, train, visualize
from deep_emotion.data import training_data
from deep_emotion.emotions import ALL_HEADS
from deep_emotion.inference import CheckpointError, Ensemble, load_model
from deep_emotion.model import DeepEmotionVGG, build_model, set_head
from deep_emotion.recognizer import build_classifier

HEADS = ["ferplus", "fer2013"]
TINY = {"width": 4, "heads": HEADS}


def test_each_head_answers_alone_and_training_sees_both():
    model = DeepEmotionVGG(**TINY).eval()
    x = torch.randn(3, 1, 48, 48)
    default, fer2013 = model(x), (set_head(model, "fer2013"), model(x))[1]
    set_head(model, ALL_HEADS)
    both = model(x)
    assert both.shape == (3, 14) and torch.equal(both[:, :7], default) and torch.equal(both[:, 7:], fer2013)
    with pytest.raises(ValueError, match="no head 'sfew'"):
        set_head(model, "sfew")
    with pytest.raises(ValueError):
        DeepEmotionVGG(width=4, heads=["a", "a"])


def test_one_head_checkpoints_load_as_before():
    model, _ = load_model(shipped("deep_emotion_vgg.pt"))
    assert model.heads == ["default"] and not any(k.startswith("extra_heads") for k in model.state_dict())
    assert "classifier.weight" in model.state_dict()


def test_the_second_head_learns_fer2013_labels_and_skips_faces_without_them():
    labels, second = torch.tensor([0, 1, 2]), torch.tensor([3, -1, 5])
    loss = engine.make_loss(second_labels=second)
    logits = torch.randn(3, 14)
    expected = (torch.nn.functional.cross_entropy(logits[:, :7], labels)
                + torch.nn.functional.cross_entropy(logits[[0, 2], 7:], torch.tensor([3, 5])))
    assert torch.allclose(loss(logits, labels, torch.arange(3)), expected)


def test_with_distill_heads_all_the_second_head_follows_the_teachers_second_head_too():
    labels, second = torch.tensor([0, 1, 2]), torch.tensor([3, -1, 5])
    first_taught, second_taught = torch.rand(3, 7).softmax(1), torch.rand(3, 7).softmax(1)
    loss = engine.make_loss(teacher_probabilities=first_taught, distill_weight=0.25, second_labels=second,
                            second_teacher_probabilities=second_taught)
    logits = torch.randn(3, 14)
    cross = torch.nn.functional.cross_entropy
    soft = lambda target, logit: -(target * logit.log_softmax(1)).sum(1).mean()  # noqa: E731
    expected = (0.75 * cross(logits[:, :7], labels) + 0.25 * soft(first_taught, logits[:, :7])
                + 0.75 * cross(logits[[0, 2], 7:], torch.tensor([3, 5]))
                + 0.25 * soft(second_taught[[0, 2]], logits[[0, 2], 7:]))  # the face without a label is left out
    assert torch.allclose(loss(logits, labels, torch.arange(3)), expected)


def test_distill_heads_all_reads_the_teachers_fer2013_head_and_needs_two_heads(voted_folder, tmp_path,
                                                                                 two_head_checkpoint):
    common = ["--train", "--data", voted_folder, "--arch", "deep_emotion_vgg", "--epochs", "1", "--max_steps", "1",
              "--batch_size", "16", "--workers", "1", "--quiet", "--targets", "votes", "--precision", "fp32",
              "--distill_heads", "all"]
    with pytest.raises(train.TrainingError, match="needs --teacher and --arch_args with two heads"):
        train.main(run_args(train, *common, "--teacher", two_head_checkpoint, "--out", tmp_path / "a",
                            "--arch_args", json.dumps({"width": 4})))
    train.main(run_args(train, *common, "--teacher", two_head_checkpoint, "--out", tmp_path / "b",
                        "--arch_args", json.dumps(TINY)))
    teacher_sha256 = recipes.teachers_sha256(str(two_head_checkpoint))
    tables = {path.name.split("-")[-1]: torch.load(path, weights_only=True)
              for path in (voted_folder / "prepared" / "cache").glob(f"teacher-{teacher_sha256[:16]}-*.pt")}
    assert set(tables) == {"fp32.pt", "fer2013.pt"}  # the teacher read in its default head, and in its fer2013 head
    assert (tables["fp32.pt"].argmax(1) == 6).all() and (tables["fer2013.pt"].argmax(1) == 3).all()
    one_head = tmp_path / "one_head.pt"
    torch.save({"model": build_model("deep_emotion_vgg", width=4).state_dict(), "arch": "deep_emotion_vgg",
                "arch_args": {"width": 4}, "normalization": [0.5, 0.25]}, one_head)
    with pytest.raises(training_data.DataError, match="has no 'fer2013' head"):
        train.main(run_args(train, *common, "--teacher", one_head, "--out", tmp_path / "c",
                            "--arch_args", json.dumps(TINY)))


@pytest.fixture
def voted_folder(prepared, tmp_path):
    """Synthetic FER2013 whose FER+ majority is always neutral: the two label sets disagree on most faces."""
    data = tmp_path / "voted"
    shutil.copytree(prepared, data)
    add_votes(data, lambda label: [9, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    return data


def test_a_two_head_run_starts_from_a_one_head_checkpoint_and_logs_each_head(voted_folder, tmp_path):
    first = train.main(run_args(train, "--train", "--data", voted_folder, "--out", tmp_path / "a", "--arch",
                                "deep_emotion_vgg", "--arch_args", json.dumps({"width": 4}), "--epochs", "1",
                                "--max_steps", "1", "--batch_size", "16", "--workers", "1", "--quiet"))
    run_dir = train.main(run_args(train, "--train", "--data", voted_folder, "--out", tmp_path / "b", "--arch",
                                  "deep_emotion_vgg", "--arch_args", json.dumps(TINY), "--targets", "votes",
                                  "--init", first / "best.pt", "--epochs", "1", "--max_steps", "1", "--batch_size",
                                  "16", "--workers", "1", "--quiet", "--learning_rate", "1e-9", "--weight_decay", "0"))
    weights = torch.load(run_dir / "last.pt", weights_only=True)["model"]
    start = torch.load(first / "best.pt", weights_only=True)["model"]
    # the fer2013 head starts as the initial network's head, and (at a negligible rate) stays there
    assert torch.allclose(weights["extra_heads.fer2013.weight"], start["classifier.weight"], atol=1e-5)
    row = json.loads((run_dir / "log.jsonl").read_text().splitlines()[0])
    assert {"accuracy", "ferplus_accuracy"} <= set(row["sources"]["voted"])
    with pytest.raises(training_data.DataError, match="needs a FER2013 folder with FER\\+ votes"):
        training_data.second_head_labels(HEADS, training_data.load_sources([voted_folder], "label"))


@pytest.fixture
def two_head_checkpoint(tmp_path):
    """A two-head checkpoint whose default head always says Neutral and whose fer2013 head always says Happy."""
    model = build_model("deep_emotion_vgg", **TINY)
    with torch.no_grad():
        for layer, wanted in ((model.classifier, 6), (model.extra_heads["fer2013"], 3)):
            layer.weight.zero_()
            layer.bias.fill_(-5.0)
            layer.bias[wanted] = 5.0
    path = tmp_path / "two_heads.pt"
    torch.save({"model": model.state_dict(), "arch": "deep_emotion_vgg", "arch_args": TINY,
                "normalization": [0.5, 0.25]}, path)
    return path


def test_test_cc_scores_fer2013_labels_with_their_head_and_fer_plus_with_the_default(two_head_checkpoint,
                                                                                      voted_folder, tmp_path):
    common = ["-t", "-d", voted_folder, "-m", two_head_checkpoint, "--figures", tmp_path]
    metrics = visualize.main(run_args(visualize, *common))
    labels = np.array([int(line.split(",")[1]) for line in
                       (voted_folder / "prepared" / "test" / "labels.csv").read_text().splitlines()[1:]])
    assert metrics["head"] == "fer2013" and metrics["accuracy"] == pytest.approx(np.mean(labels == 3))
    assert metrics["ferplus"]["accuracy"] == 1.0  # every face's FER+ majority is neutral: the default head's answer
    chosen = visualize.main(run_args(visualize, *common, "--head", "ferplus"))
    assert chosen["head"] == "ferplus" and chosen["accuracy"] == pytest.approx(np.mean(labels == 6))


def test_a_face_set_that_is_not_fer2013_is_scored_with_the_default_head(two_head_checkpoint, prepared, tmp_path):
    data = tmp_path / "elsewhere"
    shutil.copytree(prepared, data)
    manifest = data / "prepared" / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "kind": "labels_csv"}))
    metrics = visualize.main(run_args(visualize, "-t", "-d", data, "-m", two_head_checkpoint, "--figures", tmp_path))
    assert metrics["head"] == "default"


def test_both_engines_answer_in_the_default_head_or_the_one_asked_for(two_head_checkpoint, tmp_path):
    pytest.importorskip("onnxruntime")
    from deep_emotion.onnx_classifier import OnnxError
    faces = torch.randint(0, 256, (4, 48, 48), dtype=torch.uint8)
    for backend in ("torch", "onnx"):
        classifier = build_classifier(two_head_checkpoint, backend=backend)
        assert classifier.backend == backend and classifier.heads == ["ferplus", "fer2013"]
        assert classifier.predict(faces.numpy()).argmax(1).tolist() == [6] * 4
        classifier.use_head("fer2013")
        assert classifier.predict(faces).argmax(1).tolist() == [3] * 4
        asked = build_classifier(two_head_checkpoint, backend=backend, head="fer2013")
        assert asked.predict(faces).argmax(1).tolist() == [3] * 4
    with pytest.raises(OnnxError, match="has no head 'fer2013'"):
        build_classifier(shipped("deep_emotion.pt"), backend="onnx", head="fer2013")
    with pytest.raises(CheckpointError, match="has no head 'fer2013'"):
        Ensemble(shipped("deep_emotion.pt"), head="fer2013")


@pytest.mark.parametrize("name, max_mflops", [("deep_emotion_vgg_heads", 600), ("deep_emotion_light", 100)])
def test_the_shipped_two_head_models_carry_their_heads_rule_and_card(name, max_mflops):
    from conftest import ROOT

    from deep_emotion.model import count_flops
    from deep_emotion.recognizer import PACKAGE_WEIGHTS
    path = PACKAGE_WEIGHTS / f"{name}.pt"  # installed with the package
    model, checkpoint = load_model(path)
    assert model.heads == HEADS and "optimizer" not in checkpoint and path.stat().st_size < 16e6
    assert count_flops(model) <= max_mflops * 1e6
    assert 0 < checkpoint["temperature"] and checkpoint["prior_exponent"] in [k / 10 for k in range(11)]
    card = (PACKAGE_WEIGHTS / f"{name}.md").read_text()
    figures = json.loads((ROOT / "results" / "cross" / "heads" / f"{name}.json").read_text())["sets"]
    for key in ("raf_val", "fer2013_publictest", "fer2013_publictest_ferplus"):
        assert f"{100 * figures[key]['accuracy']:.2f}%" in card, key
    assert f"{100 * figures['raf_val']['balanced_accuracy']:.2f}%" in card and "research use only" in card
