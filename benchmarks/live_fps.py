"""Frames per second of the live pipeline (detect, crop, classify, draw) on a 640x480 video with 1-3 faces.

    python benchmarks/live_fps.py --data data --model weights/deep_emotion_vgg.pt --frames 150 --repeats 3

The video is made of FER2013 faces from --data, upscaled and pasted into each
frame at moving positions (real faces, so the Haar cascade has work to do). With --clip it is
instead the browser benchmark's clip (benchmarks/web_fps.py): the astronaut photo that scikit-image
ships, one face, moving, at 640x480.
"""
import argparse
import statistics
import sys
import time

import cv2
import numpy as np
import torch
from common import ROOT, busy_cores, median_report

from deep_emotion.data_loaders import load_split
from deep_emotion.face_detectors import DETECTORS
from deep_emotion.live import LIVE_TORCH_THREADS
from deep_emotion.recognizer import BACKENDS, DEFAULT_MODEL, EmotionRecognizer, draw


def make_frames(faces, count, rng):
    frames = []
    for t in range(count):
        frame = np.full((480, 640, 3), 100, np.uint8)
        frame[:, :, 1] = 120
        for k in range(1 + t % 3):  # one to three faces
            side = 110 + 20 * k
            x, y = 20 + 200 * k + int(10 * np.sin(t / 7 + k)), 100 + int(30 * np.cos(t / 11 + k))
            face = cv2.resize(faces[(t // 30 + k) % len(faces)], (side, side), interpolation=cv2.INTER_CUBIC)
            frame[y:y + side, x:x + side] = face[:, :, None]
        frames.append(frame)
    return frames


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data", help="prepared data folder (default: data)")
    parser.add_argument("--split", default="val", help="split the faces come from (default: val)")
    parser.add_argument("--model", nargs="+", default=[str(DEFAULT_MODEL)],
                        help="checkpoint(s); several are an ensemble (default: deep_emotion/weights/deep_emotion_vgg_fer_raf.pt)")
    parser.add_argument("--frames", type=int, default=150, help="frames per run (default: 150)")
    parser.add_argument("--repeats", type=int, default=3, help="runs (default: 3)")
    parser.add_argument("--detector", choices=DETECTORS, default="haar", help="face detector (default: haar)")
    parser.add_argument("--detector_model", default=None, help="YuNet's .onnx file (default: $DEEP_EMOTION_YUNET)")
    parser.add_argument("--backend", choices=BACKENDS, default="torch", help="classifier backend (default: torch)")
    parser.add_argument("--busy", type=int, default=0,
                        help="processes kept spinning beside the pipeline, as another program would (default: 0)")
    parser.add_argument("--threads", type=int, default=LIVE_TORCH_THREADS,
                        help=f"torch threads, as visualize.py's live mode uses (default: {LIVE_TORCH_THREADS})")
    parser.add_argument("--overlap", type=int, default=1, choices=[0, 1],
                        help="1 = find the next frame's faces while classifying this one's, as visualize.py does "
                             "(EmotionRecognizer.stream); 0 = one stage after the other (default: 1)")
    parser.add_argument("--clip", action="store_true",
                        help="time the browser benchmark's astronaut clip instead of FER2013 faces (default: off)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.clip:
        sys.path.insert(0, str(ROOT / "web"))
        from harness import face_frame
        frames = [face_frame(2 * (t % 30)) for t in range(args.frames)]
    else:
        images, _, _ = load_split(args.data, args.split)
        frames = make_frames(images[:40].numpy(), args.frames, np.random.default_rng(0))
    fps, stages, faces_found = [], {"detect": [], "crop": [], "classify": [], "draw": []}, 0
    with busy_cores(args.busy):
        for _ in range(args.repeats):
            faces_found += run_once(args, frames, fps, stages)
    pasted = len(frames) if args.clip else sum(1 + t % 3 for t in range(len(frames)))  # 1, 2, 3, 1, ... faces
    print(f"{args.model}, {args.detector}, {args.backend}: found {faces_found / args.repeats / pasted:.1%} of the "
          f"faces pasted ({faces_found / args.repeats / len(frames):.2f} per frame)"
          f"{f', {args.busy} busy process(es) beside it' if args.busy else ''}")
    median_report("pipeline", fps, "frames/s")
    for name, ms in stages.items():
        print(f"  {name:<9} median {statistics.median(ms):.2f} ms/frame")


def run_once(args, frames, fps, stages):
    """One pass over the frames; appends its frames/s and per-stage milliseconds; returns the faces found."""
    faces_found = 0
    recognizer = EmotionRecognizer(args.model, detector=args.detector, detector_model=args.detector_model,
                               backend=args.backend)
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
    main()
