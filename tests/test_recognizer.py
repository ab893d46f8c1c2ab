import csv
import gzip

import cv2
import numpy as np
import pytest
from conftest import ASTRONAUT, SHARED_FER

from deep_emotion import live
from deep_emotion.face_detectors import HAAR_CROP_SCALE, crop_box
from deep_emotion.recognizer import PARALLEL_FACES, EmotionDetector, EmotionRecognizer, as_bgr
from deep_emotion.tracking import Tracker, iou


@pytest.fixture(scope="module")
def detector(checkpoint):
    return EmotionDetector(checkpoint, detector="haar")  # the tests below drive the cascade


def test_iou_by_hand():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_smoothing_averages_each_track_over_its_frames(detector, monkeypatch):
    scripted = iter([np.eye(7)[[3]], np.eye(7)[[5]], np.eye(7)[[5]]])
    monkeypatch.setattr(detector, "find_faces", lambda frame: [{"box": (10, 10, 60, 60), "landmarks": None}])
    monkeypatch.setattr(detector, "classify", lambda faces: next(scripted))
    monkeypatch.setattr(detector, "smooth", 0.5)
    monkeypatch.setattr(detector, "tracker", Tracker())
    monkeypatch.setattr(detector, "detect_every", 1)  # every frame searched: the third frame's face is elsewhere
    monkeypatch.setattr(detector, "classify_every", 1)
    frame = np.zeros((100, 100, 3), np.uint8)
    first, second = detector.detect_emotions(frame)[0], detector.detect_emotions(frame)[0]
    assert first["emotions"]["Happy"] == 1.0
    assert (second["emotions"]["Happy"], second["emotions"]["Surprise"]) == (0.5, 0.5)
    # elsewhere: not the same face
    monkeypatch.setattr(detector, "find_faces", lambda frame: [{"box": (70, 70, 20, 20), "landmarks": None}])
    assert detector.detect_emotions(frame)[0]["emotions"]["Surprise"] == 1.0


def test_crop_is_fer_framed_and_replicates_the_frame_edge():
    gray = np.tile(np.arange(200, dtype=np.uint8), (200, 1))  # brightness = column
    face = crop_box(gray, (50, 50, 100, 100), HAAR_CROP_SCALE)
    side = round(100 * HAAR_CROP_SCALE)
    expected = cv2.resize(gray[100 - side // 2:100 - side // 2 + side, 100 - side // 2:100 - side // 2 + side],
                          (48, 48), interpolation=cv2.INTER_AREA)
    assert face.shape == (48, 48) and np.abs(face.astype(int) - expected).max() <= 2
    corner = crop_box(gray, (0, 0, 60, 60), HAAR_CROP_SCALE)  # reaches past the left and top edges
    assert corner.shape == (48, 48) and (corner[:, 0] <= 1).all()  # column 0 repeated leftwards


def test_minimum_face_size_holds_on_a_1920_wide_frame(detector, monkeypatch):
    seen = {}

    class Cascade:
        def detectMultiScale(self, image, scaleFactor, minNeighbors, minSize):
            seen["width"], seen["min"] = image.shape[1], minSize[0]
            return []

    monkeypatch.setattr(detector.detector, "cascade", Cascade())
    detector.find_faces(np.zeros((1080, 1920), np.uint8))
    smallest_face_found = seen["min"] * 1920 / seen["width"]
    assert smallest_face_found <= detector.detector.min_face + 1  # not the ~72 pixels of a plain 320-wide downscale
    detector.find_faces(np.zeros((480, 640), np.uint8))
    assert seen["width"] <= 400  # a small frame is still searched downscaled, for speed


def test_headless_fallback_without_a_display(monkeypatch):
    monkeypatch.setattr(live.sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(live.cv2, "namedWindow", lambda name: pytest.fail("tried to open a window"))
    assert live.display_available() is False
    monkeypatch.setenv("DISPLAY", ":0")

    def no_gui(name):
        raise cv2.error("The function is not implemented")

    monkeypatch.setattr(live.cv2, "namedWindow", no_gui)  # a headless OpenCV build
    assert live.display_available() is False


@pytest.mark.skipif(not SHARED_FER.exists(), reason="../shared/fer2013 is not here")
def test_a_real_face_is_detected_where_it_is_and_cropped_as_fer_frames_it(detector):
    with gzip.open(SHARED_FER, "rt") as f:
        f.readline()
        faces = [np.array(next(f).split(",")[1].split(), dtype=np.uint8).reshape(48, 48) for _ in range(20)]
    overlaps, likeness = [], []
    for face in faces:
        frame = np.full((480, 640), 128, np.uint8)
        frame[100:292, 200:392] = cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC)
        boxes = [face["box"] for face in detector.find_faces(frame)]
        if boxes:
            pasted_box = (200 + 96 - 93, 100 + 96 - 93, 186, 186)  # the face spans 1.03x its Haar box
            overlaps.append(iou(boxes[0], pasted_box))
            crop = crop_box(frame, boxes[0], HAAR_CROP_SCALE).ravel().astype(float)
            likeness.append(np.corrcoef(crop, face.ravel().astype(float))[0, 1])
    # Haar boxes are noisy (IoU 0.4 to 0.9 on these faces), so the medians are what is asserted
    assert len(overlaps) >= 12 and np.median(overlaps) > 0.65 and np.median(likeness) > 0.5


def test_two_faces_crossing_keep_their_ids():
    tracker = Tracker()
    ids = []
    for t in range(30):  # face a moves right, face b left; they cross (overlap fully) at t = 15
        a, b = (10 + 8 * t, 100, 60, 60), (250 - 8 * t, 110, 60, 60)
        tracks = tracker.update([a, b] if t % 2 else [b, a])  # the detector's order means nothing
        ids.append((tracks[0].id, tracks[1].id) if t % 2 else (tracks[1].id, tracks[0].id))
    assert len(set(ids)) == 1 and set(ids[0]) == {0, 1}  # each face kept the id it started with


def test_a_face_that_leaves_for_long_comes_back_under_a_new_id():
    tracker = Tracker(max_missed=3)
    assert tracker.update([(100, 100, 50, 50)])[0].id == 0
    for _ in range(2):
        tracker.update([])
    assert tracker.update([(102, 100, 50, 50)])[0].id == 0  # away for 2 frames: the same face
    for _ in range(4):
        tracker.update([])
    assert tracker.update([(102, 100, 50, 50)])[0].id == 1  # away for 4 frames: a new track


@pytest.mark.parametrize("detect_every", [1, 3])
def test_stream_gives_what_detect_emotions_gives_frame_by_frame(checkpoint, monkeypatch, detect_every):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(12)]  # more than STREAM_AHEAD
    box_of = {frame.tobytes(): (10 + 5 * i, 10, 60, 60) for i, frame in enumerate(frames)}
    monkeypatch.setattr(EmotionDetector, "find_faces",
                        lambda self, frame: [{"box": box_of[frame.tobytes()], "landmarks": None}])
    one_by_one = EmotionDetector(checkpoint, smooth=0.5, detect_every=detect_every, classify_every=detect_every)
    expected = [one_by_one.detect_emotions(frame) for frame in frames]
    streamed = list(EmotionDetector(checkpoint, smooth=0.5, detect_every=detect_every,
                                    classify_every=detect_every).stream(
        (f"f{i}", frame) for i, frame in enumerate(frames)))
    assert [name for name, _, _ in streamed] == [f"f{i}" for i in range(12)]
    assert [results for _, _, results in streamed] == expected


def test_in_stream_a_groups_faces_are_classified_in_two_halves_with_the_same_answers(checkpoint, monkeypatch):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(3)]
    group = [{"box": (10 + 60 * (k % 5), 10 + 70 * (k // 5), 50, 50), "landmarks": None} for k in range(9)]
    monkeypatch.setattr(EmotionDetector, "find_faces", lambda self, frame: group)
    expected = EmotionDetector(checkpoint, stills=True)
    streamed = EmotionDetector(checkpoint, stills=True)
    batches = []
    real = streamed.classifier.predict
    monkeypatch.setattr(streamed.classifier, "predict", lambda faces: batches.append(len(faces)) or real(faces))
    one_by_one = [expected.detect_emotions(frame) for frame in frames]
    assert [results for _, _, results in streamed.stream((None, frame) for frame in frames)] == one_by_one
    assert sorted(batches) == [4] * 3 + [5] * 3 and PARALLEL_FACES <= 9  # each frame's nine faces in two halves
    assert streamed.helper is None  # outside stream (analyze's workers, one core each) one batch
    streamed.detect_emotions(frames[0])
    assert batches[-1] == 9


@pytest.mark.parametrize("convert", [
    lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY),
    lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[:, :, None],
    lambda bgr: cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
    lambda bgr: bgr.astype(np.float32) / 255,
    lambda bgr: bgr.astype(np.float64),
], ids=["grey", "grey-with-axis", "bgra", "float-0-1", "float-0-255"])
def test_the_api_reads_what_a_user_plausibly_passes(convert):
    bgr = cv2.cvtColor(np.random.default_rng(0).integers(0, 256, (40, 60), dtype=np.uint8), cv2.COLOR_GRAY2BGR)
    expected = as_bgr(bgr)
    got = as_bgr(convert(bgr))
    assert got.dtype == np.uint8 and got.shape == (40, 60, 3)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # the same picture, up to rounding


@pytest.mark.parametrize("frame, message", [
    (np.zeros((4, 4, 2), np.uint8), r"not an array of shape \(4, 4, 2\) and dtype uint8"),
    (np.zeros((2, 4, 4, 3), np.float32), r"shape \(2, 4, 4, 3\) and dtype float32"),
    (np.full((4, 4, 3), 300.0), r"holds 300..300"),
    (np.zeros((4, 4, 3), np.complex64), r"dtype complex64"),
    (None, "cv2.imread gives None for a file that is missing"),
])
def test_the_api_refuses_other_arrays_in_one_line_naming_shape_and_dtype(detector, frame, message):
    with pytest.raises(ValueError, match=message) as refused:
        detector.detect_emotions(frame)
    assert "\n" not in str(refused.value)


def test_the_api_reads_a_photo_as_the_command_line_does_with_stills(tmp_path):
    """`live --source photo` and EmotionRecognizer(stills=True) give the same boxes and labels; the default API
    reads a video frame from a 320-pixel copy, which is why its boxes may differ (docs/inference.md)."""
    from deep_emotion import visualize
    log = tmp_path / "faces.csv"
    visualize.main(visualize.get_args_parser().parse_args(["--source", str(ASTRONAUT), "--no_display",
                                                           "--log", str(log)]))
    with open(log, newline="") as f:
        logged = [(int(r["x"]), int(r["y"]), int(r["w"]), int(r["h"]), r["label"]) for r in csv.DictReader(f)]
    faces = EmotionRecognizer(stills=True).detect_emotions(cv2.imread(str(ASTRONAUT)))
    assert logged == [(*face["box"], face["label"]) for face in faces] and len(logged) == 1
