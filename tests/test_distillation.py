"""Knowledge distillation in main.py: teacher targets line up with the faces, are cached, and average over teachers."""
import json

import pytest
import torch
import torch.nn.functional as F
from conftest import train, weights_of

from deep_emotion import distillation, engine, recipes
from deep_emotion import train as main
from deep_emotion.data.loaders import load_split
from deep_emotion.inference import load_model, predict
from deep_emotion.utils import file_sha256


def test_the_distillation_loss_mixes_the_labels_and_the_teachers_cross_entropies_by_the_weight():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 7, generator=generator)
    labels = torch.tensor([0, 3, 6, 2, 3])
    teacher = torch.randn(8, 7, generator=generator).softmax(1)  # a table over the training faces
    batch = torch.tensor([4, 0, 7, 2, 5])  # the faces of this batch, by index
    loss = engine.make_loss(teacher_probabilities=teacher, distill_weight=0.7)
    by_hand = 0.3 * F.cross_entropy(logits, labels) - 0.7 * (teacher[batch] * logits.log_softmax(1)).sum(1).mean()
    assert torch.allclose(loss(logits, labels, batch), by_hand, atol=1e-6)
    assert torch.allclose(engine.make_loss()(logits, labels, batch), F.cross_entropy(logits, labels))


def test_distillation_targets_line_up_with_the_images(prepared, tmp_path, monkeypatch):
    # a teacher that gives each face its own true label, at full weight, must train exactly as the labels do
    images, labels, _ = load_split(prepared, "train")
    monkeypatch.setattr(distillation, "teacher_targets",
                        lambda *a, **k: torch.nn.functional.one_hot(labels, 7).float())
    checkpoint = train(prepared, tmp_path / "t", "--epochs", "1", "--max_steps", "1") / "last.pt"
    common = ["--epochs", "1", "--max_steps", "3", "--label_smoothing", "0", "--precision", "fp32"]
    taught = train(prepared, tmp_path / "a", *common, "--teacher", checkpoint, "--distill_weight", "1")
    plain = train(prepared, tmp_path / "b", *common, "--teacher", "")
    assert json.loads((taught / "config.json").read_text())["teacher"] == str(checkpoint)
    for key, value in weights_of(plain).items():
        assert torch.allclose(value, weights_of(taught)[key], atol=1e-6), key


def test_teacher_targets_are_cached_per_teacher(prepared, tmp_path, monkeypatch):
    teacher = train(prepared, tmp_path / "t", "--epochs", "1", "--max_steps", "1") / "last.pt"
    loads = []
    real_load_model = distillation.load_model
    monkeypatch.setattr(distillation, "load_model", lambda *a, **k: loads.append(a[0]) or real_load_model(*a, **k))
    first = train(prepared, tmp_path / "a", "--epochs", "1", "--max_steps", "1", "--teacher", teacher)
    second = train(prepared, tmp_path / "b", "--epochs", "1", "--max_steps", "1", "--teacher", teacher)
    assert len(loads) == 1  # the second run read the cache
    assert list((prepared / "prepared" / "cache").glob("teacher-*.pt"))
    for key, value in weights_of(first).items():
        assert torch.equal(value, weights_of(second)[key]), key


def test_several_teachers_are_averaged(prepared, tmp_path):
    a = train(prepared, tmp_path / "a", "--epochs", "1", "--max_steps", "1") / "last.pt"
    b = train(prepared, tmp_path / "b", "--epochs", "1", "--max_steps", "1", "--seed", "1", "--clahe") / "last.pt"
    images, _, _ = load_split(prepared, "train")
    teacher = f"{a},{b}"
    both = distillation.teacher_targets(teacher, recipes.teachers_sha256(teacher), prepared, "test", "fp32",
                                         lambda face_input: images, torch.device("cpu"), show_bar=False)
    singles = []
    for path in (a, b):  # each teacher reads the faces its own way (b equalises them)
        model, checkpoint = load_model(path)
        singles.append(predict(model, images, tuple(checkpoint["normalization"]), "cpu", tta="flip",
                                    clahe=checkpoint.get("clahe", False)))
    assert torch.allclose(both, (singles[0] + singles[1]) / 2, atol=1e-6)
    assert recipes.teachers_sha256(f"{a},{b}") not in (file_sha256(a), file_sha256(b))
    with pytest.raises(main.TrainingError, match="does not exist"):
        recipes.resolve_teachers(f"{a},{tmp_path / 'missing.pt'}")
