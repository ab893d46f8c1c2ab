import gzip
import inspect
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import ROOT, SHARED_FER

from deep_emotion import face_detectors, visualize
from deep_emotion.emotions import IMAGE_SIZE
from deep_emotion.face_detectors import (
    YUNET_CROP_SCALE,
    YUNET_SHA256,
    YUNET_URL,
    DetectorError,
    YuNetDetector,
    crop_aligned,
    crop_box,
    yunet_model_path,
)
from deep_emotion.recognizer import EmotionRecognizer

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
def test_aligned_crop_levels_the_eyes_and_frames_the_box(angle):
    frame, eyes = two_eyes(angle)
    box = (160 - 40, 120 - 40, 80, 80)  # centred between the eyes
    crop = crop_aligned(frame, box, np.vstack([eyes, np.zeros((3, 2))]))
    assert crop.shape == (IMAGE_SIZE, IMAGE_SIZE)
    ys, xs = np.nonzero(crop > 100)
    left, right = xs < IMAGE_SIZE / 2, xs >= IMAGE_SIZE / 2
    # level: both eyes on one row, through the middle; apart by 40 of the crop's 80 * 1.23 pixels
    assert abs(ys[left].mean() - ys[right].mean()) < 1.0 and ys.mean() == pytest.approx(23.5, abs=1.0)
    assert xs[right].mean() - xs[left].mean() == pytest.approx(40 * IMAGE_SIZE / (80 * YUNET_CROP_SCALE), abs=1.0)


def test_box_crop_replicates_the_frame_edge():
    gray = np.tile(np.arange(200, dtype=np.uint8), (200, 1))
    crop = crop_box(gray, (-20, 10, 60, 60), 1.0)
    assert crop.shape == (48, 48) and (crop[:, :10] == 0).all()


def test_yunet_ships_in_the_package_and_is_the_default_detector(monkeypatch):
    monkeypatch.delenv("DEEP_EMOTION_YUNET", raising=False)
    assert yunet_model_path(None) == str(face_detectors.PACKAGED_YUNET)  # its sha256 checked
    assert (face_detectors.PACKAGED_YUNET.parent / "LICENSE-YuNet.txt").read_text().startswith("face_detection_yunet")
    assert isinstance(face_detectors.build_detector(), YuNetDetector)
    assert inspect.signature(EmotionRecognizer).parameters["detector"].default == "yunet"
    assert visualize.get_args_parser().parse_args([]).detector == "yunet"


def test_yunet_model_missing_or_wrong_is_a_one_line_error_with_the_download(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEP_EMOTION_YUNET", raising=False)
    monkeypatch.setattr(face_detectors, "PACKAGED_YUNET", tmp_path / "not-installed.onnx")
    with pytest.raises(DetectorError, match="needs OpenCV.s YuNet face detector") as missing:
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
    detector = YuNetDetector(SHARED_YUNET, detect_width=640)

    def framed(face, angle):
        big = cv2.warpAffine(cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC),
                             cv2.getRotationMatrix2D((96, 96), angle, 1.0), (192, 192), borderMode=cv2.BORDER_REPLICATE)
        frame = np.full((480, 640), 128, np.uint8)
        frame[100:292, 200:392] = big
        found = detector.detect(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        return (frame, found[0]) if found else (None, None)

    likeness = lambda a, b: np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1]  # noqa: E731
    found, aligned_steadier = 0, 0
    for face in faces:
        (upright, a), (turned, b) = framed(face, 0), framed(face, 25)
        if a is None or b is None:
            continue
        found += 1
        # turned by 25 degrees, the aligned crop stays the upright face's aligned crop; the box crop turns with it
        aligned_steadier += likeness(crop_aligned(upright, a["box"], a["landmarks"]),
                                     crop_aligned(turned, b["box"], b["landmarks"])) > \
            likeness(crop_box(upright, a["box"], 1.23), crop_box(turned, b["box"], 1.23))
    assert found >= 10 and aligned_steadier >= 2 * found / 3  # turned the wrong way, it would be none


def test_photos_are_searched_larger_and_for_smaller_faces_than_video():
    from deep_emotion.face_detectors import build_detector
    video, photos = build_detector("haar"), build_detector("haar", stills=True)
    assert (video.detect_width, video.min_face) == (320, 48)
    assert photos.detect_width >= 1280 and photos.min_face == 24
    gray = np.zeros((960, 1280), np.uint8)
    seen = {}

    class Cascade:
        def detectMultiScale(self, image, scaleFactor, minNeighbors, minSize):
            seen["width"] = image.shape[1]
            return []

    photos.cascade = Cascade()
    photos.detect(gray)
    assert seen["width"] == 1280  # a 1280-wide photo is searched as it is
