import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT

from deep_emotion.emotions import CLASS_NAMES
from deep_emotion.model import DeepEmotion

sys.path.insert(0, str(ROOT / "benchmarks"))
import cross_dataset  # noqa: E402

from deep_emotion.data import face_sources  # noqa: E402


def test_scores_by_hand():
    labels = [0, 0, 1, 1, 1, 2]
    predictions = [0, -1, 1, 0, 1, 2]  # one face not found
    r = cross_dataset.scores(predictions, labels)
    assert r["found"] == pytest.approx(5 / 6) and r["accuracy"] == pytest.approx(4 / 6)
    assert r["accuracy_on_found"] == pytest.approx(4 / 5)
    assert r["recall"]["Angry"] == 0.5 and r["recall"]["Disgust"] == pytest.approx(2 / 3)
    assert r["balanced_accuracy"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)  # classes present only
    assert r["confusion"][0][7] == 1  # the not-found column
    f1_angry = 2 * 0.5 * 0.5 / (0.5 + 0.5)  # precision 1/2 (one disgust face called angry), recall 1/2
    f1_disgust = 2 * 1.0 * (2 / 3) / (1 + 2 / 3)
    assert r["macro_f1"] == pytest.approx((f1_angry + f1_disgust + 1.0) / 3)


@pytest.mark.parametrize("layout", ["folders", "labels_csv"])
def test_face_sets_read_in_both_layouts_and_score_in_crop_mode(tmp_path, layout, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    rows = []
    for k, name in enumerate(CLASS_NAMES):
        folder = tmp_path / "set" / name.lower()
        folder.mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (100, 100, 3), dtype=np.uint8))
            rows.append(f"{name.lower()}/{i}.png,{k}")
    if layout == "labels_csv":
        (tmp_path / "set" / "labels.csv").write_text("file,label\n" + "\n".join(rows[::-1]) + "\n")
    paths, labels = face_sources.labelled_faces(tmp_path / "set")
    assert len(paths) == 14 and sorted(labels) == sorted([k for k in range(7) for _ in range(2)])
    assert all(p.parent.name == CLASS_NAMES[label].lower() for p, label in zip(paths, labels))
    checkpoint = tmp_path / "model.pt"
    torch.save({"model": DeepEmotion().state_dict(), "arch": "deep_emotion", "arch_args": {},
                "normalization": [0.5, 0.25]}, checkpoint)
    monkeypatch.setattr(sys, "argv", ["cross_dataset.py", "--model", str(checkpoint), "--sets", str(tmp_path / "set"),
                                      "--out", str(tmp_path / "r.json")])
    cross_dataset.main()
    import json
    result = json.loads((tmp_path / "r.json").read_text())["sets"]["set"]
    assert result["faces"] == 14 and result["found"] == 1.0 and sum(map(sum, result["confusion"])) == 14


@pytest.mark.parametrize("brief", [False, True])
def test_cross_table_prints_a_row_per_run(tmp_path, monkeypatch, capsys, brief):
    import json

    import cross_table
    run = {"model": ["weights/a.pt", "weights/b.pt"], "mode": "crop", "tta": None, "balanced": True,
           "sets": {"rafdb": {"found": 1.0, "accuracy": 0.6125, "balanced_accuracy": 0.5}}}
    (tmp_path / "ens.json").write_text(json.dumps(run))
    monkeypatch.setattr(sys, "argv", ["cross_table.py", str(tmp_path / "ens.json")] + (["--brief"] if brief else []))
    cross_table.main()
    header, _, row = capsys.readouterr().out.strip().splitlines()
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells == ["ens", "a+b", "crop, balanced"] + ([] if brief else ["100.0%"]) + ["61.25%", "50.00%"]
    assert ("rafdb found" in header) != brief


@pytest.mark.parametrize("script, flags", [
    ("live_fps", ["--model", "missing.pt", "--data", "nowhere"]),
    ("backend_speed", ["--model", "missing.pt", "--data", "nowhere"]),
    ("pipeline_accuracy", ["--model", "missing.pt", "--data", "nowhere"]),
    ("follow_faces", ["--model", "missing.pt", "--data", "nowhere"]),
    ("cross_dataset", ["--model", "missing.pt", "--sets", "nowhere"]),
    ("train_throughput", ["--data", "nowhere", "--arch", "deep_emotion"]),
    ("face_framing", ["--data", "nowhere"]),
])
def test_a_missing_checkpoint_or_data_folder_is_one_line_not_a_traceback(script, flags, tmp_path, monkeypatch, capsys):
    import importlib

    from common import run_benchmark
    module = importlib.import_module(script)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *flags])
    with pytest.raises(SystemExit) as exit_:
        run_benchmark(module.main)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("error: ")
    assert "missing.pt" in err or "nowhere" in err
