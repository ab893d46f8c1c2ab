import gzip
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT, SHARED_FER, run_args, shipped

from deep_emotion import onnx_classifier, onnx_export, visualize
from deep_emotion.data.loaders import load_split
from deep_emotion.inference import Ensemble, tta_views


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The shipped checkpoints as ONNX files: {name: path}."""
    folder = tmp_path_factory.mktemp("onnx")
    return {name: onnx_export.export(shipped(f"{name}.pt"), folder / f"{name}.onnx")
            for name in ("deep_emotion", "deep_emotion_vgg")}


def real_faces(prepared):
    """FER2013 PublicTest faces where ../shared has them, else the synthetic test faces."""
    if SHARED_FER.exists():
        with gzip.open(SHARED_FER, "rt") as f:
            f.readline()
            rows = [next(f) for _ in range(64)]
        return np.stack([np.array(r.split(",")[1].split(), dtype=np.uint8).reshape(48, 48) for r in rows])
    return load_split(prepared, "test")[0].numpy()


@pytest.mark.parametrize("name", ["deep_emotion", "deep_emotion_vgg"])
def test_onnxruntime_matches_pytorch_on_faces(exported, prepared, name):
    faces = real_faces(prepared)
    expected = Ensemble(shipped(f"{name}.pt")).predict(faces)  # temperature included
    got = onnx_classifier.OnnxClassifier(exported[name]).predict(faces)
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4
    # any batch size: the batch dimension is dynamic
    assert np.abs(onnx_classifier.OnnxClassifier(exported[name]).predict(faces[:3], batch_size=2)
                  - expected[:3]).max() < 1e-4


@pytest.mark.parametrize("tta", [None, "flip", "shifts"])
def test_numpy_tta_views_are_the_torch_ones(tta):
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)
    ours = onnx_classifier.tta_views(faces, tta)
    theirs = tta_views(torch.from_numpy(faces).unsqueeze(1), tta)
    assert len(ours) == len(theirs)
    assert all(np.array_equal(a, b.squeeze(1).numpy()) for a, b in zip(ours, theirs))


def test_the_onnx_runtime_needs_no_pytorch(exported, tmp_path):
    script = (f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nsys.modules['torch'] = None  # any import fails\n"
              "import numpy as np\nfrom deep_emotion import EmotionDetector\n"
              f"detector = EmotionDetector({str(exported['deep_emotion'])!r})\n"
              "p = detector.classify([np.full((48, 48), 128, np.uint8)])\n"
              "print(p.shape, round(float(p.sum()), 4), detector.class_names[0])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "(1, 7) 1.0 Angry"


def test_visualize_backend_onnx_scores_as_torch(prepared, exported, tmp_path):
    common = ["-t", "-d", prepared, "--figures", tmp_path]
    torch_run = visualize.main(run_args(visualize, *common, "-m", shipped("deep_emotion.pt")))
    onnx_run = visualize.main(run_args(visualize, *common, "-m", shipped("deep_emotion.pt"),
                                       "--backend", "onnx"))
    onnx_file = visualize.main(run_args(visualize, *common, "-m", exported["deep_emotion"], "--tta"))
    assert torch_run["confusion"] == onnx_run["confusion"] and onnx_file["tta"] == "flip"
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    with pytest.raises(onnx_classifier.OnnxError, match="cannot load"):
        visualize.main(run_args(visualize, *common, "-m", broken))


def test_a_clahe_checkpoint_equalises_before_the_onnx_graph(checkpoint, prepared, tmp_path):
    # ONNX has no CLAHE operator: the runtime equalises the faces itself when the metadata says so
    equalised = tmp_path / "clahe.pt"
    torch.save({**torch.load(checkpoint, weights_only=True), "clahe": True}, equalised)
    path = onnx_export.export(equalised, tmp_path / "clahe.onnx")
    faces = real_faces(prepared)
    alone = onnx_classifier.OnnxClassifier(path).predict(faces)
    assert np.abs(alone - Ensemble(equalised).predict(faces)).max() < 1e-4
    assert np.abs(alone - Ensemble(checkpoint).predict(faces)).max() > 1e-3  # equalising changed the input
    # beside a plain member, each equalises or not on its own, with test-time views too
    mixed = onnx_classifier.OnnxClassifier([path, onnx_export.export(checkpoint, tmp_path / "plain.onnx")],
                                           tta="flip").predict(faces)
    assert np.abs(mixed - Ensemble([equalised, checkpoint], tta="flip").predict(faces)).max() < 1e-4
