"""Fit a checkpoint's temperature on its validation data, so that its confidence means what it says.

    deep-emotion calibrate --data data --model weights/deep_emotion_vgg.pt --write   # fit, store in the checkpoint
    deep-emotion calibrate --data data/fer data/raf --model m.pt --write              # on both val splits together
    deep-emotion calibrate --data data --model weights/deep_emotion_vgg.pt --sets ../shared/sfew   # a cross-check

The temperature T divides the network's logits before the softmax (Guo et al. 2017): it is
the T that minimises the negative log-likelihood on the val splits of the --data folders (for
FER2013, PublicTest; for a model trained on several sources, each source's val; for a model
trained on FER+ targets, against FER+'s majority where a split has the votes), so the argmax,
and with it the accuracy, never changes. The expected calibration error (15 equal-width
confidence bins) is printed before and after, on each val split and on each --sets folder, which
is only measured, never fitted on. With --write the temperature is stored in the checkpoint
(atomically), where visualize.py, EmotionRecognizer and the ONNX export read it.

--decision fit also chooses the decision rule: the exponent a in p(class | face) / prior^a (0 = the
plain argmax, 1 = the class-balanced decision of --balanced), on a grid of 0, 0.1, ..., 1, as the one
with the best mean over the val splits of the accuracy against FER+'s majority (a split with votes)
or the balanced accuracy (any other: every class counts alike on real faces). --write stores it as
the checkpoint's prior_exponent, applied by the default head wherever the checkpoint runs.
"""
import json
from pathlib import Path

import torch

from deep_emotion.data.face_sources import labelled_faces, majority_class
from deep_emotion.data.loaders import load_face_crops, load_split
from deep_emotion.data.prepared import load_votes
from deep_emotion.emotions import balance
from deep_emotion.inference import class_prior, load_checkpoint, load_model, pick_device, predict
from deep_emotion.metrics import classification_scores
from deep_emotion.utils import ArgumentParser, atomic_write, check_writable_folder

ECE_BINS = 15


def fit_temperature(log_probabilities, labels):
    """The temperature T > 0 that minimises the NLL of softmax(log_probabilities / T)."""
    log_t = torch.zeros(1, requires_grad=True)  # T = exp(log_t) stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def nll():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(log_probabilities / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(nll)
    return float(log_t.detach().exp())


def reliability(probabilities, labels, bins=ECE_BINS):
    """Expected calibration error and the per-bin (confidence, accuracy, count) of a reliability diagram."""
    confidence, predictions = probabilities.max(1)
    correct = (predictions == labels).float()
    edges = torch.linspace(0, 1, bins + 1)
    table, ece = [], 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            gap = (correct[inside].mean() - confidence[inside].mean()).abs().item()
            ece += gap * inside.float().mean().item()
            table.append((confidence[inside].mean().item(), correct[inside].mean().item(), int(inside.sum())))
    return ece, table


def plot_reliability(tables, path, title):
    """Reliability diagram: accuracy against confidence per bin, one line per {name: table}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfectly calibrated")
    for name, table in tables.items():
        ax.plot([t[0] for t in table], [t[1] for t in table], marker="o", label=name)
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return Path(path)


EXPONENT_GRID = tuple(round(0.1 * k, 1) for k in range(11))


def fit_prior_exponent(splits, prior, grid=EXPONENT_GRID):
    """(best exponent, {exponent: score}) of the decision p / prior^a over splits [(probabilities, labels,
    score name)], score name "accuracy" or "balanced_accuracy"; the score is their mean, ties to the smaller a."""
    scores = {}
    for exponent in grid:
        figures = [classification_scores(balance(p, prior, exponent).argmax(1).numpy(), labels.numpy())[name]
                   for p, labels, name in splits]
        scores[exponent] = sum(figures) / len(figures)
    best = max(grid, key=lambda exponent: (round(scores[exponent], 12), -exponent))
    return best, scores


def face_set_crops(folder, face_input):
    """(uint8 faces face_input.shape(N), labels (N,)) of a labelled face folder, each image resized as given."""
    paths, labels = labelled_faces(folder)
    return torch.from_numpy(load_face_crops(paths, face_input)), torch.tensor(labels)


def val_labels_for(data_dir, targets, face_input):
    """(faces, labels) of a val split, faces as face_input reads them, labelled as the checkpoint learnt: FER+'s
    majority for a model trained on FER+ targets where the split has votes (faces FER+ gives no FER2013 class
    left out), else the labels."""
    faces, labels, _ = load_split(data_dir, "val", face_input=face_input)
    votes = load_votes(data_dir, "val") if targets in ("majority", "votes") else None
    if votes is None:
        return faces, labels
    majority = torch.from_numpy(majority_class(votes))
    voted = majority >= 0
    return faces[voted], majority[voted]


def get_args_parser():
    parser = ArgumentParser(description="Fit a checkpoint's calibration temperature on FER2013 PublicTest.")
    parser.add_argument("-d", "--data", nargs="+", default=["data"],
                        help="prepared folder(s) whose val splits the temperature is fitted on (default: data)")
    parser.add_argument("-m", "--model", required=True, help="checkpoint to calibrate")
    parser.add_argument("--sets", nargs="*", default=[],
                        help="labelled face folders to measure the calibration on, never fitted (default: none)")
    parser.add_argument("--figures", default="figures", help="folder for the reliability diagram (default: figures)")
    parser.add_argument("--decision", choices=["keep", "fit"], default="keep",
                        help="keep the checkpoint's decision rule, or fit its prior exponent on the val splits "
                             "(see the module's help) (default: keep)")
    parser.add_argument("--write", action="store_true",
                        help="store the temperature (and a fitted decision rule) in the checkpoint (default: off)")
    return parser


def main(args):
    """Fits, reports and (with --write) stores the temperature; returns the report dict."""
    check_writable_folder(args.figures, "the reliability diagram")
    device = pick_device("auto")
    model, checkpoint = load_model(args.model, device)
    normalization, clahe = tuple(checkpoint["normalization"]), checkpoint.get("clahe", False)
    # the first folder's val is FER2013's PublicTest; the others are named after their folders
    targets = checkpoint.get("config", {}).get("targets", "label")
    fitted = [("PublicTest" if i == 0 else f"{Path(d).name} val", *val_labels_for(d, targets, model.face_input))
              for i, d in enumerate(args.data)]
    raw = {name: predict(model, faces, normalization, device, clahe=clahe)  # temperature 1, whatever it holds
           for name, faces, _ in fitted}
    temperature = fit_temperature(torch.cat(list(raw.values())).clamp_min(1e-12).log(),
                                  torch.cat([labels for _, _, labels in fitted]))
    report = {"model": str(args.model), "temperature": temperature, "fitted_on": [name for name, _, _ in fitted],
              "labels": "FER+ majority where votes exist" if targets in ("majority", "votes") else "labels",
              "ece": {}}
    curves = {}
    evaluations = fitted + [(Path(f).name, *face_set_crops(f, model.face_input)) for f in args.sets]
    for name, faces, truth in evaluations:
        before = raw[name] if name in raw else predict(model, faces, normalization, device, clahe=clahe)
        after = predict(model, faces, normalization, device, temperature=temperature, clahe=clahe)
        assert torch.equal(before.argmax(1), after.argmax(1))  # a temperature never moves the argmax
        (ece_before, table_before), (ece_after, table_after) = reliability(before, truth), reliability(after, truth)
        report["ece"][name] = {"before": ece_before, "after": ece_after,
                               "accuracy": classification_scores(after.argmax(1).numpy(), truth.numpy())["accuracy"]}
        curves[f"{name}, T = 1 (ECE {ece_before:.1%})"] = table_before
        curves[f"{name}, T = {temperature:.2f} (ECE {ece_after:.1%})"] = table_after
        print(f"{name}: ECE {ece_before:.2%} -> {ece_after:.2%} (accuracy {report['ece'][name]['accuracy']:.2%}, "
              "unchanged)")
    print(f"temperature {temperature:.3f} (fitted on {', '.join(report['fitted_on'])})")
    if args.decision == "fit":
        voted = [load_votes(d, "val") is not None and targets in ("majority", "votes") for d in args.data]
        splits = [(predict(model, faces, normalization, device, temperature=temperature, clahe=clahe), labels,
                   "accuracy" if has_votes else "balanced_accuracy")
                  for (_, faces, labels), has_votes in zip(fitted, voted)]
        exponent, scores = fit_prior_exponent(splits, class_prior(checkpoint))
        report["prior_exponent"], report["decision_scores"] = exponent, scores
        print("decision rule, mean val score by prior exponent: "
              + ", ".join(f"{a:g}: {100 * v:.2f}%" for a, v in scores.items()) + f" -> {exponent:g}")
    path = plot_reliability(curves, Path(args.figures) / f"reliability_{checkpoint['arch']}.png",
                            f"{checkpoint['arch']}: reliability")
    print(f"reliability diagram: {path}")
    if args.write:
        stored = load_checkpoint(args.model)
        stored["temperature"] = temperature
        if args.decision == "fit":
            stored["prior_exponent"] = report["prior_exponent"]
        stored["calibration"] = report
        atomic_write(args.model, lambda tmp: torch.save(stored, tmp))
        print(f"stored in {args.model}")
    print(json.dumps(report["ece"], indent=2))
    return report
