"""The browser page (web/) in headless Chromium: the same faces, labels and probabilities as the Python
pipeline on the same frames, and a clear message for each kind of bad input."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import web_harness as harness  # noqa: E402
from conftest import shipped

from deep_emotion.face_detectors import PACKAGED_YUNET  # noqa: E402
from deep_emotion.recognizer import EmotionRecognizer  # noqa: E402
from deep_emotion.tracking import iou  # noqa: E402

YUNET = Path(os.environ.get("DEEP_EMOTION_YUNET") or PACKAGED_YUNET)
MISSING = harness.missing_requirements() or (None if YUNET.is_file() else f"{YUNET} is not here")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"the browser test cannot run: {MISSING}")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from deep_emotion import export_onnx
    folder = tmp_path_factory.mktemp("web_models")
    export_onnx.export_web({"default": shipped("deep_emotion_vgg.pt"), "paper": shipped("deep_emotion.pt")}, YUNET,
                           folder)
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return harness.write_clip(tmp_path_factory.mktemp("clip") / "face.y4m", frames=30)


def test_the_page_reads_faces_as_the_python_pipeline_does(models, clip, tmp_path):
    site = harness.make_site(tmp_path / "site", models)
    with harness.page_session(site, clip, "capture=10&backend=wasm") as page:
        frames = harness.wait_for_frames(page, 10)
        pictures = harness.captured_frames(page)
        assert page.evaluate("window.deepEmotion.backend") == "wasm"
        page_detect_every = page.evaluate("window.deepEmotion.detectEvery")
        page_classify_every = page.evaluate("window.deepEmotion.classifyEvery")
    assert len(pictures) == 10 and pictures[0].shape == (480, 640, 3)
    recognizer = EmotionRecognizer(shipped("deep_emotion_vgg.pt"), detector="yunet", detector_model=YUNET)
    assert page_detect_every == recognizer.detect_every > 1  # the page searches and classifies as visualize.py
    assert page_classify_every == recognizer.classify_every
    pairs = []
    for page_frame, picture in zip(frames, pictures):
        expected = recognizer.detect_emotions(picture)  # the same pixels, through the Python pipeline
        assert len(page_frame["faces"]) == len(expected)
        pairs += zip(expected, page_frame["faces"])
    assert len(pairs) >= 9  # the face is found in (nearly) every frame: the comparison is not vacuous
    for python, browser in pairs:
        assert iou(python["box"], browser["box"]) >= 0.8 and python["face"] == browser["face"]
        assert python["found"] == browser["found"]  # searched, or followed, on the same frames
        assert np.allclose(list(python["emotions"].values()), browser["probabilities"], atol=0.02)
    assert sum(p["label"] == b["label"] for p, b in pairs) >= 0.98 * len(pairs)
    assert {p["found"] for p, _ in pairs} == {"search", "followed"}  # followed frames are compared too


def face_resnet_site(folder, face_input):
    """The page's files with an (untrained) face_resnet network reading face_input as its classifier; its heads
    scaled up so that its probabilities are far from uniform and a crop of other pixels shows."""
    import torch

    from deep_emotion import export_onnx
    from deep_emotion.emotions import CLASS_NAMES
    from deep_emotion.model import FaceResNet
    torch.manual_seed(0)
    arch_args = {"input_size": 112, "image_size": face_input.size, "in_channels": face_input.channels}
    model = FaceResNet(**arch_args)
    with torch.no_grad():
        model.classifier.weight.mul_(30)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / "face_resnet.pt"
    torch.save({"model": model.state_dict(), "arch": "face_resnet", "arch_args": arch_args,
                "class_names": list(CLASS_NAMES), "normalization": list(FaceResNet.INPUT_NORMALIZATION)}, checkpoint)
    manifest = export_onnx.export_web({"default": checkpoint}, YUNET, folder)
    assert manifest["classifiers"]["default"]["input"] == {"size": face_input.size, "channels": face_input.channels}
    return folder, checkpoint


@pytest.mark.parametrize("network", ["deep_emotion_vgg", "face_resnet_grey48", "face_resnet_rgb112"])
def test_a_photo_from_the_file_picker_is_read_as_a_still(network, models, tmp_path):
    from deep_emotion.emotions import FaceInput
    if network.startswith("face_resnet"):  # the page crops each face at the network's size, in its colours
        face_input = FaceInput(112, 3) if network.endswith("rgb112") else FaceInput(48, 1)
        models, checkpoint = face_resnet_site(tmp_path / "models", face_input)
    else:
        checkpoint = shipped("deep_emotion_vgg.pt")
    site = harness.make_site(tmp_path / "site", models)
    photo = tmp_path / "face.png"
    cv2.imwrite(str(photo), harness.face_frame(10))
    with harness.page_session(site, None, "camera=0&backend=wasm") as page:
        page.wait_for_function("window.deepEmotion.ready")
        page.set_input_files("#file", str(photo))
        frames = harness.wait_for_frames(page, 1)
    recognizer = EmotionRecognizer(checkpoint, detector="yunet", detector_model=YUNET, stills=True)
    expected = recognizer.detect_emotions(cv2.imread(str(photo)))
    assert len(frames[0]["faces"]) == len(expected) == 1
    assert np.allclose(list(expected[0]["emotions"].values()), frames[0]["faces"][0]["probabilities"], atol=0.02)
    if network.endswith("rgb112"):  # the comparison can fail: the same face with red and blue swapped reads apart
        swapped = recognizer.detect_emotions(cv2.imread(str(photo))[:, :, ::-1].copy())
        assert np.abs(np.subtract(list(swapped[0]["emotions"].values()),
                                  list(expected[0]["emotions"].values()))).max() > 0.05


def error_text(page):
    page.wait_for_function("window.deepEmotion && window.deepEmotion.error")
    assert page.is_visible("#error")  # said on the page, not only in the console
    return page.inner_text("#error")


def test_no_camera_is_a_message_on_the_page(models, tmp_path):
    site = harness.make_site(tmp_path / "site", models)
    with harness.page_session(site, None, "backend=wasm", camera_allowed=False) as page:
        message = error_text(page)
    assert "pick a photo or video file" in message and ("refused" in message or "No camera" in message), message


def test_missing_model_files_are_a_message_on_the_page(tmp_path):
    site = harness.make_site(tmp_path / "site", None)
    with harness.page_session(site, None, "camera=0") as page:
        message = error_text(page)
        assert page.inner_text("#status") == "stopped"
    assert "model files are missing" in message and "deep-emotion export --web" in message


def test_a_video_the_browser_cannot_decode_is_a_message_on_the_page(models, tmp_path):
    site = harness.make_site(tmp_path / "site", models)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    with harness.page_session(site, None, "camera=0&backend=wasm") as page:
        page.wait_for_function("window.deepEmotion.ready")
        page.set_input_files("#file", str(broken))
        message = error_text(page)
    assert "cannot decode" in message and "broken.mp4" in message


def test_the_page_names_the_engine_that_runs_and_asks_for_nothing_missing(models, tmp_path):
    """Headless Chromium knows WebGPU (`"gpu" in navigator`) but has no adapter: the models run on WASM, and the
    page must say so; and no file it asks for is missing (the browser's /favicon.ico included)."""
    site = harness.make_site(tmp_path / "site", models)
    with harness.page_session(site, None, "camera=0") as page:
        missing = []
        page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
        page.reload()
        page.wait_for_function("window.deepEmotion && (window.deepEmotion.ready || window.deepEmotion.error)")
        assert page.evaluate("'gpu' in navigator")  # the case the page used to call WebGPU
        has_adapter = page.evaluate("navigator.gpu.requestAdapter().then(a => a !== null)")
        shown = page.inner_text("#backend")
    assert shown.startswith("WebGPU" if has_adapter else "WASM"), shown
    assert missing == []
