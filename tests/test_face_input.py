"""The faces a network reads (emotions.FaceInput: size and colours) travel with its checkpoint, and every consumer
follows it: prepared data, training, the teacher's targets, test, the live crop, the API and ONNX export.
Existing 48x48 grey checkpoints read as before (their tests elsewhere)."""
import json

import numpy as np
import pytest
from conftest import FAST, colour_face_folder, run_args

from deep_emotion import distillation, onnx_classifier, onnx_export, visualize
from deep_emotion import train as main
from deep_emotion.data import prepare
from deep_emotion.data.loaders import load_split
from deep_emotion.data.prepared import DataError
from deep_emotion.emotions import DEFAULT_FACE_INPUT, FaceInput
from deep_emotion.face_detectors import crop_face, fit_face, fit_faces, frame_pixels
from deep_emotion.inference import Ensemble, load_model
from deep_emotion.recognizer import DEFAULT_MODEL, EmotionRecognizer

COLOUR = FaceInput(32, 3)
COLOUR_VGG = ["--arch", "deep_emotion_vgg", "--arch_args", json.dumps({"width": 4, "image_size": 32, "in_channels": 3})]


def train(data_dirs, out, *extra):
    return main.main(run_args(main, "--train", "--data", *data_dirs, "--out", out, *FAST, "--epochs", "1", *extra))


def test_a_face_input_is_grey_or_rgb_and_knows_its_batch_shape():
    assert FaceInput() == FaceInput(48, 1) and FaceInput().shape(5) == (5, 48, 48)
    assert COLOUR.colour and COLOUR.shape(2) == (2, 32, 32, 3) and COLOUR.describe() == "32x32 RGB"
    for bad in [(48, 2), (4, 1)]:
        with pytest.raises(ValueError):
            FaceInput(*bad)


def test_frames_and_faces_become_what_the_network_reads():
    frame = np.zeros((60, 80, 3), np.uint8)
    frame[..., 2] = 200  # red, in OpenCV's BGR order
    rgb = frame_pixels(frame, COLOUR)
    assert rgb.shape == (60, 80, 3) and rgb[0, 0].tolist() == [200, 0, 0]
    assert frame_pixels(frame).shape == (60, 80)
    face = crop_face(rgb, {"box": (20, 10, 30, 30), "landmarks": None}, size=32)
    assert face.shape == (32, 32, 3) and face[5, 5].tolist() == [200, 0, 0]
    assert fit_face(np.full((10, 10), 7, np.uint8), COLOUR).shape == (32, 32, 3)  # grey repeated, enlarged
    assert fit_face(rgb[:48, :48], FaceInput()).shape == (48, 48)


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory):
    root = colour_face_folder(tmp_path_factory.mktemp("colour_faces") / "faces")
    summary = prepare.prepare(root, framing="as_given", face_input=COLOUR)
    assert summary["face_input"] == {"size": 32, "channels": 3}
    return root


def test_prepare_keeps_a_face_folder_at_the_size_and_in_the_colours_asked(colour_data, tmp_path):
    images, labels, _ = load_split(colour_data, "train", face_input=COLOUR)
    assert images.shape == (len(labels), 32, 32, 3)
    assert (images[..., 0].float().mean() > 150) and (images[..., 2].float().mean() < 10)  # RGB: red first
    grey, _, _ = load_split(colour_data, "train")  # a grey network reads the same folder its own way
    assert grey.shape == (len(labels), 48, 48)
    summary = prepare.prepare(colour_data, framing="as_given", face_input=FaceInput(40, 3))
    assert summary["rebuilt_because"] == "its faces are 32x32 RGB, not 40x40 RGB"
    prepare.prepare(colour_data, framing="as_given", face_input=COLOUR)
    args = run_args(prepare, "--data", colour_data, "--face_size", "32", "--colour", "--framing", "as_given")
    assert (args.face_size, args.colour) == (32, True)


def test_a_face_folder_is_kept_as_the_default_model_reads_faces_unless_told(tmp_path):
    root = colour_face_folder(tmp_path / "faces", per_class=2)
    assert load_model(DEFAULT_MODEL)[0].face_input == DEFAULT_FACE_INPUT  # 150x150 colour: what it is kept at
    summary = prepare.main(run_args(prepare, "--data", root, "--framing", "as_given"))
    assert summary["face_input"] == {"size": DEFAULT_FACE_INPUT.size, "channels": DEFAULT_FACE_INPUT.channels}
    images, _, _ = load_split(root, "train", face_input=DEFAULT_FACE_INPUT)
    assert images.shape[1:] == (150, 150, 3) and images[..., 0].float().mean() > 150  # red kept, not greyed
    summary = prepare.main(run_args(prepare, "--data", root, "--framing", "as_given", "--colour", "false"))
    assert summary["face_input"] == {"size": 48, "channels": 1}  # one flag given: the other as before, 48 grey


def test_fer2013s_grey_48x48_faces_refuse_a_colour_build_in_one_line(prepared):
    with pytest.raises(DataError, match="48x48 grey faces .*--face_size and --colour are for face folders"):
        prepare.prepare(prepared, face_input=COLOUR)


@pytest.fixture(scope="module")
def colour_run(colour_data, prepared, tmp_path_factory):
    """A colour network trained two steps on the colour folder and the grey FER2013-style one together."""
    return train([prepared, colour_data], tmp_path_factory.mktemp("colour_run"), *COLOUR_VGG, "--max_steps", "2")


def test_a_colour_network_trains_on_grey_and_colour_folders_and_its_checkpoint_says_so(colour_run):
    model, checkpoint = load_model(colour_run / "best.pt")
    assert model.face_input == COLOUR and checkpoint["arch_args"]["in_channels"] == 3
    assert Ensemble(colour_run / "best.pt").face_input == COLOUR


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_test_scores_a_colour_network_on_its_own_crops(colour_run, prepared, tmp_path, monkeypatch, backend):
    seen = []
    engine = {"torch": Ensemble, "onnx": onnx_classifier.OnnxClassifier}[backend]
    real_predict = engine.predict
    monkeypatch.setattr(engine, "predict", lambda self, faces, *a: seen.append(faces.shape) or
                        real_predict(self, faces, *a))
    metrics = visualize.main(run_args(visualize, "--test_cc", "--data", prepared, "-m", colour_run / "best.pt",
                                      "--figures", tmp_path / "figures", "--backend", backend))
    assert seen[0][1:] == (32, 32, 3) and metrics["total"] == seen[0][0]


def test_the_live_crop_follows_the_network(colour_run, monkeypatch):
    recognizer = EmotionRecognizer(colour_run / "best.pt", stills=True)
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[..., 2] = 220  # a red frame (BGR)
    monkeypatch.setattr(recognizer, "find_faces", lambda f: [{"box": (60, 60, 80, 80), "landmarks": None}])
    crops = []
    real_classify = recognizer.classify
    monkeypatch.setattr(recognizer, "classify", lambda faces: crops.extend(faces) or real_classify(faces))
    assert len(recognizer.detect_emotions(frame)) == 1
    assert crops[0].shape == (32, 32, 3) and crops[0][0, 0].tolist() == [220, 0, 0]


def test_a_colour_network_exports_to_onnx_with_the_same_answers(colour_run, tmp_path):
    faces = np.random.default_rng(0).integers(0, 256, COLOUR.shape(4), dtype=np.uint8)
    path = onnx_export.export(colour_run / "best.pt", tmp_path / "colour.onnx")
    exported = onnx_classifier.OnnxClassifier(path, tta="shifts")
    assert exported.face_input == COLOUR
    expected = Ensemble(colour_run / "best.pt", tta="shifts").predict(faces)
    assert np.abs(exported.predict(faces) - expected).max() < 1e-4


def test_a_teacher_reads_its_own_crops_and_an_ensemble_the_widest(colour_run, prepared, colour_data, tmp_path,
                                                                    monkeypatch):
    grey_teacher = train([prepared, colour_data], tmp_path / "grey", "--arch", "deep_emotion_vgg", "--arch_args",
                         '{"width": 4}', "--max_steps", "1")
    shapes = []
    real_predict = distillation.predict
    monkeypatch.setattr(distillation, "predict", lambda model, faces, *a, **k: shapes.append(tuple(faces.shape))
                        or real_predict(model, faces, *a, **k))
    student = train([prepared, colour_data], tmp_path / "student", *COLOUR_VGG, "--max_steps", "1",
                    "--teacher", f"{grey_teacher / 'best.pt'},{colour_run / 'best.pt'}")
    assert load_model(student / "best.pt")[0].face_input == COLOUR
    assert [shape[1:] for shape in shapes] == [(48, 48), (32, 32, 3)] and shapes[0][0] == shapes[1][0]
    # an ensemble of the two reads 48x48 colour faces, from which each member cuts its own
    pair = Ensemble([grey_teacher / "best.pt", colour_run / "best.pt"])
    assert pair.face_input == FaceInput(48, 3)
    faces = np.random.default_rng(1).integers(0, 256, pair.face_input.shape(6), dtype=np.uint8)
    each = [Ensemble(run / "best.pt").predict(fit_faces(faces, reads))
            for run, reads in [(grey_teacher, FaceInput()), (colour_run, COLOUR)]]
    assert np.abs(pair.predict(faces) - np.mean(each, axis=0)).max() < 1e-6
    exported = [onnx_export.export(run / "best.pt", tmp_path / f"{i}.onnx")
                for i, run in enumerate((grey_teacher, colour_run))]
    onnx_pair = onnx_classifier.OnnxClassifier(exported)
    assert onnx_pair.face_input == pair.face_input
    assert np.abs(onnx_pair.predict(faces) - np.mean(each, axis=0)).max() < 1e-4


def test_test_says_in_one_line_when_a_folders_faces_fall_short_of_what_the_model_reads(colour_run, prepared,
                                                                                        tmp_path, capsys):
    note = visualize.face_input_note("data/raf", FaceInput(), FaceInput(150, 3))  # a face folder kept small
    assert note.startswith("note: the model reads 150x150 RGB faces and data/raf keeps 48x48 grey: they are "
                           "enlarged 3.1x from 48x48 and without colour") and "--face_size 150 --colour" in note
    assert visualize.face_input_note("data/raf", FaceInput(150, 3), FaceInput()) is None  # shrunk and greyed: fine
    visualize.main(run_args(visualize, "--test_cc", "--data", prepared, "-m", colour_run / "best.pt", "--figures",
                            tmp_path))  # a colour network on the synthetic folder's grey faces
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "without colour" in notes[0] and "enlarged" not in notes[0]
    # FER2013's sources hold nothing larger: the note does not send the user to prepare them again
    assert notes[0].endswith("FER2013 holds only 48x48 grey faces") and "--colour" not in notes[0]
