"""Real-time factor and memory of `deep-emotion analyze` on a corpus it builds: whole commands, medians of runs.

    python benchmarks/corpus_speed.py                       # the figures of benchmarks/README.md
    python benchmarks/corpus_speed.py --repeats 1 --clips 2 --clip_seconds 10 --long_minutes 0   # a quick look

The corpus: --clips 640x480 25-fps clips of --clip_seconds each, with one to three moving faces (scikit-image's
astronaut photo, imgs/astronaut.jpg, mirrored and scaled), MPEG-4 Part 2 as cv2 writes it. Each
figure is a whole `deep-emotion analyze` process into a fresh folder, model loading and worker start-up
included: seconds of video per second of wall time, at default settings (every frame) with 1 and 2 workers,
at --sample_fps 1, and with --ray (a local Ray of --workers CPUs). Peak memory (the largest process's maximum
resident set) of a 1-minute and a --long_minutes clip, one worker.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from common import ROOT, add_json_flag, median_report, run_benchmark, write_json

FPS, SIZE = 25, (640, 480)


def face_images():
    """Three faces: the astronaut's, mirrored, and darker, 150x180 crops around her face."""
    photo = cv2.imread(str(ROOT / "imgs" / "astronaut.jpg"))
    face = photo[20:236, 140:320]
    return [face, face[:, ::-1], (face * 0.8).astype(np.uint8)]


def write_clip(path, seconds, faces_in_clip, seed):
    """A clip of `faces_in_clip` faces drifting on a textured background; returns its length in seconds."""
    rng = np.random.default_rng(seed)
    faces = face_images()
    background = cv2.GaussianBlur(rng.integers(60, 160, (SIZE[1], SIZE[0], 3), dtype=np.uint8), (0, 0), 9)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    phases = rng.uniform(0, 6.28, (3, 2))
    frames = int(seconds * FPS)
    for t in range(frames):
        frame = background.copy()
        for k in range(faces_in_clip):
            scale = 0.6 + 0.15 * k
            face = cv2.resize(faces[k], None, fx=scale, fy=scale)
            h, w = face.shape[:2]
            x = int(30 + 200 * k + 40 * (1 + np.sin(t / 30 + phases[k, 0])))
            y = int(60 + 80 * (1 + np.sin(t / 45 + phases[k, 1])))
            x, y = min(x, SIZE[0] - w), min(y, SIZE[1] - h)
            frame[y:y + h, x:x + w] = face
        writer.write(frame)
    writer.release()
    return frames / FPS


def analyze_command(inputs, out, *flags):
    return [sys.executable, "-m", "deep_emotion", "analyze", *map(str, inputs), "--out", str(out), "--quiet",
            *map(str, flags)]


def run_whole(command):
    """(wall seconds, peak resident memory in MiB of the largest process) of a command, which must succeed."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: {' '.join(command)} failed: {process.stderr.read().decode()[-500:]}")
    return wall, usage.ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6, help="clips in the corpus (default: 6)")
    parser.add_argument("--clip_seconds", type=float, default=30, help="length of each clip (default: 30)")
    parser.add_argument("--long_minutes", type=float, default=10,
                        help="the long clip of the memory figure, in minutes; 0 = no memory figure (default: 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration (default: 3)")
    parser.add_argument("--ray", type=int, default=1, choices=[0, 1],
                        help="1 = also time --ray (needs the cluster extra) (default: 1)")
    parser.add_argument("--corpus_dir", default="",
                        help="where to build (and keep) the corpus (default: a temporary folder)")
    add_json_flag(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="corpus-speed-") as scratch:
        corpus = Path(args.corpus_dir or scratch) / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        seconds = sum(write_clip(corpus / f"clip{i}.mp4", args.clip_seconds, 1 + i % 3, i) for i in range(args.clips))
        print(f"corpus: {args.clips} clips, {seconds:.0f} s of 640x480 {FPS}-fps video, 1-3 faces")
        configurations = {"1 worker, every frame": ["--workers", 1], "2 workers, every frame": ["--workers", 2],
                          "1 worker, --sample_fps 1": ["--workers", 1, "--sample_fps", 1],
                          "2 workers, --sample_fps 1": ["--workers", 2, "--sample_fps", 1]}
        if args.ray:
            configurations["--ray, 2 workers, every frame"] = ["--workers", 2, "--ray"]
        walls = {name: [] for name in configurations}
        for repeat in range(args.repeats):  # interleaved, so a slow spell of the machine hits every configuration
            for number, (name, flags) in enumerate(configurations.items()):
                wall, _ = run_whole(analyze_command([corpus], Path(scratch) / f"out-{repeat}-{number}", *flags))
                walls[name].append(wall)
        factors = {name: median_report(f"real-time factor, {name}", [seconds / w for w in values], "x")
                   for name, values in walls.items()}
        median_report("2 workers against 1, every frame", [a / b for a, b in zip(walls["1 worker, every frame"],
                                                                               walls["2 workers, every frame"])], "x")
        if args.ray:
            median_report("--ray against --workers 2 (wall time ratio)",
                          [a / b for a, b in zip(walls["--ray, 2 workers, every frame"],
                                                 walls["2 workers, every frame"])], "x")
        memory = {}
        if args.long_minutes:
            long_clips = Path(scratch) / "long"
            long_clips.mkdir()
            for minutes in (1, args.long_minutes):
                clip = long_clips / f"{minutes:g}min.mp4"
                write_clip(clip, minutes * 60, 2, 7)
                peaks = [run_whole(analyze_command([clip], Path(scratch) / f"mem-{minutes}-{r}", "--workers", 1))[1]
                         for r in range(max(1, args.repeats - 1))]
                memory[minutes] = median_report(f"peak memory, a {minutes:g}-minute clip, 1 worker", peaks, "MiB")
            print(f"peak memory, {args.long_minutes:g} minutes against 1: {memory[args.long_minutes] / memory[1]:.3f}x")
        write_json(args.json, {"video_seconds": seconds, "factors": factors,
                               "memory_ratio": memory[args.long_minutes] / memory[1] if memory else None,
                               "median_walls": {k: statistics.median(v) for k, v in walls.items()}})


if __name__ == "__main__":
    run_benchmark(main)
