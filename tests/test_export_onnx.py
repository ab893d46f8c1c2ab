"""export_onnx.py's --web: where the page's files go without --web_dir, and what models.json gives the page."""
import json
import re

from conftest import ROOT, shipped

from deep_emotion import export_onnx
from deep_emotion.recognizer import pipeline_settings


def test_the_page_files_go_to_the_checkouts_web_folder_or_under_the_current_one(tmp_path):
    assert export_onnx.default_web_dir(ROOT) == ROOT / "web" / "models"
    assert export_onnx.default_web_dir(ROOT / "deep_emotion" / "data") == ROOT / "web" / "models"
    assert export_onnx.default_web_dir(tmp_path) == tmp_path.resolve() / "web" / "models"  # never site-packages


def test_the_page_reads_every_number_python_gives_it_and_no_other():
    """pipeline.js's SETTING_NAMES (what configure() requires of models.json) are the keys pipeline_settings()
    writes: a constant added on one side and not the other fails here, before the page drifts from Python."""
    source = (ROOT / "web" / "pipeline.js").read_text()
    names = re.search(r"SETTING_NAMES = \[([^\]]*)\]", source)
    assert names, "pipeline.js no longer lists SETTING_NAMES"
    assert set(re.findall(r'"(\w+)"', names.group(1))) == set(pipeline_settings())
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pipeline_settings().values())


def test_export_web_from_another_folder_writes_there_and_says_where(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    written = export_onnx.main(export_onnx.get_args_parser().parse_args(
        ["--web", "--model", str(shipped("deep_emotion.pt")), "--full_model", "", "--paper_model", ""]))
    assert written == tmp_path.resolve() / "web" / "models"
    manifest = json.loads((written / "models.json").read_text())
    assert manifest["pipeline"] == pipeline_settings() and (written / "yunet.onnx").stat().st_size > 100_000
    captured = capsys.readouterr()
    assert len(captured.out.strip().splitlines()) == 1 and f"to {written};" in captured.out
    assert "copy these into its web/models/ and run `deep-emotion serve`" in captured.out  # no page here to serve
    assert captured.err == ""  # the exporter's warnings are kept quiet
