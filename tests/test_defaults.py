"""Documented defaults and invariants that no other test would notice changing, and the renamed public names."""
import inspect

import pytest
import torch
from conftest import run_args, shipped

from deep_emotion import recognizer as emotion_detector
from deep_emotion import train as main
from deep_emotion import visualize
from deep_emotion.config import CONFIG_KEYS, build_config, upgrade
from deep_emotion.data import prepare as generate_data
from deep_emotion.inference import load_checkpoint
from deep_emotion.recipes import RECIPES
from deep_emotion.tracking import Tracker
from deep_emotion.utils import file_sha256


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


def recipe_config(*argv):
    """The RunConfig train.py builds for these flags (no resumed run)."""
    args = run_args(main, "--train", *argv)
    return build_config({key: getattr(args, key) for key in CONFIG_KEYS}, torch.device("cpu"))


@pytest.mark.parametrize("name, arch", [("deep_emotion.pt", "deep_emotion"),
                                        ("deep_emotion_vgg.pt", "deep_emotion_vgg")])
def test_a_run_with_no_flags_is_the_recipe_of_the_shipped_checkpoint(name, arch):
    """Defaults reproduce the README's numbers: the configuration a run with no flags (but --arch) builds is the one
    recorded in the checkpoint the README's row comes from, key for key."""
    recorded = upgrade(load_checkpoint(shipped(name))["config"])
    built = recipe_config("--arch", arch).to_dict()
    differing = {key: (built[key], recorded[key]) for key in RECIPES[arch] if built[key] != recorded[key]}
    assert differing == {}
    assert (built["targets"], built["source_weights"]) == ("label", None)


def test_the_default_val_carve_and_model():
    args = run_args(generate_data)
    assert (args.val_fraction, args.seed, args.framing) == (0.1, 0, "auto")
    # the pair (two two-head networks as one) is the default of visualize.py, the API and the export
    default = shipped("deep_emotion_pair.pt")
    assert visualize.DEFAULT_MODEL == emotion_detector.DEFAULT_MODEL == default
    assert inspect.signature(emotion_detector.EmotionRecognizer).parameters["model_path"].default == default
    assert run_args(visualize).model == [str(default)] and run_args(visualize, "--detect_every", "2").detect_every == 2
    from deep_emotion import export_onnx
    assert run_args(export_onnx).full_model == str(default)  # the page's ?model=full; its default is the light twin


def test_the_default_joins_the_shipped_networks_calibrated_as_a_whole():
    checkpoint = load_checkpoint(shipped("deep_emotion_pair.pt"))
    members = [shipped("deep_emotion_vgg_heads.pt"), shipped("face_resnet.pt")]
    assert checkpoint["members"] == [{"file": p.name, "sha256": file_sha256(p)} for p in members]  # the files shipped
    assert [m["temperature"] for m in checkpoint["arch_args"]["members"]] == [
        load_checkpoint(p)["temperature"] for p in members]
    assert checkpoint["calibration"]["fitted_on"] == ["PublicTest", "raf_crop150c_a val"]  # never half B
    assert 0 < checkpoint["prior_exponent"] <= 1 and checkpoint["temperature"] != 1.0


