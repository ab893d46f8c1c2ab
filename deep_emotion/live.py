"""Live inference: open a camera, video, photo or folder of photos, find and classify each frame's faces,
and draw, show, write and log what was found. visualize.py's --cam and --source run this loop.
"""
import collections
import csv
import os
import sys
import time
from pathlib import Path

import cv2
import torch

from deep_emotion.recognizer import RECENT_FRAMES, EmotionRecognizer, LiveSettings, draw
from deep_emotion.timeline import LOG_COLUMNS, write_timeline
from deep_emotion.utils import IMAGE_SUFFIXES, OutputError, UserError, atomic_write

# One inference thread for live inference (PyTorch's, or onnxruntime's): a batch of 1-3 faces gains little from
# two, and two threads stall on each other as soon as another program takes a core (benchmarks/live_fps.py
# --busy 1 --threads 1 / 2; the figures are in benchmarks/README.md).
LIVE_TORCH_THREADS = 1


class SourceError(UserError):
    """A camera or file that cannot be opened, or an output that would destroy it, as one line (exit code 2)."""


def open_source(source):
    """Opens a camera index, video, image or folder of images; raises SourceError.

    Returns (frames, stills): an iterator of (name, BGR frame), and whether they are still images (photos).
    """
    path = Path(str(source))
    if str(source).isdigit():
        # OpenCV logs a screenful for a missing camera; the one-line error below says it
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            capture = cv2.VideoCapture(int(source))
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not capture.isOpened():
            raise SourceError(f"camera {source} cannot be opened (is one connected, and free?)")
        return _read_capture(capture, f"camera{source}"), False
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return _read_images(files), True
    if not path.exists():
        raise SourceError(f"{path} does not exist")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        if cv2.imread(str(path)) is None:
            raise SourceError(f"{path} is not a readable image")
        return _read_images([path]), True
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError(f"{path} cannot be opened as a video")
    return _read_capture(capture, path.name), False


def _read_capture(capture, name):
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield name, frame
    finally:
        capture.release()


def _read_images(files):
    for path in files:
        frame = cv2.imread(str(path))
        if frame is None:
            print(f"skipping {path}: not a readable image")
            continue
        yield path.name, frame


def display_available():
    """Whether a window can be shown; False on a headless Linux box or a headless OpenCV."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow("Deep-Emotion")
        return True
    except cv2.error:
        return False


def frame_rate(source):
    """The frame rate of a video file (25 when it does not say), for the annotated copy."""
    capture = cv2.VideoCapture(str(source))
    fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0
    capture.release()
    return fps if 1 <= fps <= 240 else 25.0


# what an annotated video may be called: cv2.VideoWriter picks its container by the suffix
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")


def write_image(path, frame):
    """Writes an annotated image atomically; raises OutputError when it cannot."""
    path = Path(path)

    def write(tmp):
        if not cv2.imwrite(str(tmp), frame):
            raise OutputError(f"cannot write the annotated image {path}")
    try:
        atomic_write(path, write)
    except OSError as error:
        raise OutputError(f"cannot write the annotated image {path}: {error.strerror or error}") from None


def run_live(args, device):
    """The live loop; returns the number of frames processed. Raises SourceError or OutputError."""
    source = "0" if args.cam and args.source is None else args.source
    frames, stills = open_source(source)  # opens now, so a bad source fails before the model loads
    torch.set_num_threads(LIVE_TORCH_THREADS)
    # one photo to a file name with an image suffix writes that file; anything else writes into a folder
    one_image_file = stills and Path(source).is_file() and Path(args.output).suffix.lower() in IMAGE_SUFFIXES
    recognizer = EmotionRecognizer(args.model, device, stills=stills, threads=LIVE_TORCH_THREADS,
                                   **LiveSettings.from_args(args).recognizer_kwargs())
    show = not args.no_display and display_available()
    if not args.no_display and not show:
        print("no display found: running headless (as with --no_display)")
    writer, log_file, log = None, None, None
    if args.log:
        log_file = open(args.log, "w", newline="")
        log = csv.writer(log_file)
        log.writerow(LOG_COLUMNS)
    # seconds on the timeline: from the file's frame rate, or the clock for a camera; none for photos
    source_fps = None if stills or str(source).isdigit() else frame_rate(source)
    rows = []  # what --log holds, kept for --timeline
    count, start = 0, time.perf_counter()
    frame_ends = collections.deque([start], maxlen=RECENT_FRAMES + 1)  # when each of the last frames was done
    try:
        for count, (name, frame, results) in enumerate(recognizer.stream(frames), start=1):
            # the summary's definition, over the last frames: frames done per second of wall time, reading,
            # detection, classification, drawing and writing included; a photo has no frame rate
            fps = (len(frame_ends) - 1) / max(frame_ends[-1] - frame_ends[0], 1e-6) if count > 1 else None
            draw(frame, results, None if stills else fps)
            seconds = (None if stills else (count - 1) / source_fps if source_fps
                       else time.perf_counter() - start)
            for face in results:
                row = dict(zip(LOG_COLUMNS, [name, count, seconds, face["face"], *face["box"], face["label"],
                                             face["confidence"], *face["emotions"].values(), face["found"]]))
                if log:
                    log.writerow([f"{v:.4f}" if isinstance(v, float) else "" if v is None else v
                                  for v in row.values()])
                if args.timeline:
                    rows.append(row)
            if args.output and stills:
                write_image(args.output if one_image_file else Path(args.output) / name, frame)
            elif args.output:
                if writer is None:  # the source's own frame rate and size
                    fps_out = source_fps or 25.0
                    writer = cv2.VideoWriter(args.output, cv2.VideoWriter_fourcc(*"mp4v"), fps_out,
                                             (frame.shape[1], frame.shape[0]))
                    if not writer.isOpened():
                        raise SourceError(f"cannot write the video {args.output} (does its folder exist?)")
                writer.write(frame)
            if show:
                cv2.imshow("Deep-Emotion", frame)
                if cv2.waitKey(0 if stills else 1) & 0xFF in (ord("q"), 27):
                    break
            if stills:  # a photo's reading, in the terminal too
                print(f"{name}: " + ("; ".join(f"face {face['face']} {face['label']} {face['confidence']:.0%} at "
                                               f"{face['box']}" for face in results) or "no face found"))
            frame_ends.append(time.perf_counter())
            if args.max_frames and count >= args.max_frames:
                break
    finally:
        if writer is not None:
            writer.release()
        if log_file is not None:
            log_file.close()
        if show:
            cv2.destroyAllWindows()
    if args.timeline:
        write_timeline(rows, args.timeline)
    seconds = time.perf_counter() - start
    print(f"{count} frame(s) from {source} in {seconds:.1f} s ({count / max(seconds, 1e-9):.1f} frames/s over the "
          f"whole run, the first frames' warm-up, reading, detection, classification, drawing and writing included; "
          f"the overlay's figure is over the last {RECENT_FRAMES})"
          + (f"; annotated output: {args.output}" if args.output else "")
          + (f"; faces: {args.log}" if args.log else ""))
    return count
