"""Train Deep-Emotion on prepared FER2013.

    python main.py --setup --train --data data           # prepare, then train with the default recipe
    python main.py -s True -d data                       # the original README's setup form
    python main.py --train --data data --arch deep_emotion_vgg
    python main.py --train --data data --resume runs/deep_emotion-0/last.pt
    torchrun --nproc_per_node 2 main.py --train --data data   # DistributedDataParallel

Each run writes to its own folder under --out: config.json, log.jsonl,
curves.png, last.pt and best.pt (best on the validation split).
"""
import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

import generate_data
from data_loaders import CLASS_NAMES, DataError, augment_batch, load_split, normalize
from generate_data import str2bool
from model import ARCHS, CheckpointError, build_model, count_parameters, load_checkpoint, load_model

# The recipe behind each shipped checkpoint: what a flag left at None becomes.
RECIPES = {
    "deep_emotion": dict(epochs=200, batch_size=256, learning_rate=0.003, optimizer="adamw", weight_decay=1e-4,
                         warmup_epochs=2, label_smoothing=0.1, rotation=10.0, scale=0.1, shift=0.1,
                         erase_prob=0.0, sharpness=1.5, loc_lr_scale=1.0, clip_grad=0.0, arch_args={"dropout": 0.0},
                         teacher="weights/deep_emotion_vgg.pt", distill_weight=0.5),
    "deep_emotion_vgg": dict(epochs=60, batch_size=256, learning_rate=0.03, optimizer="sgd", weight_decay=5e-4,
                             warmup_epochs=3, label_smoothing=0.1, rotation=10.0, scale=0.1, shift=0.1,
                             erase_prob=0.5, sharpness=1.5, loc_lr_scale=0.1, clip_grad=5.0, arch_args={"width": 48},
                             teacher="", distill_weight=0.5),
}


class TrainingError(Exception):
    """A problem that stops training, reported as one line (exit code 2)."""


def recipe_help(key):
    """The per-architecture defaults of a recipe flag, spelled out for its help text."""
    return " (default: " + "; ".join(f"{arch} {r[key]}" for arch, r in RECIPES.items()) + ")"


def get_args_parser():
    parser = argparse.ArgumentParser(description="Train Deep-Emotion on FER2013 prepared by generate_data.py.")
    flag = dict(nargs="?", const=True, default=False, type=str2bool)
    parser.add_argument("-s", "--setup", **flag, help="convert the FER2013 in --data first (default: off)")
    parser.add_argument("-t", "--train", **flag, help="train (default: off)")
    parser.add_argument("-d", "--data", default="data", help="data folder (default: data)")
    parser.add_argument("-hparams", "--hyperparams", **flag,
                        help="accepted for the original's command lines; given values always win (default: off)")
    parser.add_argument("--arch", default="deep_emotion", choices=sorted(ARCHS), help="network (default: deep_emotion)")
    parser.add_argument("--arch_args", type=json.loads, default=None,
                        help='JSON keyword arguments of the network, e.g. \'{"width": 64}\'' + recipe_help("arch_args"))

    parser.add_argument("-e", "--epochs", type=int, default=None, help="total epochs, also when resuming" + recipe_help("epochs"))
    parser.add_argument("--schedule_epochs", type=int, default=None,
                        help="epochs the warm-up + cosine schedule spans; --epochs may stop earlier, and stopping, "
                             "resuming or extending never changes an epoch's learning rate "
                             "(default: the recipe's epochs, or --epochs if larger)")
    parser.add_argument("-lr", "--learning_rate", type=float, default=None, help="peak learning rate" + recipe_help("learning_rate"))
    parser.add_argument("-bs", "--batch_size", type=int, default=None, help="global batch size" + recipe_help("batch_size"))
    parser.add_argument("--optimizer", choices=["sgd", "adamw"], default=None, help="optimizer" + recipe_help("optimizer"))
    parser.add_argument("--weight_decay", type=float, default=None, help="weight decay" + recipe_help("weight_decay"))
    parser.add_argument("--warmup_epochs", type=float, default=None,
                        help="linear warm-up before the cosine decay" + recipe_help("warmup_epochs"))
    parser.add_argument("--label_smoothing", type=float, default=None, help="label smoothing" + recipe_help("label_smoothing"))
    parser.add_argument("--loc_lr_scale", type=float, default=None,
                        help="learning-rate factor of the STN localization branch" + recipe_help("loc_lr_scale"))
    parser.add_argument("--clip_grad", type=float, default=None, help="gradient-norm clip, 0 = off" + recipe_help("clip_grad"))
    parser.add_argument("--rotation", type=float, default=None, help="max random rotation, degrees" + recipe_help("rotation"))
    parser.add_argument("--scale", type=float, default=None, help="max random zoom, fraction" + recipe_help("scale"))
    parser.add_argument("--shift", type=float, default=None, help="max random shift, fraction of the size" + recipe_help("shift"))
    parser.add_argument("--erase_prob", type=float, default=None, help="random-erasing probability" + recipe_help("erase_prob"))
    parser.add_argument("--sharpness", type=float, default=None,
                        help="random sharpening: factor in [1, 1 + s] of torchvision's adjust_sharpness, 0 = off"
                             + recipe_help("sharpness"))
    parser.add_argument("--teacher", default=None,
                        help="checkpoint whose predictions the network also learns from (knowledge distillation; "
                             "'' = none)" + recipe_help("teacher"))
    parser.add_argument("--distill_weight", type=float, default=None,
                        help="share of the loss that follows the teacher" + recipe_help("distill_weight"))
    parser.add_argument("--no_flip", action="store_true", help="no random horizontal flips (default: flips on)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, ... (default: auto)")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="training math: bf16 autocast or fp32; auto = bf16 on CUDA and on CPUs with native "
                             "bf16 (AVX512-BF16/AMX), else fp32 (default: auto)")
    parser.add_argument("--resume", default="", help="last.pt to continue from, in its own run folder (default: none)")
    parser.add_argument("--init", default="",
                        help="start from these weights with a fresh optimizer and schedule, i.e. fine-tune (default: none)")
    parser.add_argument("--out", default="runs", help="folder that gets one subfolder per run (default: runs)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="threads decoding images and running the CPU math (default: all cores)")
    parser.add_argument("--max_steps", type=int, default=0,
                        help="stop each epoch after this many steps, for smoke tests (default: 0 = whole epoch)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (default: bars on)")
    return parser


def fill_recipe(args):
    """Replaces every recipe flag left at None with the --arch recipe's value."""
    for key, value in RECIPES[args.arch].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def pick_device(name):
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_precision(name, device):
    """The autocast dtype of training (None = fp32)."""
    if name == "auto":
        if device.type == "cuda":
            name = "bf16"
        elif device.type == "cpu":
            try:  # private but long-standing; without native bf16, CPU autocast is slower than fp32
                name = "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
            except (AttributeError, RuntimeError):
                name = "fp32"
    return torch.bfloat16 if name == "bf16" else None


CHANNELS_LAST_DEVICES = ("cpu", "cuda")  # where to_fast_layout() pays; MPS support for it is patchy


def to_fast_layout(model, device):
    """Moves the model to device, channels-last where that is faster.

    Why: oneDNN and cuDNN run NHWC convolutions without layout reorders; on the
    2-core development CPU, deep_emotion_vgg at width 32 trained at 299 images/s
    this way in fp32 (565 with bf16 autocast) against 196 in NCHW fp32.
    """
    if device.type in CHANNELS_LAST_DEVICES:
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)


def lr_factor(step, total_steps, warmup_steps):
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model, args):
    """The optimizer, with the STN localization branch in its own group at loc_lr_scale x lr."""
    attention = {id(p) for p in model.attention_parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) not in attention], "lr_scale": 1.0},
              {"params": model.attention_parameters(), "lr_scale": args.loc_lr_scale}]
    for group in groups:
        group["lr"] = args.learning_rate * group["lr_scale"]
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.learning_rate, momentum=0.9, nesterov=True,
                               weight_decay=args.weight_decay)
    return torch.optim.AdamW(groups, lr=args.learning_rate, weight_decay=args.weight_decay)


def train_one_epoch(model, images, labels, optimizer, scheduler, epoch, args, normalization, device,
                    rank=0, world_size=1, show_bar=True, teacher_probabilities=None, autocast_dtype=None):
    """One pass over the training split; returns {"loss", "accuracy", "images_per_s"}.

    The batch order and the augmentation come from generators seeded by
    (seed, epoch), so an epoch is the same whether or not the run was resumed.
    With teacher_probabilities (N, 7), the loss mixes in the cross-entropy to
    the teacher's predictions, weighted by args.distill_weight. autocast_dtype
    (e.g. torch.bfloat16) runs the forward pass under autocast; None = fp32.
    """
    model.train()
    generator = torch.Generator().manual_seed(args.seed * 100_003 + epoch)
    torch.manual_seed(args.seed * 100_003 + epoch)  # dropout
    order = torch.randperm(len(images), generator=generator)
    per_rank = args.batch_size // world_size
    steps = len(images) // args.batch_size  # the last partial batch is dropped
    if args.max_steps:
        steps = min(steps, args.max_steps)
    total_loss = correct = seen = 0
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{args.epochs}", leave=False, disable=not show_bar)
    for step in bar:
        batch = order[step * args.batch_size:(step + 1) * args.batch_size][rank * per_rank:(rank + 1) * per_rank]
        x = normalize(images[batch].to(device, non_blocking=True), *normalization)
        y = labels[batch].to(device, non_blocking=True)
        x = augment_batch(x, generator, args.rotation, args.scale, args.shift, not args.no_flip, args.erase_prob,
                          args.sharpness)
        if device.type in CHANNELS_LAST_DEVICES:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=args.label_smoothing)
        if teacher_probabilities is not None:
            soft = -(teacher_probabilities[batch].to(device) * logits.float().log_softmax(1)).sum(1).mean()
            loss = (1 - args.distill_weight) * loss + args.distill_weight * soft
        if not torch.isfinite(loss):
            raise TrainingError(f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                                "lower --learning_rate or set --clip_grad")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    elapsed = time.perf_counter() - start
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1),
            "images_per_s": seen * world_size / max(elapsed, 1e-9)}


# Test-time augmentation (--tta): "flip" averages each face's probabilities with its
# mirror image's (2 views); "shifts" also with the face moved SHIFT_PIXELS up, down,
# left and right, each mirrored too (10 views). Training shifts faces by up to 10%
# (4.8 pixels), so these views are ones the network has learned to read.
TTA_MODES = ("flip", "shifts")
SHIFT_PIXELS = 2


def tta_views(x, tta):
    """The views of a batch (B, C, H, W) that test-time augmentation `tta` (None, "flip", "shifts") averages."""
    views = [x]
    if tta == "shifts":
        p = SHIFT_PIXELS
        h, w = x.shape[-2:]
        padded = F.pad(x, (p, p, p, p), mode="replicate")  # the edge is repeated, as in training's warps
        for top, left in ((0, p), (2 * p, p), (p, 0), (p, 2 * p)):
            views.append(padded[..., top:top + h, left:left + w])
    if tta:
        views += [view.flip(3) for view in views]
    return views


@torch.no_grad()
def predict(model, images, normalization, device, batch_size=512, tta=None):
    """Class probabilities (N, 7) of uint8 faces (N, 48, 48), averaged over the views of `tta`.

    tta: None/False (one view), "flip" (True means this too) or "shifts"; see TTA_MODES.
    """
    tta = "flip" if tta is True else (tta or None)
    if tta is not None and tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, not {tta!r}")
    model.eval()
    probabilities = []
    for start in range(0, len(images), batch_size):
        x = normalize(images[start:start + batch_size].to(device), *normalization)
        views = tta_views(x, tta)
        probabilities.append((sum(model(view).float().softmax(1) for view in views) / len(views)).cpu())
    return torch.cat(probabilities) if probabilities else torch.zeros(0, len(CLASS_NAMES))


def evaluate(model, images, labels, normalization, device, batch_size=512, tta=None):
    """Returns {"loss", "accuracy", "correct", "total"} and the predicted classes (N,)."""
    probabilities = predict(model, images, normalization, device, batch_size, tta)
    predictions = probabilities.argmax(1)
    correct = int((predictions == labels).sum())
    loss = F.nll_loss(probabilities.clamp_min(1e-12).log(), labels).item()
    return {"loss": loss, "accuracy": correct / len(labels), "correct": correct, "total": len(labels)}, predictions


def save_checkpoint(state, path):
    """Writes the checkpoint dict atomically: a crash mid-save leaves the old file intact."""
    tmp = Path(f"{path}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def new_run_dir(out, arch):
    """A fresh folder out/<arch>-<n>, never an existing one."""
    Path(out).mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        run_dir = Path(out) / f"{arch}-{n}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            n += 1


def plot_curves(history, path):
    """Draws loss and accuracy per epoch (train and val) into a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val"):
        ax_loss.plot(epochs, [h[f"{split}_loss"] for h in history], label=split)
        ax_acc.plot(epochs, [100 * h[f"{split}_accuracy"] for h in history], label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    tmp = Path(path).with_name(".curves.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


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


def train(args):
    """Trains per args; returns the run folder. Raises DataError or TrainingError for bad input."""
    device, rank, world_size = setup_processes(args)
    torch.set_num_threads(max(1, args.workers // world_size))

    checkpoint = None
    if args.resume:
        checkpoint = load_checkpoint(args.resume, "cpu")
        if "optimizer" not in checkpoint:
            raise TrainingError(f"{args.resume} is a weights-only checkpoint; --resume needs a last.pt of main.py")
        if checkpoint["arch"] != args.arch:
            raise TrainingError(f"{args.resume} is a {checkpoint['arch']} checkpoint, not --arch {args.arch}; "
                                f"add --arch {checkpoint['arch']}")
        saved = checkpoint["config"]
        for key in list(RECIPES[args.arch]) + ["schedule_epochs"]:  # the saved recipe, unless a flag says otherwise
            if getattr(args, key) is None:
                setattr(args, key, saved.get(key))
    fill_recipe(args)
    if args.schedule_epochs is None:
        args.schedule_epochs = max(RECIPES[args.arch]["epochs"], args.epochs)
    if args.epochs > args.schedule_epochs:
        raise TrainingError(f"--epochs {args.epochs} runs past the {args.schedule_epochs}-epoch learning-rate "
                            f"schedule; add --schedule_epochs {args.epochs}")
    if args.batch_size % world_size:
        raise TrainingError(f"--batch_size {args.batch_size} is not divisible by {world_size} processes")

    train_images, train_labels, _ = load_split(args.data, "train")
    val_images, val_labels, _ = load_split(args.data, "val")
    if len(train_images) < args.batch_size:
        raise TrainingError(f"the train split has {len(train_images)} faces, fewer than --batch_size {args.batch_size}")
    if checkpoint:
        normalization = tuple(checkpoint["normalization"])
    else:
        pixels = train_images.float() / 255
        normalization = (pixels.mean().item(), pixels.std().item())
    teacher_probabilities = None
    if args.teacher:
        # the teacher's flip-averaged predictions on the clean training faces, computed once
        teacher_path = Path(args.teacher)
        if not teacher_path.exists() and not teacher_path.is_absolute():  # a recipe's path is the repo's
            teacher_path = Path(__file__).resolve().parent / teacher_path
        teacher, teacher_checkpoint = load_model(teacher_path, device)
        teacher_probabilities = predict(teacher, train_images, tuple(teacher_checkpoint["normalization"]), device,
                                        tta="flip").to(device)
        del teacher
    if device.type == "cuda":  # the whole split fits in GPU memory; batches are gathered there
        train_images, train_labels = train_images.to(device), train_labels.to(device)

    torch.manual_seed(args.seed)
    try:
        model = build_model(args.arch, **args.arch_args)
    except TypeError as error:
        raise TrainingError(f"--arch_args {json.dumps(args.arch_args)} do not fit {args.arch}: {error}") from None
    model = to_fast_layout(model, device)
    autocast_dtype = pick_precision(args.precision, device)
    args.precision = "bf16" if autocast_dtype is not None else "fp32"  # the config records what ran, not "auto"
    optimizer = make_optimizer(model, args)
    steps_per_epoch = len(train_images) // args.batch_size
    if args.max_steps:
        steps_per_epoch = min(steps_per_epoch, args.max_steps)
    total_steps, warmup_steps = args.schedule_epochs * steps_per_epoch, int(args.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_steps))
    start_epoch, best_accuracy, history = 0, 0.0, []
    if checkpoint:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        start_epoch, best_accuracy, history = checkpoint["epoch"], checkpoint["best_val_accuracy"], checkpoint["history"]
        run_dir = Path(args.resume).parent
    elif rank == 0:
        run_dir = new_run_dir(args.out, args.arch)
    if args.init and not checkpoint:
        initial = load_checkpoint(args.init, "cpu")
        if initial["arch"] != args.arch:
            raise TrainingError(f"--init {args.init} is a {initial['arch']} checkpoint, not --arch {args.arch}")
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in initial["model"].items()})
    net = torch.nn.parallel.DistributedDataParallel(model) if world_size > 1 else model

    if rank == 0:
        config = dict(vars(args))
        (run_dir / "config.json").write_text(json.dumps(config, indent=2))
        print(f"{args.arch}: {count_parameters(model):,} parameters, {len(train_images)} train / "
              f"{len(val_images)} val faces, {device}, {args.precision}, "
              f"{world_size} process(es) -> {run_dir}")
    try:
        for epoch in range(start_epoch, args.epochs):
            epoch_start = time.perf_counter()
            metrics = train_one_epoch(net, train_images, train_labels, optimizer, scheduler, epoch, args,
                                      normalization, device, rank, world_size,
                                      show_bar=rank == 0 and not args.quiet,
                                      teacher_probabilities=teacher_probabilities, autocast_dtype=autocast_dtype)
            if rank != 0:
                continue
            val, _ = evaluate(model, val_images, val_labels, normalization, device)
            row = {"epoch": epoch + 1, "train_loss": metrics["loss"], "train_accuracy": metrics["accuracy"],
                   "val_loss": val["loss"], "val_accuracy": val["accuracy"],
                   "lr": optimizer.param_groups[0]["lr"], "images_per_s": metrics["images_per_s"],
                   "epoch_seconds": time.perf_counter() - epoch_start}
            history.append(row)
            is_best = val["accuracy"] > best_accuracy
            best_accuracy = max(best_accuracy, val["accuracy"])
            state = {"model": model.state_dict(), "arch": args.arch, "arch_args": args.arch_args,
                     "class_names": list(CLASS_NAMES), "normalization": list(normalization),
                     "epoch": epoch + 1, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "rng": {"torch": torch.get_rng_state()}, "metrics": row, "best_val_accuracy": best_accuracy,
                     "history": history, "config": config}
            save_checkpoint(state, run_dir / "last.pt")
            if is_best:
                save_checkpoint(state, run_dir / "best.pt")
            with open(run_dir / "log.jsonl", "a") as log:
                log.write(json.dumps(row) + "\n")
            plot_curves(history, run_dir / "curves.png")
            print(f"epoch {epoch + 1:>3}/{args.epochs}  train loss {metrics['loss']:.4f} acc {metrics['accuracy']:.2%}"
                  f"  val loss {val['loss']:.4f} acc {val['accuracy']:.2%}  lr {row['lr']:.2e}"
                  f"  {metrics['images_per_s']:.0f} img/s{'  *best' if is_best else ''}", flush=True)
        if world_size > 1:
            dist.barrier()  # no process leaves (and tears the group down) while rank 0 still evaluates and saves
    except KeyboardInterrupt:
        if rank == 0:
            last = run_dir / "last.pt"
            if last.exists():
                print(f"\ninterrupted; {last} holds epoch {torch.load(last, weights_only=True)['epoch']}: "
                      f"resume with --resume {last}")
            else:
                print("\ninterrupted before the first epoch ended; nothing to resume")
        raise
    finally:
        if world_size > 1:
            dist.destroy_process_group()
    return run_dir if rank == 0 else None


def main(args):
    """Runs setup and/or training as the flags ask; returns the run folder (or None)."""
    if args.setup:
        generate_data.print_summary(generate_data.prepare(args.data))
    if args.train:
        return train(args)
    if not args.setup:
        print("nothing to do: add --train (and --setup to prepare the data first)")
    return None


if __name__ == "__main__":
    try:
        main(get_args_parser().parse_args())
    except (DataError, TrainingError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
