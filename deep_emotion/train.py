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
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.distributed as dist

from deep_emotion import prepare, training_data
from deep_emotion.data_loaders import DataError
from deep_emotion.emotions import CLASS_NAMES
from deep_emotion.engine import (
    TrainingError,
    autocast_dtype,
    lr_factor,
    make_augment,
    make_loss,
    make_optimizer,
    to_fast_layout,
    train_one_epoch,
)
from deep_emotion.face_detectors import equalize_contrast
from deep_emotion.inference import CheckpointError, device_arg, load_checkpoint, pick_device
from deep_emotion.model import ALL_HEADS, ARCHS, build_model, count_parameters, set_head
from deep_emotion.recipes import check_resumed_inputs, configure, recipe_help, teachers_sha256
from deep_emotion.run_folder import new_run_dir, report_best, report_interruption, restore_training, save_epoch
from deep_emotion.utils import (
    BOOL_FLAG,
    ArgumentParser,
    OutputError,
    check_writable_folder,
    float_in,
    int_at_least,
    str2bool,
    write_text_atomic,
)

# what main() raises for bad input: one line and exit code 2, no traceback
ERRORS = (DataError, TrainingError, CheckpointError)


def get_args_parser():
    parser = ArgumentParser(description="Train Deep-Emotion on FER2013 prepared by generate_data.py.")
    positive = float_in(0, None, low_open=True)
    nonnegative = float_in(0, None)
    parser.add_argument("-s", "--setup", **BOOL_FLAG, help="convert the FER2013 in --data first (default: off)")
    parser.add_argument("-t", "--train", **BOOL_FLAG, help="train (default: off)")
    parser.add_argument("-d", "--data", nargs="+", default=None,
                        help="prepared data folder(s); several train on the union of their train splits "
                             "(default: data, or the resumed run's)")
    parser.add_argument("--source_weights", type=float_in(0, None), nargs="+", default=None,
                        help="each --data folder's share of an epoch's draws, e.g. 1 1 (default: none = the plain "
                             "union, each face once)")
    parser.add_argument("--targets", choices=training_data.TARGETS, default=None,
                        help="what the loss follows where a folder has FER+ votes: label (its FER2013 label), "
                             "majority (FER+'s majority label), votes (FER+'s vote distribution) (default: label)")
    parser.add_argument("--select", choices=training_data.SELECT_RULES, default=None,
                        help="the val score best.pt is chosen on: accuracy (the first folder's), mean (the first "
                             "folder's accuracy with the others' balanced accuracies); auto = accuracy for one "
                             "folder, mean for several (default: auto)")
    parser.add_argument("-hparams", "--hparams", "--hyperparams", dest="hyperparams", **BOOL_FLAG,
                        help="accepted for the original's command lines; given values always win (default: off)")
    parser.add_argument("--arch", default=None, choices=sorted(ARCHS), help="network (default: deep_emotion)")
    parser.add_argument("--arch_args", type=json.loads, default=None,
                        help='JSON keyword arguments of the network, e.g. \'{"width": 64}\'' + recipe_help("arch_args"))

    parser.add_argument("-e", "--epochs", type=int_at_least(1), default=None,
                        help="total epochs, also when resuming" + recipe_help("epochs"))
    parser.add_argument("--schedule_epochs", type=int_at_least(1), default=None,
                        help="epochs the warm-up + cosine schedule spans; --epochs may stop earlier, and stopping, "
                             "resuming or extending never changes an epoch's learning rate "
                             "(default: the recipe's epochs, or --epochs if larger)")
    parser.add_argument("-lr", "--learning_rate", type=positive, default=None,
                        help="peak learning rate" + recipe_help("learning_rate"))
    parser.add_argument("-bs", "--batch_size", type=int_at_least(1), default=None,
                        help="global batch size" + recipe_help("batch_size"))
    parser.add_argument("--optimizer", choices=["sgd", "adamw"], default=None, help="optimizer" + recipe_help("optimizer"))
    parser.add_argument("--weight_decay", type=nonnegative, default=None, help="weight decay" + recipe_help("weight_decay"))
    parser.add_argument("--warmup_epochs", type=nonnegative, default=None,
                        help="linear warm-up before the cosine decay" + recipe_help("warmup_epochs"))
    parser.add_argument("--label_smoothing", type=float_in(0, 1, high_open=True), default=None,
                        help="label smoothing" + recipe_help("label_smoothing"))
    parser.add_argument("--loc_lr_scale", type=nonnegative, default=None,
                        help="learning-rate factor of the STN localization branch" + recipe_help("loc_lr_scale"))
    parser.add_argument("--clip_grad", type=nonnegative, default=None,
                        help="gradient-norm clip, 0 = off" + recipe_help("clip_grad"))
    parser.add_argument("--rotation", type=float_in(0, 180), default=None,
                        help="max random rotation, degrees" + recipe_help("rotation"))
    parser.add_argument("--scale", type=float_in(0, 1, high_open=True), default=None,
                        help="max random zoom, fraction" + recipe_help("scale"))
    parser.add_argument("--shift", type=float_in(0, 1), default=None,
                        help="max random shift, fraction of the size" + recipe_help("shift"))
    parser.add_argument("--erase_prob", type=float_in(0, 1), default=None,
                        help="random-erasing probability" + recipe_help("erase_prob"))
    parser.add_argument("--sharpness", type=nonnegative, default=None,
                        help="random sharpening: factor in [1, 1 + s] of torchvision's adjust_sharpness, 0 = off"
                             + recipe_help("sharpness"))
    parser.add_argument("--photometric", type=float_in(0, 2), default=None,
                        help="strength of random camera-like degradations (contrast, brightness, gamma, low "
                             "resolution, noise; augment.degrade_batch), 0 = off" + recipe_help("photometric"))
    parser.add_argument("--clahe", type=str2bool, nargs="?", const=True, default=None,
                        help="equalise each face's contrast (CLAHE) in training and, recorded in the checkpoint, "
                             "at inference" + recipe_help("clahe"))
    parser.add_argument("--logit_adjust", type=nonnegative, default=None,
                        help="logit-adjusted loss (Menon et al. 2021): the loss sees logits + tau * log(class prior), "
                             "so the network's own logits are those of a class-balanced training set; tau "
                             + recipe_help("logit_adjust")[1:])
    parser.add_argument("--ema", type=float_in(0, 1, high_open=True), default=None,
                        help="decay of an exponential moving average of the weights, updated every step; the average "
                             "is what is evaluated and saved as the model, 0 = off" + recipe_help("ema"))
    parser.add_argument("--mixup", type=nonnegative, default=None,
                        help="mixup: each batch is blended with itself shuffled, by a Beta(a, a) share, labels and "
                             "teacher targets alike; a, 0 = off" + recipe_help("mixup"))
    parser.add_argument("--cutmix", type=nonnegative, default=None,
                        help="CutMix: a rectangle of each face's shuffled partner is pasted in, its area ~ Beta(a, a), "
                             "labels and teacher targets mixed by area; a, 0 = off; not with --mixup"
                             + recipe_help("cutmix"))
    parser.add_argument("--sam", type=nonnegative, default=None,
                        help="sharpness-aware minimisation (Foret et al. 2021): radius rho of the weight step the "
                             "gradient is taken at; each step costs two, 0 = off" + recipe_help("sam"))
    parser.add_argument("--teacher", default=None,
                        help="checkpoint(s) whose predictions the network also learns from (knowledge distillation; "
                             "several, comma-separated, are averaged; '' = none)" + recipe_help("teacher"))
    parser.add_argument("--distill_weight", type=float_in(0, 1), default=None,
                        help="share of the loss that follows the teacher" + recipe_help("distill_weight"))
    parser.add_argument("--no_flip", action="store_true", default=None, help="no random horizontal flips (default: flips on)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: 0)")
    parser.add_argument("--device", type=device_arg, default="auto",
                        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps (default: auto)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default=None,
                        help="training math: bf16 autocast or fp32; auto = bf16 on CUDA GPUs of compute capability "
                             "8.0 or more and on CPUs with native bf16 (AVX512-BF16 or AMX), else fp32 (default: auto)")
    parser.add_argument("--resume", default="", help="last.pt to continue from, in its own run folder (default: none)")
    parser.add_argument("--init", default=None,
                        help="start from these weights with a fresh optimizer and schedule, i.e. fine-tune (default: none)")
    parser.add_argument("--out", default="runs", help="folder that gets one subfolder per run (default: runs)")
    parser.add_argument("--workers", type=int_at_least(1), default=os.cpu_count(),
                        help="threads decoding images and running the CPU math (default: all cores)")
    parser.add_argument("--max_steps", type=int_at_least(0), default=None,
                        help="stop each epoch after this many steps, for smoke tests (default: 0 = whole epoch)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (default: bars on)")
    return parser


# ---------------------------------------------------------------- steps of a run





def build_training(args, device, steps_per_epoch, world_size):
    """The network (channels-last on device), its optimizer and the warm-up + cosine scheduler."""
    torch.manual_seed(args.seed)
    try:
        model = build_model(args.arch, **args.arch_args)
    except (TypeError, ValueError) as error:
        raise TrainingError(f"--arch_args {json.dumps(args.arch_args)} do not fit {args.arch}: {error}") from None
    if world_size > 1 and device.type == "cuda":  # batch statistics over the global batch (CUDA only)
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = to_fast_layout(model, device)
    optimizer = make_optimizer(model, args)
    total_steps, warmup_steps = args.schedule_epochs * steps_per_epoch, int(args.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total_steps, warmup_steps))
    return model, optimizer, scheduler


def weight_average(model, decay):
    """--ema: an exponential moving average of model's weights and batch-norm statistics (None when off)."""
    if not decay:
        return None
    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay),
                                               use_buffers=True)


def load_initial_weights(model, path, arch):
    """--init: the weights of a checkpoint of the same architecture, with a fresh optimizer and schedule."""
    initial = load_checkpoint(path, "cpu")
    if initial["arch"] != arch:
        raise TrainingError(f"--init {path} is a {initial['arch']} checkpoint, not --arch {arch}")
    weights = {k: v.float() if v.is_floating_point() else v for k, v in initial["model"].items()}
    for name in getattr(model, "extra_heads", {}):  # a head the initial network lacks starts as its default head
        for key in ("weight", "bias"):
            weights.setdefault(f"extra_heads.{name}.{key}", weights[f"classifier.{key}"].clone())
    model.load_state_dict(weights)






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

def load_training_data(args, device, checkpoint, show_bar):
    """The run's data: its sources, the union it trains on (on device), its targets, normalisation and draws."""
    sources = training_data.load_sources(args.data, args.targets)
    images, labels, soft_targets, sizes = training_data.union(sources, args.label_smoothing)
    if len(images) < args.batch_size:
        raise TrainingError(f"the train split has {len(images)} faces, fewer than --batch_size {args.batch_size}")
    args.data_identity = training_data.sources_identity(args.data)
    args.teacher_sha256 = teachers_sha256(args.teacher) if args.teacher else None
    args.select_rule = training_data.select_rule(args.select, sources)
    if checkpoint:
        check_resumed_inputs(args, checkpoint["config"])
    teacher_probabilities = None
    if args.teacher:  # on the faces as they are: a teacher reads them its own way
        teacher_probabilities = training_data.teacher_targets(args, images, device, show_bar).to(device)
    if args.clahe:
        images = torch.from_numpy(equalize_contrast(images.numpy()))
        for source in sources:
            source.val_images = torch.from_numpy(equalize_contrast(source.val_images.numpy()))
    if checkpoint:
        normalization = tuple(checkpoint["normalization"])
    elif args.init:  # the initial weights read faces standardised as their own run did
        normalization = tuple(load_checkpoint(args.init, "cpu")["normalization"])
    else:
        pixels = images.float() / 255
        normalization = (pixels.mean().item(), pixels.std().item())
    draw = None
    if len(sources) > 1 or args.source_weights is not None:
        draw = lambda generator: training_data.epoch_draws(sizes, args.source_weights, generator)  # noqa: E731
    class_counts = torch.bincount(labels, minlength=len(CLASS_NAMES))  # the class prior
    if device.type == "cuda":  # the whole split fits in GPU memory; batches are gathered there
        images, labels = images.to(device), labels.to(device)
    second_labels = training_data.second_head_labels(args.arch_args.get("heads"), sources)
    if second_labels is not None:
        if args.mixup or args.cutmix:  # the second head's labels are not mixed with the images
            raise TrainingError("--mixup and --cutmix mix one label set; train a two-head network without them")
        second_labels = second_labels.to(device)
    loss_fn = make_loss(args.label_smoothing, args.logit_adjust, class_counts, soft_targets, teacher_probabilities,
                        args.distill_weight, second_labels)
    augment = make_augment(normalization, args.photometric, args.rotation, args.scale, args.shift, not args.no_flip,
                           args.erase_prob, args.sharpness, args.mixup, args.cutmix)
    return SimpleNamespace(sources=sources, sizes=sizes, images=images, labels=labels, class_counts=class_counts,
                           normalization=normalization, draw=draw, loss_fn=loss_fn, augment=augment)


def epoch_record(args, epoch, metrics, per_source, lr, seconds):
    """The epoch's log line: training figures, the first source's val figures, the score, each source's figures."""
    val = next(iter(per_source.values()))
    row = {"epoch": epoch + 1, "train_loss": metrics["loss"], "train_accuracy": metrics["accuracy"],
           "val_loss": val["loss"], "val_accuracy": val["accuracy"], "val_balanced_accuracy": val["balanced_accuracy"],
           "score": training_data.selection_score(args.select_rule, per_source), "lr": lr,
           "images_per_s": metrics["images_per_s"], "epoch_seconds": seconds}
    if len(per_source) > 1 or "ferplus_accuracy" in val:
        row["sources"] = per_source
    return row


def print_epoch(args, row, is_best):
    others = "".join(f"  {name} bal {m['balanced_accuracy']:.2%}" for name, m in list(row.get("sources", {}).items())[1:])
    score = f"  score {row['score']:.2%}" if others else ""
    print(f"epoch {row['epoch']:>3}/{args.epochs}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.2%}"
          f"  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.2%}{others}{score}  lr {row['lr']:.2e}"
          f"  {row['images_per_s']:.0f} img/s{'  *best' if is_best else ''}", flush=True)


def train(args):
    """Trains per args; returns the run folder. Raises DataError or TrainingError for bad input."""
    device, rank, world_size = setup_processes(args)
    torch.set_num_threads(max(1, args.workers // world_size))
    checkpoint = configure(args, device, world_size)
    if rank == 0 and not args.resume:
        try:  # before the data and the teacher: an unwritable --out fails at once
            check_writable_folder(args.out, "the run folder")
        except OutputError as error:
            raise TrainingError(str(error)) from None
    if rank == 0 and args.teacher:
        print(f"distilling from {args.teacher} (--teacher; '' for none): its predictions on the training faces are "
              "computed once, then cached beside the data")
    data = load_training_data(args, device, checkpoint, rank == 0 and not args.quiet)
    steps_per_epoch = len(data.images) // args.batch_size
    if args.max_steps:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
    model, optimizer, scheduler = build_training(args, device, steps_per_epoch, world_size)
    set_head(model, ALL_HEADS)  # training computes every head's loss; evaluation picks each in turn
    if args.init and not checkpoint:
        load_initial_weights(model, args.init, args.arch)
    average = weight_average(model, args.ema)  # from the initial weights
    start_epoch, best_score, history = 0, None, []
    if checkpoint:
        start_epoch, best_score, history = restore_training(checkpoint, model, optimizer, scheduler, average)
        run_dir = Path(args.resume).parent
    elif rank == 0:
        run_dir = new_run_dir(args.out, args.arch)
    net = torch.nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
    config = dict(vars(args))
    if rank == 0:
        write_text_atomic(run_dir / "config.json", json.dumps(config, indent=2))
        print(f"{args.arch}: {count_parameters(model):,} parameters, {len(data.images)} train / "
              f"{sum(len(s.val_images) for s in data.sources)} val faces, {device}, {args.precision}, "
              f"{world_size} process(es) -> {run_dir}")
        if len(data.sources) > 1:
            print(f"sources: {', '.join(f'{s.name} {n}' for s, n in zip(data.sources, data.sizes))} train faces; "
                  f"best.pt on the {args.select_rule}")
    try:
        for epoch in range(start_epoch, args.epochs):
            epoch_start = time.perf_counter()
            metrics = train_one_epoch(
                net, data.images, data.labels, optimizer, scheduler, data.loss_fn, data.augment, epoch=epoch,
                seed=args.seed, batch_size=args.batch_size, device=device, draw=data.draw, max_steps=args.max_steps,
                rank=rank, world_size=world_size, autocast_dtype=autocast_dtype(args.precision), average=average,
                sam=args.sam, clip_grad=args.clip_grad, show_bar=rank == 0 and not args.quiet, total_epochs=args.epochs)
            if rank != 0:
                continue
            evaluated = average.module if average is not None else model  # what is saved as the model
            per_source = training_data.evaluate_sources(evaluated, data.sources, data.normalization, device)
            row = epoch_record(args, epoch, metrics, per_source, optimizer.param_groups[0]["lr"],
                               time.perf_counter() - epoch_start)
            history.append(row)
            is_best = best_score is None or row["score"] > best_score  # the first epoch is best, even at 0%
            best_score = row["score"] if is_best else best_score
            state = {"model": evaluated.state_dict(), "arch": args.arch, "arch_args": args.arch_args,
                     "class_names": list(CLASS_NAMES), "normalization": list(data.normalization),
                     "train_class_counts": data.class_counts.tolist(), "clahe": args.clahe, "epoch": epoch + 1,
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "rng": {"torch": torch.get_rng_state()}, "metrics": row, "best_score": best_score,
                     "select_rule": args.select_rule,
                     "history": history, "config": config}
            if average is not None:
                state.update(trained_model=model.state_dict(), averaged_steps=int(average.n_averaged))
            save_epoch(run_dir, state, is_best, history)
            print_epoch(args, row, is_best)
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
        report_best(run_dir, history, args.select_rule, args.data[0])
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
