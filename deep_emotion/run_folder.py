"""What a training run writes into its folder: the folder itself, the checkpoints, the log and the curves.

    runs/<arch>-<n>/config.json   the run's whole configuration (main.py writes it)
    runs/<arch>-<n>/best.pt       the epoch best on the declared validation score
    runs/<arch>-<n>/last.pt       the latest epoch, what --resume continues from
    runs/<arch>-<n>/log.jsonl     one line per epoch
    runs/<arch>-<n>/curves.png    loss and accuracy per epoch
"""
import json
from pathlib import Path

import torch

from deep_emotion.utils import atomic_write


def new_run_dir(out, arch):
    """A fresh folder out/<arch>-<n>, never an existing one."""
    Path(out).mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        run_dir = Path(out) / f"{arch}-{n}"
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            n += 1


def save_epoch(run_dir, state, is_best, history):
    """Writes best.pt (when best), then last.pt, the log line and the curves.

    best.pt goes first: a crash between the two files then loses at most the
    last.pt of this epoch, which a resume recomputes, never a best epoch.
    """
    if is_best:
        atomic_write(run_dir / "best.pt", lambda tmp: torch.save(state, tmp))
    atomic_write(run_dir / "last.pt", lambda tmp: torch.save(state, tmp))
    with open(run_dir / "log.jsonl", "a") as log:
        log.write(json.dumps(history[-1]) + "\n")
    plot_curves(history, run_dir / "curves.png")


def plot_curves(history, path):
    """Draws loss and accuracy per epoch (train and val) into a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for split in ("train", "val"):
        ax_loss.plot(epochs, [h[f"{split}_loss"] for h in history], label=split)
        ax_acc.plot(epochs, [100 * h[f"{split}_accuracy"] for h in history], label=split)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)
