"""Train Deep-Emotion on prepared FER2013 (and other prepared face sets beside it).

    python main.py --setup --train --data data           # prepare, then train with the default recipe
    python main.py -s True -d data                       # the original README's setup form
    python main.py --train --data data --arch deep_emotion_vgg
    python main.py --train --data data/fer data/raf --targets votes --source_weights 1 1   # several sources
    python main.py --train --resume runs/deep_emotion-0/last.pt
    torchrun --nproc_per_node 2 main.py --train --data data   # DistributedDataParallel

Each run writes to its own folder under --out: config.json, log.jsonl,
curves.png, last.pt and best.pt (best on the validation split).
"""
import dataclasses
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

from deep_emotion import distillation, engine
from deep_emotion.config import CONFIG_KEYS, add_run_options, build_config
from deep_emotion.data import prepare, training_data
from deep_emotion.data.prepared import check_prepared
from deep_emotion.emotions import ALL_HEADS, CLASS_NAMES, FER2013_HEAD
from deep_emotion.engine import (
    input_normalization,
    lr_factor,
    make_optimizer,
    to_fast_layout,
    train_one_epoch,
    training_objective,
)
from deep_emotion.face_detectors import equalize_contrast
from deep_emotion.face_trunk import load_dlib_weights
from deep_emotion.inference import device_arg, load_checkpoint, load_initial_weights, pick_device
from deep_emotion.model import build_model, count_parameters, face_input_of, set_head
from deep_emotion.recipes import check_resumed_inputs, teachers_sha256
from deep_emotion.run_folder import (
    checkpoint_state,
    epoch_record,
    new_run_dir,
    print_epoch,
    report_best,
    report_interruption,
    restore_training,
    save_epoch,
)
from deep_emotion.utils import (
    BOOL_FLAG,
    ArgumentParser,
    OutputError,
    TrainingError,
    check_writable_folder,
    command_hint,
    int_at_least,
    write_text_atomic,
)


def get_args_parser(command=None):
    """main.py's parser; command "train" or "resume" shows that `deep-emotion` subcommand's flags alone."""
    description = ("Continue a training run from its last.pt, exactly as it would have run: its configuration is "
                   "the run's own (flags that differ are refused; --epochs may grow)." if command == "resume" else
                   "Train Deep-Emotion on FER2013 prepared by generate_data.py.")
    parser = ArgumentParser(description=description)
    parser.add_argument("-s", "--setup", **BOOL_FLAG, help="convert the FER2013 in --data first (default: off)")
    parser.add_argument("-t", "--train", **BOOL_FLAG, help="train (default: off)")
    parser.add_argument("-hparams", "--hparams", "--hyperparams", dest="hyperparams", **BOOL_FLAG,
                        help="accepted for the original's command lines; given values always win (default: off)")
    parser.add_argument("--device", type=device_arg, default="auto",
                        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps (default: auto)")
    parser.add_argument("--resume", default="", help="last.pt to continue from, in its own run folder (default: none)")
    parser.add_argument("--config", default=None,
                        help="start from a saved config.json (a run's, e.g. runs/x/config.json): its values are the "
                             "defaults, flags given here override them (default: none = the --arch recipe)")
    parser.add_argument("--out", default="runs", help="folder that gets one subfolder per run (default: runs)")
    parser.add_argument("--workers", type=int_at_least(1), default=os.cpu_count(),
                        help="threads decoding images and running the CPU math (default: all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (default: bars on)")
    add_run_options(parser)
    if command == "train":  # `deep-emotion train` is main.py --train
        parser.hide("train", "hyperparams", "resume")
    elif command == "resume":  # `deep-emotion resume RUN/last.pt`: what a resumed run may still be told
        parser.hide(*[a.dest for a in parser._actions if a.dest not in ("help", "epochs", "data", "device",
                                                                        "workers", "quiet")])
    return parser


# ---------------------------------------------------------------- steps of a run

def build_training(config, device, steps_per_epoch, world_size):
    """The network (channels-last on device), its optimizer and the warm-up + cosine scheduler."""
    torch.manual_seed(config.seed)
    try:
        model = build_model(config.arch, **config.arch_args)
    except (TypeError, ValueError) as error:
        raise TrainingError(f"--arch_args {json.dumps(config.arch_args)} do not fit {config.arch}: {error}") from None
    if world_size > 1 and device.type == "cuda":  # batch statistics over the global batch (CUDA only)
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = to_fast_layout(model, device)
    optimizer = make_optimizer(model, config.optimizer, config.learning_rate, config.weight_decay,
                               config.loc_lr_scale)
    total_steps = config.schedule_epochs * steps_per_epoch
    warmup_steps = int(config.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, config.final_lr))
    return model, optimizer, scheduler


def weight_average(model, decay):
    """--ema: an exponential moving average of model's weights and batch-norm statistics (None when off)."""
    if not decay:
        return None
    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay),
                                               use_buffers=True)


def setup_processes(args):
    """Returns (device, rank, world_size); under torchrun, joins the process group first."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    if world_size == 1:
        return pick_device(args.device), rank, world_size
    device = pick_device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                         "cpu" if args.device == "auto" else args.device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, rank, world_size


# ---------------------------------------------------------------- the run

@dataclasses.dataclass(frozen=True)
class RunInputs:
    """What a run's inputs are, derived from them rather than configured: the data's identity, the teacher's
    sha256, the val score best.pt is chosen on, and the sha256 of the face trunk's file (face_resnet)."""

    data_identity: str
    teacher_sha256: str = None
    select_rule: str = None
    trunk_sha256: str = None


def load_training_data(config, device, checkpoint, show_bar, resumed_from=None):
    """The run's data: its sources, the union it trains on (on device), its targets, normalisation, draws and
    inputs (RunInputs)."""
    face_input = face_input_of(config.arch_args)  # the faces the network reads: its data follow it
    if config.clahe and face_input.colour:
        raise TrainingError("--clahe equalises grey faces; this network reads colour")
    sources = training_data.load_sources(config.data, config.targets, face_input)
    images, labels, soft_targets, sizes = training_data.union(sources, config.label_smoothing)
    if len(images) < config.batch_size:
        raise TrainingError(f"the train split has {len(images)} faces, fewer than --batch_size {config.batch_size}")
    inputs = RunInputs(training_data.sources_identity(config.data),
                       teachers_sha256(config.teacher) if config.teacher else None,
                       training_data.select_rule(config.select, sources))
    if checkpoint:  # older runs kept these in their config
        check_resumed_inputs(inputs, checkpoint.get("inputs") or checkpoint["config"], resumed_from, config)
    teacher_probabilities = second_teacher_probabilities = None
    if config.teacher:  # in the first head, and with --distill_heads all in the fer2013 head too
        heads = [None] + ([FER2013_HEAD] if config.distill_heads == "all" else [])
        tables = [table.to(device) for table in distillation.teacher_tables(
            config.teacher, inputs.teacher_sha256, config.data, config.targets, inputs.data_identity,
            config.precision, face_input, images, device, show_bar, heads)]
        teacher_probabilities = tables[0]
        second_teacher_probabilities = tables[1] if len(tables) > 1 else None
    if config.clahe:
        images = torch.from_numpy(equalize_contrast(images.numpy()))
        for source in sources:
            source.val_images = torch.from_numpy(equalize_contrast(source.val_images.numpy()))
    normalization = input_normalization(config, images, checkpoint)
    draw = None
    if len(sources) > 1 or config.source_weights is not None:
        draw = lambda generator: training_data.epoch_draws(sizes, config.source_weights, generator)  # noqa: E731
    class_counts = torch.bincount(labels, minlength=len(CLASS_NAMES))  # the class prior
    if device.type == "cuda":  # the whole split fits in GPU memory; batches are gathered there
        images, labels = images.to(device), labels.to(device)
    second_labels = training_data.second_head_labels(config.arch_args.get("heads"), sources)
    if second_labels is not None:
        if config.mixup or config.cutmix:  # the second head's labels are not mixed with the images
            raise TrainingError("--mixup and --cutmix mix one label set; train a two-head network without them")
        second_labels = second_labels.to(device)
    loss_fn, augment = training_objective(config, normalization, class_counts, soft_targets, teacher_probabilities,
                                          second_labels, second_teacher_probabilities)
    return SimpleNamespace(sources=sources, sizes=sizes, images=images, labels=labels, class_counts=class_counts,
                           normalization=normalization, draw=draw, loss_fn=loss_fn, augment=augment, inputs=inputs)


def run_config(args, device, world_size):
    """(the run's RunConfig, the resumed checkpoint or None), built once from the flags; the inputs checked."""
    checkpoint = None
    if args.resume:
        checkpoint = load_checkpoint(args.resume, "cpu")
        if "optimizer" not in checkpoint:
            raise TrainingError(f"{args.resume} is a weights-only checkpoint; --resume needs a last.pt of main.py")
    flags = {key: getattr(args, key, None) for key in CONFIG_KEYS}
    config = build_config(flags, device, saved=checkpoint["config"] if checkpoint else None, config_file=args.config,
                          resumed_from=args.resume)
    if checkpoint is not None and checkpoint["epoch"] >= config.epochs:
        done = f"{args.resume} is already at epoch {checkpoint['epoch']} of {config.epochs}: nothing to train"
        if checkpoint["epoch"] < config.schedule_epochs:
            raise TrainingError(f"{done}; ask for more with --epochs N, up to its schedule's {config.schedule_epochs}")
        raise TrainingError(f"{done}, and its {config.schedule_epochs}-epoch learning-rate schedule is over; to train "
                            f"on, start a new run from its weights: {command_hint('train', f'--init {args.resume}')}")
    if config.batch_size % world_size:
        raise TrainingError(f"--batch_size {config.batch_size} is not divisible by {world_size} processes")
    for folder in config.data:  # before anything is written: a run folder is made only for inputs that are there
        check_prepared(folder, "train")
        check_prepared(folder, "val")
    return config, checkpoint


def train(args):
    """Trains per args; returns the run folder. Raises DataError or TrainingError for bad input."""
    device, rank, world_size = setup_processes(args)
    torch.set_num_threads(max(1, args.workers // world_size))
    config, checkpoint = run_config(args, device, world_size)
    if rank == 0 and not args.resume:
        try:  # before the data and the teacher: an unwritable --out fails at once
            check_writable_folder(args.out, "the run folder")
        except OutputError as error:
            raise TrainingError(str(error)) from None
    if rank == 0 and config.teacher:
        print(f"distilling from {config.teacher} (--teacher; '' for none): its predictions on the training faces "
              "are computed once, then cached beside the data")
    data = load_training_data(config, device, checkpoint, rank == 0 and not args.quiet, args.resume)
    steps_per_epoch = len(data.images) // config.batch_size
    if config.max_steps:
        steps_per_epoch = min(steps_per_epoch, config.max_steps)
    model, optimizer, scheduler = build_training(config, device, steps_per_epoch, world_size)
    set_head(model, ALL_HEADS)  # training computes every head's loss; evaluation picks each in turn
    if config.init and not checkpoint:
        load_initial_weights(model, config.init, config.arch)
    elif config.arch == "face_resnet" and not checkpoint:
        try:
            data.inputs = dataclasses.replace(data.inputs, trunk_sha256=load_dlib_weights(model.trunk))
        except ImportError as error:
            raise TrainingError(str(error)) from None
    average = weight_average(model, config.ema)  # from the initial weights
    start_epoch, best_score, history = 0, None, []
    if checkpoint:
        start_epoch, best_score, history = restore_training(checkpoint, model, optimizer, scheduler, average)
        data.inputs = dataclasses.replace(data.inputs,
                                          trunk_sha256=(checkpoint.get("inputs") or {}).get("trunk_sha256"))
        run_dir = Path(args.resume).parent
    elif rank == 0:
        run_dir = new_run_dir(args.out, config.arch)
    net = torch.nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
    if rank == 0:
        write_text_atomic(run_dir / "config.json", json.dumps(config.to_dict(), indent=2))
        print(f"{config.arch}: {count_parameters(model):,} parameters, {len(data.images)} train / "
              f"{sum(len(s.val_images) for s in data.sources)} val faces, {device}, {config.precision}, "
              f"{world_size} process(es) -> {run_dir}")
        if len(data.sources) > 1:
            print(f"sources: {', '.join(f'{s.name} {n}' for s, n in zip(data.sources, data.sizes))} train faces; "
                  f"best.pt on the {data.inputs.select_rule}")
    try:
        for epoch in range(start_epoch, config.epochs):
            epoch_start = time.perf_counter()
            metrics = train_one_epoch(net, data, optimizer, scheduler, config, epoch=epoch, device=device, rank=rank,
                                      world_size=world_size, average=average, show_bar=rank == 0 and not args.quiet)
            if rank != 0:
                continue
            evaluated = average.module if average is not None else model  # what is saved as the model
            per_source = engine.evaluate_sources(evaluated, data.sources, data.normalization, device)
            row = epoch_record(data.inputs.select_rule, epoch, metrics, per_source, optimizer.param_groups[0]["lr"],
                               time.perf_counter() - epoch_start)
            history.append(row)
            is_best = best_score is None or row["score"] > best_score  # the first epoch is best, even at 0%
            best_score = row["score"] if is_best else best_score
            save_epoch(run_dir, checkpoint_state(config, data, model, evaluated, optimizer, scheduler, average, epoch,
                                                 row, best_score, history), is_best, history)
            print_epoch(config.epochs, row, is_best)
        if world_size > 1:
            dist.barrier()  # no process leaves (and tears the group down) while rank 0 still evaluates and saves
    except KeyboardInterrupt:
        if rank == 0:
            report_interruption(run_dir)
        raise
    finally:
        if world_size > 1:
            dist.destroy_process_group()
    if rank == 0 and history:
        report_best(run_dir, history, data.inputs.select_rule, config.data[0])
    return run_dir if rank == 0 else None


def main(args):
    """Runs setup and/or training as the flags ask; returns the run folder (or None)."""
    if args.setup:
        for data_dir in args.data or ["data"]:
            prepare.print_summary(prepare.prepare(data_dir))
    if args.train:
        return train(args)
    if not args.setup:
        print("nothing to do: add --train (and --setup to prepare the data first)")
    return None
