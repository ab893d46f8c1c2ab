"""Two live pipelines against each other on the same frames, run in turn (A B A B ...), in one process: frames/s of
each, medians, and the ratio B/A of each round, so that a noisy spell hits both sides alike.

    python benchmarks/live_pair.py --data data/fer --rounds 5          # the default against the default before
    python benchmarks/live_pair.py --clip --tile 2 --rounds 5          # a group scene: 4 faces a frame

Side A is by default the default model before the pair (deep_emotion_vgg_heads) on PyTorch, one stage after the
other (as the live loop ran it); side B the live pipeline as it runs today: the default model, the default
engine (onnxruntime where installed), locating and classifying overlapped (EmotionRecognizer.stream). Each
side's flags: --a_model/--b_model, --a_backend/--b_backend, --a_overlap/--b_overlap.
"""
import argparse
import sys
from types import SimpleNamespace

import torch
from common import ROOT, median_report, run_benchmark
from live_fps import make_frames, run_once, tiled

from deep_emotion.data.loaders import load_split
from deep_emotion.live import LIVE_TORCH_THREADS
from deep_emotion.recognizer import BACKENDS, DEFAULT_MODEL, DETECT_EVERY, PACKAGE_WEIGHTS

BEFORE = PACKAGE_WEIGHTS / "deep_emotion_vgg_heads.pt"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/fer", help="prepared FER2013 folder the faces come from "
                                                           "(default: data/fer)")
    parser.add_argument("--clip", action="store_true", help="the astronaut clip instead of FER2013 faces "
                                                            "(default: off)")
    parser.add_argument("--tile", type=int, default=1, help="with --clip, N x N faces a frame (default: 1)")
    parser.add_argument("--frames", type=int, default=300, help="frames per run (default: 300)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of A then B (default: 5)")
    for side, model, backend, overlap in (("a", BEFORE, "torch", 0), ("b", DEFAULT_MODEL, "auto", 1)):
        parser.add_argument(f"--{side}_model", nargs="+", default=[str(model)],
                            help=f"side {side.upper()}'s checkpoint(s) (default: {model.relative_to(ROOT)})")
        parser.add_argument(f"--{side}_backend", choices=BACKENDS, default=backend,
                            help=f"side {side.upper()}'s engine (default: {backend})")
        parser.add_argument(f"--{side}_overlap", type=int, choices=[0, 1], default=overlap,
                            help=f"side {side.upper()}: 1 = EmotionRecognizer.stream, 0 = detect_emotions frame by "
                                 f"frame (default: {overlap})")
    parser.add_argument("--threads", type=int, default=LIVE_TORCH_THREADS,
                        help=f"inference threads of both sides, as the live mode (default: {LIVE_TORCH_THREADS})")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.clip:
        sys.path.insert(0, str(ROOT / "tests"))  # the browser test's driver draws the clip
        from web_harness import face_frame
        frames = [tiled(face_frame(2 * (t % 30)), args.tile) for t in range(args.frames)]
    else:
        images, _, _ = load_split(args.data, "val")
        frames, _ = make_frames(images[:40].numpy(), args.frames)
    sides = {side: SimpleNamespace(model=getattr(args, f"{side}_model"), backend=getattr(args, f"{side}_backend"),
                                   overlap=getattr(args, f"{side}_overlap"), detector="yunet", detector_model=None,
                                   threads=args.threads, classify_every=None)
             for side in "ab"}
    fps = {side: [] for side in sides}
    stages = {side: {"detect": [], "crop": [], "classify": [], "draw": []} for side in sides}
    for _ in range(args.rounds):
        for side, settings in sides.items():
            run_once(settings, frames, fps[side], stages[side], DETECT_EVERY)
    for side, settings in sides.items():
        print(f"{side.upper()}: {settings.model}, {settings.backend}, overlap {settings.overlap}")
        median_report(f"{side.upper()} frames/s", fps[side], "frames/s")
    median_report("B / A, round by round", [b / a for a, b in zip(fps["a"], fps["b"])], "x")


if __name__ == "__main__":
    run_benchmark(main)
