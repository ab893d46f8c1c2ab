"""What a training run writes into its folder and reads back: the folder, the checkpoint dict, the log, the curves.

    runs/<arch>-<n>/config.json   the run's whole configuration (main.py writes it)
    runs/<arch>-<n>/best.pt       the epoch best on the declared validation score
    runs/<arch>-<n>/last.pt       the latest epoch, what --resume continues from
    runs/<arch>-<n>/log.jsonl     one line per epoch
    runs/<arch>-<n>/curves.png    loss and accuracy per epoch
"""
import dataclasses
import json
from pathlib import Path

import torch

from deep_emotion.data.training_data import selection_score
from deep_emotion.emotions import CLASS_NAMES
from deep_emotion.utils import atomic_write, command_hint


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
    """Loads a last.pt into the run's objects; returns (epochs done, best val score (the run's --select rule), history).

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
              f"resume with {command_hint('resume', str(last))}")
    else:
        print("\ninterrupted before the first epoch ended; nothing to resume")


def report_best(run_dir, history, select_rule, data_dir):
    """Says where the run's model is, what chose it, and how to score or continue it."""
    best = max(history, key=lambda row: row["score"])
    score_it = command_hint("test", f"--data {data_dir} -m {run_dir / 'best.pt'}")
    resume_it = command_hint("resume", str(run_dir / "last.pt"))
    print(f"best.pt: epoch {best['epoch']} ({select_rule} {best['score']:.2%}) in {run_dir}; score it with "
          f"{score_it}, resume with {resume_it}")


def checkpoint_state(config, data, model, evaluated, optimizer, scheduler, average, epoch, row, best_score,
                     history):
    """The one dict last.pt and best.pt hold: the model (the average with --ema), what reads it, and the run."""
    state = {"model": evaluated.state_dict(), "arch": config.arch, "arch_args": config.arch_args,
             "class_names": list(CLASS_NAMES), "normalization": list(data.normalization),
             "train_class_counts": data.class_counts.tolist(), "clahe": config.clahe, "epoch": epoch + 1,
             "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "rng": {"torch": torch.get_rng_state()}, "metrics": row, "best_score": best_score,
             "select_rule": data.inputs.select_rule, "history": history, "config": config.to_dict(),
             "inputs": dataclasses.asdict(data.inputs)}
    if average is not None:
        state.update(trained_model=model.state_dict(), averaged_steps=int(average.n_averaged))
    return state


def epoch_record(select_rule, epoch, metrics, per_source, lr, seconds):
    """The epoch's log line: training figures, the first source's val figures, the score, each source's figures."""
    val = next(iter(per_source.values()))
    row = {"epoch": epoch + 1, "train_loss": metrics["loss"], "train_accuracy": metrics["accuracy"],
           "val_loss": val["loss"], "val_accuracy": val["accuracy"], "val_balanced_accuracy": val["balanced_accuracy"],
           "score": selection_score(select_rule, per_source), "lr": lr,
           "images_per_s": metrics["images_per_s"], "epoch_seconds": seconds}
    if len(per_source) > 1 or "ferplus_accuracy" in val:
        row["sources"] = per_source
    return row


def print_epoch(epochs, row, is_best):
    sources = list(row.get("sources", {}).items())[1:]
    others = "".join(f"  {name} bal {m['balanced_accuracy']:.2%}" for name, m in sources)
    score = f"  score {row['score']:.2%}" if others else ""
    print(f"epoch {row['epoch']:>3}/{epochs}  train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.2%}"
          f"  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.2%}{others}{score}  lr {row['lr']:.2e}"
          f"  {row['images_per_s']:.0f} img/s{'  *best' if is_best else ''}", flush=True)
