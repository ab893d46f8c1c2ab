"""Prints cross_dataset.py's JSON results as one markdown table: a row per run, a column group per set.

    python benchmarks/cross_table.py results/cross/*.json
    python benchmarks/cross_table.py --brief results/cross/ablation/*.json   # accuracy and balanced only
"""
import argparse
import json
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="JSON files written by cross_dataset.py --out")
    parser.add_argument("--brief", action="store_true",
                        help="no 'found' columns, for runs that score the given crops (default: off)")
    args = parser.parse_args()
    measures = ("accuracy", "balanced") if args.brief else ("found", "accuracy", "balanced")
    runs = [(Path(p).stem, json.loads(Path(p).read_text())) for p in args.results]
    sets = list(dict.fromkeys(name for _, run in runs for name in run["sets"]))
    header = ["run", "model", "mode"] + [f"{s} {what}" for s in sets for what in measures]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for stem, run in runs:
        models = "+".join(Path(m).stem for m in run["model"])
        mode = run["mode"] if run["mode"] == "crop" else (
            f"pipeline, {run['detector']}" + (", aligned" if run.get("aligned") else ""))
        mode += "".join(f", {flag}" for flag in ("tta", "balanced") if run.get(flag))
        cells = []
        for s in sets:
            r = run["sets"].get(s)
            shown = {"found": f"{r['found']:.1%}", "accuracy": f"{r['accuracy']:.2%}",
                     "balanced": f"{r['balanced_accuracy']:.2%}"} if r else {}
            cells += [shown.get(what, "") for what in measures]
        print("| " + " | ".join([stem, models, mode] + cells) + " |")


if __name__ == "__main__":
    main()
