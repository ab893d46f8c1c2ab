import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import FAST, ROOT, assert_one_line_usage_error, run_args, train, weights_of

from deep_emotion import engine
from deep_emotion import train as main
from deep_emotion.data import training_data
from deep_emotion.data.loaders import load_split
from deep_emotion.data.prepared import DataError
from deep_emotion.data.synthetic_faces import SYNTHETIC_CSV, write_synthetic_csv
from deep_emotion.face_detectors import equalize_contrast
from deep_emotion.inference import Ensemble, load_model, predict


def test_train_smoke_run_leaves_a_complete_run_folder(prepared, tmp_path):
    run_dir = train(prepared, tmp_path, "--epochs", "1")
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.pt", "config.json", "curves.png", "last.pt",
                                                        "log.jsonl"]
    model, checkpoint = load_model(run_dir / "best.pt")
    assert checkpoint["arch"] == "deep_emotion" and checkpoint["epoch"] == 1
    assert set(checkpoint) >= {"optimizer", "scheduler", "rng", "normalization", "class_names", "metrics"}
    row = json.loads((run_dir / "log.jsonl").read_text())
    assert set(row) >= {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"}
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 1
    # a second run never overwrites the first
    assert train(prepared, tmp_path, "--epochs", "1", "--max_steps", "1") != run_dir


def test_resume_gives_identical_weights(prepared, tmp_path):
    straight = train(prepared, tmp_path / "a", "--epochs", "2")
    first = train(prepared, tmp_path / "b", "--epochs", "1")
    resumed = train(prepared, tmp_path / "c", "--epochs", "2", "--resume", first / "last.pt")
    assert resumed == first
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(resumed / "last.pt", weights_only=True)
    assert b["epoch"] == 2 and len(b["history"]) == 2
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    # a run already at its --epochs trains nothing, and says so instead of printing the old summary
    with pytest.raises(main.TrainingError, match=r"already at epoch 2 of 2: nothing to train; ask for more with "
                                                 r"--epochs N, up to its schedule's \d+"):
        train(prepared, tmp_path / "c", "--epochs", "2", "--resume", resumed / "last.pt")


def test_a_finished_schedule_is_resumed_as_a_new_run_from_its_weights(prepared, tmp_path):
    done = train(prepared, tmp_path / "a", "--epochs", "1", "--schedule_epochs", "1", "--max_steps", "1")
    with pytest.raises(main.TrainingError, match=r"1-epoch learning-rate schedule is over; .*--init .*last.pt"):
        train(prepared, tmp_path / "a", "--epochs", "1", "--resume", done / "last.pt")


def test_final_lr_is_the_floor_the_cosine_schedule_ends_at():
    from deep_emotion.config import LEGACY_CONFIG, OPTION, RunConfig, add_run_options
    from deep_emotion.utils import ArgumentParser
    assert engine.lr_factor(100, 100, 10) == pytest.approx(0.0)
    assert engine.lr_factor(100, 100, 10, final=0.1) == pytest.approx(0.1)
    assert engine.lr_factor(10, 100, 10, final=0.1) == pytest.approx(1.0)
    # one line of OPTIONS made the flag, its help with its default, the config field and the old runs' value
    flags = add_run_options(ArgumentParser()).parse_args(["--final_lr", "0.2"])
    assert flags.final_lr == 0.2 and "final_lr" in {field.name for field in dataclasses.fields(RunConfig)}
    assert LEGACY_CONFIG["final_lr"] == 0.0 and "(default: 0.0)" in OPTION["final_lr"].help_text()


def test_precision_flag_sets_the_training_math(prepared, tmp_path):
    runs = {name: train(prepared, tmp_path / name, "--epochs", "1", "--max_steps", "2", "--precision", name)
            for name in ("fp32", "bf16")}
    weights = {}
    for name, run_dir in runs.items():
        assert json.loads((run_dir / "config.json").read_text())["precision"] == name  # what ran, not "auto"
        weights[name] = torch.load(run_dir / "last.pt", weights_only=True)["model"]["fc2.weight"]
        assert torch.isfinite(weights[name]).all()
    assert not torch.equal(weights["fp32"], weights["bf16"])  # bf16 autocast really ran
    assert engine.pick_precision("auto", torch.device("mps")) == "fp32"
    assert engine.pick_precision("fp32", torch.device("cuda")) == "fp32"


def test_original_boolean_forms(tmp_path):
    write_synthetic_csv(tmp_path / SYNTHETIC_CSV, per_class=(2, 1, 1))
    args = run_args(main, "-s", "True", "-d", tmp_path, "-t", "False", "-hparams", "True")
    assert args.setup and not args.train and args.hyperparams
    assert main.main(args) is None  # setup only
    manifest = json.loads((tmp_path / "prepared" / "manifest.json").read_text())
    assert {split: info["faces"] for split, info in manifest["splits"].items()} == {"train": 14, "val": 7, "test": 7}
    # the original README's training form, with its --hparams spelling
    args = run_args(main, "-t", "--data", tmp_path, "--hparams", "True", "--epochs", "3", "--learning_rate", "0.01",
                    "--batch_size", "8", "--setup", "False")
    assert (args.train, args.hyperparams, args.setup, args.epochs, args.learning_rate, args.batch_size) == (
        True, True, False, 3, 0.01, 8)


def run_script(*argv):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, argv)], capture_output=True, text=True,
                          cwd=ROOT)


def test_unprepared_data_is_a_one_line_error(tmp_path):
    result = run_script("--train", "--data", tmp_path, "--out", tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "generate_data.py" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_resume_with_another_arch_is_refused(prepared, tmp_path):
    run_dir = train(prepared, tmp_path, "--epochs", "1", "--max_steps", "1")
    with pytest.raises(main.TrainingError, match="--arch deep_emotion_vgg \\(the run has deep_emotion\\)"):
        train(prepared, tmp_path, "--arch", "deep_emotion_vgg", "--resume", run_dir / "last.pt")


def test_non_finite_loss_stops_training(prepared, tmp_path, monkeypatch):
    monkeypatch.setattr(engine.F, "cross_entropy", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    with pytest.raises(main.TrainingError, match="loss became nan"):
        train(prepared, tmp_path, "--epochs", "1")


# Parity runs: no augmentation, no dropout, fp32. BatchNorm's statistics are per process under DDP on a CPU
# (SyncBatchNorm needs CUDA), so the helper swaps deep_emotion's one BatchNorm for an identity: then two
# processes of 8 faces must train exactly as one process of 16 does.
PARITY = ["--rotation", "0", "--scale", "0", "--shift", "0", "--no_flip", "--sharpness", "0", "--teacher", "",
          "--precision", "fp32", "--epochs", "1", "--device", "cpu", *FAST]
PARITY_SCRIPT = """import sys
sys.path.insert(0, {root!r})
import torch.nn as nn
from deep_emotion import train as main
from deep_emotion.data import training_data
build = main.build_model
def without_batch_norm(arch, **kwargs):
    model = build(arch, **kwargs)
    model.norm = nn.Identity()
    return model
main.build_model = without_batch_norm
main.main(main.get_args_parser().parse_args(sys.argv[1:]))
"""


def run_parity(script, prepared, out, logs=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                 "--log_dir", str(logs), "--redirects", "2"] if logs else [sys.executable])  # stderr to files
    return subprocess.run([*launcher, str(script), "--train", "--data", str(prepared), "--out", str(out), *PARITY],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_torchrun_two_processes_train_as_one_with_the_same_global_batch(prepared, tmp_path):
    script = tmp_path / "parity.py"
    script.write_text(PARITY_SCRIPT.format(root=str(ROOT)))
    for attempt in (1, 2):
        result = run_parity(script, prepared, tmp_path / f"ddp-{attempt}", tmp_path / f"logs-{attempt}")
        # CI once saw a gloo worker abort here (SIGABRT) that 22 local reruns never repeated: one rerun tells
        # such a crash of the machinery from a bug in main.py, which fails (with its message) both times
        if result.returncode == 0 or "Signal 6 (SIGABRT)" not in result.stderr:
            break
    worker_errors = "".join(f"--- {log}\n{log.read_text()[-1500:]}" for log in sorted(tmp_path.rglob("stderr.log")))
    assert result.returncode == 0, result.stdout[-1000:] + result.stderr[-1000:] + worker_errors
    assert "2 process(es)" in result.stdout and result.stdout.count("epoch   1/1") == 1  # rank 0 logs alone
    single = run_parity(script, prepared, tmp_path / "single")
    assert single.returncode == 0, single.stderr[-1000:]
    ddp_run, single_run = next((tmp_path / f"ddp-{attempt}").iterdir()), next((tmp_path / "single").iterdir())
    for key, value in weights_of(single_run).items():
        assert torch.allclose(value, weights_of(ddp_run)[key], atol=1e-5), key
    logged = [json.loads((run / "log.jsonl").read_text()) for run in (ddp_run, single_run)]
    for key in ("train_loss", "train_accuracy"):  # the whole batch's figures, not rank 0's shard
        assert logged[0][key] == pytest.approx(logged[1][key], abs=1e-5), key


def test_ctrl_c_points_to_the_last_finished_epoch(prepared, tmp_path, monkeypatch, capsys):
    real_epoch = main.train_one_epoch

    def interrupted_in_epoch_two(*args, **kwargs):
        if kwargs["epoch"] == 1:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(main, "train_one_epoch", interrupted_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(prepared, tmp_path, "--epochs", "3")
    last = next(tmp_path.iterdir()) / "last.pt"
    assert torch.load(last, weights_only=True)["epoch"] == 1
    assert f"resume with `deep-emotion resume {last}`" in capsys.readouterr().out


def test_empty_split_is_refused(prepared, tmp_path):
    import shutil
    data = tmp_path / "data"
    shutil.copytree(prepared, data)
    (data / "prepared" / "val" / "labels.csv").write_text("file,label,origin\n")
    with pytest.raises(DataError, match="'val' split .* is empty"):
        train(data, tmp_path / "runs", "--epochs", "1")


def test_resume_restores_the_seed_and_precision_of_the_run(prepared, tmp_path):
    straight = train(prepared, tmp_path / "a", "--epochs", "2", "--seed", "3", "--precision", "fp32")
    first = train(prepared, tmp_path / "b", "--epochs", "1", "--seed", "3", "--precision", "fp32")
    resumed = train(prepared, tmp_path / "c", "--epochs", "2", "--resume", first / "last.pt")  # no --seed, auto
    config = json.loads((resumed / "config.json").read_text())
    assert (config["seed"], config["precision"]) == (3, "fp32")
    for key, value in weights_of(straight).items():
        assert torch.equal(value, weights_of(resumed)[key]), key
    with pytest.raises(main.TrainingError, match=r"--seed 4 \(the run has 3\)"):
        train(prepared, tmp_path / "d", "--epochs", "2", "--seed", "4", "--resume", first / "last.pt")
    with pytest.raises(main.TrainingError, match=r"--learning_rate 0.1 \(the run has 0.003\)"):
        train(prepared, tmp_path / "d", "--epochs", "2", "-lr", "0.1", "--resume", first / "last.pt")


def test_resume_on_other_data_or_another_teacher_is_refused(prepared, tmp_path):
    teacher = train(prepared, tmp_path / "teacher", "--epochs", "1", "--max_steps", "1") / "best.pt"
    copy = tmp_path / "teacher.pt"
    shutil.copy(teacher, copy)
    first = train(prepared, tmp_path / "run", "--epochs", "1", "--max_steps", "1", "--teacher", copy)
    other = tmp_path / "other"
    shutil.copytree(prepared, other)
    lines = (other / "prepared" / "train" / "labels.csv").read_text().splitlines()
    (other / "prepared" / "train" / "labels.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(main.TrainingError, match="is not the data"):
        train(other, tmp_path / "x", "--epochs", "2", "--resume", first / "last.pt")
    torch.save({**torch.load(copy, weights_only=True), "epoch": 99}, copy)  # the same path, other bytes
    with pytest.raises(main.TrainingError, match="teacher .* changed"):
        train(prepared, tmp_path / "x", "--epochs", "2", "--resume", first / "last.pt")


def test_resuming_a_config_from_an_older_main_py(prepared, tmp_path):
    first = train(prepared, tmp_path, "--epochs", "1", "--max_steps", "1", "--precision", "fp32")
    state = torch.load(first / "last.pt", weights_only=True)
    state.pop("inputs")  # an older main.py kept no inputs apart (and at first no data hash at all)
    for key in ("precision", "sharpness", "photometric", "clahe", "logit_adjust"):  # not recorded before
        del state["config"][key]
    state["config"].update(quiet=True, workers=1)  # process flags it mixed in
    torch.save(state, first / "last.pt")
    resumed = train(prepared, tmp_path, "--epochs", "2", "--max_steps", "1", "--resume", first / "last.pt")
    config = json.loads((resumed / "config.json").read_text())
    assert (config["precision"], config["sharpness"], config["photometric"], config["clahe"],
            config["logit_adjust"]) == ("fp32", 0.0, 0.0, False, 0.0)


def test_best_is_chosen_on_val_and_written_before_last(prepared, tmp_path, monkeypatch):
    accuracies = iter([0.0, 0.5, 0.4])
    real_evaluate = engine.evaluate

    def scripted(*args, **kwargs):
        metrics, predictions = real_evaluate(*args, **kwargs)
        return dict(metrics, accuracy=next(accuracies)), predictions

    monkeypatch.setattr(engine, "evaluate", scripted)
    run_dir = train(prepared, tmp_path, "--epochs", "3", "--max_steps", "1")
    assert torch.load(run_dir / "best.pt", weights_only=True)["epoch"] == 2
    # a crash while last.pt is written must not lose the epoch's best.pt
    accuracies = iter([0.0])
    real_save = main.torch.save

    def crash_on_last(state, path):
        if ".last." in str(path):
            raise OSError("disk full")
        real_save(state, path)

    monkeypatch.setattr(main.torch, "save", crash_on_last)
    with pytest.raises(OSError):
        train(prepared, tmp_path / "crash", "--epochs", "1", "--max_steps", "1")
    crashed = next((tmp_path / "crash").iterdir())
    assert torch.load(crashed / "best.pt", weights_only=True)["metrics"]["val_accuracy"] == 0.0  # best even at 0%


def test_training_never_loads_the_test_split(prepared, tmp_path, monkeypatch):
    loaded = []
    real_load = training_data.load_split
    monkeypatch.setattr(training_data, "load_split",
                        lambda data, split, *a, **k: loaded.append(split) or real_load(data, split, *a, **k))
    train(prepared, tmp_path, "--epochs", "1", "--max_steps", "1")
    assert sorted(loaded) == ["train", "val"]


def test_init_starts_from_the_given_weights(prepared, tmp_path, monkeypatch):
    source = train(prepared, tmp_path / "a", "--epochs", "1", "--seed", "5")
    monkeypatch.setattr(main, "train_one_epoch", lambda *a, **k: {"loss": 0.0, "accuracy": 0.0, "images_per_s": 0.0})
    started = train(prepared, tmp_path / "b", "--epochs", "1", "--init", source / "last.pt")
    for key, value in weights_of(source).items():
        assert torch.equal(value, weights_of(started)[key]), key


def test_warmup_then_cosine_schedule():
    factors = [engine.lr_factor(step, 100, 10) for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0) and factors[55] == pytest.approx(0.5) and factors[100] == 0.0
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))


def test_precision_auto_needs_native_bf16(tmp_path, monkeypatch):
    emulated, native, amx = (tmp_path / name for name in ("emulated", "native", "amx"))
    emulated.write_text("flags\t: fpu sse avx2 avx512f avx512bw avx512_vnni\n")
    native.write_text("flags\t: fpu avx512f avx512_bf16\n")
    amx.write_text("flags\t: fpu avx512f amx_bf16 amx_tile\n")
    assert [engine.cpu_has_native_bf16(path) for path in (emulated, native, amx)] == [False, True, True]
    assert not engine.cpu_has_native_bf16(tmp_path / "missing")
    for capability, expected in (((7, 5), "fp32"), ((8, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert engine.pick_precision("auto", torch.device("cuda")) == expected


def test_each_process_augments_with_its_own_seed():
    assert engine.epoch_seeds(0, 3, 0)[0] == engine.epoch_seeds(0, 3, 1)[0]  # one batch order
    assert engine.epoch_seeds(0, 3, 0)[1] != engine.epoch_seeds(0, 3, 1)[1]  # own augmentation and dropout


@pytest.mark.parametrize("argv, message", [
    (["--batch_size", "0"], "--batch_size: must be at least 1"),
    (["--batch_size", "-8"], "--batch_size: must be at least 1"),
    (["--learning_rate", "-1"], "--learning_rate: must be in (0, inf)"),
    (["--learning_rate", "nan"], "--learning_rate: must be a finite number"),
    (["--epochs", "0"], "--epochs: must be at least 1"),
    (["--epochs", "-3"], "--epochs: must be at least 1"),
    (["--device", "cuda:7"], "no such CUDA GPU"),
    (["--label_smoothing", "1.5"], "--label_smoothing: must be in [0, 1)"),
])
def test_bad_flags_are_one_line_errors(argv, message, capsys):
    assert_one_line_usage_error(main, ["--train", *argv], message, capsys)


def test_unwritable_out_fails_before_any_work(prepared, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setattr(training_data, "load_split", lambda *a: pytest.fail("loaded data before checking --out"))
    with pytest.raises(main.TrainingError, match="cannot write the run folder"):
        train(prepared, tmp_path / "file" / "runs", "--epochs", "1")


def test_clahe_run_trains_and_predicts_on_equalised_faces(prepared, tmp_path):
    run_dir = train(prepared, tmp_path, "--epochs", "1", "--max_steps", "1", "--clahe")
    model, checkpoint = load_model(run_dir / "last.pt")
    assert checkpoint["clahe"] is True and json.loads((run_dir / "config.json").read_text())["clahe"] is True
    images, _, _ = load_split(prepared, "train")
    equalised = torch.from_numpy(equalize_contrast(images.numpy()))
    pixels = equalised.float() / 255  # the normalisation is that of the faces the network saw
    assert checkpoint["normalization"] == pytest.approx([pixels.mean().item(), pixels.std().item()], rel=1e-5)
    # every reader of the checkpoint equalises first: Ensemble on raw faces = the network on equalised ones
    val, _, _ = load_split(prepared, "val")
    read = torch.from_numpy(Ensemble([run_dir / "last.pt"]).predict(val))
    direct = predict(model, torch.from_numpy(equalize_contrast(val.numpy())),
                          tuple(checkpoint["normalization"]), "cpu")
    assert torch.allclose(read, direct, atol=1e-6)
    assert not torch.allclose(read, predict(model, val, tuple(checkpoint["normalization"]), "cpu"), atol=1e-4)


def test_ema_saves_the_average_and_resumes_exactly(prepared, tmp_path):
    # no warm-up, so the first step's learning rate does not depend on the number of steps per epoch
    common = ["--warmup_epochs", "0", "--precision", "fp32", "--max_steps", "2"]
    one_step = train(prepared, tmp_path / "one", *common[:-1], "2", "--epochs", "1", "--max_steps", "1")
    averaged = train(prepared, tmp_path / "ema", *common, "--epochs", "1", "--ema", "0.25")
    state = torch.load(averaged / "last.pt", weights_only=True)
    first, second = weights_of(one_step), state["trained_model"]
    assert state["averaged_steps"] == 2
    for key, value in state["model"].items():  # the first update copies, the second blends with decay 0.25
        if value.is_floating_point():
            assert torch.allclose(value, 0.25 * first[key] + 0.75 * second[key], atol=1e-6), key
    assert not torch.equal(state["model"]["fc2.weight"], second["fc2.weight"])
    # resuming continues both the trained weights and their average
    straight = train(prepared, tmp_path / "a", *common, "--epochs", "2", "--ema", "0.25")
    resumed = train(prepared, tmp_path / "b", "--epochs", "2", "--resume", averaged / "last.pt")
    for name in ("model", "trained_model"):
        a = torch.load(straight / "last.pt", weights_only=True)[name]
        b = torch.load(resumed / "last.pt", weights_only=True)[name]
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_mixup_and_cutmix_together_are_refused(prepared, tmp_path):
    with pytest.raises(main.TrainingError, match="choose one"):
        train(prepared, tmp_path, "--epochs", "1", "--mixup", "0.2", "--cutmix", "1.0")


def test_a_new_run_starts_from_a_saved_config_json(prepared, tmp_path):
    first = train(prepared, tmp_path / "a", "--epochs", "1", "--max_steps", "1", "--seed", "5", "-lr", "0.01")
    second = main.main(run_args(main, "--train", "--config", first / "config.json", "--out", tmp_path / "b", *FAST,
                                "--epochs", "2"))
    before, after = (json.loads((run / "config.json").read_text()) for run in (first, second))
    assert after == {**before, "epochs": 2} and after["seed"] == 5 and after["learning_rate"] == 0.01
    assert "inputs" in torch.load(second / "last.pt", weights_only=True)  # the derived values, apart from config
