"""The training recipes behind the shipped checkpoints, and the teacher files' hashes.

config.py builds a run's configuration from these (a recipe option left unset becomes the --arch recipe's
value); a resumed run keeps its own, and its inputs (data, teacher) are checked here.
"""
import hashlib
from pathlib import Path

from deep_emotion.utils import TrainingError, file_sha256

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
    # fine-tuning dlib's face trunk (from the face_recognition_models package) with fresh heads: the heads
    # at the learning rate, the trunk at a tenth of it, its stem and first two stages frozen (CPU steps)
    "face_resnet": dict(epochs=8, batch_size=64, learning_rate=0.001, optimizer="adamw", weight_decay=0.05,
                        warmup_epochs=0.5, label_smoothing=0.1, rotation=10.0, scale=0.1, shift=0.1,
                        erase_prob=0.25, sharpness=0.0, photometric=0.0, clahe=False, logit_adjust=0.0,
                        ema=0.0, mixup=0.0, cutmix=0.0, sam=0.0, loc_lr_scale=0.1, clip_grad=5.0,
                        arch_args={"input_size": 150, "frozen_stages": 2, "heads": ["ferplus", "fer2013"]},
                        teacher="", distill_weight=0.5),
}


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


def check_resumed_inputs(inputs, saved, resumed_from, config):
    """Refuses to resume on other data or another teacher than the run started with (train.RunInputs; saved: the
    checkpoint's, or an older run's config that held them)."""
    if saved.get("data_identity") not in (None, inputs.data_identity):
        raise TrainingError(f"--data {' '.join(config.data)} is not the data {resumed_from} trained on "
                            f"({saved.get('data')}); resume with that --data, or without --data")
    if saved.get("teacher_sha256") not in (None, inputs.teacher_sha256):
        raise TrainingError(f"the teacher {config.teacher} changed since {resumed_from} started "
                            f"(sha256 {inputs.teacher_sha256[:12]}, the run's {saved['teacher_sha256'][:12]}); "
                            "pass --teacher with the original file")
