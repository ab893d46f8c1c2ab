"""Documented defaults and invariants that no other test would notice changing, and the renamed public names."""
import inspect

import torch
from conftest import run_args, shipped

from deep_emotion import face_detectors, visualize
from deep_emotion import recognizer as emotion_detector
from deep_emotion import train as main
from deep_emotion.config import CONFIG_KEYS, build_config
from deep_emotion.data import prepare as generate_data
from deep_emotion.tracking import Tracker


def test_the_default_tracker_keeps_a_face_through_five_missed_frames():
    tracker = Tracker()  # the API's and the live loop's tracker
    assert tracker.update([(100, 100, 50, 50)])[0].id == 0
    for _ in range(5):
        tracker.update([])
    assert tracker.update([(101, 100, 50, 50)])[0].id == 0  # away for 5 frames: the same face
    for _ in range(6):
        tracker.update([])
    assert tracker.update([(101, 100, 50, 50)])[0].id == 1  # away for 6: a new track


def test_the_recognizer_uses_the_default_tracker_and_no_smoothing(checkpoint):
    recognizer = emotion_detector.EmotionRecognizer(checkpoint)
    assert recognizer.tracker.max_missed == Tracker().max_missed == 5 and recognizer.smooth == 0.0


def test_the_documented_old_api_name_still_works():
    assert emotion_detector.EmotionDetector is emotion_detector.EmotionRecognizer


def test_yunet_thresholds_are_opencvs_sample_values():
    # the browser page (web/) decodes YuNet with the same thresholds; both must move together
    defaults = inspect.signature(face_detectors.YuNetDetector.__init__).parameters
    assert defaults["score_threshold"].default == 0.6
    assert face_detectors.YUNET_NMS_THRESHOLD == 0.3 and face_detectors.YUNET_CROP_SCALE == 1.23


def recipe_config(*argv):
    """The RunConfig train.py builds for these flags (no resumed run)."""
    args = run_args(main, "--train", *argv)
    return build_config({key: getattr(args, key) for key in CONFIG_KEYS}, torch.device("cpu"))


def test_the_default_recipes_are_the_readmes():
    config = recipe_config()
    assert (config.arch, config.epochs, config.batch_size, config.learning_rate, config.optimizer) == \
        ("deep_emotion", 200, 256, 0.003, "adamw")
    assert config.teacher == "weights/deep_emotion_vgg.pt"
    assert (config.targets, config.source_weights) == ("label", None)
    vgg = recipe_config("--arch", "deep_emotion_vgg")
    assert (vgg.epochs, vgg.learning_rate, vgg.optimizer, vgg.arch_args) == (60, 0.03, "sgd", {"width": 48})


def test_the_default_val_carve_and_model():
    args = run_args(generate_data)
    assert (args.val_fraction, args.seed, args.framing) == (0.1, 0, "auto")
    # the two-head model (FER+ sense, FER2013 head) is the default of visualize.py, the API and the export
    default = shipped("deep_emotion_vgg_heads.pt")
    assert visualize.DEFAULT_MODEL == emotion_detector.DEFAULT_MODEL == default
    assert inspect.signature(emotion_detector.EmotionRecognizer).parameters["model_path"].default == default
    assert run_args(visualize).model == [str(default)] and run_args(visualize, "--detect_every", "2").detect_every == 2
    from deep_emotion import export_onnx
    assert run_args(export_onnx).full_model == str(default)  # the page's ?model=full; its default is the light twin


