"""Procedurally drawn SYNTHETIC faces in FER2013's CSV format, for demos and tests.

FER2013 may not be redistributed, so the repo ships these instead. The 7
expressions differ in mouth, eyes and brows; position, size, lighting and noise
are random. They are cartoons: a model trained on them knows nothing of real faces.
"""
import gzip
from pathlib import Path

import cv2
import numpy as np

from deep_emotion.utils import atomic_write

SYNTHETIC_CSV = "fer2013_synthetic.csv"
CANVAS = 96  # drawn at 2x, then downsampled to 48x48 for smooth edges

# per class: (mouth curve: + smile / - frown, mouth open, eye height, brow tilt: + inner-down, brow height)
EXPRESSIONS = {
    0: (-0.3, 0.0, 0.8, 0.9, 0.0),    # Angry: frown, narrowed eyes, brows down in a V
    1: (-0.5, 0.1, 0.5, 0.4, -0.2),   # Disgust: deep frown, squint
    2: (-0.1, 0.5, 1.5, -0.6, 0.6),   # Fear: small open mouth, wide eyes, raised inner brows
    3: (0.9, 0.2, 0.9, 0.0, 0.1),     # Happy: broad smile
    4: (-0.8, 0.0, 0.9, -0.8, 0.2),   # Sad: frown, brows raised at the centre
    5: (0.0, 1.0, 1.6, 0.0, 1.0),     # Surprise: round open mouth, wide eyes, high brows
    6: (0.0, 0.0, 1.0, 0.0, 0.0),     # Neutral
}


def draw_face(label, rng):
    """Returns one 48x48 uint8 synthetic face showing expression `label`."""
    curve, mouth_open, eye_height, brow_tilt, brow_height = EXPRESSIONS[label]
    background = rng.uniform(40, 200)
    skin = np.clip(background + rng.choice([-1, 1]) * rng.uniform(40, 90), 30, 235)
    ink = 20 if skin > 110 else 235
    canvas = np.full((CANVAS, CANVAS), background, dtype=np.float32)
    scale = rng.uniform(0.8, 1.05)
    cx, cy = CANVAS / 2 + rng.uniform(-6, 6), CANVAS / 2 + rng.uniform(-6, 6)
    s = lambda v: int(round(v * scale))  # noqa: E731
    pt = lambda dx, dy: (int(round(cx + dx * scale)), int(round(cy + dy * scale)))  # noqa: E731
    cv2.ellipse(canvas, pt(0, 0), (s(34), s(42)), 0, 0, 360, float(skin), -1, cv2.LINE_AA)
    for side in (-1, 1):
        eye = pt(side * 14, -8)
        cv2.ellipse(canvas, eye, (s(6), max(1, s(4 * eye_height))), 0, 0, 360, ink, -1, cv2.LINE_AA)
        inner, outer = side * 6, side * 22
        brow_y = -20 - 6 * brow_height
        cv2.line(canvas, pt(inner, brow_y + 5 * brow_tilt), pt(outer, brow_y - 2 * brow_tilt), ink, s(3), cv2.LINE_AA)
    mouth_y, half_width = 20, 14 - 4 * mouth_open
    if mouth_open > 0.3:
        cv2.ellipse(canvas, pt(0, mouth_y), (s(half_width * 0.6), s(3 + 8 * mouth_open)), 0, 0, 360, ink, -1,
                    cv2.LINE_AA)
    else:
        xs = np.linspace(-half_width, half_width, 15)
        ys = mouth_y + curve * 8 * (1 - (xs / half_width) ** 2) - curve * 4  # image y grows downwards
        points = np.array([pt(x, y) for x, y in zip(xs, ys)], dtype=np.int32)
        cv2.polylines(canvas, [points], False, ink, s(3), cv2.LINE_AA)
    # lighting: a random linear gradient and contrast, then sensor noise
    gy, gx = np.mgrid[-1:1:CANVAS * 1j, -1:1:CANVAS * 1j]
    canvas = canvas * rng.uniform(0.7, 1.2) + 30 * (rng.uniform(-1, 1) * gx + rng.uniform(-1, 1) * gy)
    face = cv2.resize(canvas, (48, 48), interpolation=cv2.INTER_AREA)
    face += rng.normal(0, rng.uniform(2, 10), face.shape)
    return np.clip(np.round(face), 0, 255).astype(np.uint8)


def synthetic_rows(per_class=(40, 8, 8), seed=0):
    """Yields (label, face, Usage) rows: per_class faces of each expression per split."""
    rng = np.random.default_rng(seed)
    for usage, count in zip(("Training", "PublicTest", "PrivateTest"), per_class):
        for _ in range(count):
            for label in EXPRESSIONS:
                yield label, draw_face(label, rng), usage


def write_synthetic_csv(path, per_class=(40, 8, 8), seed=0):
    """Writes a FER2013-format CSV (gzip if the name ends in .gz) of synthetic faces; returns its path."""
    path = Path(path)
    lines = ["emotion,pixels,Usage"]
    lines += [f"{label},{' '.join(map(str, face.ravel()))},{usage}"
              for label, face, usage in synthetic_rows(per_class, seed)]
    data = ("\n".join(lines) + "\n").encode()

    def write(tmp):
        with open(tmp, "wb") as f:
            if path.suffix == ".gz":
                with gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as packed:  # mtime=0: same bytes every time
                    packed.write(data)
            else:
                f.write(data)

    return atomic_write(path, write)
