"""Times generate_data.py on a FER2013 CSV against the original implementation's approach, in one run.

    python benchmarks/setup_speed.py --csv ../shared/fer2013/fer2013-dev.csv.gz --repeats 3

The original: pandas read, then per row split the pixel string and save a JPEG with PIL.
"""
import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import SHARED_FER, median_report
from PIL import Image

from deep_emotion import prepare as generate_data


def original_approach(csv_path, out_dir):
    table = pd.read_csv(csv_path)
    for usage, rows in table.groupby("Usage"):
        folder = Path(out_dir) / usage
        folder.mkdir(parents=True)
        for index, pixels in enumerate(rows["pixels"]):
            face = np.asarray(pixels.split(" "), dtype=np.uint8).reshape(48, 48)
            Image.fromarray(face).save(folder / f"{usage}{index}.jpg", "JPEG")


def ours(csv_path, out_dir):
    Path(out_dir).mkdir()
    os.symlink(Path(csv_path).resolve(), Path(out_dir) / Path(csv_path).name.replace("-dev", ""))
    generate_data.prepare(out_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", default=str(SHARED_FER), help=f"FER2013-format CSV (default: {SHARED_FER})")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each (default: 3)")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where to write (default: the system temp dir)")
    args = parser.parse_args()
    results = {"ours": [], "original approach": []}
    outputs = []
    try:
        for _ in range(args.repeats):
            for name, convert in (("ours", ours), ("original approach", original_approach)):
                outputs.append(Path(tempfile.mkdtemp(dir=args.tmp)))
                start = time.perf_counter()
                convert(args.csv, outputs[-1] / "data")
                results[name].append(time.perf_counter() - start)
    finally:  # deleting 32k files while the next run writes slows it down, so deletion waits till the end
        for folder in outputs:
            shutil.rmtree(folder, ignore_errors=True)
    for name, seconds in results.items():
        median_report(f"{name:>18}", seconds, "s")


if __name__ == "__main__":
    main()
