import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deep_emotion.data import prepare as generate_data  # noqa: E402
from deep_emotion.data.synthetic_faces import SYNTHETIC_CSV, write_synthetic_csv  # noqa: E402
from deep_emotion.emotions import CLASS_NAMES  # noqa: E402
from deep_emotion.model import DeepEmotion  # noqa: E402

SHARED_FER = ROOT.parent / "shared" / "fer2013" / "fer2013-dev.csv.gz"
PACKAGE_WEIGHTS, WEIGHTS = ROOT / "deep_emotion" / "weights", ROOT / "weights"


def pytest_configure(config):
    # the ONNX engine's exported graphs go to a folder of this run, not the user's cache (subprocesses inherit it)
    os.environ["DEEP_EMOTION_CACHE"] = tempfile.mkdtemp(prefix="deep-emotion-test-cache-")
    config.addinivalue_line("markers", "slow: a training run, a subprocess or a browser: `pytest -m \"not slow\"` "
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


ASTRONAUT = ROOT / "deep_emotion" / "assets" / "astronaut.jpg"  # scikit-image's astronaut photo (public domain), one face


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
