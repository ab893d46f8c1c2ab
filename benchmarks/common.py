"""Shared helpers of the benchmark scripts."""
import contextlib
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_FER = ROOT.parent / "shared" / "fer2013" / "fer2013-dev.csv.gz"


REPORTED = {}  # every median_report of this run, {name: {"median", "values", "unit"}}, for --json


def median_report(name, values, unit):
    """Prints and returns the median of repeated measurements (and keeps it in REPORTED)."""
    median = statistics.median(values)
    REPORTED[name.strip()] = {"median": median, "values": list(values), "unit": unit}
    shown = f" ({', '.join(f'{v:.2f}' for v in values)})" if len(values) <= 10 else ""
    print(f"{name}: median {median:.2f} {unit} over {len(values)} runs{shown}")
    return median


def add_json_flag(parser):
    parser.add_argument("--json", default="", help="also write every reported figure to this JSON file (default: none)")


def write_json(path, extra=None):
    """Writes REPORTED (and extra) as JSON to path, when path is given."""
    if path:
        Path(path).write_text(json.dumps({"reported": REPORTED, **(extra or {})}, indent=2))


@contextlib.contextmanager
def busy_cores(count):
    """Keeps `count` processes spinning on the CPU for the duration, as a second program would."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def run_benchmark(main):
    """A benchmark's `if __name__ == "__main__"` body: main(), with a user's mistake (a checkpoint, data folder,
    detector or output that is missing or wrong) one line and exit code 2, as the deep-emotion commands answer
    it, not a traceback."""
    from deep_emotion.utils import one_line_errors
    with one_line_errors():
        main()
