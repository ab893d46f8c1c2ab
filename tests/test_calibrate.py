import numpy as np
import pytest
import torch
from conftest import run_args

from deep_emotion import calibrate
from deep_emotion.inference import Ensemble, load_checkpoint
from deep_emotion.model import DeepEmotion


def test_fit_recovers_the_temperature_that_made_the_labels():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(20000, 7, generator=generator) * 3
    labels = torch.multinomial((logits / 2.0).softmax(1), 1, generator=generator).squeeze(1)  # calibrated at T = 2
    assert calibrate.fit_temperature(logits.log_softmax(1), labels) == pytest.approx(2.0, rel=0.05)


def test_expected_calibration_error_by_hand():
    probabilities = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = torch.tensor([0, 1, 0, 0])
    ece, table = calibrate.reliability(probabilities, labels)
    # bin of 0.9: accuracy 0.5 (gap 0.4); bin of 0.6: accuracy 1.0 (gap 0.4); each holds half the faces
    assert ece == pytest.approx(0.4) and [count for _, _, count in table] == [2, 2]


def test_write_stores_a_temperature_every_reader_applies_without_moving_the_argmax(prepared, tmp_path):
    path = tmp_path / "model.pt"
    torch.manual_seed(0)
    torch.save({"model": DeepEmotion().state_dict(), "arch": "deep_emotion", "arch_args": {},
                "normalization": [0.5, 0.25]}, path)
    faces = torch.randint(0, 256, (8, 48, 48), dtype=torch.uint8)
    before = torch.from_numpy(Ensemble(path).predict(faces))
    report = calibrate.main(run_args(calibrate, "--data", prepared, "--model", path, "--figures", tmp_path, "--write"))
    assert load_checkpoint(path)["temperature"] == report["temperature"] != 1.0
    assert (tmp_path / "reliability_deep_emotion.png").exists()
    after = torch.from_numpy(Ensemble(path).predict(faces))
    assert torch.equal(before.argmax(1), after.argmax(1)) and not torch.allclose(before, after)
    expected = (before.log() / report["temperature"]).softmax(1)  # softmax(z / T), from softmax(z)
    assert torch.allclose(after, expected, atol=1e-5)


def test_the_decision_rule_divides_out_as_much_prior_as_the_val_scores_want():
    prior = torch.tensor([0.7, 0.1, 0.1, 0.05, 0.05, 0.0, 0.0]) + 1e-3
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(7).repeat(50)  # a balanced val split
    # a network that learnt the prior: each face's own class, pulled towards the frequent class 0
    probabilities = torch.nn.functional.one_hot(labels, 7).float() * 0.4 + prior * 0.9
    probabilities += 0.05 * torch.rand(probabilities.shape, generator=generator)
    probabilities /= probabilities.sum(1, keepdim=True)
    exponent, scores = calibrate.fit_prior_exponent([(probabilities, labels, "balanced_accuracy")], prior)
    assert scores[0.0] < 0.5 and exponent > 0 and scores[exponent] == max(scores.values()) > scores[0.0]
    # on a split whose plain argmax is already right, the plain decision wins its ties
    exact = torch.nn.functional.one_hot(labels, 7).float() * 0.9 + 0.1 / 7
    assert calibrate.fit_prior_exponent([(exact, labels, "accuracy")], prior)[0] == 0.0


def test_a_fitted_decision_rule_is_stored_and_applied_by_torch_and_onnx(prepared, tmp_path):
    pytest.importorskip("onnxruntime")
    from deep_emotion.emotions import balance
    from deep_emotion.inference import class_prior
    from deep_emotion.onnx_classifier import OnnxClassifier
    from deep_emotion.onnx_export import export
    path = tmp_path / "model.pt"
    torch.manual_seed(0)
    torch.save({"model": DeepEmotion().state_dict(), "arch": "deep_emotion", "arch_args": {},
                "normalization": [0.5, 0.25], "train_class_counts": [50, 5, 10, 80, 30, 20, 40]}, path)
    faces = torch.randint(0, 256, (8, 48, 48), dtype=torch.uint8)
    plain = torch.from_numpy(Ensemble(path).predict(faces))
    stored = load_checkpoint(path)
    stored["prior_exponent"] = 0.5
    torch.save(stored, path)
    decided = torch.from_numpy(Ensemble(path).predict(faces))
    assert torch.allclose(decided, balance(plain, class_prior(stored), 0.5), atol=1e-6)
    onnx = OnnxClassifier([export(path, tmp_path / "m.onnx")]).predict(faces.numpy())
    assert torch.allclose(torch.from_numpy(onnx), decided, atol=1e-4)
    balanced = OnnxClassifier([tmp_path / "m.onnx"], balanced=True).predict(faces.numpy())
    assert np.abs(balanced - Ensemble(path, balanced=True).predict(faces)).max() < 1e-4
    report = calibrate.main(run_args(calibrate, "--data", prepared, "--model", path, "--figures", tmp_path,
                                     "--decision", "fit", "--write"))
    assert load_checkpoint(path)["prior_exponent"] == report["prior_exponent"] in calibrate.EXPONENT_GRID
