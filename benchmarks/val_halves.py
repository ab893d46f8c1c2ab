"""Splits the val split of prepared face folders into two halves, stratified: a second carve for final choices.

    python benchmarks/val_halves.py data/raf data/raf_crop150c   # -> data/raf_a, data/raf_b, data/raf_crop150c_a, ...

Fit on half A (calibrate --data ... FOLDER_a, choices scored on it), read half B once, for the final choice:
a val carve that many runs were chosen on fits them, and a half nothing was fitted on says what holds. Each
half is a prepared folder of its own (FOLDER_a/prepared/val: the manifest, the half's labels.csv rows and
links to the faces), so every command reads it as it reads FOLDER. The folders given must be preparations of
one source with one carve (the same val faces in the same order: their `origin` column), so that their halves
hold the same faces. Each class is shuffled with --seed and cut in two, the first half to A.
"""
import argparse
import csv
import os
import shutil
from pathlib import Path

import numpy as np
from common import run_benchmark

from deep_emotion.data.prepared import DataError, split_dir


def val_rows(folder):
    with open(split_dir(folder, "val") / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


def halves(rows, seed):
    """{row index: "a" or "b"}: each class's rows shuffled with seed and cut in two, the first (smaller) half A."""
    rng = np.random.RandomState(seed)
    part = {}
    for label in sorted({row["label"] for row in rows}):
        indices = [i for i, row in enumerate(rows) if row["label"] == label]
        rng.shuffle(indices)
        part.update({i: "a" for i in indices[:len(indices) // 2]})
        part.update({i: "b" for i in indices[len(indices) // 2:]})
    return part


def write_half(folder, rows, part, name):
    """FOLDER_name/prepared: the manifest, val's rows of the half, links to their faces; returns the folder."""
    out = Path(f"{folder}_{name}")
    if out.exists():
        shutil.rmtree(out)
    val = split_dir(out, "val")
    (val / "images").mkdir(parents=True)
    shutil.copy(split_dir(folder, "") / "manifest.json", split_dir(out, "") / "manifest.json")
    kept = [row for i, row in enumerate(rows) if part[i] == name]
    with open(val / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    for row in kept:
        os.symlink((split_dir(folder, "val") / "images" / row["file"]).resolve(), val / "images" / row["file"])
    return out, len(kept)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="prepared face folders of one source and one val carve")
    parser.add_argument("--seed", type=int, default=1, help="seed of the halves (default: 1; the carve's is 0)")
    args = parser.parse_args()
    rows = {folder: val_rows(folder) for folder in args.folders}
    origins = [[row.get("origin") for row in folder_rows] for folder_rows in rows.values()]
    if any(o != origins[0] for o in origins) or None in origins[0]:
        raise DataError("the folders' val splits do not hold the same faces in the same order (their origin column)")
    first = rows[args.folders[0]]
    part = halves(first, args.seed)
    for folder, folder_rows in rows.items():
        for name in "ab":
            out, count = write_half(folder, folder_rows, part, name)
            print(f"{out}: {count} val faces")


if __name__ == "__main__":
    run_benchmark(main)
