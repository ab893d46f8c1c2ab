import gzip
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, SHARED_FER, fer_rows, run_args, write_fer_csv

from deep_emotion import utils
from deep_emotion.data import prepare as generate_data
from deep_emotion.data.loaders import FER2013, load_split
from deep_emotion.data.prepared import DataError, split_dir
from deep_emotion.data.synthetic_faces import synthetic_rows
from deep_emotion.emotions import CLASS_NAMES


def counts(data, split):
    return len(load_split(data, split)[0])


@pytest.mark.parametrize("name", ["fer2013.csv", "fer2013.csv.gz"])
def test_fer2013_csv_maps_usage_to_splits(tmp_path, name):
    write_fer_csv(tmp_path / name, fer_rows())
    summary = generate_data.prepare(tmp_path)
    assert {s: v["faces"] for s, v in summary["splits"].items()} == {"train": 42, "val": 14, "test": 14}
    assert not summary["val_carved_from_train"]
    images, labels, _ = load_split(tmp_path, "train")
    expected = np.stack([face for _, face, usage in synthetic_rows((6, 2, 2)) if usage == "Training"])
    assert torch_equal(images, expected)  # lossless
    assert labels.tolist() == [label for label, _, usage in synthetic_rows((6, 2, 2)) if usage == "Training"]


def torch_equal(tensor, array):
    return np.array_equal(tensor.numpy(), array)


def test_icml_columns_with_leading_spaces(tmp_path):
    write_fer_csv(tmp_path / "icml_face_data.csv", [(e, p, u) for e, p, u in fer_rows()],
                  columns=("emotion", " pixels", " Usage"))
    summary = generate_data.prepare(tmp_path)
    assert summary["kind"] == "icml" and set(summary["splits"]) == {"train", "val", "test"}


def test_competition_csvs_carve_val_and_keep_test_unlabeled(tmp_path):
    rows = fer_rows((20, 0, 3))
    pd.DataFrame([(e, p) for e, p, u in rows if u == "Training"], columns=["emotion", "pixels"]).to_csv(
        tmp_path / "train.csv", index=False)
    pd.DataFrame([p for e, p, u in rows if u == "PrivateTest"], columns=["pixels"]).to_csv(
        tmp_path / "test.csv", index=False)
    summary = generate_data.prepare(tmp_path, val_fraction=0.25, seed=3)
    assert summary["val_carved_from_train"]
    assert summary["splits"]["val"]["per_class"] == dict.fromkeys(CLASS_NAMES, 5)  # stratified
    assert summary["splits"]["train"]["faces"] == 7 * 15
    assert summary["splits"]["unlabeled"]["faces"] == 21
    with pytest.raises(DataError, match="no labels"):
        load_split(tmp_path, "unlabeled")
    images, labels, _ = load_split(tmp_path, "unlabeled", require_labels=False)
    assert len(images) == 21 and set(labels.tolist()) == {-1}
    # the carve is deterministic
    first = (split_dir(tmp_path, "val") / "labels.csv").read_text()
    generate_data.prepare(tmp_path, val_fraction=0.25, seed=3, force=True)
    assert (split_dir(tmp_path, "val") / "labels.csv").read_text() == first


def test_image_folder_mirror_keeps_the_original_split(tmp_path):
    prefix = {"Training": "Training", "PublicTest": "PublicTest", "PrivateTest": "PrivateTest"}
    for i, (label, face, usage) in enumerate(synthetic_rows((3, 2, 2))):
        top = "train" if usage == "Training" else "test"
        folder = tmp_path / top / CLASS_NAMES[label].lower()
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"{prefix[usage]}_{i}.jpg"), face)
    (tmp_path / "train" / "happy" / "Training_broken.jpg").write_bytes(b"not a jpeg")
    summary = generate_data.prepare(tmp_path)
    assert {s: v["faces"] for s, v in summary["splits"].items()} == {"train": 21, "val": 14, "test": 14}
    assert summary["bad_rows"] == 1 and "Training_broken.jpg" in summary["first_bad_rows"][0]


def test_bad_rows_are_skipped_and_named(tmp_path):
    rows = fer_rows((4, 0, 0))
    bad = [(7, rows[0][1], "Training"),                      # label out of range
           (1, rows[0][1] + " 5", "Training"),               # 2305 values
           (2, rows[0][1].replace("0 ", "256 ", 1) if "0 " in rows[0][1] else "256 " + rows[0][1][2:], "Training"),
           (3, "12 x " * 1152, "Training"),                  # not integers
           (4, rows[0][1], "Validation")]                    # unknown split
    write_fer_csv(tmp_path / "fer2013.csv", rows + bad)
    summary = generate_data.prepare(tmp_path, val_fraction=0)
    assert summary["splits"]["train"]["faces"] == len(rows)
    assert summary["bad_rows"] == 5
    assert summary["first_bad_rows"][0].startswith(f"fer2013.csv:{len(rows) + 2}: label")


def test_nothing_valid_stops_with_one_line_and_writes_nothing(tmp_path):
    write_fer_csv(tmp_path / "fer2013.csv", [(9, "1 2 3", "Training")])
    result = subprocess.run([sys.executable, str(ROOT / "generate_data.py"), "--data", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: no valid faces") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "prepared").exists()  # not even an empty folder


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "no faces found"),
    (lambda d: write_fer_csv(d / "fer2013.csv", fer_rows(), columns=("emotion", "pixels", "Split")),
     "lacks the column"),
    (lambda d: (d / "fer2013.csv.gz").write_bytes(b"\x1f\x8bgarbage"), "cannot read"),
])
def test_bad_sources_raise_data_errors(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(DataError, match=message):
        generate_data.prepare(tmp_path)
    assert not (tmp_path / "prepared").exists()  # a failed prepare leaves no empty folder behind
    with pytest.raises(DataError, match="does not exist"):
        generate_data.prepare(tmp_path / "missing")


def test_rerun_is_idempotent_and_inputs_untouched(tmp_path):
    write_fer_csv(tmp_path / "fer2013.csv", fer_rows())
    digest = hashlib.sha256((tmp_path / "fer2013.csv").read_bytes()).hexdigest()
    generate_data.prepare(tmp_path)
    labels = (split_dir(tmp_path, "train") / "labels.csv").read_text()
    assert generate_data.prepare(tmp_path).get("skipped")
    generate_data.prepare(tmp_path, force=True)
    assert (split_dir(tmp_path, "train") / "labels.csv").read_text() == labels
    assert hashlib.sha256((tmp_path / "fer2013.csv").read_bytes()).hexdigest() == digest
    assert counts(tmp_path, "train") == 42


def test_interrupted_build_leaves_no_split(tmp_path, monkeypatch):
    write_fer_csv(tmp_path / "fer2013.csv", fer_rows())
    calls = {"n": 0}
    real_imencode = cv2.imencode

    def failing_imencode(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt
        return real_imencode(*args, **kwargs)

    monkeypatch.setattr(generate_data.cv2, "imencode", failing_imencode)
    with pytest.raises(KeyboardInterrupt):
        generate_data.prepare(tmp_path, workers=1)
    assert not split_dir(tmp_path, "train").exists()
    assert not (tmp_path / "prepared" / "manifest.json").exists()
    monkeypatch.setattr(generate_data.cv2, "imencode", real_imencode)
    assert not generate_data.prepare(tmp_path).get("skipped")
    assert counts(tmp_path, "train") == 42
    assert not list((tmp_path / "prepared").glob(".building-*"))


def test_synthetic_flag_and_dataset(tmp_path):
    generate_data.main(run_args(generate_data, "--synthetic", "--data", tmp_path))
    dataset = FER2013(tmp_path, "train", transform=np.asarray, target_transform=lambda y: CLASS_NAMES[y])
    image, name = dataset[0]
    assert image.shape == (48, 48) and image.dtype == np.uint8 and name in CLASS_NAMES
    assert len(dataset) == len(load_split(tmp_path, "train")[0]) == 280
    assert FER2013.classes == CLASS_NAMES


def test_unprepared_folder_names_the_command_the_user_types(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=f"run `deep-emotion prepare --data {tmp_path}` first"):
        load_split(tmp_path, "train")  # the API and the deep-emotion command
    monkeypatch.setattr(utils, "_COMMAND_STYLE", ["scripts"])  # as run_script(..., command_style="scripts") sets it
    with pytest.raises(DataError, match=f"run `python generate_data.py --data {tmp_path}` first"):
        load_split(tmp_path, "train")
    result = subprocess.run([sys.executable, str(ROOT / "visualize.py"), "-t", "True", "-d", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and f"`python generate_data.py --data {tmp_path}`" in result.stderr


@pytest.mark.skipif(not SHARED_FER.exists(), reason="../shared/fer2013 is not here")
def test_real_fer2013_dev_split_sizes(tmp_path):
    (tmp_path / "fer2013.csv.gz").symlink_to(SHARED_FER)
    summary = generate_data.prepare(tmp_path)
    assert summary["bad_rows"] == 0
    assert summary["splits"]["train"]["per_class"] == dict(zip(CLASS_NAMES, [3995, 436, 4097, 7215, 4830, 3171, 4965]))
    assert summary["splits"]["val"]["per_class"] == dict(zip(CLASS_NAMES, [467, 56, 496, 895, 653, 415, 607]))
    assert "test" not in summary["splits"]
    with gzip.open(SHARED_FER, "rt") as f:
        f.readline()
        first = np.array(f.readline().split(",")[1].split(), dtype=np.uint8).reshape(48, 48)
    assert np.array_equal(load_split(tmp_path, "train")[0][0].numpy(), first)


def test_force_rebuild_interrupted_after_train_is_never_taken_as_prepared(tmp_path, monkeypatch):
    write_fer_csv(tmp_path / "fer2013.csv", fer_rows())
    generate_data.prepare(tmp_path)
    real_write = generate_data.write_split

    def fail_after_train(directory, *args):
        if directory.name != "train":
            raise KeyboardInterrupt
        return real_write(directory, *args)

    monkeypatch.setattr(generate_data, "write_split", fail_after_train)
    with pytest.raises(KeyboardInterrupt):
        generate_data.prepare(tmp_path, force=True)
    assert not (tmp_path / "prepared" / "manifest.json").exists()  # removed before any split was rewritten
    monkeypatch.setattr(generate_data, "write_split", real_write)
    assert not generate_data.prepare(tmp_path).get("skipped")


def test_carved_val_with_another_seed_is_rebuilt_not_mixed(tmp_path):
    rows = fer_rows((20, 0, 0))
    pd.DataFrame([(e, p) for e, p, u in rows], columns=["emotion", "pixels"]).to_csv(tmp_path / "train.csv",
                                                                                     index=False)
    generate_data.prepare(tmp_path, val_fraction=0.25, seed=0)
    summary = generate_data.prepare(tmp_path, val_fraction=0.25, seed=1)
    assert not summary.get("skipped") and "--seed 0" in summary["rebuilt_because"]
    origins = {split: {row.split(",")[2] for row in (split_dir(tmp_path, split) / "labels.csv").read_text()
                       .splitlines()[1:]} for split in ("train", "val")}
    assert not origins["train"] & origins["val"] and len(origins["train"] | origins["val"]) == 140


def test_a_new_source_replaces_the_old_data_and_its_extra_splits(tmp_path):
    write_fer_csv(tmp_path / "fer2013.csv", fer_rows())
    assert set(generate_data.prepare(tmp_path)["splits"]) == {"train", "val", "test"}
    # the same file name with other faces: rebuilt, not "already prepared"
    write_fer_csv(tmp_path / "fer2013.csv", fer_rows((5, 2, 2), seed=4))
    summary = generate_data.prepare(tmp_path)
    assert summary["rebuilt_because"] == "the source files changed since it was built"
    assert counts(tmp_path, "train") == 35
    # a source with no PrivateTest: the old test split must not survive to be scored
    (tmp_path / "fer2013.csv").unlink()
    rows = fer_rows((20, 0, 3))
    pd.DataFrame([(e, p) for e, p, u in rows if u == "Training"], columns=["emotion", "pixels"]).to_csv(
        tmp_path / "train.csv", index=False)
    summary = generate_data.prepare(tmp_path)
    assert set(summary["splits"]) == {"train", "val"} and not split_dir(tmp_path, "test").exists()
    manifest = json.loads((tmp_path / "prepared" / "manifest.json").read_text())
    assert manifest["built_from"]["kind"] == "competition" and manifest["built_from"]["files"][0][0] == "train.csv"


def test_split_folders_are_readable_by_other_users(tmp_path):
    write_fer_csv(tmp_path / "fer2013.csv", fer_rows())
    old = os.umask(0o022)
    try:
        generate_data.prepare(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(split_dir(tmp_path, "train").stat().st_mode) == 0o755


def test_parsing_workers_die_with_a_killed_parent(tmp_path):
    script = tmp_path / "hold.py"
    script.write_text(f"import sys, time\nsys.path.insert(0, {str(ROOT)!r})\nfrom deep_emotion.data import fer_csv\n"
                      "pool = fer_csv.parsing_pool(2)\n"
                      "print(' '.join(str(p.pid) for p in pool._pool), flush=True)\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(alive(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)


def alive(pid):
    try:
        state = open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be read


def test_ctrl_c_during_setup_is_one_line_and_exit_130(tmp_path, monkeypatch, capsys):
    from deep_emotion.utils import run_script

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "argv", ["generate_data.py", "--data", str(tmp_path)])
    with pytest.raises(SystemExit) as stop:
        run_script(generate_data.get_args_parser, interrupted)
    assert stop.value.code == 130 and capsys.readouterr().err == "interrupted\n"


def test_unwritable_data_folder_is_a_data_error(tmp_path):
    write_fer_csv(tmp_path / "fer2013.csv", fer_rows())
    (tmp_path / "prepared").write_text("a file where the folder should be")
    with pytest.raises(DataError, match="cannot write the prepared splits"):
        generate_data.prepare(tmp_path)


@pytest.mark.parametrize("argv", [["generate_data.py", "--help"], ["-m", "deep_emotion", "prepare", "--help"]])
def test_setup_imports_no_pytorch(argv):
    result = subprocess.run([sys.executable, "-X", "importtime", *argv], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert result.returncode == 0 and "deep_emotion.data.fer_csv" in imported  # what reads the CSV
    assert "torch" not in imported  # preparing data needs numpy, OpenCV and pandas alone
