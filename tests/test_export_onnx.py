"""export_onnx.py's --web: where the page's files go without --web_dir, and what models.json gives the page."""
import json

import pytest
from conftest import ROOT, shipped

from deep_emotion import export_onnx, face_detectors, tracking
from deep_emotion.recognizer import pipeline_settings


def test_the_page_files_go_to_the_checkouts_web_folder_or_under_the_current_one(tmp_path):
    assert export_onnx.default_web_dir(ROOT) == ROOT / "web" / "models"
    assert export_onnx.default_web_dir(ROOT / "deep_emotion" / "data") == ROOT / "web" / "models"
    assert export_onnx.default_web_dir(tmp_path) == tmp_path.resolve() / "web" / "models"  # never site-packages


def test_the_pipelines_numbers_come_from_their_python_definitions():
    settings = pipeline_settings()
    assert settings["yunet_crop_scale"] == face_detectors.YUNET_CROP_SCALE
    assert settings["yunet_score_threshold"] == face_detectors.YUNET_SCORE_THRESHOLD
    assert (settings["max_missed"], settings["iou_threshold"]) == (tracking.MAX_MISSED, tracking.IOU_THRESHOLD)
    assert all(isinstance(v, (int, float)) for v in settings.values())


@pytest.mark.slow
def test_export_web_from_another_folder_writes_there_and_says_where(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    written = export_onnx.main(export_onnx.get_args_parser().parse_args(
        ["--web", "--model", str(shipped("deep_emotion.pt")), "--full_model", "", "--paper_model", ""]))
    assert written == tmp_path.resolve() / "web" / "models"
    manifest = json.loads((written / "models.json").read_text())
    assert manifest["pipeline"] == pipeline_settings() and (written / "yunet.onnx").stat().st_size > 100_000
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1 and f"to {written};" in out
