"""One training epoch and one evaluation: the pure functions train.py's loop is made of.

Nothing here reads flags or writes files: each function takes the values it needs (train.py builds
them from the run's RunConfig, config.py), and the benchmarks call these functions directly.
"""
import math
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from deep_emotion.data.augment import augment_batch, degrade_batch, mix_batch
from deep_emotion.emotions import ALL_HEADS, CLASS_NAMES, DEFAULT_HEAD, FER2013_HEAD, channels_first
from deep_emotion.inference import load_checkpoint, predict
from deep_emotion.metrics import classification_scores
from deep_emotion.model import ARCHS, set_head
from deep_emotion.utils import TrainingError

NUM_CLASSES = len(CLASS_NAMES)
CHANNELS_LAST_DEVICES = ("cpu", "cuda")  # where to_fast_layout() pays; MPS support for it is patchy


def to_fast_layout(model, device):
    """Moves the model to device, channels-last where that is faster.

    Why: oneDNN and cuDNN run NHWC convolutions without layout reorders (the training speed of
    each layout: benchmarks/README.md).
    """
    if device.type in CHANNELS_LAST_DEVICES:
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)


def cpu_has_native_bf16(cpuinfo="/proc/cpuinfo"):
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX).

    Plain AVX-512 only emulates bf16, which trains slower than fp32; outside Linux
    this is not checked, and the answer is no.
    """
    try:
        flags = Path(cpuinfo).read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_precision(name, device):
    """What --precision means on device: "bf16" or "fp32" (auto = bf16 where the hardware has it natively)."""
    if name != "auto":
        return name
    device = torch.device(device)
    if device.type == "cuda":  # bf16 tensor cores arrived with compute capability 8.0 (Ampere)
        return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32"


def autocast_dtype(precision):
    """The autocast dtype of a precision name (None = fp32, no autocast)."""
    return torch.bfloat16 if precision == "bf16" else None


def lr_factor(step, total_steps, warmup_steps, final=0.0):
    """Linear warm-up, then cosine decay from 1 to `final` (the schedule's floor, a share of the peak)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model, optimizer, learning_rate, weight_decay, loc_lr_scale=1.0):
    """The optimizer ("sgd" or "adamw"), with the model's scaled_lr_parameters (the STN localization branch, or
    a pretrained trunk) in their own group at loc_lr_scale x learning_rate; frozen parameters are left out."""
    scaled = model.scaled_lr_parameters()
    scaled_ids = {id(p) for p in scaled}
    groups = [{"params": [p for p in model.parameters() if id(p) not in scaled_ids and p.requires_grad],
               "lr_scale": 1.0},
              {"params": scaled, "lr_scale": loc_lr_scale}]
    for group in groups:
        group["lr"] = learning_rate * group["lr_scale"]
    if optimizer == "sgd":
        return torch.optim.SGD(groups, lr=learning_rate, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    return torch.optim.AdamW(groups, lr=learning_rate, weight_decay=weight_decay)


def epoch_seeds(seed, epoch, rank):
    """(batch-order seed, augmentation-and-dropout seed) of an epoch.

    Every process draws the same batch order, so the shards of a global batch are
    disjoint, but its own augmentation and dropout: with one seed for all, sample j
    of every shard would get the same transform.
    """
    order = seed * 100_003 + epoch
    return order, order * 1_009 + rank


def make_augment(normalization, photometric=0.0, rotation=10.0, scale=0.1, shift=0.1, flip=True, erase_prob=0.0,
                 sharpness=0.0, mixup=0.0, cutmix=0.0):
    """The training batch's transform: augment(x, generator) -> (x, share, partner).

    x: faces in [0, 1] (B, C, H, W). In order: camera-like degradations (photometric > 0,
    augment.degrade_batch), standardisation, the random warp, sharpening and erasing
    (augment_batch), then mixup or CutMix (mix_batch: share and partner, None when unmixed).
    """
    def augment(x, generator):
        if photometric > 0:
            x = degrade_batch(x, generator, photometric)
        x = (x - normalization[0]) / normalization[1]
        x = augment_batch(x, generator, rotation, scale, shift, flip, erase_prob, sharpness)
        return mix_batch(x, generator, mixup, cutmix)
    return augment


def make_loss(label_smoothing=0.0, logit_adjust=0.0, class_counts=None, soft_targets=None, teacher_probabilities=None,
              distill_weight=0.5, second_labels=None, second_teacher_probabilities=None):
    """The training loss: loss(logits, labels, batch, share, partner) -> scalar, batch the faces' indices.

    The hard term is the cross-entropy to the labels (smoothed), or, with soft_targets (N, 7), to each
    face's target distribution (FER+'s votes; training_data.union). With teacher_probabilities (N, 7)
    it mixes in the cross-entropy to the teacher's predictions, weighted by distill_weight. With
    logit_adjust = tau > 0, both terms see logits + tau * log(class prior of class_counts) (Menon et al.
    2021): the network's own logits then learn the class-balanced decision. A mixed batch (share,
    partner from mix_batch) mixes its labels and targets by the same share.

    With second_labels (N,) the logits are two heads' (B, 14): the first head takes the loss above,
    the second the cross-entropy to second_labels (smoothed; -1 = no label, left out), added; with
    second_teacher_probabilities (N, 7) the second head's term mixes in the teacher's second head as the
    first's does, on the same faces.
    """
    adjustment = 0.0
    if logit_adjust > 0:
        counts = torch.as_tensor(class_counts, dtype=torch.float32).clamp_min(1)
        adjustment = logit_adjust * (counts / counts.sum()).log()

    def mixed(table, batch, share, partner, device):
        rows = table[batch].to(device)
        return rows if partner is None else share * rows + (1 - share) * rows[partner]

    def loss(logits, labels, batch, share=1.0, partner=None):
        if second_labels is None:
            return single(logits, labels, batch, share, partner)
        logits, second = logits.float().chunk(2, dim=1)
        wanted = second_labels[batch].to(logits.device)
        value = single(logits, labels, batch, share, partner)
        labelled = wanted >= 0
        if labelled.any():  # the mean over the faces that have a label: each head weighs the same
            second_value = F.cross_entropy(second, wanted, ignore_index=-1, label_smoothing=label_smoothing)
            if second_teacher_probabilities is not None:
                taught = second_teacher_probabilities[batch].to(logits.device)[labelled]
                taught_value = F.cross_entropy(second[labelled], taught)  # to the teacher's distribution
                second_value = (1 - distill_weight) * second_value + distill_weight * taught_value
            value = value + second_value
        return value

    def single(logits, labels, batch, share, partner):
        fitted = logits.float() + (adjustment.to(logits.device) if logit_adjust > 0 else 0.0)
        if soft_targets is not None:
            wanted = mixed(soft_targets, batch, share, partner, logits.device)
            value = F.cross_entropy(fitted, wanted)  # to a distribution: -(wanted * log softmax).sum(1).mean()
        else:
            value = F.cross_entropy(fitted, labels, label_smoothing=label_smoothing)
            if partner is not None:
                value = share * value + (1 - share) * F.cross_entropy(fitted, labels[partner],
                                                                      label_smoothing=label_smoothing)
        if teacher_probabilities is not None:
            taught = mixed(teacher_probabilities, batch, share, partner, logits.device)
            value = (1 - distill_weight) * value + distill_weight * F.cross_entropy(fitted, taught)
        return value
    return loss


def training_objective(config, normalization, class_counts=None, soft_targets=None, teacher_probabilities=None,
                       second_labels=None, second_teacher_probabilities=None):
    """(loss_fn, augment) of a run's configuration (config.RunConfig): the one place that builds them, for
    training, the tests and benchmarks/train_throughput.py. The other arguments are what the run's data give
    (make_loss: the class counts, FER+'s vote targets, the teachers' tables, a second head's labels)."""
    loss_fn = make_loss(config.label_smoothing, config.logit_adjust, class_counts, soft_targets, teacher_probabilities,
                        config.distill_weight, second_labels, second_teacher_probabilities)
    augment = make_augment(normalization, config.photometric, config.rotation, config.scale, config.shift,
                           not config.no_flip, config.erase_prob, config.sharpness, config.mixup, config.cutmix)
    return loss_fn, augment


def input_normalization(config, images, resumed=None):
    """(mean, std) that standardise a run's faces (0..1): a resumed run's own, the --init weights' run's, a
    pretrained trunk's (its class's INPUT_NORMALIZATION), else the training images' (uint8 tensor)."""
    if resumed is not None:
        return tuple(resumed["normalization"])
    if config.init:  # the initial weights read faces standardised as their own run did
        return tuple(load_checkpoint(config.init, "cpu")["normalization"])
    network = ARCHS[config.arch]
    if hasattr(network, "INPUT_NORMALIZATION"):  # a pretrained trunk standardises as it learnt to
        return network.INPUT_NORMALIZATION
    pixels = images.float() / 255
    return pixels.mean().item(), pixels.std().item()


def train_one_epoch(model, data, optimizer, scheduler, config, *, epoch, device, rank=0, world_size=1, average=None,
                    show_bar=True):
    """One pass over the training split; returns {"loss", "accuracy", "images_per_s"} over all processes.

    data: the run's training data: images and labels (tensors), loss_fn and augment (training_objective) and
    draw(generator) -> the epoch's indices (training_data.epoch_draws; None = each face once, shuffled).
    config: the run's RunConfig (seed, batch_size, max_steps, precision, sam, clip_grad, epochs). The batch order
    and the augmentation come from generators seeded by (seed, epoch, rank), so an epoch is the same whether or
    not the run was resumed. average: a torch.optim.swa_utils.AveragedModel (--ema) updated after every step.
    """
    images, labels, loss_fn, augment, draw = data.images, data.labels, data.loss_fn, data.augment, data.draw
    seed, batch_size, max_steps, sam, clip_grad = (config.seed, config.batch_size, config.max_steps, config.sam,
                                                   config.clip_grad)
    dtype = autocast_dtype(config.precision)
    model.train()
    order_seed, augment_seed = epoch_seeds(seed, epoch, rank)
    order_generator = torch.Generator().manual_seed(order_seed)
    order = draw(order_generator) if draw is not None else torch.randperm(len(images), generator=order_generator)
    generator = torch.Generator().manual_seed(augment_seed)
    torch.manual_seed(augment_seed)  # dropout
    per_rank = batch_size // world_size
    steps = len(order) // batch_size  # the last partial batch is dropped
    if max_steps:
        steps = min(steps, max_steps)
    totals = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, seen
    start = time.perf_counter()
    bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, disable=not show_bar)
    for step in bar:
        batch = order[step * batch_size:(step + 1) * batch_size][rank * per_rank:(rank + 1) * per_rank]
        x = channels_first(images[batch].to(device, non_blocking=True)).float() / 255  # (B, C, H, W) in [0, 1]
        y = labels[batch].to(device, non_blocking=True)
        x, share, partner = augment(x, generator)
        if device.type in CHANNELS_LAST_DEVICES:
            x = x.contiguous(memory_format=torch.channels_last)

        def batch_loss():
            with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                logits = model(x)
            return loss_fn(logits, y, batch, share, partner), logits

        loss, logits = batch_loss()
        if not torch.isfinite(loss):
            raise TrainingError(f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                                "lower --learning_rate or set --clip_grad")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if sam > 0:
            sharpness_aware_gradient(model, batch_loss, sam)
        if clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        optimizer.step()
        scheduler.step()
        if average is not None:
            average.update_parameters(model.module if hasattr(model, "module") else model)
        first_head = logits[:, :NUM_CLASSES]  # a multi-head network's training accuracy is its default head's
        totals += torch.tensor([loss.item() * len(y), (first_head.argmax(1) == y).sum().item(), len(y)],
                               dtype=torch.float64)
        bar.set_postfix(loss=f"{totals[0] / totals[2]:.3f}", acc=f"{totals[1] / totals[2]:.3f}")
    elapsed = time.perf_counter() - start
    if world_size > 1:  # the logged figures are the whole global batch's, not rank 0's shard
        dist.all_reduce(totals)
    loss_sum, correct, seen = totals.tolist()
    return {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1),
            "images_per_s": seen / max(elapsed, 1e-9)}


def sharpness_aware_gradient(model, batch_loss, rho):
    """Replaces model's gradients by those at the worst nearby weights (SAM, Foret et al. 2021).

    The weights step rho along the current gradient's direction, batch_loss() is
    differentiated there, and the weights step back: the optimizer then follows a
    gradient that also lowers the loss of the neighbourhood, i.e. seeks flat minima.
    Batch-norm statistics do not move in the second pass, so a step counts each batch once.
    """
    weights = [p for p in model.parameters() if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in weights]))
    with torch.no_grad():
        steps = [p.grad * (rho / (norm + 1e-12)) for p in weights]
        for p, step in zip(weights, steps):
            p.add_(step)
            p.grad = None
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        batch_loss()[0].backward()
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        with torch.no_grad():
            for p, step in zip(weights, steps):
                p.sub_(step)


def evaluate(model, images, labels, normalization, device, batch_size=512, tta=None):
    """Returns {"loss", "accuracy", "balanced_accuracy", "correct", "total"} and the predicted classes (N,)."""
    probabilities = predict(model, images, normalization, device, batch_size, tta)
    predictions = probabilities.argmax(1)
    scores = classification_scores(predictions.numpy(), labels.numpy())
    loss = F.nll_loss(probabilities.clamp_min(1e-12).log(), labels).item()
    return {"loss": loss, "accuracy": scores["accuracy"], "balanced_accuracy": scores["balanced_accuracy"],
            "correct": scores["correct"], "total": scores["total"]}, predictions


def evaluate_sources(model, sources, normalization, device):
    """{source name: val loss, accuracy, balanced accuracy (and FER+ majority accuracy where it has votes)}.

    A network with a fer2013 head is scored on a FER2013 folder's own labels with that head, and on
    FER+'s majority (and every other folder) with its default head, as it is used.
    """
    heads = getattr(model, "heads", [DEFAULT_HEAD])
    results = {}
    for source in sources:
        label_head = FER2013_HEAD if FER2013_HEAD in heads and source.val_majority is not None else heads[0]
        set_head(model, label_head)
        val, predictions = evaluate(model, source.val_images, source.val_labels, normalization, device)
        result = {k: val[k] for k in ("loss", "accuracy", "balanced_accuracy")}
        if source.val_majority is not None:
            set_head(model, heads[0])
            if label_head != heads[0]:
                predictions = evaluate(model, source.val_images, source.val_labels, normalization, device)[1]
            voted = source.val_majority >= 0
            result["ferplus_accuracy"] = (predictions[voted] == source.val_majority[voted]).float().mean().item()
        results[source.name] = result
    set_head(model, ALL_HEADS)
    return results
