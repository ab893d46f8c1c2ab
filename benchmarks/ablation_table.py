"""Prints the ablation table (markdown) from committed training logs.

    python benchmarks/ablation_table.py results/h200_ablation

For each run: what its recipe changes, epochs reached of those planned, the best
val (PublicTest) accuracy, and the best within the first --at epochs, where
every run of the set got to (so runs cut at different epochs compare fairly).
"""
import argparse
import json
from pathlib import Path

KEYS = ["optimizer", "learning_rate", "weight_decay", "warmup_epochs", "label_smoothing", "rotation", "scale",
        "shift", "no_flip", "erase_prob", "sharpness", "teacher", "distill_weight", "arch", "arch_args", "epochs",
        "batch_size"]
# flags newer than some logged runs, with the value those runs trained with
ADDED_LATER = {"sharpness": 0.0, "teacher": ""}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="folder with one subfolder per run (log.jsonl + config.json)")
    parser.add_argument("--at", type=int, default=0, help="also the best within this many epochs (default: 0 = the "
                                                          "fewest any run reached)")
    args = parser.parse_args()
    runs = {}
    for log in sorted(Path(args.folder).glob("*/log.jsonl")):
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        runs[log.parent.name] = (json.loads((log.parent / "config.json").read_text()), rows)
    at = args.at or min(len(rows) for _, rows in runs.values())
    print("| run | recipe (the first run of each arch in full, then what differs) | epochs reached / planned "
          f"| best val acc | best val acc in first {at} epochs |")
    print("|---|---|---|---|---|")
    first_of_arch = {}
    for name, (config, rows) in runs.items():
        config = ADDED_LATER | config
        base = first_of_arch.setdefault(config["arch"], config)
        changed = [k for k in KEYS if config.get(k) != base.get(k)]
        shown = changed if base is not config else KEYS
        recipe = ", ".join(f"{k}={config[k]!r}" for k in shown if k in config)
        if base is not config:
            recipe = "as the first " + config["arch"] + " run but " + recipe
        best = max(r["val_accuracy"] for r in rows)
        early = max(r["val_accuracy"] for r in rows[:at])
        print(f"| {name} | {recipe} | {rows[-1]['epoch']} / {config['epochs']} | {100 * best:.2f}% "
              f"| {100 * early:.2f}% |")


if __name__ == "__main__":
    main()
