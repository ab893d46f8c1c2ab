"""Shared helpers of the benchmark scripts."""
import contextlib
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_FER = ROOT.parent / "shared" / "fer2013" / "fer2013-dev.csv.gz"


def median_report(name, values, unit):
    """Prints and returns the median of repeated measurements."""
    median = statistics.median(values)
    shown = f" ({', '.join(f'{v:.2f}' for v in values)})" if len(values) <= 10 else ""
    print(f"{name}: median {median:.2f} {unit} over {len(values)} runs{shown}")
    return median


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
