"""Frames per second of the live pipeline (detect, crop, classify, draw) on a 640x480 video with 0-3 faces.

    python benchmarks/live_fps.py --data data --model weights/deep_emotion_vgg.pt --frames 300 --repeats 3
    python benchmarks/live_fps.py --data data/fer --frames 300 --detect_every 1 3   # both, in the same run
    python benchmarks/live_fps.py --clip --tile 3 --frames 300                       # a group scene: 9 faces

The video is made of FER2013 faces from --data, upscaled and pasted into each frame at moving
positions (real faces, so the Haar cascade has work to do); each of three faces comes and goes in
stretches of 50 frames, as people do in front of a camera. With --clip it is instead the browser
benchmark's clip (benchmarks/web_fps.py): the astronaut photo that scikit-image ships, one face,
moving, at 640x480. --detect_every N ... times each face-search interval in turn, repeat by repeat.
"""
import argparse
import statistics
import sys
import time

import cv2
import numpy as np
import torch
from common import ROOT, busy_cores, median_report, run_benchmark

from deep_emotion.data.loaders import load_split
from deep_emotion.face_detectors import DEFAULT_DETECTOR, DETECTORS
from deep_emotion.live import LIVE_TORCH_THREADS
from deep_emotion.recognizer import BACKENDS, DEFAULT_MODEL, DETECT_EVERY, EmotionRecognizer, draw

SEGMENT = 50  # frames a face stays (or stays away) at a time


def face_visible(k, t):
    """Whether face k (0..2) is in frame t: present two stretches of SEGMENT frames in three, staggered."""
    return (t + 17 * k) // SEGMENT % 3 != 2


def make_frames(faces, count, speed=1.0):
    """(frames, truth): count 640x480 BGR frames with up to three moving faces, and each frame's
    [(face k, (x, y, w, h) pasted, index of the image in faces)]. speed scales how fast the faces move
    (1: up to 3 pixels a frame)."""
    frames, truth = [], []
    for t in range(count):
        frame = np.full((480, 640, 3), 100, np.uint8)
        frame[:, :, 1] = 120
        pasted = []
        for k in range(3):
            if not face_visible(k, t):
                continue
            side = 110 + 20 * k
            x = 60 + 190 * k + int(40 * np.sin(speed * t / 14 + k))
            y = 100 + int(60 * np.cos(speed * t / 22 + k))
            index = (t // 30 + k) % len(faces)
            face = cv2.resize(faces[index], (side, side), interpolation=cv2.INTER_CUBIC)
            frame[y:y + side, x:x + side] = face[:, :, None]
            pasted.append((k, (x, y, side, side), index))
        frames.append(frame)
        truth.append(pasted)
    return frames, truth


def tiled(frame, n):
    """The frame repeated n x n times, shrunk back to its own size: n * n faces where it had one."""
    if n == 1:
        return frame
    mosaic = np.tile(frame, (n, n, 1))
    return cv2.resize(mosaic, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_AREA)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data", help="prepared data folder (default: data)")
    parser.add_argument("--split", default="val", help="split the faces come from (default: val)")
    parser.add_argument("--model", nargs="+", default=[str(DEFAULT_MODEL)],
                        help="checkpoint(s); several are an ensemble "
                             "(default: deep_emotion/weights/deep_emotion_pair.pt)")
    parser.add_argument("--frames", type=int, default=150, help="frames per run (default: 150)")
    parser.add_argument("--repeats", type=int, default=3, help="runs (default: 3)")
    parser.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR,
                        help="face detector (default: yunet, shipped)")
    parser.add_argument("--detector_model", default=None,
                        help="another YuNet .onnx file (default: $DEEP_EMOTION_YUNET, else the package's)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="classifier engine: auto (onnxruntime where installed), onnx, torch (default: auto)")
    parser.add_argument("--busy", type=int, default=0,
                        help="processes kept spinning beside the pipeline, as another program would (default: 0)")
    parser.add_argument("--threads", type=int, default=LIVE_TORCH_THREADS,
                        help=f"inference threads (PyTorch's or onnxruntime's), as the live mode uses "
                             f"(default: {LIVE_TORCH_THREADS})")
    parser.add_argument("--overlap", type=int, default=1, choices=[0, 1],
                        help="1 = find the next frame's faces while classifying this one's, as visualize.py does "
                             "(EmotionRecognizer.stream); 0 = one stage after the other (default: 1)")
    parser.add_argument("--detect_every", type=int, nargs="+", default=[DETECT_EVERY],
                        help=f"face-search interval(s) to time, each in turn (default: {DETECT_EVERY})")
    parser.add_argument("--classify_every", type=int, default=None,
                        help="classify each face on one frame in M (default: the same as each --detect_every)")
    parser.add_argument("--clip", action="store_true",
                        help="time the browser benchmark's astronaut clip instead of FER2013 faces (default: off)")
    parser.add_argument("--tile", type=int, default=1,
                        help="with --clip, a group scene: each frame tiled N x N and shrunk back to 640x480, N*N "
                             "faces a frame (default: 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.clip:
        sys.path.insert(0, str(ROOT / "tests"))  # the browser test's driver draws the clip
        from web_harness import face_frame
        frames = [tiled(face_frame(2 * (t % 30)), args.tile) for t in range(args.frames)]
        pasted = len(frames) * args.tile ** 2
    else:
        images, _, _ = load_split(args.data, args.split)
        frames, truth = make_frames(images[:40].numpy(), args.frames)
        pasted = sum(map(len, truth))
    runs = {n: ([], {"detect": [], "crop": [], "classify": [], "draw": []}, []) for n in args.detect_every}
    with busy_cores(args.busy):
        for _ in range(args.repeats):
            for n, (fps, stages, found) in runs.items():  # interleaved: a noisy spell hits every setting alike
                found.append(run_once(args, frames, fps, stages, n))
    print(f"{args.model}, {args.detector}, {args.backend}, {len(frames)} frames"
          f"{f', {args.busy} busy process(es) beside it' if args.busy else ''}")
    for n, (fps, stages, found) in runs.items():
        print(f"detect_every {n}: found {statistics.mean(found) / max(pasted, 1):.1%} of the faces pasted")
        median_report(f"detect_every {n}: pipeline", fps, "frames/s")
        for name, ms in stages.items():
            print(f"  {name:<9} median {statistics.median(ms):.2f} ms/frame")


def run_once(args, frames, fps, stages, detect_every):
    """One pass over the frames; appends its frames/s and per-stage milliseconds; returns the faces found."""
    faces_found = 0
    recognizer = EmotionRecognizer(args.model, detector=args.detector, detector_model=args.detector_model,
                                   backend=args.backend, detect_every=detect_every,
                                   classify_every=args.classify_every or detect_every, threads=args.threads)
    draw_seconds, start = 0.0, time.perf_counter()
    stream = recognizer.stream((None, frame) for frame in frames) if args.overlap else (
        (None, frame, recognizer.detect_emotions(frame)) for frame in frames)
    for _, frame, results in stream:
        tick = time.perf_counter()
        draw(frame.copy(), results, 30.0)
        draw_seconds += time.perf_counter() - tick
        faces_found += len(results)
    fps.append(len(frames) / (time.perf_counter() - start))
    for name, seconds in list(recognizer.timings.items()) + [("draw", draw_seconds)]:
        stages[name].append(1000 * seconds / len(frames))
    return faces_found


if __name__ == "__main__":
    run_benchmark(main)
