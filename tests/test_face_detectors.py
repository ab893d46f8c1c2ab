import gzip
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import ROOT, SHARED_FER
from face_detectors import (IMAGE_SIZE, YUNET_CENTRE_BELOW_EYES, YUNET_SHA256, YUNET_SIDE_PER_EYE_DISTANCE,
                            YUNET_URL, DetectorError, YuNetDetector, crop_aligned, crop_box, yunet_model_path)

SHARED_YUNET = ROOT.parent / "shared" / "models" / "face_detection_yunet_2023mar.onnx"
needs_yunet = pytest.mark.skipif(not SHARED_YUNET.exists(), reason="../shared/models has no YuNet file")


def two_eyes(angle_degrees, eye_distance=40.0, centre=(160.0, 120.0)):
    """A dark frame with two bright eyes, turned by angle; returns (frame, (2, 2) eye positions)."""
    turn = np.radians(angle_degrees)
    direction = np.array([np.cos(turn), np.sin(turn)])
    eyes = np.array([np.array(centre) - direction * eye_distance / 2, np.array(centre) + direction * eye_distance / 2])
    frame = np.zeros((240, 320), np.uint8)
    for x, y in eyes:
        cv2.circle(frame, (int(round(x)), int(round(y))), 4, 255, -1)
    return frame, eyes


@pytest.mark.parametrize("angle", [0, 25, -40])
def test_aligned_crop_levels_the_eyes_where_fer2013_frames_them(angle):
    frame, eyes = two_eyes(angle)
    crop = crop_aligned(frame, np.vstack([eyes, np.zeros((3, 2))]))
    assert crop.shape == (IMAGE_SIZE, IMAGE_SIZE)
    ys, xs = np.nonzero(crop > 100)
    left, right = xs < IMAGE_SIZE / 2, xs >= IMAGE_SIZE / 2
    # level: both eyes on one row; apart by 48 / 2.64 pixels; above the centre by 0.29 eye distances
    assert abs(ys[left].mean() - ys[right].mean()) < 1.0
    expected_distance = IMAGE_SIZE / YUNET_SIDE_PER_EYE_DISTANCE
    assert xs[right].mean() - xs[left].mean() == pytest.approx(expected_distance, abs=1.0)
    assert ys.mean() == pytest.approx((IMAGE_SIZE - 1) / 2 - YUNET_CENTRE_BELOW_EYES * expected_distance, abs=1.0)


def test_box_crop_replicates_the_frame_edge():
    gray = np.tile(np.arange(200, dtype=np.uint8), (200, 1))
    crop = crop_box(gray, (-20, 10, 60, 60), 1.0)
    assert crop.shape == (48, 48) and (crop[:, :10] == 0).all()


def test_yunet_model_missing_or_wrong_is_a_one_line_error_with_the_download(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEP_EMOTION_YUNET", raising=False)
    with pytest.raises(DetectorError, match="needs its model file") as missing:
        yunet_model_path(None)
    assert YUNET_URL in str(missing.value) and YUNET_SHA256 in str(missing.value)
    (tmp_path / "yunet.onnx").write_bytes(b"not a model")
    with pytest.raises(DetectorError, match="is not the YuNet model"):
        yunet_model_path(tmp_path / "yunet.onnx")
    monkeypatch.setenv("DEEP_EMOTION_YUNET", str(tmp_path / "elsewhere.onnx"))
    with pytest.raises(DetectorError, match="elsewhere.onnx does not exist"):
        yunet_model_path(None)
    image = tmp_path / "photo.png"
    cv2.imwrite(str(image), np.full((120, 160, 3), 128, np.uint8))
    result = subprocess.run([sys.executable, str(ROOT / "visualize.py"), "--source", str(image), "--no_display",
                             "--detector", "yunet", "--detector_model", str(tmp_path / "yunet.onnx")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and YUNET_URL in result.stderr


@needs_yunet
@pytest.mark.skipif(not SHARED_FER.exists(), reason="../shared/fer2013 is not here")
def test_yunet_finds_turned_faces_and_alignment_undoes_the_turn():
    with gzip.open(SHARED_FER, "rt") as f:
        f.readline()
        faces = [np.array(next(f).split(",")[1].split(), dtype=np.uint8).reshape(48, 48) for _ in range(12)]
    detector = YuNetDetector(SHARED_YUNET)
    found, aligned_better = 0, 0
    for face in faces:
        big = cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC)
        turned = cv2.warpAffine(big, cv2.getRotationMatrix2D((96, 96), 25, 1.0), (192, 192),
                                borderMode=cv2.BORDER_REPLICATE)
        frame = np.full((480, 640), 128, np.uint8)
        frame[100:292, 200:392] = turned
        results = detector.detect(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        if not results:
            continue
        found += 1
        likeness = lambda crop: np.corrcoef(crop.ravel().astype(float), face.ravel().astype(float))[0, 1]  # noqa
        aligned_better += likeness(crop_aligned(frame, results[0]["landmarks"])) > likeness(
            crop_box(frame, results[0]["box"], 1.23))
    assert found >= 10 and aligned_better >= 0.8 * found
