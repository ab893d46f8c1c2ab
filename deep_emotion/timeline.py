"""Emotion over time, per tracked face: a plot of the 7 probabilities and a summary, from a --log CSV.

    deep-emotion timeline faces.csv --out timeline.png      # also writes timeline.json and prints the summary
    python visualize.py --source clip.mp4 --no_display --log faces.csv --timeline timeline.png   # the same, live

The CSV is visualize.py's --log: one row per face per frame, with its track id (`face`),
the frame number, the time in seconds when the source has a frame rate (`time_s`), the
label and the 7 probabilities.
"""
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from deep_emotion.emotions import CLASS_NAMES
from deep_emotion.utils import (
    ArgumentParser,
    UserError,
    atomic_write,
    check_writable_file,
    write_text_atomic,
)

# found: "search" (the box came from a face search) or "followed" (moved along its track; --detect_every)
LOG_COLUMNS = ["source", "frame", "time_s", "face", "x", "y", "w", "h", "label", "confidence", *CLASS_NAMES, "found"]


class LogError(UserError):
    """A --log CSV that cannot be read, reported as one line (exit code 2)."""



def read_log(path):
    """The rows of a --log CSV as dicts (numbers parsed); raises LogError."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as error:
        raise LogError(f"cannot read {path}: {error.strerror or error}") from None
    missing = [c for c in ("frame", "face", "label", *CLASS_NAMES) if rows and c not in rows[0]]
    if missing:
        raise LogError(f"{path} is not a visualize.py --log CSV (no {', '.join(missing)} column)")
    rows = [row for row in rows if row["face"] != ""]  # an analyze table's frames with no face (success 0)
    for row in rows:
        row["frame"], row["face"] = int(row["frame"]), int(row["face"])
        row["time_s"] = float(row["time_s"]) if row.get("time_s") not in (None, "") else None
        for name in CLASS_NAMES:
            row[name] = float(row[name])
    return rows


def summarize(rows):
    """Per track: frames seen, first and last frame, share of frames in each emotion, mean confidence."""
    tracks = defaultdict(list)
    for row in rows:
        tracks[row["face"]].append(row)
    summary = {}
    for face, seen in sorted(tracks.items()):
        labels = [row["label"] for row in seen]
        summary[face] = {"frames": len(seen), "first_frame": seen[0]["frame"], "last_frame": seen[-1]["frame"],
                         "share": {name: labels.count(name) / len(seen) for name in CLASS_NAMES},
                         "mean_confidence": float(np.mean([max(row[n] for n in CLASS_NAMES) for row in seen]))}
    return summary


def print_summary(summary):
    for face, info in summary.items():
        shares = ", ".join(f"{name} {share:.0%}" for name, share in
                           sorted(info["share"].items(), key=lambda item: -item[1]) if share > 0)
        print(f"face #{face}: {info['frames']} frame(s) ({info['first_frame']}-{info['last_frame']}); "
              f"{shares}; mean confidence {info['mean_confidence']:.0%}")


def plot_timeline(rows, path):
    """One panel per track: its 7 probabilities over time (seconds when the log has them, else frames)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tracks = sorted({row["face"] for row in rows})
    seconds = bool(rows) and all(row["time_s"] is not None for row in rows)
    fig, axes = plt.subplots(max(1, len(tracks)), 1, figsize=(10, 2.4 * max(1, len(tracks))), sharex=True,
                             squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, face in zip(axes[:, 0], tracks):
        seen = [row for row in rows if row["face"] == face]
        x = [row["time_s"] if seconds else row["frame"] for row in seen]
        for k, name in enumerate(CLASS_NAMES):
            ax.plot(x, [row[name] for row in seen], label=name, color=colours(k), lw=1.5,
                    marker="o" if len(seen) < 5 else None, ms=3)  # a track of a frame or two is dots, not lines
        ax.set(ylim=(0, 1), ylabel="probability", title=f"face #{face}")
        ax.grid(alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=7, fontsize=8, loc="upper center")  # above the panels, clear of their titles
    axes[-1, 0].set_xlabel("seconds" if seconds else "frame")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)
    return Path(path)


def plot_shares(summary_rows, path, most=40):
    """A bar per input of `deep-emotion analyze`'s summary: the share of its face-frames in each emotion; the `most`
    inputs with the most face-frames when there are more."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    shown = sorted((row for row in summary_rows if row["status"] == "ok" and int(row["faces"])),
                   key=lambda row: -int(row["faces"]))[:most][::-1]
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.32 * max(1, len(shown))))
    colours = plt.get_cmap("tab10")
    left = np.zeros(len(shown))
    for k, name in enumerate(CLASS_NAMES):
        shares = np.array([float(row[f"share_{name}"]) for row in shown])
        ax.barh(range(len(shown)), shares, left=left, color=colours(k), label=name)
        left += shares
    ax.set_yticks(range(len(shown)), [Path(row["path"]).name for row in shown], fontsize=8)
    ax.set(xlim=(0, 1), xlabel="share of the input's face-frames")
    hidden = sum(1 for row in summary_rows if row["status"] == "ok" and int(row["faces"])) - len(shown)
    ax.set_title(f"emotion per input ({hidden} more with fewer faces not shown)" if hidden > 0 else
                 "emotion per input")
    ax.legend(ncol=7, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.6 / fig.get_figheight() - 0.05))
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return Path(path)


def write_timeline(rows, path):
    """Writes the plot (path) and the summary (path with .json), prints the summary; returns the summary."""
    summary = summarize(rows)
    print_summary(summary)
    print(f"timeline: {plot_timeline(rows, path)}")
    write_text_atomic(Path(path).with_suffix(".json"), json.dumps(summary, indent=2))
    return summary


def get_args_parser():
    parser = ArgumentParser(description="Plot and summarise emotion over time per face, from a visualize.py --log CSV.")
    parser.add_argument("log", help="the --log CSV of visualize.py")
    parser.add_argument("--out", default="timeline.png", help="the plot; the summary goes beside it as .json "
                                                              "(default: timeline.png)")
    return parser


def main(args):
    check_writable_file(args.out, "the timeline")
    return write_timeline(read_log(args.log), args.out)
