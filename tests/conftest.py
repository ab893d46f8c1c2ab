import csv
import json
import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deep_emotion import train as train_module  # noqa: E402
from deep_emotion.data import prepare as generate_data  # noqa: E402
from deep_emotion.data.prepared import split_dir  # noqa: E402
from deep_emotion.data.synthetic_faces import (  # noqa: E402
    SYNTHETIC_CSV,
    synthetic_rows,  # noqa: E402
    write_synthetic_csv,
)
from deep_emotion.emotions import CLASS_NAMES  # noqa: E402
from deep_emotion.model import DeepEmotion  # noqa: E402

SHARED_FER = ROOT.parent / "shared" / "fer2013" / "fer2013-dev.csv.gz"
PACKAGE_WEIGHTS, WEIGHTS = ROOT / "deep_emotion" / "weights", ROOT / "weights"


SLOW_SECONDS = 1.0  # a test that took this long or more on the last measurement is in the slow tier


def pytest_collection_modifyitems(config, items):
    """The slow tier by measurement (tests/durations.json, written by tests/measure_durations.py): a test that took
    SLOW_SECONDS or more, or that was never measured, is marked slow; `pytest -m "not slow"` runs the rest."""
    durations = Path(__file__).resolve().parent / "durations.json"
    measured = json.loads(durations.read_text()) if durations.is_file() else {}
    for item in items:
        if measured.get(item.nodeid, SLOW_SECONDS) >= SLOW_SECONDS:
            item.add_marker(pytest.mark.slow)


def pytest_configure(config):
    # the ONNX engine's exported graphs go to a folder of this run, not the user's cache (subprocesses inherit it)
    os.environ["DEEP_EMOTION_CACHE"] = tempfile.mkdtemp(prefix="deep-emotion-test-cache-")
    config.addinivalue_line("markers", "slow: set by measurement (tests/durations.json): `pytest -m \"not slow\"` "
                                       "leaves them out (the fast tier); CI runs everything")


def shipped(name):
    """A shipped checkpoint or model card by file name: in the package (the default model and the paper's
    network, installed with it) or in weights/ (the others, loaded by path)."""
    return PACKAGE_WEIGHTS / name if (PACKAGE_WEIGHTS / name).exists() else WEIGHTS / name


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """A prepared synthetic data folder: 16/4/4 faces per class in train/val/test."""
    data = tmp_path_factory.mktemp("synthetic")
    write_synthetic_csv(data / SYNTHETIC_CSV, per_class=(16, 4, 4), seed=1)
    generate_data.prepare(data)
    return data


def run_args(module, *argv):
    """Parses argv with a script's own parser, as its command line would."""
    return module.get_args_parser().parse_args([str(a) for a in argv])


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """An untrained deep_emotion checkpoint in main.py's format."""
    path = tmp_path_factory.mktemp("ck") / "model.pt"
    torch.manual_seed(0)
    torch.save({"model": DeepEmotion().state_dict(), "arch": "deep_emotion", "arch_args": {},
                "class_names": list(CLASS_NAMES), "normalization": [0.5, 0.25]}, path)
    return path


def assert_one_line_usage_error(module, argv, message, capsys):
    """argv, parsed by module's parser, stops with exit code 2 and one line that holds message."""
    with pytest.raises(SystemExit) as stop:
        run_args(module, *argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err


ASTRONAUT = ROOT / "imgs" / "astronaut.jpg"  # scikit-image's astronaut (public domain), one face


def write_face_clip(path, frames, fps=25, size=(320, 240), fourcc="mp4v", step=2):
    """A video of the astronaut's face sliding `step` pixels a frame across a grey background; returns path."""
    import cv2
    import numpy as np
    face = cv2.resize(cv2.imread(str(ASTRONAUT))[20:260, 120:360], (150, 150))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 90, np.uint8)
        x = 10 + (step * i) % (size[0] - 160)
        frame[40:190, x:x + 150] = face
        writer.write(frame)
    writer.release()
    return Path(path)


# ---------------------------------------------------------------- helpers several test modules share

# the flags of a small, quiet training run on one thread
FAST = ["--batch_size", "16", "--workers", "1", "--quiet"]


def train(data, out, *extra):
    """main.py --train on a prepared folder, small and quiet; returns the run folder."""
    return train_module.main(run_args(train_module, "--train", "--data", data, "--out", out, *FAST, *extra))


def weights_of(run_dir, name="last.pt"):
    """A run's saved weights (its state_dict)."""
    return torch.load(run_dir / name, weights_only=True)["model"]


def fer_rows(per_class=(6, 2, 2), seed=0):
    """(label, 'p p p ...', Usage) rows of synthetic faces."""
    return [(label, " ".join(map(str, face.ravel())), usage) for label, face, usage in synthetic_rows(per_class, seed)]


def write_fer_csv(path, rows, columns=("emotion", "pixels", "Usage")):
    """A FER2013-style CSV (gzipped for a .gz path) of fer_rows, under these column names."""
    table = pd.DataFrame(rows, columns=["emotion", "pixels", "Usage"])
    table.columns = list(columns)
    table.to_csv(path, index=False, compression="gzip" if str(path).endswith(".gz") else None)


def add_votes(data_dir, votes_of_label):
    """Writes a votes column into every split of a prepared folder: votes_of_label(label) -> ten counts."""
    for split in ("train", "val", "test"):
        path = split_dir(data_dir, split) / "labels.csv"
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, ["file", "label", "origin", "votes"])
            writer.writeheader()
            for row in rows:
                writer.writerow(dict(row, votes=" ".join(map(str, votes_of_label(int(row["label"]))))))


CLASS_FOLDERS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def colour_face_folder(root, per_class=6):
    """Class folders of 100x100 faces whose red channel is bright and blue dark, a pattern per class."""
    rng = np.random.default_rng(0)
    for label, name in enumerate(CLASS_FOLDERS):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            face = np.zeros((100, 100, 3), np.uint8)
            face[..., 2] = 180 + rng.integers(0, 40, (100, 100))  # red (BGR file)
            face[:, label * 14:label * 14 + 14, 1] = 255  # a green stripe at the class's place
            cv2.imwrite(str(folder / f"{i}.png"), face)
    return root
