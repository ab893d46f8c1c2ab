"""A training run's configuration: one frozen object, built once from the recipe, a saved run and the flags.

    config = build_config(flags, device, saved=checkpoint["config"])   # train.py, once per run
    config.learning_rate, config.to_dict()                             # read everywhere; config.json

What decides what a run computes lives here, each option written once in OPTIONS (its flag, help, default
and legacy value; the parser, RunConfig's fields, RUN_DEFAULTS and LEGACY_CONFIG are made from it): the
recipe of --arch (recipes.RECIPES), the run's own flags, and the data it reads. A new training flag is a
line in OPTIONS and the line that reads it. How a process runs (--device, --workers, --quiet, --out)
is not configuration, and neither are the values derived from the inputs (the data's and the
teacher's hashes, the selection rule: train.RunInputs). A resumed run takes its saved configuration
and refuses flags that differ from it (--epochs may grow); `--config FILE` starts a new run from a
saved config.json. Older runs' configurations are read through one table, LEGACY_CONFIG.
"""
import dataclasses
import json
from pathlib import Path

from deep_emotion.data.training_data import SELECT_RULES, TARGETS
from deep_emotion.engine import pick_precision
from deep_emotion.recipes import RECIPES
from deep_emotion.utils import TrainingError, float_in, int_at_least, str2bool

POSITIVE, NONNEGATIVE = float_in(0, None, low_open=True), float_in(0, None)
NO_LEGACY = object()  # an option every recorded run has


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of a run, written once: its flag, its help, its value when not given, and what runs recorded
    before it existed did. The parser (add_run_options), the defaults (RUN_DEFAULTS), the help text, RunConfig's
    fields and the upgrade of older configurations (LEGACY_CONFIG) are all made from OPTIONS.

    recipe: when not given, the value is the --arch recipe's (recipes.RECIPES), else `default`. flags: the
    original's other spellings. argparse: add_argument's type, choices, nargs, const, action. shown: how the
    help spells the default where the value itself would not read well.
    """

    name: str
    help: str
    default: object = None
    recipe: bool = False
    legacy: object = NO_LEGACY
    flags: tuple = ()
    argparse: dict = dataclasses.field(default_factory=dict)
    shown: str = None

    def help_text(self):
        if self.recipe:
            return f"{self.help} (default: " + "; ".join(f"{arch} {r[self.name]}" for arch, r in RECIPES.items()) + ")"
        return f"{self.help} (default: {self.default if self.shown is None else self.shown})"


OPTIONS = (
    Option("data", "prepared data folder(s); several train on the union of their train splits", ["data"],
           flags=("-d",), argparse=dict(nargs="+"), shown="data, or the resumed run's"),
    Option("source_weights", "each --data folder's share of an epoch's draws, e.g. 1 1", legacy=None,
           argparse=dict(type=NONNEGATIVE, nargs="+"), shown="none = the plain union, each face once"),
    Option("targets", "what the loss follows where a folder has FER+ votes: label (its FER2013 label), majority "
           "(FER+'s majority label), votes (FER+'s vote distribution)", "label", legacy="label",
           argparse=dict(choices=TARGETS)),
    Option("select", "the val score best.pt is chosen on: accuracy (the first folder's), mean (the first folder's "
           "accuracy with the others' balanced accuracies); auto = accuracy for one folder, mean for several", "auto",
           legacy="auto", argparse=dict(choices=SELECT_RULES)),
    Option("arch", "network", "deep_emotion", argparse=dict(choices=sorted(RECIPES))),  # the networks one trains
    Option("arch_args", "JSON keyword arguments of the network, e.g. '{\"width\": 64}'", recipe=True,
           argparse=dict(type=json.loads)),
    Option("epochs", "total epochs, also when resuming", recipe=True, flags=("-e",),
           argparse=dict(type=int_at_least(1))),
    Option("schedule_epochs", "epochs the warm-up + cosine schedule spans; --epochs may stop earlier, and stopping, "
           "resuming or extending never changes an epoch's learning rate",
           argparse=dict(type=int_at_least(1)), shown="the recipe's epochs, or --epochs if larger"),
    Option("final_lr", "the learning rate the cosine schedule ends at, as a share of the peak", 0.0, legacy=0.0,
           argparse=dict(type=float_in(0, 1))),
    Option("learning_rate", "peak learning rate", recipe=True, flags=("-lr",), argparse=dict(type=POSITIVE)),
    Option("batch_size", "global batch size", recipe=True, flags=("-bs",), argparse=dict(type=int_at_least(1))),
    Option("optimizer", "optimizer", recipe=True, argparse=dict(choices=["sgd", "adamw"])),
    Option("weight_decay", "weight decay", recipe=True, argparse=dict(type=NONNEGATIVE)),
    Option("warmup_epochs", "linear warm-up before the cosine decay", recipe=True, argparse=dict(type=NONNEGATIVE)),
    Option("label_smoothing", "label smoothing", recipe=True, argparse=dict(type=float_in(0, 1, high_open=True))),
    Option("loc_lr_scale", "learning-rate factor of the STN localization branch (face_resnet: of the pretrained "
           "trunk)", recipe=True, argparse=dict(type=NONNEGATIVE)),
    Option("clip_grad", "gradient-norm clip, 0 = off", recipe=True, argparse=dict(type=NONNEGATIVE)),
    Option("rotation", "max random rotation, degrees", recipe=True, argparse=dict(type=float_in(0, 180))),
    Option("scale", "max random zoom, fraction", recipe=True, argparse=dict(type=float_in(0, 1, high_open=True))),
    Option("shift", "max random shift, fraction of the size", recipe=True, argparse=dict(type=float_in(0, 1))),
    Option("erase_prob", "random-erasing probability", recipe=True, argparse=dict(type=float_in(0, 1))),
    Option("sharpness", "random sharpening: factor in [1, 1 + s] of torchvision's adjust_sharpness, 0 = off",
           recipe=True, legacy=0.0, argparse=dict(type=NONNEGATIVE)),
    Option("photometric", "strength of random camera-like degradations (contrast, brightness, gamma, low "
           "resolution, noise; augment.degrade_batch), 0 = off", recipe=True, legacy=0.0,
           argparse=dict(type=float_in(0, 2))),
    Option("clahe", "equalise each face's contrast (CLAHE) in training and, recorded in the checkpoint, at "
           "inference", recipe=True, legacy=False, argparse=dict(type=str2bool, nargs="?", const=True)),
    Option("logit_adjust", "logit-adjusted loss (Menon et al. 2021): the loss sees logits + tau * log(class prior), "
           "so the network's own logits are those of a class-balanced training set; tau", recipe=True, legacy=0.0,
           argparse=dict(type=NONNEGATIVE)),
    Option("ema", "decay of an exponential moving average of the weights, updated every step; the average is what "
           "is evaluated and saved as the model, 0 = off", recipe=True, legacy=0.0,
           argparse=dict(type=float_in(0, 1, high_open=True))),
    Option("mixup", "mixup: each batch is blended with itself shuffled, by a Beta(a, a) share, labels and teacher "
           "targets alike; a, 0 = off", recipe=True, legacy=0.0, argparse=dict(type=NONNEGATIVE)),
    Option("cutmix", "CutMix: a rectangle of each face's shuffled partner is pasted in, its area ~ Beta(a, a), labels "
           "and teacher targets mixed by area; a, 0 = off; not with --mixup", recipe=True, legacy=0.0,
           argparse=dict(type=NONNEGATIVE)),
    Option("sam", "sharpness-aware minimisation (Foret et al. 2021): radius rho of the weight step the gradient is "
           "taken at; each step costs two, 0 = off", recipe=True, legacy=0.0, argparse=dict(type=NONNEGATIVE)),
    Option("teacher", "checkpoint(s) whose predictions the network also learns from (knowledge distillation; "
           "several, comma-separated, are averaged; '' = none)", recipe=True, legacy=""),
    Option("distill_weight", "share of the loss that follows the teacher", recipe=True, legacy=0.5,
           argparse=dict(type=float_in(0, 1))),
    Option("distill_heads", "which heads of a two-head network follow the teacher: its first (FER+'s sense), or all "
           "(the fer2013 head the teacher's fer2013 head too)", "first", legacy="first",
           argparse=dict(choices=["first", "all"])),
    Option("no_flip", "no random horizontal flips", False, argparse=dict(action="store_true"), shown="flips on"),
    Option("seed", "random seed", 0, argparse=dict(type=int)),
    Option("precision", "training math: bf16 autocast or fp32; auto = bf16 on CUDA GPUs of compute capability 8.0 "
           "or more and on CPUs with native bf16 (AVX512-BF16 or AMX), else fp32", "auto", legacy="fp32",
           argparse=dict(choices=["auto", "bf16", "fp32"])),
    Option("init", "start from these weights with a fresh optimizer and schedule, i.e. fine-tune", "",
           shown="none"),
    Option("max_steps", "stop each epoch after this many steps, for smoke tests", 0,
           argparse=dict(type=int_at_least(0)), shown="0 = whole epoch"),
)
OPTION = {option.name: option for option in OPTIONS}
# what a run option is when not given (a recipe option is its --arch recipe's), and what runs recorded before an
# option existed did, for resuming them
RUN_DEFAULTS = {o.name: o.default for o in OPTIONS if not o.recipe}
LEGACY_CONFIG = {o.name: o.legacy for o in OPTIONS if o.legacy is not NO_LEGACY}


def add_run_options(parser):
    """Adds every run option's flag to parser, from OPTIONS; each defaults to None, so that build_config knows which
    were given."""
    group = parser.add_argument_group("run configuration (recorded in config.json)")
    for option in OPTIONS:
        group.add_argument(*option.flags, f"--{option.name}", default=None, help=option.help_text(), **option.argparse)
    return parser


def _to_dict(config):
    """The configuration as config.json holds it (lists for tuples)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


# Everything that decides what a training run computes: one frozen field per option
RunConfig = dataclasses.make_dataclass("RunConfig", [(option.name, object) for option in OPTIONS], frozen=True,
                                       namespace={"to_dict": _to_dict, "__module__": __name__})
CONFIG_KEYS = tuple(option.name for option in OPTIONS)


def upgrade(saved):
    """A saved configuration (config.json, or a checkpoint's "config") as this version reads it.

    Older runs lack keys added since (LEGACY_CONFIG: what main.py did before), recorded --data as one
    string, and mixed process flags and derived values into it (dropped here).
    """
    values = {**LEGACY_CONFIG, **{k: v for k, v in saved.items() if k in CONFIG_KEYS}}
    if isinstance(values.get("data"), str):
        values["data"] = [values["data"]]
    values.setdefault("schedule_epochs", saved.get("epochs"))  # before the key, the schedule spanned the run
    return values


def read_config_file(path):
    """The configuration in a config.json (a run's, or one written by hand); raises TrainingError."""
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise TrainingError(f"--config {path} is not a readable config.json ({error})") from None
    if not isinstance(saved, dict) or "arch" not in saved:
        raise TrainingError(f"--config {path} holds no run configuration (it names no arch)")
    return upgrade(saved)


def build_config(flags, device, saved=None, config_file=None, resumed_from=None):
    """The run's RunConfig; raises TrainingError for flags that do not fit.

    flags: {key: value, None where the command line did not give it}. The layers, each over the one
    before: RUN_DEFAULTS, the recipe of the arch, --config's file, the resumed run's configuration
    (`saved`, which given flags must agree with: resumed_from names that run), the given flags.
    """
    given = {k: v for k, v in flags.items() if k in CONFIG_KEYS and v is not None}
    start = read_config_file(config_file) if config_file else {}
    base = upgrade(saved) if saved is not None else start
    arch = given.get("arch") or base.get("arch") or RUN_DEFAULTS["arch"]
    if arch not in RECIPES:
        raise TrainingError(f"{resumed_from or config_file} is for an unknown architecture {arch!r}")
    if saved is not None:
        missing = [key for key in [*RUN_DEFAULTS, *RECIPES[arch]] if key not in base and key not in given]
        if missing:
            raise TrainingError(f"{resumed_from}'s config does not record --{missing[0]} (an older main.py); pass "
                                f"--{missing[0]} with the value the run used")
    values = {**RUN_DEFAULTS, **RECIPES[arch], **base}
    if saved is not None:
        check_resumed_flags(given, values, resumed_from, device)
    values.update(given)
    values["arch"] = arch
    if values["schedule_epochs"] is None:
        values["schedule_epochs"] = max(RECIPES[arch]["epochs"], values["epochs"])
    values["precision"] = pick_precision(values["precision"], device)  # what ran, never "auto"
    values["data"] = tuple(str(d) for d in values["data"])
    if values["source_weights"] is not None:
        values["source_weights"] = tuple(values["source_weights"])
    check_values(values)
    return RunConfig(**values)


def check_resumed_flags(given, saved, resumed_from, device):
    """Refuses flags that differ from the resumed run's configuration, naming each (only --epochs may grow)."""
    differences = []
    for key, value in given.items():
        if key in ("epochs", "data"):  # --epochs may grow; --data is checked against the data's identity
            continue
        same = value == saved.get(key) or (key == "precision" and pick_precision(value, device) == saved.get(key))
        if not same:
            differences.append(f"--{key} {value} (the run has {saved.get(key)})")
    if differences:
        raise TrainingError(f"{resumed_from} was trained otherwise: {'; '.join(differences)}; drop these flags to "
                            "resume it as it was, or start a new run")


def check_values(values):
    """The checks of a configuration's values against each other; raises TrainingError."""
    if values["epochs"] > values["schedule_epochs"]:
        raise TrainingError(f"--epochs {values['epochs']} runs past the {values['schedule_epochs']}-epoch "
                            f"learning-rate schedule; add --schedule_epochs {values['epochs']}")
    weights = values["source_weights"]
    if weights is not None and len(weights) != len(values["data"]):
        raise TrainingError(f"--source_weights gives {len(weights)} weight(s) for {len(values['data'])} "
                            "--data folder(s); give one per folder")
    if weights is not None and (min(weights) < 0 or sum(weights) <= 0):
        raise TrainingError("--source_weights must be non-negative and not all zero")
    if values["distill_heads"] == "all" and not (values["teacher"] and len(values["arch_args"].get("heads") or []) > 1):
        raise TrainingError("--distill_heads all teaches a two-head network's second head: it needs --teacher "
                            "and --arch_args with two heads")
    if values["mixup"] > 0 and values["cutmix"] > 0:
        raise TrainingError("--mixup and --cutmix each mix the whole batch; choose one")
    resolved = [Path(d).resolve() for d in values["data"]]
    for i, folder in enumerate(resolved):
        if folder in resolved[:i]:
            raise TrainingError(f"--data names {values['data'][i]} twice; give each folder once (--source_weights "
                                "sets how much of each epoch a folder takes)")
