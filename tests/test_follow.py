"""Faces searched for every N frames and followed in between (EmotionRecognizer(detect_every=N), Tracker.follow)."""
import numpy as np
import pytest

from deep_emotion.recognizer import DETECT_EVERY, EmotionRecognizer
from deep_emotion.tracking import Tracker

FRAME = np.zeros((240, 320, 3), np.uint8)


class ScriptedFaces:
    """find_faces that answers from a script of box lists, one per searched frame, and counts its calls."""

    def __init__(self, boxes_of_frame):
        self.boxes_of_frame, self.frame, self.searched = boxes_of_frame, 0, []

    def __call__(self, frame):
        self.searched.append(self.frame)
        return [{"box": box, "landmarks": None, "score": 1.0} for box in self.boxes_of_frame(self.frame)]


def run(checkpoint, detect_every, boxes_of_frame, frames, classify_every=1):
    """(results per frame, the frames that were searched) of a recognizer whose face search is scripted."""
    recognizer = EmotionRecognizer(checkpoint, detect_every=detect_every, classify_every=classify_every)
    faces = ScriptedFaces(boxes_of_frame)
    recognizer.find_faces = faces
    results = []
    for index in range(frames):
        faces.frame = index
        results.append(recognizer.detect_emotions(FRAME))
    return results, faces.searched


def moving(frame):
    return [(20 + 3 * frame, 40 + frame, 60, 60)]  # 3 pixels right and 1 down a frame


def test_detect_every_1_searches_every_frame_as_before(checkpoint):
    results, searched = run(checkpoint, 1, moving, 9)
    assert searched == list(range(9))
    assert [r[0]["box"] for r in results] == [moving(i)[0] for i in range(9)]
    assert {r[0]["found"] for r in results} == {"search"} and {r[0]["face"] for r in results} == {0}


def test_between_searches_boxes_follow_the_faces_motion(checkpoint):
    results, searched = run(checkpoint, 3, moving, 10)
    assert searched == [0, 1, 4, 7]  # frame 1: a face found once has no velocity yet, so it is searched again
    for index, faces in enumerate(results):
        assert len(faces) == 1 and faces[0]["face"] == 0
        assert faces[0]["found"] == ("search" if index in searched else "followed")
        assert faces[0]["box"] == moving(index)[0], index  # a followed box is where the face is


def test_a_lost_face_triggers_a_search_on_the_next_frame(checkpoint):
    def two_then_one(frame):
        return [(20, 40, 60, 60), (200, 40, 60, 60)] if frame < 6 else [(20, 40, 60, 60)]
    results, searched = run(checkpoint, 4, two_then_one, 12)
    first_without = next(i for i in searched if i >= 6)
    assert first_without + 1 in searched  # the track it lost is searched for again at once, not followed
    assert [len(r) for r in results[first_without:]] == [1] * len(results[first_without:])


def test_a_new_face_is_found_within_n_frames(checkpoint):
    n = 4
    def second_face_from_7(frame):
        return [(20, 40, 60, 60)] + ([(200, 40, 60, 60)] if frame >= 7 else [])
    results, _ = run(checkpoint, n, second_face_from_7, 16)
    found_at = next(i for i, faces in enumerate(results) if len(faces) == 2)
    assert 7 <= found_at < 7 + n


def test_a_box_about_to_leave_the_frame_is_searched_not_followed(checkpoint):
    def leaving(frame):
        return [(190 + 40 * frame, 40, 60, 60)]  # from frame 2 on, its predicted box crosses the right edge
    results, searched = run(checkpoint, 5, leaving, 4)
    assert searched == [0, 1, 2, 3]


def test_stills_are_always_searched_and_classified(checkpoint):
    stills = EmotionRecognizer(checkpoint, stills=True, detect_every=5, classify_every=4)
    assert (stills.detect_every, stills.classify_every) == (1, 1)
    with pytest.raises(ValueError):
        EmotionRecognizer(checkpoint, detect_every=0)


def test_each_face_is_classified_once_in_m_frames_and_a_new_face_at_once(checkpoint):
    recognizer = EmotionRecognizer(checkpoint, detect_every=1, classify_every=3)
    boxes = iter([[(20, 40, 60, 60)]] * 4 + [[(20, 40, 60, 60), (200, 40, 60, 60)]] * 3)
    recognizer.find_faces = lambda frame: [{"box": box, "landmarks": None} for box in next(boxes)]
    classified = []
    classify = recognizer.classify
    recognizer.classify = lambda crops: classified.append(len(crops)) or classify(crops)
    results = [recognizer.detect_emotions(FRAME) for _ in range(7)]
    assert classified == [1, 1, 1, 1]  # frames 0, 3 and 6 for the first face; frame 4 for the new one
    assert results[1][0]["emotions"] == results[0][0]["emotions"] == results[2][0]["emotions"]


def test_the_default_searches_a_steady_face_on_one_frame_in_detect_every(checkpoint):
    recognizer = EmotionRecognizer(checkpoint)  # the API's and the live loop's defaults
    faces = ScriptedFaces(moving)
    recognizer.find_faces = faces
    for index in range(30):
        faces.frame = index
        assert len(recognizer.detect_emotions(FRAME)) == 1
    # after the first two searches (a velocity needs two), one in DETECT_EVERY frames
    assert faces.searched == [0, 1, *range(1 + DETECT_EVERY, 30, DETECT_EVERY)] and len(faces.searched) < 30 / 2


def test_follow_moves_landmarks_with_the_box():
    tracker = Tracker()
    track = tracker.update([(10, 10, 50, 50)])[0]
    track.landmarks = np.array([[20.0, 20.0], [40.0, 20.0]])
    tracker.update([(14, 12, 50, 50)])
    tracker.follow(320, 240)
    assert track.box == (18, 14, 50, 50) and track.landmarks.tolist() == [[24.0, 22.0], [44.0, 22.0]]
    tracker.follow(320, 240)
    assert tracker.update([(23, 16, 50, 50)])[0] is track  # searched again: the velocity spans the followed frames
    assert track.velocity.tolist() == [3.0, 4 / 3]


def test_overlap_decides_before_distance():
    # the moved box overlaps A's prediction by IoU 0.43, while B's (a small face) centre is nearer to its
    # centre: the documented rule (IoU >= 0.3 first, then the nearest centre) gives it A's id
    tracker = Tracker()
    a, b = tracker.update([(0, 0, 100, 100), (90, 40, 20, 20)])
    assert tracker.update([(40, 0, 100, 100)])[0].id == a.id


def test_a_missing_image_is_a_plain_error_not_an_attribute_error(checkpoint):
    with pytest.raises(ValueError, match="cv2.imread gives None for a file that is missing"):
        EmotionRecognizer(checkpoint).detect_emotions(None)
