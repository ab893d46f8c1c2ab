"""A training run's configuration: one frozen object, built once from the recipe, a saved run and the flags.

    config = build_config(flags, device, saved=checkpoint["config"])   # train.py, once per run
    config.learning_rate, config.to_dict()                             # read everywhere; config.json

What decides what a run computes lives here: the recipe of --arch (recipes.RECIPES), the run's own
flags (RUN_DEFAULTS), and the data it reads. How a process runs (--device, --workers, --quiet, --out)
is not configuration, and neither are the values derived from the inputs (the data's and the
teacher's hashes, the selection rule: train.RunInputs). A resumed run takes its saved configuration
and refuses flags that differ from it (--epochs may grow); `--config FILE` starts a new run from a
saved config.json. Older runs' configurations are read through one table, LEGACY_CONFIG.
"""
import dataclasses
import json
from pathlib import Path

from deep_emotion.engine import TrainingError, pick_precision
from deep_emotion.recipes import LEGACY_CONFIG, RECIPES, RUN_DEFAULTS


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that decides what a training run computes (the recipe's keys, then the run's)."""

    arch: str
    arch_args: dict
    data: tuple
    epochs: int
    schedule_epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    weight_decay: float
    warmup_epochs: float
    label_smoothing: float
    loc_lr_scale: float
    clip_grad: float
    rotation: float
    scale: float
    shift: float
    erase_prob: float
    sharpness: float
    photometric: float
    clahe: bool
    logit_adjust: float
    ema: float
    mixup: float
    cutmix: float
    sam: float
    teacher: str
    distill_weight: float
    distill_heads: str
    seed: int
    precision: str
    no_flip: bool
    max_steps: int
    init: str
    source_weights: tuple
    targets: str
    select: str

    def to_dict(self):
        """The configuration as config.json holds it (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


CONFIG_KEYS = tuple(field.name for field in dataclasses.fields(RunConfig))


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
    values = {**RUN_DEFAULTS, "schedule_epochs": None, "data": ["data"], **RECIPES[arch], **base}
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
