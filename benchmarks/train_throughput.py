"""Training throughput: main.py's loop against the original implementation's, in one run.

    python main.py --setup --data data          # once, with fer2013.csv in data/
    python benchmarks/train_throughput.py --data data --steps 40 --repeats 3
    python benchmarks/train_throughput.py --data data --device cuda --arch deep_emotion_vgg --steps 100

Ours: the split decoded once into memory (on a GPU: in its memory, as main.py does), batches
augmented as tensors. It also prints the seconds one FER2013 training epoch (28,709 faces) takes at
that rate. The original (CPU only): per-sample PIL loading + ToTensor/Normalize,
DataLoader(num_workers=0), batch 128, Adam.
"""
import argparse
import json
import time
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from common import add_json_flag, busy_cores, median_report, run_benchmark, write_json
from torch.utils.data import DataLoader

from deep_emotion import engine
from deep_emotion.config import build_config
from deep_emotion.data.loaders import FER2013, load_split
from deep_emotion.inference import device_arg, pick_device
from deep_emotion.model import build_model, face_input_of

FER2013_TRAIN_FACES = 28_709


def ours(args, device):
    """Images per second of engine.train_one_epoch with the --arch recipe's loss and augmentation."""
    # the run configuration main.py builds for these flags; no teacher: its targets are computed once, before training
    flags = {"arch": args.arch, "arch_args": json.loads(args.arch_args) if args.arch_args else None,
             "batch_size": args.batch_size or None, "max_steps": args.steps, "precision": args.precision,
             "teacher": "", "data": [args.data]}
    config = build_config(flags, device)
    images, labels, _ = load_split(args.data, "train", face_input=face_input_of(config.arch_args))
    loss_fn, augment = engine.training_objective(config, engine.input_normalization(config, images),
                                                 torch.bincount(labels, minlength=7))
    if device.type == "cuda":
        images, labels = images.to(device), labels.to(device)
    model = engine.to_fast_layout(build_model(config.arch, **config.arch_args), device)
    optimizer = engine.make_optimizer(model, config.optimizer, config.learning_rate, config.weight_decay,
                                      config.loc_lr_scale)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    data = SimpleNamespace(images=images, labels=labels, loss_fn=loss_fn, augment=augment, draw=None)
    metrics = engine.train_one_epoch(model, data, optimizer, scheduler, config, epoch=0, device=device,
                                     show_bar=False)
    return metrics["images_per_s"]


def original(args):
    try:  # only the original's pipeline needs torchvision, and a torchvision built for another torch fails here
        from torchvision import transforms
    except (ImportError, RuntimeError) as error:
        print(f"the original's pipeline is skipped: torchvision does not load ({str(error).splitlines()[0]})")
        return None
    dataset = FER2013(args.data, "train", transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
    loader = DataLoader(dataset, batch_size=128, shuffle=True, num_workers=0)
    model = build_model("deep_emotion", dropout=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
    model.train()
    seen, start = 0, time.perf_counter()
    for step, (x, y) in enumerate(loader):
        if step == args.steps:
            break
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        seen += len(y)
    return seen / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data", help="prepared data folder (default: data)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per measurement (default: 40)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each (default: 3)")
    parser.add_argument("--batch_size", type=int, default=0,
                        help="batch size of our loop; the original's is 128 (default: 0 = the recipe's)")
    parser.add_argument("--arch", default="deep_emotion",
                        help="network of our loop; the original loop always trains deep_emotion "
                             "(default: deep_emotion)")
    parser.add_argument("--arch_args", default="",
                        help='JSON arguments of --arch, e.g. \'{"width": 64}\' (default: the recipe\'s)')
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="math of our loop, as main.py's --precision (default: auto)")
    parser.add_argument("--device", type=device_arg, default="cpu",
                        help="where our loop runs: cpu, cuda, cuda:N, mps, auto (default: cpu)")
    parser.add_argument("--busy", type=int, default=0,
                        help="processes kept spinning beside the training, as another program would (default: 0)")
    add_json_flag(parser)
    args = parser.parse_args()
    device = pick_device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, "
          f"{args.busy} busy process(es) beside it")
    ours_name = f"ours (main.py, {args.arch}, batch {args.batch_size or 'of the recipe'})"
    results = {ours_name: [], "original loop (deep_emotion, batch 128)": []}
    run_original = args.arch == "deep_emotion" and device.type == "cpu"
    with busy_cores(args.busy):
        for _ in range(args.repeats):
            results[ours_name].append(ours(args, device))
            if run_original:
                rate = original(args)
                run_original = rate is not None
                if run_original:
                    results["original loop (deep_emotion, batch 128)"].append(rate)
    for name, values in results.items():
        if values:
            rate = median_report(f"{name:>50}", values, "images/s")
            print(f"{'':>50}  one FER2013 training epoch at that rate: {FER2013_TRAIN_FACES / rate:.1f} s")
    write_json(args.json)


if __name__ == "__main__":
    run_benchmark(main)
