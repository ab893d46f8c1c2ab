"""Training on several prepared folders: the union's draws and weights, soft targets, per-source logs, resume."""
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import FAST, add_votes, run_args, weights_of

from deep_emotion import engine
from deep_emotion import train as main
from deep_emotion.data import training_data
from deep_emotion.data.prepared import split_dir
from deep_emotion.utils import TrainingError


def train(data_dirs, out, *extra):
    return main.main(run_args(main, "--train", "--data", *data_dirs, "--out", out, *FAST, *extra))


def test_epoch_draws_honour_the_source_weights():
    generator = torch.Generator().manual_seed(0)
    order = training_data.epoch_draws([100, 20], [1, 1], generator)
    assert len(order) == 120
    from_small = order[order >= 100]
    assert len(from_small) == 60  # half the draws, from a source of 20: each face three times
    assert torch.bincount(from_small - 100, minlength=20).tolist() == [3] * 20
    assert len(set(order[order < 100].tolist())) == 60  # the large source: 60 distinct faces
    plain = training_data.epoch_draws([100, 20], None, torch.Generator().manual_seed(0))
    assert sorted(plain.tolist()) == list(range(120))
    again = training_data.epoch_draws([100, 20], [1, 1], torch.Generator().manual_seed(0))
    assert torch.equal(order, again)
    skewed = training_data.epoch_draws([100, 20], [3, 1], torch.Generator().manual_seed(1))
    assert (skewed < 100).sum() == 90


FER_PLUS_COLUMN = {6: 0, 3: 1, 5: 2, 4: 3, 0: 4, 1: 5, 2: 6}  # FER2013 class -> FER+ vote column


def unanimous(label):
    votes = [0] * 10
    votes[FER_PLUS_COLUMN[label]] = 10
    return votes


@pytest.fixture
def voted(prepared, tmp_path):
    """A copy of the synthetic data whose FER+ votes are unanimous for each face's own label."""
    data = tmp_path / "voted"
    shutil.copytree(prepared, data)
    add_votes(data, unanimous)
    return data


def test_unanimous_votes_train_exactly_as_the_labels(prepared, voted, tmp_path):
    common = ["--epochs", "1", "--max_steps", "3", "--label_smoothing", "0", "--precision", "fp32"]
    by_votes = train([voted], tmp_path / "a", *common, "--targets", "votes")
    by_labels = train([prepared], tmp_path / "b", *common)
    for key, value in weights_of(by_labels).items():
        assert torch.allclose(value, weights_of(by_votes)[key], atol=1e-6), key


def test_votes_and_majority_change_what_is_learnt(prepared, tmp_path):
    data = tmp_path / "split_votes"
    shutil.copytree(prepared, data)
    add_votes(data, lambda label: [6, 4, 0, 0, 0, 0, 0, 0, 0, 0])  # every face: 60% neutral, 40% happy
    sources = training_data.load_sources([data], "votes")
    assert torch.allclose(sources[0].train_soft[0], torch.tensor([0, 0, 0, 0.4, 0, 0, 0.6]))
    assert set(training_data.load_sources([data], "majority")[0].train_labels.tolist()) == {6}
    assert training_data.load_sources([data], "label")[0].train_soft is None
    images, labels, soft, sizes = training_data.union(training_data.load_sources([data, prepared], "votes"), 0.1)
    assert sizes == [112, 112] and soft.shape == (224, 7)
    # the source without votes gets its label, smoothed as the hard loss smooths it
    assert torch.allclose(soft[112 + 0], torch.nn.functional.one_hot(labels[112], 7) * 0.9 + 0.1 / 7)


def test_not_a_face_votes_leave_the_face_out(prepared, tmp_path):
    data = tmp_path / "nf"
    shutil.copytree(prepared, data)
    add_votes(data, lambda label: [0] * 9 + [10] if label == 0 else unanimous(label))
    source = training_data.load_sources([data], "votes")[0]
    assert 0 not in source.train_labels.tolist() and len(source.train_labels) == 112 - 16


def test_two_sources_log_each_and_pick_best_on_the_declared_score(prepared, voted, tmp_path, monkeypatch):
    scripted = iter([{"voted": 0.5, "b": 0.2}, {"voted": 0.4, "b": 0.6}, {"voted": 0.6, "b": 0.1}])
    real = engine.evaluate_sources

    def fake(*args):
        results = real(*args)
        figures = next(scripted)
        for name, value in zip(results, figures.values()):
            results[name].update(accuracy=value, balanced_accuracy=value)
        return results

    other = tmp_path / "b"
    shutil.copytree(prepared, other)
    monkeypatch.setattr(engine, "evaluate_sources", fake)
    run_dir = train([voted, other], tmp_path / "run", "--epochs", "3", "--max_steps", "1", "--targets", "votes",
                    "--source_weights", "2", "1")
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [sorted(r["sources"]) for r in rows] == [["b", "voted"]] * 3
    assert set(rows[0]["sources"]["voted"]) >= {"accuracy", "balanced_accuracy", "ferplus_accuracy"}
    assert [r["score"] for r in rows] == pytest.approx([0.35, 0.5, 0.35])  # mean of voted's and b's
    assert torch.load(run_dir / "best.pt", weights_only=True)["epoch"] == 2
    config = json.loads((run_dir / "config.json").read_text())
    best = torch.load(run_dir / "best.pt", weights_only=True)
    assert config["source_weights"] == [2.0, 1.0] and best["select_rule"].startswith("mean of voted")
    assert best["inputs"]["select_rule"] == best["select_rule"] and "select_rule" not in config  # derived, apart


def test_a_multi_source_run_resumes_as_it_would_have_run(prepared, voted, tmp_path):
    flags = ["--targets", "votes", "--source_weights", "1", "3", "--max_steps", "2"]
    straight = train([voted, prepared], tmp_path / "a", "--epochs", "2", *flags)
    first = train([voted, prepared], tmp_path / "b", "--epochs", "1", *flags)
    # --data, the weights and the targets come from the run's config
    resumed = main.main(run_args(main, "--train", "--resume", first / "last.pt", "--epochs", "2", *FAST))
    for key, value in weights_of(straight).items():
        assert torch.equal(value, weights_of(resumed)[key]), key
    with pytest.raises(TrainingError, match="--source_weights"):
        main.main(run_args(main, "--train", "--resume", first / "last.pt", "--epochs", "2",
                           "--source_weights", "1", "1", *FAST))


def test_source_weights_must_match_the_folders(prepared, tmp_path, capsys):
    other = tmp_path / "b"
    shutil.copytree(prepared, other)
    with pytest.raises(TrainingError, match="gives 1 weight"):
        train([prepared, other], tmp_path, "--epochs", "1", "--source_weights", "1")


def test_the_same_folder_twice_is_one_line_before_any_work(prepared, tmp_path):
    with pytest.raises(TrainingError, match="--data names .* twice; give each folder once"):
        train([prepared, prepared], tmp_path / "runs", "--epochs", "1")
    assert not (tmp_path / "runs").exists()


def test_single_folder_keeps_its_old_data_identity(prepared):
    assert training_data.sources_identity([prepared]) == training_data.data_identity(prepared)
    assert training_data.sources_identity([prepared, prepared]) != training_data.data_identity(prepared)
    assert np.isclose(training_data.selection_score(
        training_data.select_rule("auto", training_data.load_sources([prepared])),
        {"x": {"accuracy": 0.7, "balanced_accuracy": 0.1}}), 0.7)


def test_the_loss_follows_the_votes_not_the_majority(prepared, tmp_path):
    data = tmp_path / "split_votes"
    shutil.copytree(prepared, data)
    add_votes(data, lambda label: [6, 4, 0, 0, 0, 0, 0, 0, 0, 0])  # majority neutral, but 40% happy
    common = ["--epochs", "1", "--max_steps", "2", "--precision", "fp32"]
    by_votes = train([data], tmp_path / "a", *common, "--targets", "votes")
    by_majority = train([data], tmp_path / "b", *common, "--targets", "majority")
    assert any(not torch.allclose(v, weights_of(by_majority)[k]) for k, v in weights_of(by_votes).items()
               if v.is_floating_point())


def test_a_source_with_no_weight_is_never_drawn(prepared, tmp_path):
    start = train([prepared], tmp_path / "init", "--epochs", "1", "--max_steps", "1")
    runs = []
    for fill in (0, 255):  # two unlike second sources: with weight 0 neither may change what is learnt
        other = tmp_path / f"other{fill}"
        shutil.copytree(prepared, other)
        for png in (split_dir(other, "train") / "images").iterdir():
            png.write_bytes((split_dir(prepared, "train") / "images" / png.name).read_bytes() if fill == 0 else
                            (split_dir(prepared, "val") / "images" / "000000.png").read_bytes())
        runs.append(train([prepared, other], tmp_path / f"run{fill}", "--epochs", "1", "--max_steps", "3",
                          "--source_weights", "1", "0", "--init", start / "last.pt", "--precision", "fp32"))
    for key, value in weights_of(runs[0]).items():
        assert torch.equal(value, weights_of(runs[1])[key]), key


def test_visualize_scores_fer_plus_majority_where_the_split_has_votes(prepared, checkpoint, tmp_path):
    from deep_emotion import visualize
    data = tmp_path / "neutral_votes"
    shutil.copytree(prepared, data)
    add_votes(data, lambda label: [7, 3, 0, 0, 0, 0, 0, 0, 0, 0])  # FER+ calls every face neutral
    metrics = visualize.main(run_args(visualize, "--test_cc", "--data", data, "--split", "val", "-m", checkpoint,
                                      "--figures", tmp_path))
    predicted_neutral = sum(row[6] for row in metrics["confusion"]) / metrics["total"]
    assert metrics["ferplus"]["total"] == metrics["total"]
    assert metrics["ferplus"]["accuracy"] == pytest.approx(predicted_neutral)


def test_a_model_trained_on_votes_is_calibrated_against_fer_plus(prepared, tmp_path):
    from deep_emotion import calibrate
    data = tmp_path / "neutral_votes"
    shutil.copytree(prepared, data)
    add_votes(data, lambda label: [7, 3, 0, 0, 0, 0, 0, 0, 0, 0])  # FER+ calls every face neutral
    run_dir = train([data], tmp_path / "run", "--epochs", "1", "--max_steps", "2", "--targets", "votes")
    report = calibrate.main(run_args(calibrate, "--data", data, "--model", run_dir / "best.pt", "--figures", tmp_path))
    checkpoint = torch.load(run_dir / "best.pt", weights_only=True)
    assert report["labels"].startswith("FER+ majority")
    assert report["ece"]["PublicTest"]["accuracy"] == pytest.approx(checkpoint["metrics"]["sources"]["neutral_votes"]
                                                                   ["ferplus_accuracy"], abs=1e-6)
