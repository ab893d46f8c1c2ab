"""Draws imgs/architecture.png, the README's figure of the paper's network (model.DeepEmotion).

    python docs/architecture.py            # writes imgs/architecture.png
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# (label, x, y, width, colour): the STN branch above, the classifier below (model.py's layers)
BLOCKS = [
    ("face\n48x48 grey", 0.2, 1.0, 1.3, "#dddddd"),
    ("localization\nconv7x7 8, pool, ReLU\nconv5x5 10, pool, ReLU", 2.0, 2.1, 2.2, "#cfe2f3"),
    ("FC 640-32-6\naffine warp θ", 4.7, 2.1, 1.6, "#cfe2f3"),
    ("grid_sample\n(the warped face)", 4.7, 0.2, 1.6, "#cfe2f3"),
    ("conv3x3 10, conv3x3 10\nmax-pool, ReLU", 6.8, 0.2, 2.0, "#d9ead3"),
    ("conv3x3 10, conv3x3 10\nbatch norm, max-pool, ReLU", 9.2, 0.2, 2.3, "#d9ead3"),
    ("dropout, FC 810-50-7\nsoftmax: 7 emotions", 11.9, 0.2, 2.0, "#fce5cd"),
]
ARROWS = [((1.5, 1.4), (2.0, 2.5)), ((4.2, 2.5), (4.7, 2.5)), ((5.5, 2.1), (5.5, 1.0)), ((1.5, 1.2), (4.7, 0.6)),
          ((6.3, 0.6), (6.8, 0.6)), ((8.8, 0.6), (9.2, 0.6)), ((11.5, 0.6), (11.9, 0.6))]


def draw(path):
    fig, ax = plt.subplots(figsize=(14, 3.4))
    for label, x, y, width, colour in BLOCKS:
        ax.add_patch(FancyBboxPatch((x, y), width, 0.8, boxstyle="round,pad=0.05", facecolor=colour,
                                    edgecolor="#555555"))
        ax.text(x + width / 2, y + 0.4, label, ha="center", va="center", fontsize=9)
    for start, end in ARROWS:
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, color="#444444"))
    ax.text(3.3, 3.05, "attention: the spatial transformer (STN) learns where to look", ha="center", fontsize=10)
    ax.text(9.3, 1.25, "the paper's classifier: 66,877 parameters in all", ha="center", fontsize=10)
    ax.set(xlim=(0, 14.1), ylim=(0, 3.3))
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


if __name__ == "__main__":
    print(draw(sys.argv[1] if len(sys.argv) > 1 else ROOT / "imgs" / "architecture.png"))
