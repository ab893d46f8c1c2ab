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
    before = Ensemble(path).predict(faces)
    report = calibrate.main(run_args(calibrate, "--data", prepared, "--model", path, "--figures", tmp_path, "--write"))
    assert load_checkpoint(path)["temperature"] == report["temperature"] != 1.0
    assert (tmp_path / "reliability_deep_emotion.png").exists()
    after = Ensemble(path).predict(faces)
    assert torch.equal(before.argmax(1), after.argmax(1)) and not torch.allclose(before, after)
    expected = (before.log() / report["temperature"]).softmax(1)  # softmax(z / T), from softmax(z)
    assert torch.allclose(after, expected, atol=1e-5)
