"""Every benchmark and entry script runs, on tiny data, as its command line would (pytorch/examples' --dry-run).

Each asserts on what the script printed or wrote, so a script broken by a change elsewhere fails here.
"""
import csv
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import urllib.request

import onnxruntime
import pytest
from conftest import ROOT, add_votes, colour_face_folder, run_args, shipped

from deep_emotion.data.loaders import load_split
from deep_emotion.data.synthetic_faces import SYNTHETIC_CSV

BENCHMARKS = ROOT / "benchmarks"


def run(*argv, timeout=240, cwd=ROOT):
    """Runs a script with this Python; returns its stdout (failing the test on a non-zero exit)."""
    result = subprocess.run([sys.executable, *map(str, argv)], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_every_benchmark_script_has_a_smoke_test():
    """Each script in benchmarks/ is run by a test: named by its file in a test module, or imported by one."""
    suite = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    scripts = {p.name for p in BENCHMARKS.iterdir() if p.suffix in (".py", ".sh")} - {"common.py"}
    untested = sorted(name for name in scripts
                      if f'"{name}"' not in suite and f"import {name.removesuffix('.py')}" not in suite)
    assert untested == []  # a new script needs its smoke test here


def test_ablation_table_reads_the_committed_logs():
    out = run(BENCHMARKS / "ablation_table.py", ROOT / "results" / "h200_ablation")
    assert out.count("\n| ") >= 5 and "%" in out


def test_backend_speed(checkpoint, prepared, tmp_path):
    run(BENCHMARKS / "backend_speed.py", "--model", checkpoint, "--data", prepared, "--repeats", "1",
        "--json", tmp_path / "r.json")
    result = json.loads((tmp_path / "r.json").read_text())
    reported, accuracy = result["reported"], result["publictest_accuracy"]
    assert {"pytorch fp32: one face", "pytorch fp32 folded: one face", "onnxruntime fp32: one face"} <= set(reported)
    assert all(r["median"] > 0 for r in reported.values())
    assert all(0 <= a <= 1 for a in accuracy.values()) and accuracy
    assert accuracy["pytorch fp32 folded"] == pytest.approx(accuracy["pytorch fp32"], abs=0.01)  # the same answers


def test_code_shape_goals_are_met(tmp_path):
    run(BENCHMARKS / "code_shape.py", "--json", tmp_path / "shape.json")
    shape = json.loads((tmp_path / "shape.json").read_text())
    assert shape["missed"] == [] and shape["cycles"] == [] and shape["elsewhere"] == []
    assert shape["layers"] == [] and set(shape["torch"]) >= {"deep_emotion", "deep_emotion.onnx_classifier"}
    assert not any(shape["torch"].values())


def test_code_shape_finds_an_import_cycle():
    sys.path.insert(0, str(BENCHMARKS))
    import code_shape
    assert code_shape.import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert code_shape.import_cycles({"model": {"emotions"}, "inference": {"model"}}) == []


def test_code_shape_finds_an_import_that_points_up_the_layers():
    sys.path.insert(0, str(BENCHMARKS))
    import code_shape
    assert code_shape.layer_violations({"data.training_data": {"engine", "emotions"}, "engine": {"data.loaders"},
                                        "emotions": set()}) == [
        "data.training_data (data) imports engine (training)"]
    assert code_shape.layer_violations({"newcomer": set()}) == ["newcomer is in no layer of LAYERS"]


def test_corpus_speed_times_whole_commands(tmp_path):
    run(BENCHMARKS / "corpus_speed.py", "--clips", "2", "--clip_seconds", "1", "--repeats", "1", "--ray", "0",
        "--long_minutes", "0.05", "--json", tmp_path / "c.json", timeout=400)
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["video_seconds"] == 2 and set(result["factors"]) == {
        "1 worker, every frame", "2 workers, every frame", "1 worker, --sample_fps 1", "2 workers, --sample_fps 1"}
    assert all(factor > 0 for factor in result["factors"].values()) and result["memory_ratio"] > 0


def test_face_framing(prepared, tmp_path):
    run(BENCHMARKS / "face_framing.py", "--data", prepared, "--count", "10", "--json", tmp_path / "f.json")
    result = json.loads((tmp_path / "f.json").read_text())
    assert result["tried"] == 10 and 0 <= result["detected"] <= 10
    if result["detected"]:
        assert result["reported"]["FER side / box width"]["median"] > 0


@pytest.mark.parametrize("overlap", ["0", "1"])
def test_live_fps(checkpoint, prepared, overlap):
    out = run(BENCHMARKS / "live_fps.py", "--data", prepared, "--model", checkpoint, "--frames", "3", "--repeats", "1",
              "--overlap", overlap, "--detect_every", "1", "3")
    rates = re.findall(r"detect_every (\d): pipeline: median ([\d.]+) frames/s", out)
    assert [n for n, _ in rates] == ["1", "3"] and all(float(r) > 0 for _, r in rates) and "classify" in out


def test_live_pair_runs_the_two_sides_in_turn_and_gives_their_ratio(checkpoint, prepared):
    out = run(BENCHMARKS / "live_pair.py", "--data", prepared, "--frames", "6", "--rounds", "2",
              "--a_model", checkpoint, "--b_model", checkpoint, "--b_backend", "torch")
    a, b = (float(re.search(rf"{side} frames/s: median ([\d.]+)", out).group(1)) for side in "AB")
    ratio = float(re.search(r"B / A, round by round: median ([\d.]+) x over 2 runs", out).group(1))
    assert a > 0 and b > 0 and "overlap 0" in out and "overlap 1" in out and 0.2 < ratio < 5


def test_val_halves_split_one_carve_alike_in_every_folder(tmp_path):
    from deep_emotion.data import prepare
    root = colour_face_folder(tmp_path / "faces", per_class=20)  # 2 val faces a class: 1 in each half
    grey, colour = tmp_path / "grey", tmp_path / "colour"
    prepare.main(run_args(prepare, "--data", root, "--out", grey, "--framing", "as_given", "--colour", "false"))
    prepare.main(run_args(prepare, "--data", root, "--out", colour, "--framing", "as_given"))
    run(BENCHMARKS / "val_halves.py", grey, colour)

    def origins(folder):
        with open(folder / "prepared" / "val" / "labels.csv", newline="") as f:
            return [(row["origin"], row["label"]) for row in csv.DictReader(f)]

    whole = origins(grey)
    a, b = origins(tmp_path / "grey_a"), origins(tmp_path / "grey_b")
    assert sorted(a + b) == sorted(whole) and not set(a) & set(b)
    assert (a, b) == (origins(tmp_path / "colour_a"), origins(tmp_path / "colour_b"))  # the same faces in each
    for label in {label for _, label in whole}:  # each class cut in two
        assert abs(sum(lab == label for _, lab in a) - sum(lab == label for _, lab in b)) <= 1
    assert len(load_split(tmp_path / "colour_a", "val")[1]) == len(a)  # a prepared folder every command reads


def test_follow_faces_compares_each_interval_with_every_frame_search(checkpoint, prepared, tmp_path):
    run(BENCHMARKS / "follow_faces.py", "--data", prepared, "--model", checkpoint, "--frames", "12", "--repeats", "1",
        "--max_every", "2", "--out", tmp_path / "f.json")
    table = json.loads((tmp_path / "f.json").read_text())["table"]
    assert set(table) == {f"{clip}|{n}|{m}" for clip in ("live_fps video", "fast faces")
                          for n, m in ((1, 1), (2, 2), (2, 1))}
    every_frame = table["live_fps video|1|1"]
    assert every_frame["followed_share"] == 0 and every_frame["labels_alike"] in (1.0, None)
    assert all(row["frames_per_s"] > 0 for row in table.values())


def test_pipeline_accuracy(checkpoint, prepared):
    out = run(BENCHMARKS / "pipeline_accuracy.py", "--data", prepared, "--model", checkpoint, "--count", "5")
    found = int(re.search(r"found (\d+) of 5 faces", out).group(1))
    direct, pipeline = (float(v) for v in re.findall(r": ([\d.]+)%", out))
    # each figure counts right answers among the faces found: a whole number of them
    assert 0 <= found <= 5 and all(round(v * max(found, 1) / 100, 6) % 1 == 0 for v in (direct, pipeline))


def test_setup_speed(tmp_path):
    csv = ROOT / "data" / "synthetic" / (SYNTHETIC_CSV + ".gz")
    run(BENCHMARKS / "setup_speed.py", "--csv", csv, "--repeats", "1", "--tmp", tmp_path, "--json", tmp_path / "s.json")
    result = json.loads((tmp_path / "s.json").read_text())
    ours, original = result["reported"]["ours"]["median"], result["reported"]["original approach"]["median"]
    assert ours > 0 and original > 0 and result["ratio"] == pytest.approx(ours / original)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # every conversion's folder removed


def test_train_throughput(prepared, tmp_path):
    run(BENCHMARKS / "train_throughput.py", "--data", prepared, "--steps", "2", "--repeats", "1", "--batch_size", "16",
        "--json", tmp_path / "t.json")
    reported = json.loads((tmp_path / "t.json").read_text())["reported"]
    assert reported and all(r["unit"] == "images/s" and r["median"] > 0 for r in reported.values())


def test_gpu_epoch_times_dry_run_on_the_cpu(tmp_path):
    result = subprocess.run(["bash", str(BENCHMARKS / "gpu_epoch_times.sh"), "cpu", "1", "40", "1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=400,
                            env={"OUT": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    # the timings (and any traceback) go to stdout and epoch_times.txt; stderr holds the data's progress bars
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-500:]
    text = (tmp_path / "epoch_times.txt").read_text()
    assert text.count("ours (") == 4 and "deep_emotion_vgg" in text  # two networks x two precisions


@pytest.mark.skipif(importlib.util.find_spec("face_recognition_models") is None, reason="needs the [pretrained] extra")
def test_gpu_face_trunk_dry_run_on_the_cpu(prepared, tmp_path):
    colour_face_folder(tmp_path / "faces", per_class=10)  # one face a class for val
    voted = tmp_path / "fer"
    shutil.copytree(prepared, voted)
    add_votes(voted, lambda label: [9, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    result = subprocess.run(["bash", str(BENCHMARKS / "gpu_face_trunk.sh"), "cpu", "1", voted,
                             tmp_path / "faces", "1"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={"OUT": str(tmp_path / "out"), "PATH": "/usr/bin:/bin", "PYTHON": sys.executable,
                                 "WORKERS": "1", "BATCH_SIZE": "32",
                                 "SIZES": "112 104"})  # the trunk's smallest inputs: the same steps, less work
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    runs = ["deep_emotion_light_distilled", "deep_emotion_vgg_heads_distilled", "face_resnet104", "face_resnet112"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir()) == runs
    for name in runs:  # each run kept what it was, how it went and its chosen weights
        config = json.loads((tmp_path / "out" / name / "config.json").read_text())
        assert (tmp_path / "out" / name / "best.pt").stat().st_size > 0 and config["epochs"] == 1
    smallest = json.loads((tmp_path / "out" / "face_resnet104" / "config.json").read_text())
    assert smallest["arch_args"]["image_size"] == 104
    assert json.loads((tmp_path / "out" / "deep_emotion_light_distilled" / "config.json").read_text())["teacher"]


def test_web_fps_says_in_one_line_what_it_lacks(tmp_path):
    result = subprocess.run([sys.executable, str(BENCHMARKS / "web_fps.py"), "--models", tmp_path],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "models.json" in result.stderr or "Chromium" in result.stderr or "playwright" in result.stderr.lower()


def web_fps_missing():
    import web_harness
    return web_harness.missing_requirements()


@pytest.mark.skipif(web_fps_missing() is not None, reason=f"the browser benchmark cannot run: {web_fps_missing()}")
def test_web_fps_times_the_page(tmp_path):
    run("-m", "deep_emotion", "export", "--web", "--web_dir", tmp_path / "models",
        "--model", shipped("deep_emotion.pt"), "--paper_model", "", "--full_model", "")
    out = run(BENCHMARKS / "web_fps.py", "--models", tmp_path / "models", "--frames", "2", "--repeats", "1",
              "--threads", "1", "--model", "default", "--screenshot", tmp_path / "page.png", timeout=300)
    rate = float(re.search(r"default, wasm, 1 thread\(s\): frames/s: median ([\d.]+)", out).group(1))
    assert rate > 0 and (tmp_path / "page.png").stat().st_size > 10_000


def test_export_onnx_script_writes_a_file_onnxruntime_runs(checkpoint, tmp_path):
    out = run("-m", "deep_emotion", "export", "--model", checkpoint, "--out", tmp_path / "m.onnx")
    assert "wrote" in out
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    assert [i.name for i in session.get_inputs()] == ["faces"]


def test_export_onnx_web_with_a_wrong_yunet_is_one_line(checkpoint, tmp_path):
    (tmp_path / "yunet.onnx").write_bytes(b"not a model")
    result = subprocess.run([sys.executable, "-m", "deep_emotion", "export", "--web", "--web_dir", str(tmp_path),
                             "--model", str(checkpoint), "--detector_model", str(tmp_path / "yunet.onnx")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "yunet.onnx is not the YuNet model" in result.stderr and not list(tmp_path.glob("*.json"))


def test_serve_sends_the_isolation_headers(tmp_path):
    import threading

    from deep_emotion.serve import serve
    (tmp_path / "index.html").write_text("<p>hello</p>")
    server = serve(tmp_path, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/index.html", timeout=10) as page:
            assert page.read() == b"<p>hello</p>"
            assert page.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert page.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    finally:
        server.shutdown()
        server.server_close()


def test_serve_finds_the_page_from_inside_the_checkout_and_says_in_one_line_where_there_is_none(tmp_path):
    from deep_emotion import serve
    assert serve.page_folder(ROOT / "deep_emotion" / "data") == ROOT / "web"
    assert serve.page_folder(tmp_path) is None
    result = subprocess.run([sys.executable, "-m", "deep_emotion", "serve"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "the page comes with the repository's web/" in result.stderr


def test_timeline_script_from_a_log(tmp_path):
    log = tmp_path / "faces.csv"
    names = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
    rows = ["source,frame,time_s,face,x,y,w,h,label,confidence," + ",".join(names)]
    rows += [f"clip,{f},{f / 10},0,1,1,5,5,Happy,0.9,0,0,0,0.9,0.1,0,0" for f in range(1, 4)]
    log.write_text("\n".join(rows) + "\n")
    run("-m", "deep_emotion", "timeline", log, "--out", tmp_path / "timeline.png")
    summary = json.loads((tmp_path / "timeline.json").read_text())
    assert (tmp_path / "timeline.png").stat().st_size > 1000
    assert summary["0"]["frames"] == 3 and (summary["0"]["first_frame"], summary["0"]["last_frame"]) == (1, 3)
    assert summary["0"]["share"]["Happy"] == 1.0 and summary["0"]["mean_confidence"] == pytest.approx(0.9)
