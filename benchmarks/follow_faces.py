"""What searching for faces every N frames gains and costs, against searching every frame, for N = 1..5.

    python benchmarks/follow_faces.py --data data/fer --frames 300 --repeats 3 --out results/follow_faces.json

On live_fps.py's video (three faces that come and go, 2-4 pixels a frame) and on a faster copy of it
(speed 2.5: up to 7 pixels a frame), EmotionRecognizer(detect_every=N, classify_every=M) is compared frame
by frame with N = M = 1 (today's pipeline, every frame searched and classified), for M = N and M = 1:
the mean IoU of its boxes with the full search's
(on the frames it followed, and on all), the share of the full search's face-frames it labels alike, the
share of face appearances that keep one track id, and frames/s (median of --repeats passes). Against
the faces pasted: the mean IoU of the boxes with the pasted squares, and the accuracy on the faces'
own FER2013 labels, so that a change from the full search can be told from a change for the worse.
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from common import median_report, run_benchmark
from live_fps import SEGMENT, make_frames

from deep_emotion.data.loaders import load_split
from deep_emotion.emotions import CLASS_NAMES
from deep_emotion.live import LIVE_TORCH_THREADS
from deep_emotion.recognizer import DEFAULT_MODEL, EmotionRecognizer
from deep_emotion.tracking import iou


def run(model, frames, detect_every, classify_every):
    """(results per frame, seconds) of one pass, the classic pipeline's Haar detector."""
    recognizer = EmotionRecognizer(model, detect_every=detect_every, classify_every=classify_every)
    start = time.perf_counter()
    results = [faces for _, _, faces in recognizer.stream((None, frame) for frame in frames)]
    return results, time.perf_counter() - start


def best_match(box, faces):
    """(IoU, face) of the face whose box overlaps box most, (0, None) when none does."""
    overlap, face = max(((iou(box, face["box"]), face) for face in faces), key=lambda pair: pair[0],
                        default=(0.0, None))
    return (overlap, face) if overlap > 0 else (0.0, None)


def compare(results, reference, truth, labels, class_names):
    """The figures of one run against the full-search run on the same frames, and against the faces pasted."""
    followed_iou, all_iou, same_label = [], [], []
    for faces, expected in zip(results, reference):
        for wanted in expected:
            overlap, face = best_match(wanted["box"], faces)
            all_iou.append(overlap)
            same_label.append(face is not None and face["label"] == wanted["label"])
            if face is not None and face["found"] == "followed":
                followed_iou.append(overlap)
    ids = {}  # (face k, appearance) -> the track ids seen on it
    truth_iou, right = [], []
    for t, (faces, pasted) in enumerate(zip(results, truth)):
        for k, box, index in pasted:
            overlap, face = best_match(box, faces)
            truth_iou.append(overlap)
            right.append(face is not None and face["label"] == class_names[labels[index]])
            if face is not None and overlap >= 0.5:
                ids.setdefault((k, (t + 17 * k) // SEGMENT), set()).add(face["face"])
    return {"mean_iou_followed": statistics.mean(followed_iou) if followed_iou else None,
            "mean_iou_all": statistics.mean(all_iou) if all_iou else None,
            "labels_alike": statistics.mean(same_label) if same_label else None,
            "followed_share": sum(f["found"] == "followed" for faces in results for f in faces)
            / max(1, sum(map(len, results))),
            "appearances_with_one_id": statistics.mean(len(v) == 1 for v in ids.values()) if ids else None,
            "mean_iou_pasted": statistics.mean(truth_iou) if truth_iou else None,
            "accuracy_pasted": statistics.mean(right) if right else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data", help="prepared data folder the faces come from (default: data)")
    parser.add_argument("--split", default="val", help="split the faces come from (default: val)")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="checkpoint (default: the default model)")
    parser.add_argument("--frames", type=int, default=300, help="frames per clip (default: 300)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per setting (default: 3)")
    parser.add_argument("--max_every", type=int, default=5, help="largest N (default: 5)")
    parser.add_argument("--out", default="", help="JSON of every figure (default: none)")
    args = parser.parse_args()
    torch.set_num_threads(LIVE_TORCH_THREADS)
    images, labels, _ = load_split(args.data, args.split)
    labels = labels[:40].tolist()
    table = {}
    for clip, speed in (("live_fps video", 1.0), ("fast faces", 2.5)):
        frames, truth = make_frames(images[:40].numpy(), args.frames, speed)
        # (N, M): faces searched one frame in N, each classified one frame in M; M = 1 classifies every frame
        settings = [(n, n) for n in range(1, args.max_every + 1)] + [(n, 1) for n in range(2, args.max_every + 1)]
        seconds = {setting: [] for setting in settings}
        outcome = {}
        for _ in range(args.repeats):  # interleaved: a noisy spell hits every setting alike
            for setting in settings:
                outcome[setting], elapsed = run(args.model, frames, *setting)
                seconds[setting].append(elapsed)
        for n, m in settings:
            row = compare(outcome[n, m], outcome[1, 1], truth, labels, CLASS_NAMES)
            row["frames_per_s"] = median_report(f"{clip}, detect_every {n}, classify_every {m}",
                                                [len(frames) / s for s in seconds[n, m]], "frames/s")
            table[f"{clip}|{n}|{m}"] = row
    print("\n| clip | N | M | frames/s | IoU with every-frame boxes: followed / all | labels as every-frame | "
          "one id per appearance | boxes followed | IoU with the pasted faces | accuracy on their labels |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    percent = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    number = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for key, row in table.items():
        clip, n, m = key.split("|")
        print(f"| {clip} | {n} | {m} | {row['frames_per_s']:.1f} | {number(row['mean_iou_followed'])} / "
              f"{number(row['mean_iou_all'])} | {percent(row['labels_alike'])} | "
              f"{percent(row['appearances_with_one_id'])} | {percent(row['followed_share'])} | "
              f"{number(row['mean_iou_pasted'])} | {percent(row['accuracy_pasted'])} |")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"model": args.model, "frames": args.frames, "table": table}, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    run_benchmark(main)
