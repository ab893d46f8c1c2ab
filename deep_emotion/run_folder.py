"""What a training run writes into its folder and reads back: the folder, the checkpoints, the log, the curves.

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


def restore_training(checkpoint, model, optimizer, scheduler, average=None):
    """Loads a last.pt into the run's objects; returns (epochs done, best val accuracy, history).

    With an average (--ema), checkpoint["model"] is the average and "trained_model" the weights that trained.
    """
    if average is not None:
        model.load_state_dict(checkpoint["trained_model"])
        average.module.load_state_dict(checkpoint["model"])
        average.n_averaged.fill_(checkpoint["averaged_steps"])
    else:
        model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    best = checkpoint["best_score"] if "best_score" in checkpoint else checkpoint["best_val_accuracy"]  # older runs
    return checkpoint["epoch"], best, checkpoint["history"]


def report_interruption(run_dir):
    """Says what an interrupted run left to resume from."""
    last = run_dir / "last.pt"
    if last.exists():
        print(f"\ninterrupted; {last} holds epoch {torch.load(last, weights_only=True)['epoch']}: "
              f"resume with `deep-emotion resume {last}`")
    else:
        print("\ninterrupted before the first epoch ended; nothing to resume")


def report_best(run_dir, history, select_rule, data_dir):
    """Says where the run's model is, what chose it, and how to score or continue it."""
    best = max(history, key=lambda row: row["score"])
    print(f"best.pt: epoch {best['epoch']} ({select_rule} {best['score']:.2%}) in {run_dir}; score it with "
          f"`deep-emotion test --data {data_dir} -m {run_dir / 'best.pt'}`, resume with "
          f"`deep-emotion resume {run_dir / 'last.pt'}`")
