"""One input of a corpus, analysed: its frames read (all, or a sample), its faces found and classified, and
its per-frame table written atomically. `deep-emotion analyze` (analyze.py) runs this for every input, on
local worker processes or Ray actors, and keeps the manifest and summary.

    recognizer = EmotionRecognizer(**settings.recognizer_kwargs(stills=False))
    row = analyze_input(recognizer, "talk.mp4", settings, Path("out/tables/talk-1a2b3c4d.csv"))
"""
import csv
import dataclasses
import hashlib
import os
from pathlib import Path

import cv2

from deep_emotion.emotions import CLASS_NAMES
from deep_emotion.recognizer import LiveSettings, pick_backend
from deep_emotion.utils import IMAGE_SUFFIXES, OutputError, UserError, atomic_write, file_sha256

# what a folder is searched for; any other file named as an input is tried as a video
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
# A row per face per frame, under live --log's names (so `deep-emotion timeline` plots a table), with
# OpenFace's FeatureExtraction names beside them where they mean the same thing (timestamp, face_id,
# success), so scripts written for OpenFace's CSVs read these too. A frame with no face is one row with
# success 0 and the face columns empty: no frame is missing from a table.
TABLE_COLUMNS = ["source", "frame", "time_s", "timestamp", "face", "face_id", "success", "x", "y", "w", "h",
                 "face_score", "found", "label", "confidence", *CLASS_NAMES]
SUMMARY_COLUMNS = ["path", "status", "error", "frames", "seconds", "faces", "tracks", "table",
                   *(f"share_{name}" for name in CLASS_NAMES)]
FORMATS = ("csv", "parquet")
PROGRESS_EVERY = 25  # frames between two progress reports of a worker
TRUNCATION_SLACK = 0.01  # a video that ends this share of its stated frames early is called truncated


class CorpusError(UserError):
    """A corpus input, option or output folder that cannot be used, as one line (exit code 2)."""


@dataclasses.dataclass(frozen=True)
class AnalysisSettings:
    """What a table depends on besides its input: the model, the live pipeline's settings (recognizer.LiveSettings:
    detector, detect_every and classify_every, counted in the frames read, and the rest), and how frames are read.

    sample_fps reads that many frames a second of video (None: every frame); every reads one frame in N. The
    engine "auto" becomes the one it means on this machine (recognizer.pick_backend), which the manifest records.
    """
    model: tuple = ()
    live: LiveSettings = LiveSettings()
    sample_fps: float = None
    every: int = 1
    format: str = "csv"

    def __post_init__(self):
        object.__setattr__(self, "live", dataclasses.replace(self.live,
                                                             backend=pick_backend(self.live.backend, list(self.model))))

    def recognizer_kwargs(self, stills):
        """EmotionRecognizer's arguments for these settings; stills for photos."""
        return dict(model_path=list(self.model), stills=stills, **self.live.recognizer_kwargs())

    def identity(self):
        """The settings as the manifest records them, flat: the model and detector files by their sha256."""
        identity = {**dataclasses.asdict(self.live), "sample_fps": self.sample_fps, "every": self.every,
                    "format": self.format, "model": [file_sha256(path) for path in self.model]}
        if self.live.detector_model:
            identity["detector_model"] = file_sha256(self.live.detector_model)
        return identity


def find_inputs(names):
    """The corpus named by files, folders (searched recursively for videos and photos) and text files that list
    paths (one a line, '#' comments; a .txt, .list or .lst file): sorted, each once. Raises CorpusError."""
    found = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            found += [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES | IMAGE_SUFFIXES
                      and not any(part.startswith(".") for part in p.relative_to(path).parts)]
        elif path.suffix.lower() in (".txt", ".list", ".lst") and path.is_file():
            lines = [line.strip() for line in path.read_text().splitlines()]
            listed = [line for line in lines if line and not line.startswith("#")]
            found += [p if p.is_absolute() else path.parent / p for p in map(Path, listed)]
        elif path.exists():
            found.append(path)
        else:
            raise CorpusError(f"input {path} does not exist")
    if not found:
        raise CorpusError(f"no video or photo found in {' '.join(map(str, names))} "
                          f"({', '.join(sorted(VIDEO_SUFFIXES | IMAGE_SUFFIXES))})")
    return sorted({str(p) for p in found})


def parse_shard(text):
    """`I/N` (0 <= I < N) as (I, N); raises CorpusError."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise CorpusError(f"--shard takes I/N, e.g. 0/4, not {text!r}") from None
    if not 0 <= index < count:
        raise CorpusError(f"--shard {text}: I must be in 0..N-1")
    return index, count


def take_shard(paths, shard):
    """Shard I of N of the sorted paths: every N-th from the I-th, the same on every machine given the same inputs;
    the N shards hold each path once."""
    index, count = shard
    return sorted(paths)[index::count]


def table_name(path, fmt):
    """The per-frame table's file name for an input: its stem and a hash of its path as given (two inputs of the
    same name in different folders get different tables)."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    return f"{Path(path).stem}-{digest}.{fmt}"


def is_photo(path):
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def frame_count(path, settings):
    """How many frames analyze_input will read of an input (the container's word for videos): for the progress bar."""
    if is_photo(path):
        return 1
    capture = cv2.VideoCapture(str(path))
    count, fps = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    count = max(int(count), 0)
    if settings.sample_fps and fps > 0:
        return int(count * min(1.0, settings.sample_fps / fps)) + 1
    return -(-count // settings.every)


class InputFailed(Exception):
    """An input that cannot be read to its end: its summary row says why."""


def read_frames(path, settings):
    """Yields (index, seconds, BGR frame) of the frames to analyse: every frame, one in `every`, or `sample_fps`
    a second. Skipped frames are grabbed, not converted. Raises InputFailed for an unreadable or truncated input."""
    if is_photo(path):
        frame = cv2.imread(str(path))
        if frame is None:
            raise InputFailed(f"{path} is not a readable image")
        yield 0, None, frame
        return
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputFailed(f"{path} cannot be opened as a video")
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
        fps = fps if 1 <= fps <= 1000 else 25.0
        stated = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        step = fps / settings.sample_fps if settings.sample_fps else settings.every
        index, taken = 0, 0
        while True:
            wanted = index >= taken * step - 1e-6  # the first frame at or after the next sample's time
            if wanted:
                ok, frame = capture.read()
            else:
                ok, frame = capture.grab(), None
            if not ok:
                break
            if wanted:
                taken += 1
                yield index, index / fps, frame
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise InputFailed(f"{path}: no frame could be decoded")
    if stated > 0 and stated - index > max(2, TRUNCATION_SLACK * stated):
        raise InputFailed(f"{path} is truncated or corrupt: decoding stopped at frame {index} of {stated}")


def table_rows(recognizer, path, settings, progress=None):
    """Yields the table's rows (dicts of TABLE_COLUMNS) of an input, frame after frame; progress(n) is called with
    the frames read since the last call. Raises InputFailed."""
    recognizer.reset()
    read = 0
    for index, seconds, frame in read_frames(path, settings):
        results = recognizer.detect_emotions(frame)
        common = {"source": str(path), "frame": index + 1, "time_s": seconds, "timestamp": seconds}
        if not results:
            yield {**common, "success": 0}
        for face in results:
            x, y, w, h = face["box"]
            yield {**common, "face": face["face"], "face_id": face["face"], "success": 1, "x": x, "y": y, "w": w,
                   "h": h, "face_score": face["score"], "found": face["found"], "label": face["label"],
                   "confidence": face["confidence"], **face["emotions"]}
        read += 1
        if progress is not None and read % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
    if progress is not None and read % PROGRESS_EVERY:
        progress(read % PROGRESS_EVERY)


class Totals:
    """What the summary says of an input, counted as its rows go by."""

    def __init__(self):
        self.frames, self.last_seconds, self.faces, self.tracks = 0, None, 0, set()
        self.labels = dict.fromkeys(CLASS_NAMES, 0)

    def add(self, row):
        if row["frame"] > self.frames:
            self.frames = row["frame"]
            self.last_seconds = row["time_s"]
        if row["success"]:
            self.faces += 1
            self.tracks.add(row["face"])
            self.labels[row["label"]] = self.labels.get(row["label"], 0) + 1

    def summary(self, path, table, fps_seconds):
        shares = {f"share_{name}": self.labels[name] / self.faces if self.faces else 0.0 for name in CLASS_NAMES}
        return {"path": str(path), "status": "ok", "error": "", "frames": self.frames, "seconds": fps_seconds,
                "faces": self.faces, "tracks": len(self.tracks), "table": table, **shares}


def video_seconds(path):
    """A video's length in seconds by its container (frames / frame rate), None for a photo or when it does not say."""
    if is_photo(path):
        return None
    capture = cv2.VideoCapture(str(path))
    count, fps = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return count / fps if count > 0 and 1 <= fps <= 1000 else None


def failed_row(path, error):
    """The summary row of an input that could not be analysed."""
    return {**dict.fromkeys(SUMMARY_COLUMNS, ""), "path": str(path), "status": "failed", "error": str(error),
            "frames": 0, "faces": 0, "tracks": 0}


def analyze_input(recognizer, path, settings, table_path, progress=None):
    """Analyses one input into its per-frame table at table_path (written atomically: a crash leaves no part of
    it); returns its summary row (SUMMARY_COLUMNS), status "failed" with the reason for an input that cannot be
    read. A table that cannot be written raises OutputError: that stops the corpus, not just this input."""
    table_path = Path(table_path)
    totals = Totals()

    def write(tmp):
        with TableWriter(tmp, settings.format) as writer:
            for row in table_rows(recognizer, path, settings, progress):
                totals.add(row)
                writer.write(row)
    try:
        atomic_write(table_path, write)
    except InputFailed as failure:
        return failed_row(path, failure)
    except OSError as error:
        raise OutputError(f"cannot write {table_path}: {error.strerror or error}") from None
    seconds = video_seconds(path)
    return totals.summary(path, f"tables/{table_path.name}", round(seconds, 3) if seconds is not None else "")


def format_value(value):
    return f"{value:.4f}" if isinstance(value, float) else "" if value is None else value


class TableWriter:
    """Writes table rows as they come, to CSV or (with pyarrow) Parquet in row groups: memory stays flat in the
    length of a video."""

    def __init__(self, path, fmt, group_rows=8192):
        self.path, self.fmt, self.group_rows, self.pending = Path(path), fmt, group_rows, []

    def __enter__(self):
        if self.fmt == "csv":
            self.file = open(self.path, "w", newline="")
            self.csv = csv.writer(self.file)
            self.csv.writerow(TABLE_COLUMNS)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq
            self.schema = pa.schema([(name, parquet_type(name, pa)) for name in TABLE_COLUMNS])
            self.parquet = pq.ParquetWriter(self.path, self.schema)
        return self

    def write(self, row):
        if self.fmt == "csv":
            self.csv.writerow([format_value(row.get(name)) for name in TABLE_COLUMNS])
            return
        self.pending.append(row)
        if len(self.pending) >= self.group_rows:
            self.flush()

    def flush(self):
        import pyarrow as pa
        columns = {name: [row.get(name) for row in self.pending] for name in TABLE_COLUMNS}
        self.parquet.write_table(pa.table(columns, schema=self.schema))
        self.pending = []

    def __exit__(self, *exc):
        if self.fmt == "csv":
            self.file.flush()
            os.fsync(self.file.fileno())  # on disk before the rename makes it count
            self.file.close()
        else:
            if self.pending and exc[0] is None:
                self.flush()
            self.parquet.close()
        return False


def parquet_type(name, pa):
    if name in ("source", "label", "found"):
        return pa.string()
    if name in ("frame", "face", "face_id", "success", "x", "y", "w", "h"):
        return pa.int64()
    return pa.float64()
