import csv
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

import generate_data
import visualize
from conftest import ROOT, SHARED_FER, run_args
from data_loaders import CLASS_NAMES, DataError, load_split
from emotion_detector import EmotionDetector
from model import DeepEmotion, load_model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained deep_emotion checkpoint in main.py's format."""
    path = tmp_path_factory.mktemp("ck") / "model.pt"
    torch.manual_seed(0)
    torch.save({"model": DeepEmotion().state_dict(), "arch": "deep_emotion", "arch_args": {},
                "class_names": list(CLASS_NAMES), "normalization": [0.5, 0.25]}, path)
    return path


def test_accuracy_arithmetic_by_hand():
    labels = np.arange(517) % 7          # 517 is not a multiple of any batch size used
    predictions = labels.copy()
    predictions[::5] = (predictions[::5] + 1) % 7  # 104 wrong
    metrics = visualize.classification_metrics(predictions, labels)
    assert (metrics["correct"], metrics["total"]) == (413, 517)
    assert metrics["accuracy"] == pytest.approx(413 / 517)
    assert np.array(metrics["confusion"]).sum() == 517
    angry = metrics["per_class"]["Angry"]
    assert angry["support"] == int((labels == 0).sum())
    assert angry["recall"] == pytest.approx(((labels == 0) & (predictions == 0)).sum() / (labels == 0).sum())


def test_test_cc_report_matches_a_hand_count(prepared, checkpoint, tmp_path):
    report = tmp_path / "report.json"
    metrics = visualize.main(run_args(visualize, "-t", "True", "-d", prepared, "-m", checkpoint, "--report", report,
                                      "--figures", tmp_path, "--batch_size", "5", "--device", "cpu"))
    saved = json.loads(report.read_text())
    images, labels, _ = load_split(prepared, "test")
    model = DeepEmotion().eval()
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    with torch.no_grad():
        by_hand = (model((images.unsqueeze(1).float() / 255 - 0.5) / 0.25).argmax(1) == labels).sum().item()
    assert saved["correct"] == metrics["correct"] == by_hand and saved["total"] == len(labels) == 28
    assert set(saved) >= {"accuracy", "correct", "total", "per_class", "confusion"}
    assert set(saved["per_class"]["Happy"]) == {"precision", "recall", "f1", "support"}
    assert (tmp_path / "confusion_deep_emotion_test.png").exists()


def test_original_state_dict_and_rejected_files(prepared, tmp_path):
    bare = tmp_path / "original.pt"
    torch.save(DeepEmotion().state_dict(), bare)
    assert visualize.main(run_args(visualize, "--test_acc", "-d", prepared, "-m", bare, "--figures", tmp_path,
                                   "--tta"))["tta"] == "flip"
    assert visualize.main(run_args(visualize, "--test_acc", "-d", prepared, "-m", bare, "--figures", tmp_path,
                                   "--tta", "shifts"))["tta"] == "shifts"
    assert (tmp_path / "confusion_deep_emotion_test_tta_shifts.png").exists()
    (tmp_path / "junk.pt").write_bytes(b"junk")
    result = subprocess.run([sys.executable, str(ROOT / "visualize.py"), "-t", "-d", str(prepared), "-m",
                             str(tmp_path / "junk.pt")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("error:") and "Traceback" not in result.stderr


def write_video(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
    for frame in frames:
        writer.write(frame)
    writer.release()


def test_live_loop_headless_with_and_without_faces(checkpoint, tmp_path, monkeypatch):
    video = tmp_path / "clip.mp4"
    write_video(video, [np.full((240, 320, 3), 90 + i, np.uint8) for i in range(6)])
    # the Haar cascade finds nothing in a blank frame; pretend it finds two faces in frames 4..6
    real_find = EmotionDetector.find_faces
    calls = {"n": 0}

    def find_faces(self, gray):
        calls["n"] += 1
        return [(10, 20, 80, 80), (200, 100, 60, 60)] if calls["n"] > 3 else real_find(self, gray)

    monkeypatch.setattr(EmotionDetector, "find_faces", find_faces)
    out, log = tmp_path / "out.mp4", tmp_path / "faces.csv"
    visualize.main(run_args(visualize, "--source", video, "--no_display", "--output", out, "--log", log,
                            "-m", checkpoint, "--smooth", "0.5"))
    rows = list(csv.DictReader(open(log)))
    assert [int(r["frame"]) for r in rows] == [4, 4, 5, 5, 6, 6]
    assert rows[0]["label"] in CLASS_NAMES and set(CLASS_NAMES) <= set(rows[0])
    assert sum(float(rows[0][name]) for name in CLASS_NAMES) == pytest.approx(1, abs=1e-3)
    assert cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT) == 6


@pytest.mark.parametrize("source", ["missing.mp4", "99"])
def test_missing_source_is_a_one_line_error(checkpoint, tmp_path, source):
    result = subprocess.run([sys.executable, str(ROOT / "visualize.py"), "--source", source, "--no_display",
                             "-m", str(checkpoint)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:")


def test_image_folder_output_and_unlabeled_split_refused(checkpoint, prepared, tmp_path):
    images, _, _ = load_split(prepared, "test")
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"p{i}.png"), cv2.resize(images[i].numpy(), (200, 200)))
    visualize.main(run_args(visualize, "--source", folder, "--no_display", "--output", tmp_path / "annotated",
                            "-m", checkpoint))
    assert sorted(p.name for p in (tmp_path / "annotated").iterdir()) == ["p0.png", "p1.png"]
    # a Kaggle competition download: test.csv has no labels, and --test_cc says where they are
    competition = tmp_path / "competition"
    competition.mkdir()
    pixels = " ".join(map(str, images[0].numpy().ravel()))
    (competition / "train.csv").write_text("emotion,pixels\n" + "".join(f"{k % 7},{pixels}\n" for k in range(21)))
    (competition / "test.csv").write_text(f"pixels\n{pixels}\n")
    generate_data.prepare(competition)
    for split in ("test", "unlabeled"):
        with pytest.raises(DataError, match="PrivateTest rows of fer2013.csv"):
            visualize.main(run_args(visualize, "-t", "-d", competition, "-m", checkpoint, "--split", split))


@pytest.mark.skipif(not SHARED_FER.exists(), reason="../shared/fer2013 is not here")
def test_real_faces_are_found_and_classified(checkpoint):
    import gzip
    with gzip.open(SHARED_FER, "rt") as f:
        f.readline()
        faces = [np.array(next(f).split(",")[1].split(), dtype=np.uint8).reshape(48, 48) for _ in range(40)]
    detector = EmotionDetector(checkpoint)
    found = 0
    for i in range(0, 40, 2):
        frame = np.full((480, 640, 3), 128, np.uint8)
        for k, x in enumerate((60, 360)):
            frame[120:312, x:x + 192] = cv2.cvtColor(cv2.resize(faces[i + k], (192, 192)), cv2.COLOR_GRAY2BGR)
        results = detector.detect_emotions(frame)
        found += len(results)
        for face in results:
            assert face["label"] in CLASS_NAMES and 0 <= face["confidence"] <= 1
    assert found >= 24  # the Haar cascade finds most FER2013 faces at this size


@pytest.mark.parametrize("name", ["deep_emotion", "deep_emotion_vgg"])
def test_shipped_weights_load_and_default_to_the_vgg(name):
    path = ROOT / "weights" / f"{name}.pt"
    model, checkpoint = load_model(path)
    assert checkpoint["arch"] == name and "optimizer" not in checkpoint
    assert path.stat().st_size < 16e6 and (ROOT / "weights" / f"{name}.md").exists()
    assert model(torch.zeros(2, 1, 48, 48)).shape == (2, 7)
    assert visualize.DEFAULT_MODEL == ROOT / "weights" / "deep_emotion_vgg.pt"
