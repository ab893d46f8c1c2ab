"""deep-emotion analyze: per-frame tables and a summary for a corpus, identical whatever the workers, resumable,
sharded, on Ray; a bad input is one failed row."""
import csv
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc

import pytest
from conftest import ASTRONAUT, ROOT, write_face_clip

from deep_emotion import analyze
from deep_emotion.corpus import (
    SUMMARY_COLUMNS,
    TABLE_COLUMNS,
    AnalysisSettings,
    CorpusError,
    TableWriter,
    find_inputs,
    parse_shard,
    take_shard,
)
from deep_emotion.recognizer import DEFAULT_MODEL, LiveSettings
from deep_emotion.utils import OutputError

SETTINGS = AnalysisSettings(model=(str(DEFAULT_MODEL),))
CLIP_FRAMES = {"talk.mp4": 40, "nested/debate.avi": 30, "nested/deeper/class.mp4": 36}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three clips in nested folders and a photo."""
    folder = tmp_path_factory.mktemp("corpus")
    for name, frames in CLIP_FRAMES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_face_clip(folder / name, frames, fourcc="MJPG" if name.endswith(".avi") else "mp4v")
    shutil.copy(ASTRONAUT, folder / "photo.jpg")
    return folder


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def tables(out):
    return {p.name: p.read_bytes() for p in sorted((out / "tables").iterdir()) if not p.name.startswith(".")}


@pytest.fixture(scope="module")
def analysed(corpus, tmp_path_factory):
    """The corpus analysed once, in this process."""
    out = tmp_path_factory.mktemp("out")
    rows = analyze.analyze_corpus([corpus], out, SETTINGS, workers=1, progress=False)
    return out, rows


def test_each_input_has_a_table_of_every_frame_and_a_summary_row(corpus, analysed):
    out, rows = analysed
    summary = read_csv(out / "summary.csv")
    assert list(summary[0]) == SUMMARY_COLUMNS
    assert [row["path"] for row in summary] == sorted(str(corpus / name) for name in [*CLIP_FRAMES, "photo.jpg"])
    for row in summary:
        assert row["status"] == "ok" and row["error"] == ""
        table = read_csv(out / row["table"])
        assert list(table[0]) == TABLE_COLUMNS
        name = os.path.relpath(row["path"], corpus)
        frames = CLIP_FRAMES.get(name, 1)
        assert int(row["frames"]) == frames and sorted({int(r["frame"]) for r in table}) == list(range(1, frames + 1))
        found = [r for r in table if r["success"] == "1"]
        assert int(row["faces"]) == len(found) >= frames - 1  # the face is there in every frame
        assert int(row["tracks"]) == len({r["face"] for r in found})
        assert all(r["face"] == r["face_id"] and r["time_s"] == r["timestamp"] for r in table)
        assert all(0.6 <= float(r["face_score"]) <= 1 and r["found"] in ("search", "followed") for r in found)
        shares = [float(row[f"share_{name}"]) for name in TABLE_COLUMNS[-7:]]
        assert abs(sum(shares) - 1) < 1e-3
        labels = [r["label"] for r in found]
        assert abs(float(row["share_Happy"]) - labels.count("Happy") / len(labels)) < 1e-4
        if name.endswith(".mp4"):
            assert float(row["seconds"]) == pytest.approx(frames / 25)
            assert float(table[-1]["time_s"]) == pytest.approx((frames - 1) / 25, abs=1e-4)
    assert rows[0]["path"] == summary[0]["path"]


def test_the_same_command_again_skips_what_is_done_and_redoes_what_changed(corpus, tmp_path):
    for name in CLIP_FRAMES:
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus / name, tmp_path / "in" / name)
    analyze.analyze_corpus([tmp_path / "in"], tmp_path / "out", SETTINGS, progress=False)
    made = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "tables").iterdir()}
    changed = tmp_path / "in" / "talk.mp4"
    write_face_clip(changed, 20)
    rows = analyze.analyze_corpus([tmp_path / "in"], tmp_path / "out", SETTINGS, progress=False)
    again = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "tables").iterdir()}
    redone = [name for name in made if made[name] != again[name]]
    assert len(redone) == 1 and redone[0].startswith("talk-")
    assert [int(row["frames"]) for row in rows if row["path"] == str(changed)] == [20]


def test_other_settings_write_elsewhere_or_are_refused(analysed, corpus):
    out, _ = analysed
    other = AnalysisSettings(model=(str(DEFAULT_MODEL),), live=LiveSettings(detect_every=1))
    with pytest.raises(CorpusError, match="another detect_every: give another --out"):
        analyze.analyze_corpus([corpus], out, other, progress=False)


def test_two_workers_write_the_same_tables_as_one(corpus, analysed, tmp_path):
    out, _ = analysed
    analyze.analyze_corpus([corpus], tmp_path, SETTINGS, workers=2, progress=False)
    assert tables(tmp_path) == tables(out)
    assert (tmp_path / "summary.csv").read_bytes() == (out / "summary.csv").read_bytes()


def test_shards_hold_each_input_once_and_their_summaries_add_up_to_the_whole(corpus, analysed, tmp_path):
    out, _ = analysed
    paths = find_inputs([corpus])
    shards = [take_shard(paths, (i, 3)) for i in range(3)]
    assert sorted(sum(shards, [])) == paths and all(shards)
    for i in range(2):
        analyze.analyze_corpus([corpus], tmp_path, SETTINGS, shard=(i, 2), progress=False)
    parts = read_csv(tmp_path / "summary-0-of-2.csv") + read_csv(tmp_path / "summary-1-of-2.csv")
    assert sorted(parts, key=lambda row: row["path"]) == read_csv(out / "summary.csv")
    assert tables(tmp_path) == tables(out)
    with pytest.raises(CorpusError, match="I must be in 0..N-1"):
        parse_shard("2/2")


def test_a_list_file_names_inputs_relative_to_itself(corpus, tmp_path):
    listing = tmp_path / "inputs.txt"
    relative = os.path.relpath(corpus / "nested/debate.avi", tmp_path)
    listing.write_text(f"# two of the clips\n{corpus / 'talk.mp4'}\n{relative}\n")
    assert find_inputs([listing]) == sorted([str(corpus / "talk.mp4"), str(tmp_path / relative)])
    with pytest.raises(CorpusError, match="does not exist"):
        find_inputs([tmp_path / "missing"])


def test_corrupt_and_truncated_inputs_are_failed_rows_and_the_rest_goes_on(corpus, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(corpus / "talk.mp4", folder / "good.mp4")
    (folder / "garbage.mp4").write_bytes(b"not a video" * 100)
    write_face_clip(folder / "cut.avi", 60, fourcc="MJPG")
    whole = (folder / "cut.avi").read_bytes()
    (folder / "cut.avi").write_bytes(whole[:len(whole) // 2])  # the index at the end is lost too
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    args = analyze.get_args_parser().parse_args([str(folder), "--out", str(tmp_path / "out"), "--workers", "1",
                                                 "--quiet"])
    with pytest.raises(SystemExit) as stop:
        analyze.main(args)
    assert stop.value.code == 1
    rows = {os.path.basename(row["path"]): row for row in read_csv(tmp_path / "out" / "summary.csv")}
    assert rows["good.mp4"]["status"] == "ok"
    for name in ("garbage.mp4", "cut.avi", "broken.jpg"):
        assert rows[name]["status"] == "failed" and rows[name]["error"] and "\n" not in rows[name]["error"]
        assert rows[name]["table"] == ""
    assert "3 input(s) failed" in capsys.readouterr().out
    assert len(list((tmp_path / "out" / "tables").iterdir())) == 1


def test_a_table_that_cannot_be_written_stops_with_one_line_and_leaves_nothing_half_written(corpus, tmp_path,
                                                                                             monkeypatch):
    def full_disk(self, row):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(TableWriter, "write", full_disk)
    with pytest.raises(OutputError, match="No space left on device"):
        analyze.analyze_corpus([corpus / "talk.mp4"], tmp_path, SETTINGS, progress=False)
    assert list((tmp_path / "tables").iterdir()) == [] and not (tmp_path / "manifest.json").exists()


def test_an_unwritable_out_is_one_line(corpus, tmp_path):
    (tmp_path / "file").write_text("")
    result = subprocess.run([sys.executable, "-m", "deep_emotion", "analyze", str(corpus / "photo.jpg"), "--out",
                             str(tmp_path / "file")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("error: cannot write")
    assert len(result.stderr.strip().splitlines()) == 1


def test_sample_fps_reads_that_many_frames_a_second(corpus, tmp_path):
    settings = AnalysisSettings(model=(str(DEFAULT_MODEL),), sample_fps=5,
                                live=LiveSettings(detect_every=1, classify_every=1))
    [row] = analyze.analyze_corpus([corpus / "talk.mp4"], tmp_path, settings, progress=False)
    table = read_csv(tmp_path / row["table"])
    assert sorted({int(r["frame"]) for r in table}) == [1, 6, 11, 16, 21, 26, 31, 36]
    assert sorted({float(r["time_s"]) for r in table}) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4])
    args = analyze.get_args_parser().parse_args(["x.mp4", "--out", "o", "--sample_fps", "1"])
    settings = analyze.settings_from_args(args)
    # frames a second apart are searched and classified each, not followed
    assert (settings.live.detect_every, settings.live.classify_every) == (1, 1)


def test_parquet_tables_hold_what_csv_tables_hold(corpus, analysed, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out, _ = analysed
    settings = AnalysisSettings(model=(str(DEFAULT_MODEL),), format="parquet")
    [row] = analyze.analyze_corpus([corpus / "talk.mp4"], tmp_path, settings, progress=False)
    parquet = pq.read_table(tmp_path / row["table"]).to_pylist()
    [csv_row] = [r for r in read_csv(out / "summary.csv") if r["path"] == row["path"]]
    from_csv = read_csv(out / csv_row["table"])
    assert len(parquet) == len(from_csv) and list(parquet[0]) == TABLE_COLUMNS
    for a, b in zip(parquet, from_csv):
        assert a["label"] == b["label"] and a["frame"] == int(b["frame"]) and a["x"] == int(b["x"])
        assert a["Happy"] == pytest.approx(float(b["Happy"]), abs=1e-4)


def test_a_missing_ray_is_one_line_naming_the_extra(corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(CorpusError, match=r'pip install "deep-emotion\[cluster\]"'):
        analyze.analyze_corpus([corpus / "talk.mp4"], tmp_path, SETTINGS, ray="local", progress=False)


def test_memory_stays_flat_in_the_length_of_a_video(tmp_path):
    settings = AnalysisSettings(model=(str(DEFAULT_MODEL),), live=LiveSettings(detect_every=10, classify_every=10))
    peaks = []
    for frames in (50, 500):
        clip = write_face_clip(tmp_path / f"{frames}.mp4", frames, size=(200, 200))
        analyze.analyze_corpus([clip], tmp_path / f"out{frames}", settings, progress=False)  # warm
        tracemalloc.start()
        analyze.analyze_corpus([clip], tmp_path / f"again{frames}", settings, progress=False)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] - peaks[0] < 200_000, peaks  # ten times the frames; rows are written, not kept


def test_a_kill_in_the_middle_then_the_same_command_gives_the_uninterrupted_tables(corpus, analysed, tmp_path):
    out, _ = analysed
    command = [sys.executable, "-m", "deep_emotion", "analyze", str(corpus), "--out", str(tmp_path), "--workers",
               "2", "--quiet"]
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (tmp_path / "manifest.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the command and its workers, mid-corpus
    process.wait()
    import json
    done = json.loads((tmp_path / "manifest.json").read_text())["inputs"]
    assert 1 <= len(done) < 4, "the kill came after the end: nothing was interrupted"
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert tables(tmp_path) == tables(out)
    assert (tmp_path / "summary.csv").read_bytes() == (out / "summary.csv").read_bytes()


LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def listening_addresses():
    """{(address hex, port hex)} of the machine's listening TCP sockets, from /proc/net/tcp and tcp6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.read().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A":
                    found.add(tuple(local.split(":")))
    return found


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads the listening sockets from /proc/net")
def test_a_local_ray_listens_on_127_0_0_1_only_and_writes_the_tables_of_the_local_run(corpus, analysed, tmp_path):
    pytest.importorskip("ray")
    out, _ = analysed
    before = listening_addresses()
    script = ("import sys; from deep_emotion import analyze; from deep_emotion.corpus import AnalysisSettings\n"
              "ray = analyze.start_ray(2, 'local')\n"
              "sys.stdout.write('started\\n'); sys.stdout.flush(); sys.stdin.readline()\n"
              f"analyze.analyze_corpus([{str(corpus)!r}], {str(tmp_path)!r}, "
              f"AnalysisSettings(model=({str(DEFAULT_MODEL)!r},)), workers=2, ray='local', progress=False)\n"
              "ray.shutdown()\n")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "started\n", process.stderr.read()[-2000:]
        opened = listening_addresses() - before
        assert opened and {address for address, _ in opened} <= LOOPBACK, opened
        process.stdin.write("\n")
        process.stdin.flush()
        assert process.wait(timeout=300) == 0, process.stderr.read()[-2000:]
    finally:
        process.kill()
    assert tables(tmp_path) == tables(out)
    assert (tmp_path / "summary.csv").read_bytes() == (out / "summary.csv").read_bytes()
