"""Classification metrics, one implementation for training, evaluation, calibration and the benchmarks.

Torch-free (numpy only). A prediction of -1 means "no face found" (the live pipeline missed it):
it counts as wrong and has its own column in the confusion matrix.
"""
import numpy as np

from deep_emotion.emotions import CLASS_NAMES


def classification_scores(predictions, labels, class_names=CLASS_NAMES, missed_column=False):
    """Accuracy, balanced accuracy (mean recall over the classes present), macro-F1, per-class
    precision/recall/F1/support and the confusion matrix of integer predictions against labels.

    confusion[i][j] counts faces of true class i predicted as j; a last column counts faces not
    found (prediction -1) when there are any, or always with missed_column=True.
    """
    n = len(class_names)
    predictions, labels = np.asarray(predictions, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    missed = predictions < 0
    confusion = np.zeros((n, n + 1), dtype=np.int64)
    np.add.at(confusion, (labels, np.where(missed, n, predictions)), 1)
    support = confusion.sum(1)
    hits = np.diag(confusion[:, :n])
    recall = hits / np.maximum(support, 1)
    precision = hits / np.maximum(confusion[:, :n].sum(0), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    present = support > 0
    correct = int(hits.sum())
    total = int(len(labels))
    return {"accuracy": correct / max(total, 1), "correct": correct, "total": total,
            "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
            "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
            "found": float(1 - missed.mean()) if total else 0.0,
            "per_class": {name: {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
                                 "support": int(support[k])} for k, name in enumerate(class_names)},
            "confusion": (confusion if missed.any() or missed_column else confusion[:, :n]).tolist()}
