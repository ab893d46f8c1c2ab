"""The training recipes behind the shipped checkpoints, and the rules that fill, restore and check a run's flags.

main.py owns the command line and the run; this module decides what each flag left unset becomes
(the recipe of --arch), and what a resumed run must keep (everything that decides what it computes:
its recipe, its data sources, their weights, its targets, its teacher).
"""
import hashlib
from pathlib import Path

from deep_emotion.data_loaders import check_prepared
from deep_emotion.engine import TrainingError, pick_precision
from deep_emotion.inference import load_checkpoint

REPO = Path(__file__).resolve().parent.parent  # the checkout, where weights/ and web/ live

# The recipe behind each shipped checkpoint: what a flag left at None becomes.
RECIPES = {
    "deep_emotion": dict(epochs=200, batch_size=256, learning_rate=0.003, optimizer="adamw", weight_decay=1e-4,
                         warmup_epochs=2, label_smoothing=0.1, rotation=10.0, scale=0.1, shift=0.1,
                         erase_prob=0.0, sharpness=1.5, photometric=0.0, clahe=False, logit_adjust=0.0,
                         ema=0.0, mixup=0.0, cutmix=0.0, sam=0.0, loc_lr_scale=1.0, clip_grad=0.0,
                         arch_args={"dropout": 0.0}, teacher="weights/deep_emotion_vgg.pt", distill_weight=0.5),
    "deep_emotion_vgg": dict(epochs=60, batch_size=256, learning_rate=0.03, optimizer="sgd", weight_decay=5e-4,
                             warmup_epochs=3, label_smoothing=0.1, rotation=10.0, scale=0.1, shift=0.1,
                             erase_prob=0.5, sharpness=1.5, photometric=0.0, clahe=False, logit_adjust=0.0,
                             ema=0.0, mixup=0.0, cutmix=0.0, sam=0.0, loc_lr_scale=0.1, clip_grad=5.0,
                             arch_args={"width": 48}, teacher="", distill_weight=0.5),
}


# Flags that, with the recipe's, decide what a run computes: a resumed run takes them from its
# checkpoint, and refuses a command line that asks for other values. What they are when not given:
RUN_DEFAULTS = dict(arch="deep_emotion", seed=0, precision="auto", no_flip=False, max_steps=0, init="",
                    source_weights=None, targets="label", select="auto")
# what main.py did before a key was recorded in config.json, for resuming older runs
LEGACY_CONFIG = dict(precision="fp32", sharpness=0.0, photometric=0.0, clahe=False, logit_adjust=0.0, ema=0.0,
                     mixup=0.0, cutmix=0.0, sam=0.0, teacher="", distill_weight=0.5, source_weights=None,
                     targets="label", select="auto")


def recipe_help(key):
    """The per-architecture defaults of a recipe flag, spelled out for its help text."""
    return " (default: " + "; ".join(f"{arch} {r[key]}" for arch, r in RECIPES.items()) + ")"


def fill_recipe(args):
    """Replaces every flag left at None with its default and the --arch recipe's value."""
    for key, value in RUN_DEFAULTS.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    for key, value in RECIPES[args.arch].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


# ---------------------------------------------------------------- configuration

def restore_config(args, saved, device):
    """Takes every flag that decides what a run computes from the config of the run being resumed.

    A flag given on the command line must agree with it; otherwise raises TrainingError naming
    each difference, since the resumed run would not train as the original did.
    """
    differences = []
    if args.epochs is None:  # --epochs may grow on resume (within the schedule); nothing else may change
        args.epochs = saved["epochs"]
    for key in list(RUN_DEFAULTS) + list(RECIPES[saved.get("arch", "deep_emotion")]) + ["schedule_epochs"]:
        if key == "epochs":
            continue
        given = getattr(args, key)
        if key in saved:
            value = saved[key]
        elif key == "schedule_epochs":  # before the key existed, the schedule spanned the run's epochs
            value = saved["epochs"]
        elif key in LEGACY_CONFIG:
            value = LEGACY_CONFIG[key]
        elif given is None:
            raise TrainingError(f"{args.resume}'s config does not record --{key} (an older main.py); "
                                f"pass --{key} with the value the run used")
        else:
            continue
        same = (given is None or given == value
                or (key == "precision" and pick_precision(given, device) == value))
        if not same:
            differences.append(f"--{key} {given} (the run has {value})")
        setattr(args, key, value)
    if differences:
        raise TrainingError(f"{args.resume} was trained otherwise: {'; '.join(differences)}; drop these flags to "
                            "resume it as it was, or start a new run")


def configure(args, device, world_size):
    """Fills args (from the resumed run's config, the defaults and the recipe); returns the resumed checkpoint."""
    checkpoint = None
    if args.resume:
        checkpoint = load_checkpoint(args.resume, "cpu")
        if "optimizer" not in checkpoint:
            raise TrainingError(f"{args.resume} is a weights-only checkpoint; --resume needs a last.pt of main.py")
        restore_config(args, checkpoint["config"], device)
        if args.data is None:  # older runs recorded one folder as a string
            saved = checkpoint["config"].get("data", "data")
            args.data = [saved] if isinstance(saved, str) else list(saved)
    args.data = args.data or ["data"]
    resolved = [Path(d).resolve() for d in args.data]
    for i, folder in enumerate(resolved):
        if folder in resolved[:i]:
            raise TrainingError(f"--data names {args.data[i]} twice; give each folder once (--source_weights "
                                "sets how much of each epoch a folder takes)")
    for folder in args.data:  # before anything is written: a run folder is made only for inputs that are there
        check_prepared(folder, "train")
        check_prepared(folder, "val")
    fill_recipe(args)
    if args.source_weights is not None and len(args.source_weights) != len(args.data):
        raise TrainingError(f"--source_weights gives {len(args.source_weights)} weight(s) for {len(args.data)} "
                            "--data folder(s); give one per folder")
    if args.source_weights is not None and (min(args.source_weights) < 0 or sum(args.source_weights) <= 0):
        raise TrainingError("--source_weights must be non-negative and not all zero")
    if args.schedule_epochs is None:
        args.schedule_epochs = max(RECIPES[args.arch]["epochs"], args.epochs)
    if args.epochs > args.schedule_epochs:
        raise TrainingError(f"--epochs {args.epochs} runs past the {args.schedule_epochs}-epoch learning-rate "
                            f"schedule; add --schedule_epochs {args.epochs}")
    if args.batch_size % world_size:
        raise TrainingError(f"--batch_size {args.batch_size} is not divisible by {world_size} processes")
    if args.mixup > 0 and args.cutmix > 0:
        raise TrainingError("--mixup and --cutmix each mix the whole batch; choose one")
    args.precision = pick_precision(args.precision, device)  # the config records what ran, never "auto"
    return checkpoint


def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def resolve_teachers(teacher):
    """The paths of --teacher's comma-separated checkpoints: as given, else relative to this repo (the recipe's)."""
    paths = []
    for name in teacher.split(","):
        path = Path(name.strip())
        if not path.exists() and not path.is_absolute() and (REPO / path).exists():
            path = REPO / path
        if not path.is_file():
            raise TrainingError(f"--teacher {name.strip()} does not exist")
        paths.append(path)
    return paths


def teachers_sha256(teacher):
    """One sha256 for --teacher: the file's own for one checkpoint, else that of the files' hashes in order."""
    hashes = [file_sha256(path) for path in resolve_teachers(teacher)]
    return hashes[0] if len(hashes) == 1 else hashlib.sha256("".join(hashes).encode()).hexdigest()


def check_resumed_inputs(args, saved):
    """Refuses to resume on other data or another teacher than the run started with."""
    if saved.get("data_identity") not in (None, args.data_identity):
        raise TrainingError(f"--data {' '.join(args.data)} is not the data {args.resume} trained on "
                            f"({saved.get('data')}); resume with that --data, or without --data")
    if saved.get("teacher_sha256") not in (None, args.teacher_sha256):
        raise TrainingError(f"the teacher {args.teacher} changed since {args.resume} started "
                            f"(sha256 {args.teacher_sha256[:12]}, the run's {saved['teacher_sha256'][:12]}); "
                            "pass --teacher with the original file")


