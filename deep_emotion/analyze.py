"""`deep-emotion analyze`: a corpus of videos and photos, every core busy, resumable, on one machine or a Ray cluster.

    deep-emotion analyze interviews/ --out results/           # every video and photo under interviews/
    deep-emotion analyze list.txt --out results/ --sample_fps 1 --workers 8
    deep-emotion analyze corpus/ --out results/ --shard 3/16    # one of 16 machines (SLURM, indexed jobs)
    deep-emotion analyze corpus/ --out results/ --ray           # a local Ray; --ray ADDRESS joins a cluster

Each input gets a per-frame table in OUT/tables/ (corpus.TABLE_COLUMNS), written atomically, and a row in
OUT/summary.csv. OUT/manifest.json records what each table depends on (the input's size and modification
time, the model's sha256, the settings): the same command again skips what is done and redoes what changed,
so a crash or a kill loses at most the inputs under way. Docs: docs/analyze.md.
"""
import concurrent.futures
import csv
import json
import multiprocessing
import os
import queue
import sys
import tempfile
from pathlib import Path

import cv2
from tqdm import tqdm

from deep_emotion.corpus import (
    FORMATS,
    SUMMARY_COLUMNS,
    AnalysisSettings,
    CorpusError,
    analyze_input,
    failed_row,
    find_inputs,
    frame_count,
    is_photo,
    parse_shard,
    table_name,
    take_shard,
)
from deep_emotion.emotions import TTA_MODES
from deep_emotion.face_detectors import DEFAULT_DETECTOR, DETECTORS
from deep_emotion.recognizer import BACKENDS, CLASSIFY_EVERY, DEFAULT_MODEL, DETECT_EVERY, LIGHT_MODEL, LiveSettings
from deep_emotion.timeline import plot_shares
from deep_emotion.utils import (
    ArgumentParser,
    OutputError,
    atomic_write,
    check_writable_folder,
    float_in,
    int_at_least,
    write_text_atomic,
)

LOCAL_RAY = "local"  # --ray with no address: a Ray started here, on 127.0.0.1 only


def get_args_parser():
    parser = ArgumentParser(prog="deep-emotion analyze",
                            description="Analyse a corpus of videos and photos: a per-frame table for each input and "
                                        "a summary, on every core, resumable.")
    parser.add_argument("inputs", nargs="+",
                        help="videos, photos, folders (searched recursively) or text files listing paths, one a line")
    parser.add_argument("--out", required=True,
                        help="output folder: tables/, summary.csv and manifest.json (required)")
    parser.add_argument("-m", "--model", nargs="+", default=[str(DEFAULT_MODEL)],
                        help="checkpoint(s); several are an ensemble (default: the package's default model, "
                             "deep_emotion/weights/deep_emotion_pair.pt)")
    parser.add_argument("--fast", action="store_true",
                        help=f"the default model's light twin, {LIGHT_MODEL.name}; not with -m (default: off)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto",
                        help="the classifier's engine: auto = onnxruntime where installed (the graph exported once "
                             "into the user's cache), else PyTorch; or onnx, torch (default: auto, as live)")
    parser.add_argument("--head", default=None,
                        help="a multi-head checkpoint's label set (default: its default, FER+'s sense)")
    parser.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR,
                        help=f"face detector (default: {DEFAULT_DETECTOR})")
    parser.add_argument("--detector_model", default=None, help="another YuNet .onnx file (default: the package's)")
    parser.add_argument("--detect_every", type=int_at_least(1), default=None,
                        help=f"search for faces on one read frame in N, following them in between (default: "
                             f"{DETECT_EVERY}, as live; 1 with --sample_fps, whose frames are far apart)")
    parser.add_argument("--classify_every", type=int_at_least(1), default=None,
                        help=f"classify each face on one read frame in M (default: {CLASSIFY_EVERY}, as live; 1 with "
                             "--sample_fps)")
    parser.add_argument("--sample_fps", type=float_in(0, None, low_open=True), default=None,
                        help="read this many frames a second of video, grabbing the rest without converting them "
                             "(default: every frame)")
    parser.add_argument("--every", type=int_at_least(1), default=1,
                        help="read one frame in N (default: 1 = every frame; not with --sample_fps)")
    parser.add_argument("--align", action="store_true", help="level each face's eyes before the crop (default: off)")
    parser.add_argument("--smooth", type=float_in(0, 0.95), default=0.0,
                        help="per-face probability smoothing across frames (default: 0 = off)")
    parser.add_argument("--tta", nargs="?", const="flip", default=None, choices=TTA_MODES,
                        help="test-time augmentation (default: off)")
    parser.add_argument("--balanced", action="store_true",
                        help="divide out the training prior (default: off)")
    parser.add_argument("--format", choices=FORMATS, default="csv",
                        help="per-frame tables as CSV, or Parquet (needs pyarrow) (default: csv)")
    parser.add_argument("--workers", type=int_at_least(1), default=os.cpu_count() or 1,
                        help=f"processes, each with one inference thread and its own model, handed whole inputs "
                             f"(default: the cores, {os.cpu_count()})")
    parser.add_argument("--shard", default=None,
                        help="I/N: analyse shard I (0..N-1) of the sorted inputs, every N-th, for job arrays; the "
                             "shards' summaries concatenate into the whole (default: all inputs)")
    parser.add_argument("--ray", nargs="?", const=LOCAL_RAY, default=None, metavar="ADDRESS",
                        help="run on Ray (pip install \"deep-emotion[cluster]\"): alone, a Ray started here on "
                             "127.0.0.1 with --workers CPUs and no dashboard; with an ADDRESS, that cluster "
                             "(default: off)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")
    return parser


def settings_from_args(args):
    """AnalysisSettings from the flags; raises CorpusError."""
    model = args.model
    if args.fast:
        if model != [str(DEFAULT_MODEL)]:
            raise CorpusError("--fast chooses the light model itself: give either --fast or -m")
        model = [str(LIGHT_MODEL)]
    if args.sample_fps and args.every != 1:
        raise CorpusError("give either --sample_fps or --every, not both")
    sampled = args.sample_fps is not None
    live = LiveSettings.from_args(args, detect_every=args.detect_every or (1 if sampled else DETECT_EVERY),
                                  classify_every=args.classify_every or (1 if sampled else CLASSIFY_EVERY))
    return AnalysisSettings(model=tuple(str(Path(m).resolve()) for m in model), live=live,
                            sample_fps=args.sample_fps, every=args.every, format=args.format)


# ---- one worker: a process of the local pool, a Ray actor, or this process with --workers 1

class Worker:
    """The models of one worker (one for videos, one for photos, each built when first needed), one thread each."""

    def __init__(self, settings):
        self.settings, self.recognizers = settings, {}
        cv2.setNumThreads(1)  # the detector too: the workers share the cores
        if settings.live.backend == "torch":
            import torch
            torch.set_num_threads(1)

    def recognizer(self, stills):
        if stills not in self.recognizers:
            from deep_emotion.recognizer import EmotionRecognizer
            self.recognizers[stills] = EmotionRecognizer(**self.settings.recognizer_kwargs(stills), threads=1)
        return self.recognizers[stills]

    def analyze(self, path, table_path, progress=None):
        return analyze_input(self.recognizer(is_photo(path)), path, self.settings, table_path, progress)


_POOL_WORKER = {}  # in a pool process: its Worker, the progress queue and the parent's pid


def _start_pool_worker(settings, progress_queue, parent):
    _POOL_WORKER.update(worker=Worker(settings), queue=progress_queue, parent=parent)


def _analyze_in_pool(path, table_path):
    def progress(frames):
        if os.getppid() != _POOL_WORKER["parent"]:  # the command was killed: stop, rather than work for nobody
            os._exit(1)
        _POOL_WORKER["queue"].put(frames)
    return _POOL_WORKER["worker"].analyze(path, table_path, progress)


class RayAnalyzer:
    """A Ray actor: one Worker. It returns the table's bytes with the row, so the driver writes every file and
    the cluster's machines need to share the inputs and the model, not the output folder."""

    def __init__(self, settings):
        self.worker = Worker(settings)

    def analyze(self, path, name):
        with tempfile.TemporaryDirectory(prefix="deep-emotion-analyze-") as folder:
            table = Path(folder) / name
            row = self.worker.analyze(path, table)
            return name, row, table.read_bytes() if row["status"] == "ok" else None


# ---- the runners: each yields (path, summary row) as inputs finish

def run_here(settings, jobs, bar):
    worker = Worker(settings)
    for path, table in jobs:
        yield path, worker.analyze(path, table, bar.update)


def run_pool(settings, jobs, bar, workers):
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or locks inherited
    progress_queue = context.Queue()
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_start_pool_worker,
                                                  initargs=(settings, progress_queue, os.getpid()))
    try:
        pending = {pool.submit(_analyze_in_pool, path, table): path for path, table in jobs}
        while pending:
            done, _ = concurrent.futures.wait(pending, timeout=0.2, return_when=concurrent.futures.FIRST_COMPLETED)
            drain(progress_queue, bar)
            for future in done:
                path = pending.pop(future)
                try:
                    yield path, future.result()
                except concurrent.futures.process.BrokenProcessPool:
                    raise CorpusError(f"a worker process died while analysing {path} (out of memory?): the inputs "
                                      "done are kept; run the same command again to go on") from None
        drain(progress_queue, bar)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def drain(progress_queue, bar):
    while True:
        try:
            bar.update(progress_queue.get_nowait())
        except queue.Empty:
            return


def start_ray(workers, address):
    """Starts a local Ray that listens on 127.0.0.1 alone, with no dashboard (an open Ray port runs anyone's code),
    or joins the cluster at address; returns the ray module. Raises CorpusError."""
    if address == LOCAL_RAY:
        # Ray binds its servers to the node's address, which it resolves from 127.0.0.1 to the machine's
        # reachable one unless it is told there is no cluster to join (its setting for laptops)
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        import ray
    except ImportError:
        raise CorpusError('--ray needs Ray: pip install "deep-emotion[cluster]"') from None
    if address == LOCAL_RAY:
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        if ray.util.get_node_ip_address() != "127.0.0.1":
            ray.shutdown()
            raise CorpusError("the local Ray would listen beyond 127.0.0.1 (Ray was imported before --ray set it "
                              "up): start the command in a fresh process")
    else:
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError) as error:
            raise CorpusError(f"cannot join the Ray cluster at {address}: {str(error).splitlines()[0]}") from None
    return ray


def run_ray(settings, jobs, bar, workers, address):
    ray = sys.modules.get("ray")
    started = ray is None or not ray.is_initialized()  # else: the caller's own Ray session, used as it is
    if started:
        ray = start_ray(workers, address)
    from ray.util import ActorPool
    try:
        actors = workers if address == LOCAL_RAY else max(1, int(ray.cluster_resources().get("CPU", 1)))
        actor_class = ray.remote(num_cpus=1)(RayAnalyzer)
        pool = ActorPool([actor_class.remote(settings) for _ in range(min(actors, len(jobs)) or 1)])
        tables = {Path(table).name: (path, table) for path, table in jobs}
        results = pool.map_unordered(lambda actor, name: actor.analyze.remote(tables[name][0], name), list(tables))
        for name, row, data in results:
            path, table = tables[name]
            if data is not None:
                try:
                    atomic_write(table, lambda tmp: Path(tmp).write_bytes(data))
                except OSError as error:
                    raise OutputError(f"cannot write {table}: {error.strerror or error}") from None
            bar.update(row["frames"] or 1)
            yield path, row
    finally:
        if started:
            ray.shutdown()


# ---- the manifest and the summary

def manifest_name(shard):
    return "manifest.json" if shard is None else f"manifest-{shard[0]}-of-{shard[1]}.json"


def summary_name(shard):
    return "summary.csv" if shard is None else f"summary-{shard[0]}-of-{shard[1]}.csv"


def load_manifest(path, identity):
    """The manifest's {input: entry}; a manifest of other settings is refused (CorpusError)."""
    if not path.exists():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CorpusError(f"cannot read {path}: {error}; remove it to start the corpus again") from None
    if manifest.get("settings") != identity:
        old = manifest.get("settings") or {}
        changed = [key for key in sorted(set(old) | set(identity)) if old.get(key) != identity.get(key)]
        raise CorpusError(f"{path.parent} holds an analysis made with another {', '.join(changed)}: give another "
                          "--out (or the same settings), so that tables of two settings never mix")
    return manifest["inputs"]


def input_stamp(path):
    """What a table depends on of its input: size and modification time (None when it cannot be read)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def write_summary(path, rows):
    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, SUMMARY_COLUMNS)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: f"{v:.4f}" if isinstance(v, float) else v for k, v in row.items()})
    try:
        atomic_write(path, write)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None


def analyze_corpus(inputs, out, settings=AnalysisSettings(model=(str(DEFAULT_MODEL),)), workers=1, shard=None,
                   ray=None, progress=True):
    """Analyses a corpus into `out`; returns the summary rows (dicts of corpus.SUMMARY_COLUMNS), one per input.

    inputs: files, folders and path lists, as the command takes them; shard: (I, N) or None; ray: None, "local"
    or a cluster's address. Inputs already done with the same settings are skipped, as the manifest says.
    Raises CorpusError or OutputError (one line each); a failed input is a row with status "failed".
    """
    # a corrupt input is one failed row, not FFmpeg's complaints on the terminal (read at the first video opened)
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    if settings.format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise CorpusError("--format parquet needs pyarrow: pip install pyarrow") from None
    for model in settings.model:
        if not Path(model).is_file():
            raise CorpusError(f"checkpoint {model} does not exist")
    paths = find_inputs(inputs)
    if shard is not None:
        paths = take_shard(paths, shard)
    out = check_writable_folder(out, "the corpus's tables")
    tables = check_writable_folder(out / "tables", "the corpus's tables")
    manifest_path = out / manifest_name(shard)
    identity = settings.identity()
    entries = load_manifest(manifest_path, identity)

    rows, jobs = {}, []
    for path in paths:
        stamp, entry = input_stamp(path), entries.get(path)
        if stamp is None:
            rows[path] = failed_row(path, f"{path} cannot be read")
        elif entry and entry["stamp"] == stamp and entry["row"]["status"] == "ok" and \
                (out / entry["row"]["table"]).is_file():
            rows[path] = entry["row"]  # done, with these settings, and its input unchanged
        else:
            jobs.append((path, tables / table_name(path, settings.format)))
    if jobs and settings.live.backend == "onnx":
        from deep_emotion.onnx_export import exported
        for model in settings.model:  # once here, so that the workers find the graphs cached and need no PyTorch
            if not model.endswith(".onnx"):
                exported(model)
    # the longest first, so that no worker is left with a long video while the others idle
    frames = {path: frame_count(path, settings) for path, _ in jobs}
    jobs.sort(key=lambda job: -frames[job[0]])
    with tqdm(total=sum(frames.values()), unit="frame", desc="analyze", disable=not progress or not jobs,
              dynamic_ncols=True, smoothing=0.05) as bar:
        if ray is not None:
            finished = run_ray(settings, jobs, bar, workers, ray)
        elif workers > 1 and len(jobs) > 1:
            finished = run_pool(settings, jobs, bar, min(workers, len(jobs)))
        else:
            finished = run_here(settings, jobs, bar)
        for path, row in finished:
            rows[path] = row
            entries[path] = {"stamp": input_stamp(path), "row": row}
            try:
                write_text_atomic(manifest_path, json.dumps({"settings": identity, "inputs": entries}, indent=1))
            except OSError as error:
                raise OutputError(f"cannot write {manifest_path}: {error.strerror or error}") from None
    ordered = [rows[path] for path in paths]
    write_summary(out / summary_name(shard), ordered)
    plot_shares(ordered, (out / summary_name(shard)).with_suffix(".png"))
    return ordered


def main(args):
    """Runs the analysis the flags ask for; returns the summary rows. Exit code 1 when any input failed."""
    settings = settings_from_args(args)
    shard = parse_shard(args.shard) if args.shard else None
    rows = analyze_corpus(args.inputs, args.out, settings, args.workers, shard, args.ray, not args.quiet)
    failed = [row for row in rows if row["status"] != "ok"]
    summary = Path(args.out) / summary_name(shard)
    print(f"{len(rows) - len(failed)} of {len(rows)} input(s) analysed: {summary}")
    if failed:
        for row in failed[:5]:
            print(f"failed: {row['error']}")
        print(f"{len(failed)} input(s) failed (status 'failed' in {summary}); the rest are done")
        raise SystemExit(1)
    return rows
