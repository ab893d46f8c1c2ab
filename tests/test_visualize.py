import csv
import json
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from conftest import ROOT, SHARED_FER, assert_one_line_usage_error, run_args, shipped

from deep_emotion import live, recognizer, timeline, visualize
from deep_emotion.data import prepare as generate_data
from deep_emotion.data.loaders import load_split
from deep_emotion.data.prepared import DataError
from deep_emotion.emotions import CLASS_NAMES
from deep_emotion.inference import CheckpointError, load_model
from deep_emotion.metrics import classification_scores
from deep_emotion.model import DeepEmotion
from deep_emotion.recognizer import EmotionDetector
from deep_emotion.utils import OutputError


def test_accuracy_arithmetic_by_hand():
    labels = np.arange(517) % 7          # 517 is not a multiple of any batch size used
    predictions = labels.copy()
    predictions[::5] = (predictions[::5] + 1) % 7  # 104 wrong
    metrics = classification_scores(predictions, labels)
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
    assert (tmp_path / f"confusion_{checkpoint.stem}_test.png").exists()


def test_test_cc_names_the_checkpoint_it_scored(prepared, checkpoint, capsys):
    visualize.main(run_args(visualize, "-t", "-d", prepared, "-m", checkpoint, "--figures", checkpoint.parent))
    assert capsys.readouterr().out.startswith(f"{checkpoint.stem} on test: ")  # not its architecture's name


def test_original_state_dict_and_rejected_files(prepared, tmp_path):
    bare = tmp_path / "original.pt"
    torch.save(DeepEmotion().state_dict(), bare)
    assert visualize.main(run_args(visualize, "--test_acc", "-d", prepared, "-m", bare, "--figures", tmp_path,
                                   "--tta"))["tta"] == "flip"
    assert visualize.main(run_args(visualize, "--test_acc", "-d", prepared, "-m", bare, "--figures", tmp_path,
                                   "--tta", "shifts"))["tta"] == "shifts"
    assert (tmp_path / "confusion_original_test_tta_shifts.png").exists()
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

    def find_faces(self, frame):
        calls["n"] += 1
        if calls["n"] <= 3:
            return real_find(self, frame)
        return [{"box": (10, 20, 80, 80), "landmarks": None}, {"box": (200, 100, 60, 60), "landmarks": None}]

    monkeypatch.setattr(EmotionDetector, "find_faces", find_faces)
    out, log, timeline_png = tmp_path / "out.mp4", tmp_path / "faces.csv", tmp_path / "timeline.png"
    visualize.main(run_args(visualize, "--source", video, "--no_display", "--output", out, "--log", log,
                            "-m", checkpoint, "--smooth", "0.5", "--timeline", timeline_png))
    rows = list(csv.DictReader(open(log)))
    assert [int(r["frame"]) for r in rows] == [4, 4, 5, 5, 6, 6]
    assert [int(r["face"]) for r in rows] == [0, 1] * 3  # each face keeps its track id
    assert [float(r["time_s"]) for r in rows[::2]] == pytest.approx([0.3, 0.4, 0.5])  # the clip's 10 frames/s
    # the timeline: a picture with one panel per face, and the summary beside it
    picture = cv2.imread(str(timeline_png))
    assert picture is not None and picture.shape[0] > 300 and (picture < 250).any()
    summary = json.loads(timeline_png.with_suffix(".json").read_text())
    assert set(summary) == {"0", "1"} and summary["0"]["frames"] == 3
    assert sum(summary["0"]["share"].values()) == pytest.approx(1.0)
    from_csv = timeline.main(run_args(timeline, log, "--out", tmp_path / "again.png"))  # the same from the CSV
    for face, info in summary.items():
        assert from_csv[int(face)]["share"] == info["share"] and from_csv[int(face)]["frames"] == info["frames"]
        assert from_csv[int(face)]["mean_confidence"] == pytest.approx(info["mean_confidence"], abs=1e-3)
    assert rows[0]["label"] in CLASS_NAMES and set(CLASS_NAMES) <= set(rows[0])
    assert sum(float(rows[0][name]) for name in CLASS_NAMES) == pytest.approx(1, abs=1e-3)
    annotated = cv2.VideoCapture(str(out))
    assert annotated.get(cv2.CAP_PROP_FRAME_COUNT) == 6 and annotated.get(cv2.CAP_PROP_FPS) == 10  # the source's
    assert (annotated.get(cv2.CAP_PROP_FRAME_WIDTH), annotated.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (320, 240)


@pytest.mark.parametrize("source", ["missing.mp4", "99"])
def test_missing_source_is_a_one_line_error(checkpoint, tmp_path, source):
    result = subprocess.run([sys.executable, str(ROOT / "visualize.py"), "--source", source, "--no_display",
                             "-m", str(checkpoint)], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error:")


def test_image_folder_output_and_unlabeled_split_refused(checkpoint, prepared, tmp_path, monkeypatch):
    images, _, _ = load_split(prepared, "test")
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"p{i}.png"), cv2.resize(images[i].numpy(), (200, 200)))
    drawn = []
    monkeypatch.setattr(live, "draw", lambda frame, results, fps=None: drawn.append(fps) or frame)
    visualize.main(run_args(visualize, "--source", folder, "--no_display", "--output", tmp_path / "annotated",
                            "-m", checkpoint))
    assert sorted(p.name for p in (tmp_path / "annotated").iterdir()) == ["p0.png", "p1.png"]
    assert drawn == [None, None]  # no frames/s counter on a photo: it has no rate
    for name in ("p0.png", "p1.png"):
        original, annotated = cv2.imread(str(folder / name)), cv2.imread(str(tmp_path / "annotated" / name))
        assert annotated.shape == original.shape
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


@pytest.mark.parametrize("name, arch", [("deep_emotion", "deep_emotion"), ("deep_emotion_vgg", "deep_emotion_vgg"),
                                        ("deep_emotion_vgg_depth3", "deep_emotion_vgg")])
def test_shipped_weights_load_with_their_cards(name, arch):
    path = shipped(f"{name}.pt")
    model, checkpoint = load_model(path)
    assert checkpoint["arch"] == arch and "optimizer" not in checkpoint
    assert path.stat().st_size < 16e6 and (shipped(f"{name}.md")).exists()
    assert model(torch.zeros(2, 1, 48, 48)).shape == (2, 7)
    # the card's one-view PublicTest figure is the checkpoint's own record of its best epoch
    row = next(line for line in (shipped(f"{name}.md")).read_text().splitlines()
               if line.startswith("| **PublicTest accuracy**"))
    percent, correct = re.search(r"\*\*([\d.]+)%\*\* \((\d+)/3589\)", row).groups()
    assert int(correct) == round(checkpoint["metrics"]["val_accuracy"] * 3589) == round(float(percent) / 100 * 3589)
    assert checkpoint["metrics"]["val_accuracy"] == checkpoint["best_val_accuracy"]  # shipped before best_score


def photo_folder(prepared, folder, count=2):
    images, _, _ = load_split(prepared, "test")
    folder.mkdir()
    for i in range(count):
        cv2.imwrite(str(folder / f"p{i}.png"), cv2.resize(images[i].numpy(), (200, 200)))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_output_that_would_replace_the_source_is_refused(checkpoint, prepared, tmp_path):
    folder = tmp_path / "photos"
    originals = photo_folder(prepared, folder)
    for output in (folder, folder / "annotated"):
        with pytest.raises(visualize.SourceError, match="inside the source folder"):
            visualize.main(run_args(visualize, "--source", folder, "--no_display", "--output", output,
                                    "-m", checkpoint))
    with pytest.raises(visualize.SourceError, match="would overwrite the source"):
        visualize.main(run_args(visualize, "--source", folder / "p0.png", "--no_display", "--output", folder,
                                "-m", checkpoint))
    video = tmp_path / "clip.mp4"
    write_video(video, [np.full((240, 320, 3), 90, np.uint8)] * 3)
    before = video.read_bytes()
    with pytest.raises(visualize.SourceError, match="is the source itself"):
        visualize.main(run_args(visualize, "--source", video, "--no_display", "--output", video, "-m", checkpoint))
    assert video.read_bytes() == before
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == originals


@pytest.mark.parametrize("flag", ["--output", "--log", "--report", "--figures"])
def test_unwritable_outputs_are_one_line_errors_before_any_work(checkpoint, prepared, tmp_path, flag):
    (tmp_path / "file").write_text("not a folder")
    folder = tmp_path / "photos"
    photo_folder(prepared, folder, count=1)
    mode = ["-t", "-d", prepared] if flag in ("--report", "--figures") else ["--source", folder, "--no_display"]
    result = subprocess.run([sys.executable, str(ROOT / "visualize.py"), *map(str, mode), "-m", str(checkpoint),
                             flag, str(tmp_path / "file" / "out")], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: cannot write"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "frame(s)" not in result.stdout


def test_test_cc_figures_go_beside_the_report_not_into_imgs(checkpoint, prepared, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    readme_figures = sorted((ROOT / "imgs").iterdir())
    visualize.main(run_args(visualize, "-t", "-d", prepared, "-m", checkpoint))
    assert (tmp_path / "figures" / f"confusion_{checkpoint.stem}_test.png").exists()
    visualize.main(run_args(visualize, "-t", "-d", prepared, "-m", checkpoint, "--report", tmp_path / "r" / "a.json"))
    assert (tmp_path / "r" / f"confusion_{checkpoint.stem}_test.png").exists()
    assert sorted((ROOT / "imgs").iterdir()) == readme_figures


@pytest.mark.parametrize("argv, message", [
    (["--batch_size", "0"], "--batch_size: must be at least 1"),
    (["--smooth", "5"], "--smooth: must be in [0, 0.95]"),
    (["--max_frames", "-1"], "--max_frames: must be at least 0"),
    (["--device", "cuda"], "no such CUDA GPU"),
    (["--cam", "maybe"], "expected True or False"),
])
def test_bad_flags_are_one_line_errors(argv, message, capsys):
    assert_one_line_usage_error(visualize, argv, message, capsys)


def test_a_single_source_that_is_not_an_image_is_refused(checkpoint, tmp_path):
    (tmp_path / "fake.png").write_text("not a picture")
    with pytest.raises(visualize.SourceError, match="not a readable image"):
        visualize.main(run_args(visualize, "--source", tmp_path / "fake.png", "--no_display", "-m", checkpoint))


def test_a_checkpoint_that_would_run_code_is_refused_in_plain_words(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"model": Payload(), "arch": "deep_emotion"}, path)
    with pytest.raises(CheckpointError, match="refused .* loading it would run code"):
        load_model(path)
    torch.save({"model": {"conv1.weight": 3}, "arch": "deep_emotion"}, path)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(path)


class Payload:
    """Any class of the saver's: unpickling it would import and run that code."""


def test_original_readme_forms():
    args = run_args(visualize, "-t", "-c", "--data", "d", "--model", "m.pt")
    assert args.test_cc and args.cam and (args.data, args.model) == ("d", ["m.pt"])
    assert run_args(visualize, "--cam", "True", "--test_cc", "False").cam
    assert not run_args(visualize, "--cam", "False").cam


def test_one_image_to_an_image_file(checkpoint, prepared, tmp_path):
    folder = tmp_path / "photos"
    photo_folder(prepared, folder, count=1)
    visualize.main(run_args(visualize, "--source", folder / "p0.png", "--no_display", "--output", tmp_path / "out.jpg",
                            "-m", checkpoint))
    assert cv2.imread(str(tmp_path / "out.jpg")).shape == (200, 200, 3)


def test_photos_in_a_folder_are_never_smoothed_into_each_other(checkpoint, prepared, tmp_path, monkeypatch):
    folder = tmp_path / "photos"
    photo_folder(prepared, folder)
    monkeypatch.setattr(EmotionDetector, "find_faces", lambda self, frame: [{"box": (50, 50, 100, 100),
                                                                            "landmarks": None}])
    probabilities = {}
    for smooth in ("0", "0.9"):
        log = tmp_path / f"faces-{smooth}.csv"
        visualize.main(run_args(visualize, "--source", folder, "--no_display", "--log", log, "-m", checkpoint,
                                "--smooth", smooth))
        rows = list(csv.DictReader(open(log)))
        assert [r["face"] for r in rows] == ["0", "0"]  # every photo starts its own ids
        probabilities[smooth] = [[float(r[name]) for name in CLASS_NAMES] for r in rows]
    assert probabilities["0"] == probabilities["0.9"] and probabilities["0"][0] != probabilities["0"][1]


def test_a_failed_test_leaves_no_empty_figures_folder(checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="is not prepared"):
        visualize.main(run_args(visualize, "-t", "-d", tmp_path / "nothing", "-m", checkpoint))
    assert not (tmp_path / "figures").exists()


@pytest.mark.parametrize("source, output, message", [
    ("photo.png", "out.xyz", ".xyz is not an image type"),
    ("clip.avi", "out.jpg", "the annotated video needs one of .mp4"),
])
def test_an_output_of_the_wrong_kind_is_refused_before_anything_is_made(checkpoint, tmp_path, source, output,
                                                                        message):
    cv2.imwrite(str(tmp_path / "photo.png"), np.full((64, 64, 3), 128, np.uint8))
    (tmp_path / "clip.avi").write_bytes(b"")
    with pytest.raises(OutputError, match=message):
        visualize.main(run_args(visualize, "--source", tmp_path / source, "--output", tmp_path / output,
                                "--no_display", "-m", checkpoint))
    assert not (tmp_path / output).exists()


def test_the_overlays_frame_rate_is_the_summarys(checkpoint, prepared, tmp_path, monkeypatch, capsys):
    images, _, _ = load_split(prepared, "test")
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (200, 200))
    for i in range(12):
        writer.write(cv2.cvtColor(cv2.resize(images[i % len(images)].numpy(), (200, 200)), cv2.COLOR_GRAY2BGR))
    writer.release()
    shown = []
    monkeypatch.setattr(live, "draw", lambda frame, results, fps=None: shown.append(fps) or frame)
    visualize.main(run_args(visualize, "--source", clip, "--no_display", "-m", checkpoint, "--output",
                            tmp_path / "out.avi"))
    out = capsys.readouterr().out
    summary = float(re.search(r"\(([\d.]+) frames/s over the whole run", out).group(1))
    assert "the overlay's figure is over the last 30" in out  # two figures, each named for what it counts
    assert recognizer.fps_label(129.71) == "129.7 frames/s (last 30)"
    assert shown[0] is None and len(shown) == 12  # no rate before a frame is done
    # frames done per second of wall time, everything included, as the summary counts them (not one stage's)
    assert 0.6 * summary <= shown[-1] <= 1.6 * summary
