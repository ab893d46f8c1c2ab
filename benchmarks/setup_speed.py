"""Times `python generate_data.py --data DIR` on a FER2013 CSV against the original implementation's approach.

    python benchmarks/setup_speed.py --csv ../shared/fer2013/fer2013-dev.csv.gz --repeats 3

Both run as a user runs them, a fresh Python process each (imports included), alternating in one run,
each after the last one's 32,000 files reached the disk (os.sync, untimed).
The original: pandas read, then per row split the pixel string and save a JPEG with PIL. Prints each
one's median and the ratio of the medians (ours / original).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import SHARED_FER, add_json_flag, median_report, write_json

ROOT = Path(__file__).resolve().parent.parent
# the original repository's generate_data.py, in its own process as a user would run it
ORIGINAL = """
import sys
from pathlib import Path
import numpy as np
import pandas as pd
from PIL import Image
table = pd.read_csv(sys.argv[1])
for usage, rows in table.groupby("Usage"):
    folder = Path(sys.argv[2]) / usage
    folder.mkdir(parents=True)
    for index, pixels in enumerate(rows["pixels"]):
        face = np.asarray(pixels.split(" "), dtype=np.uint8).reshape(48, 48)
        Image.fromarray(face).save(folder / f"{usage}{index}.jpg", "JPEG")
"""


def original_approach(csv_path, out_dir):
    subprocess.run([sys.executable, "-c", ORIGINAL, str(csv_path), str(out_dir)], check=True)


def ours(csv_path, out_dir):
    Path(out_dir).mkdir()
    os.symlink(Path(csv_path).resolve(), Path(out_dir) / Path(csv_path).name.replace("-dev", ""))
    subprocess.run([sys.executable, str(ROOT / "generate_data.py"), "--data", str(out_dir)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(SHARED_FER), help=f"FER2013-format CSV (default: {SHARED_FER})")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (default: 3)")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where to write (default: the system temp dir)")
    add_json_flag(parser)
    args = parser.parse_args()
    results = {"ours": [], "original approach": []}
    outputs = []
    try:
        for _ in range(args.repeats):
            for name, convert in (("ours", ours), ("original approach", original_approach)):
                outputs.append(Path(tempfile.mkdtemp(dir=args.tmp)))
                os.sync()  # the last conversion's files reach the disk before this one is timed, not during it
                start = time.perf_counter()
                convert(args.csv, outputs[-1] / "data")
                results[name].append(time.perf_counter() - start)
    finally:  # deleting 32k files while the next run writes slows it down, so deletion waits till the end
        for folder in outputs:
            shutil.rmtree(folder, ignore_errors=True)
    for name, seconds in results.items():
        median_report(f"{name:>18}", seconds, "s")
    ratio = statistics.median(results["ours"]) / statistics.median(results["original approach"])
    print(f"ratio of the medians, ours / original approach: {ratio:.2f}x")
    write_json(args.json, {"ratio": ratio})


if __name__ == "__main__":
    main()
