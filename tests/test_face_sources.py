"""The new source shapes of generate_data.py: FER+ votes, Microsoft's FER+ folders, face folders, RAF-DB's layout."""
import csv

import cv2
import numpy as np
import pytest
from conftest import fer_rows, write_fer_csv

from deep_emotion import face_detectors
from deep_emotion.data import face_sources
from deep_emotion.data import prepare as generate_data
from deep_emotion.data.loaders import load_split
from deep_emotion.data.prepared import DataError, load_votes, read_labels_csv, split_dir
from deep_emotion.data.synthetic_faces import synthetic_rows
from deep_emotion.face_detectors import crop_face

HEADER = ["Usage", "Image name", *face_sources.VOTE_COLUMNS]


def distinct_votes(rows):
    """Ten vote counts per row that differ from row to row: the row number in the first two columns."""
    return [[i % 11, i // 11] + [0] * 8 for i in range(rows)]


def write_votes(path, votes, usage="Training"):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i, row in enumerate(votes):
            writer.writerow([usage, f"fer{i:07d}.png", *row])


def test_fer_plus_votes_join_the_fer2013_rows_by_position(tmp_path):
    rows = fer_rows((6, 2, 2))
    rows[5] = (rows[5][0], "1 2 3", rows[5][2])  # a bad row: skipped, and the votes must stay in step
    write_fer_csv(tmp_path / "fer2013.csv", rows)
    votes = distinct_votes(len(rows))
    write_votes(tmp_path / "fer2013new.csv", votes)
    summary = generate_data.prepare(tmp_path)
    assert summary["ferplus_votes"].endswith("fer2013new.csv") and summary["bad_rows"] == 1
    for split in ("train", "val", "test"):
        with open(split_dir(tmp_path, split) / "labels.csv", newline="") as f:
            for row in csv.DictReader(f):
                source_row = int(row["origin"].split(":")[1]) - 2  # the header is line 1
                assert [int(v) for v in row["votes"].split()] == votes[source_row], row
    assert load_votes(tmp_path, "train").shape == (len(load_split(tmp_path, "train")[0]), 10)


@pytest.mark.parametrize("cell", ["x", "-1", "2.5"])
def test_fer_plus_votes_that_are_not_counts_skip_their_face_and_name_its_line(tmp_path, cell):
    rows = fer_rows((6, 2, 2))
    write_fer_csv(tmp_path / "fer2013.csv", rows)
    votes = distinct_votes(len(rows))
    votes[3][4] = cell
    write_votes(tmp_path / "fer2013new.csv", votes)
    summary = generate_data.prepare(tmp_path)
    assert summary["bad_rows"] == 1 and summary["first_bad_rows"][0].startswith("fer2013.csv:5: ")
    assert "fer2013new.csv:5" in summary["first_bad_rows"][0]
    faces = sum(len(load_split(tmp_path, split)[0]) for split in ("train", "val", "test"))
    assert faces == len(rows) - 1


def test_fer_plus_file_with_other_rows_is_one_line_error(tmp_path):
    write_fer_csv(tmp_path / "fer2013.csv", fer_rows((2, 1, 1)))
    write_votes(tmp_path / "fer2013new-dev.csv", distinct_votes(3))  # fer2013new*.csv is found too
    with pytest.raises(DataError, match="has 3 rows but its FER2013 CSV has 28"):
        generate_data.prepare(tmp_path)


def test_majority_and_vote_distribution_follow_fer_plus_rules():
    votes = np.array([[6, 3, 1, 0, 0, 0, 0, 0, 0, 0],    # neutral 6, happy 3, a lone surprise vote (noise)
                      [0, 0, 0, 0, 2, 0, 0, 8, 0, 0],    # contempt: no FER2013 class
                      [0, 0, 0, 0, 0, 0, 0, 0, 1, 9],    # not a face
                      [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]])   # no votes at all
    assert face_sources.majority_class(votes).tolist() == [6, -1, -1, -1]
    distribution, ok = face_sources.vote_distribution(votes)
    assert ok.tolist() == [True, False, False, False]
    expected = np.zeros(7)
    expected[6], expected[3] = 6 / 9, 3 / 9  # the single surprise vote is dropped
    np.testing.assert_allclose(distribution[0], expected, rtol=1e-6)


def write_png(path, face):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), face)


def test_microsoft_fer_plus_folders_are_a_source(tmp_path):
    faces = [face for _, face, _ in synthetic_rows((1, 0, 0))]
    for folder in ("FER2013Train", "FER2013Valid"):
        rows = []
        for i, face in enumerate(faces):
            write_png(tmp_path / folder / f"fer{i:07d}.png", face)
            counts = [0] * 10
            counts[i] = 7  # the majority walks through FER+'s columns neutral .. fear
            rows.append([f"fer{i:07d}.png", "(0, 0, 48, 48)", *counts])
        rows.append(["fer9999998.png", "(0, 0, 48, 48)", 0, 0, 0, 0, 0, 0, 0, 9, 1, 0])  # contempt
        rows.append(["fer9999999.png", "(0, 0, 48, 48)", 0, 0, 0, 0, 0, 0, 0, 0, 0, 10])  # not a face
        write_png(tmp_path / folder / "fer9999998.png", faces[0])
        with open(tmp_path / folder / "label.csv", "w", newline="") as f:
            csv.writer(f).writerows(rows)
    summary = generate_data.prepare(tmp_path)
    assert summary["kind"] == "ferplus_folders" and set(summary["splits"]) == {"train", "val"}
    _, labels = read_labels_csv(split_dir(tmp_path, "train"))
    # FER+ columns 0..6 are neutral, happiness, surprise, sadness, anger, disgust, fear; contempt is left out
    assert labels == [6, 3, 5, 4, 0, 1, 2]
    assert summary["bad_rows"] == 4 and "contempt, unknown or not a face" in summary["first_bad_rows"][0]


def face_folder(root, names, per_class=6):
    """Class folders of synthetic faces under the given folder names (in FER2013's class order)."""
    faces = {label: [] for label in range(7)}
    for label, face, _ in synthetic_rows((per_class, 0, 0), seed=3):
        faces[label].append(face)
    for label, name in enumerate(names):
        for i, face in enumerate(faces[label]):
            write_png(root / name / f"{i}.png", cv2.resize(face, (100, 100)))
    return faces


@pytest.mark.parametrize("names", [
    ["ANGRY", "disgust", "Fear", "happiness", "sadness", "Surprised", "neutral"],  # any case, synonyms
    ["6", "3", "2", "4", "5", "1", "7"],  # RAF-DB's own numbering: 1 surprise .. 7 neutral
])
def test_class_folders_map_names_and_raf_numbering(tmp_path, names):
    face_folder(tmp_path, names)
    summary = generate_data.prepare(tmp_path, framing="as_given")
    assert summary["kind"] == "class_folders" and summary["val_carved_from_train"]
    train, val = summary["splits"]["train"]["per_class"], summary["splits"]["val"]["per_class"]
    assert list(train.values()) == [5] * 7 and list(val.values()) == [1] * 7  # a stratified 10% carve (rounded)


def test_framing_as_given_mapping_and_a_labels_csv_box(tmp_path):
    image = np.zeros((100, 100), np.uint8)
    image[20:60, 30:70] = 255
    write_png(tmp_path / "faces" / "a.png", image)
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([["file", "label", "x", "y", "w", "h"], ["faces/a.png", "happy", "", "", "", ""],
                                 ["faces/a.png", 3, 30, 20, 40, 40]])
    entries, bad = face_sources.list_face_folder(tmp_path, "labels_csv")
    assert not bad and [e[1] for e in entries] == [3, 3] and entries[1][3] == (30, 20, 40, 40)
    given, _ = face_sources.frame_faces(entries[:1], "as_given")
    mapped, _ = face_sources.frame_faces(entries[:1], "mapping")
    boxed, _ = face_sources.frame_faces(entries[1:], "mapping")
    assert np.array_equal(given[0], cv2.resize(image, (48, 48), interpolation=cv2.INTER_AREA))
    assert np.array_equal(mapped[0], face_sources.mapped_crop(image)) and not np.array_equal(mapped[0], given[0])
    # the box's square is 1.23x its 40 pixels around its centre (50, 40): the white block fills its middle
    assert boxed[0][24, 24] == 255 and boxed[0][2, 2] == 0


class FindsEveryOtherFace:
    """A stand-in YuNet: finds a face at a fixed box in every other image, none in the rest."""

    def __init__(self):
        self.calls = 0

    def detect(self, frame):
        self.calls += 1
        if self.calls % 2 == 0:
            return []
        return [{"box": (60, 55, 80, 90), "landmarks": np.zeros((5, 2)), "score": 0.9}]


def test_detect_framing_crops_as_the_pipeline_and_counts_misses(tmp_path, monkeypatch):
    faces = face_folder(tmp_path, ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"], per_class=2)
    monkeypatch.setattr(face_sources, "build_detector", lambda *a, **k: FindsEveryOtherFace())
    entries, _ = face_sources.list_face_folder(tmp_path, "class_folders")
    crops, missed = face_sources.frame_faces(entries, "detect", "unused.onnx")
    assert missed == 7
    first = cv2.imread(str(entries[0][0]), cv2.IMREAD_GRAYSCALE)
    frame = face_sources.bordered(first)
    assert np.array_equal(crops[0], crop_face(frame, {"box": (60, 55, 80, 90), "landmarks": np.zeros((5, 2))}))
    second = cv2.imread(str(entries[1][0]), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(crops[1], face_sources.mapped_crop(second))  # a miss falls back to the mapping
    assert len(faces[0]) == 2


def test_detect_framing_without_yunet_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEP_EMOTION_YUNET", raising=False)
    monkeypatch.setattr(face_detectors, "PACKAGED_YUNET", tmp_path / "not-installed.onnx")
    face_folder(tmp_path, ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"], per_class=1)
    with pytest.raises(DataError, match="--framing detect: --detector yunet needs OpenCV"):
        generate_data.prepare(tmp_path, framing="detect")


def test_rafdb_official_layout_keeps_its_split_and_numbering(tmp_path):
    aligned = tmp_path / "basic" / "Image" / "aligned"
    lines = []
    for i, (label, face, usage) in enumerate(synthetic_rows((10, 0, 1), seed=2)):
        name = f"{'train' if usage == 'Training' else 'test'}_{i:05d}"
        write_png(aligned / f"{name}_aligned.jpg", cv2.resize(face, (100, 100)))
        raf = {v: k for k, v in face_sources.RAF_NUMBERING.items()}[label]
        lines.append(f"{name}.jpg {raf}")
    lines.append("train_99999.jpg 9")  # a label RAF-DB does not have
    (tmp_path / "basic" / "EmoLabel").mkdir(parents=True)
    (tmp_path / "basic" / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "prepared_here"
    summary = generate_data.prepare(tmp_path, out=out, framing="mapping")
    assert summary["kind"] == "rafdb" and summary["framing"] == "mapping" and summary["bad_rows"] == 1
    assert summary["splits"]["test"]["faces"] == 7 and summary["splits"]["train"]["faces"] + \
        summary["splits"]["val"]["faces"] == 70
    _, test_labels = read_labels_csv(split_dir(out, "test"))
    assert sorted(test_labels) == list(range(7))
    assert not (tmp_path / "prepared").exists()  # --out: nothing is written into the source
