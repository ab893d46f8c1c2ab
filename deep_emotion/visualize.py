"""Evaluate a trained Deep-Emotion and run it live.

    python visualize.py --test_cc --data data                 # test accuracy of the shipped model
    python visualize.py -t True -d data -m runs/deep_emotion-0/best.pt --split val --tta --report r.json
    python visualize.py -t -d data --split val --tta shifts   # 10-view test-time augmentation
    python visualize.py --cam                                  # webcam 0
    python visualize.py --source clip.mp4 --no_display --output annotated.mp4 --log faces.csv
    python visualize.py --attention --samples --data data     # imgs/attention.png, imgs/samples.png
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch

from deep_emotion.data.face_sources import majority_class
from deep_emotion.data.loaders import load_split
from deep_emotion.data.prepared import DataError, labels_are_fer2013, load_votes, stored_face_input
from deep_emotion.emotions import FER2013_HEAD, SHIFT_PIXELS, TTA_MODES
from deep_emotion.face_detectors import DEFAULT_DETECTOR, DETECTORS, YUNET_ENV, equalize_contrast, fit_faces
from deep_emotion.inference import CheckpointError, device_arg, pick_device
from deep_emotion.live import VIDEO_SUFFIXES, SourceError, run_live
from deep_emotion.metrics import classification_scores
from deep_emotion.onnx_classifier import OnnxError
from deep_emotion.recognizer import BACKENDS, CLASSIFY_EVERY, DEFAULT_MODEL, DETECT_EVERY, LIGHT_MODEL, build_classifier
from deep_emotion.utils import (
    BOOL_FLAG,
    IMAGE_SUFFIXES,
    ArgumentParser,
    OutputError,
    atomic_write,
    check_creatable_folder,
    check_writable_file,
    check_writable_folder,
    float_in,
    int_at_least,
    write_text_atomic,
)

MAX_SMOOTH = 0.95


# the parser's groups of flags; `deep-emotion test` shows the first three, `deep-emotion live` model and live
SECTIONS = ("model", "accuracy", "figures", "live inference")


def get_args_parser(sections=SECTIONS, command=None):
    """The parser; flags outside `sections` are still accepted, with their defaults, but left out of --help, and so
    are the mode switches of `deep-emotion test` and `live` (command), which choose the mode themselves."""
    parser = ArgumentParser(description="Test accuracy, figures and live inference for Deep-Emotion.")
    model = parser.add_argument_group("model")
    model.add_argument("-m", "--model", nargs="+", default=[str(DEFAULT_MODEL)],
                       help="checkpoint(s): main.py's or an original state_dict; several are an ensemble whose "
                            "probabilities are averaged (default: deep_emotion/weights/deep_emotion_pair.pt)")
    model.add_argument("--balanced", **BOOL_FLAG,
                       help="class-balanced decision: divide out the training set's class prior (post-hoc logit "
                            "adjustment; emotions.balance) (default: off)")
    model.add_argument("--fast", action="store_true",
                       help="the light twin, deep_emotion/weights/deep_emotion_light.pt: a tenth of the "
                            "default's work per face, for slow machines; not with -m (default: off)")
    model.add_argument("--head", default="auto",
                       help="the label set a multi-head checkpoint answers in: auto = fer2013 where --test_cc scores "
                            "a FER2013 split's own labels, else the checkpoint's default (FER+'s sense); or a head's "
                            "name (default: auto)")
    model.add_argument("--tta", nargs="?", const="flip", default=None, choices=TTA_MODES,
                       help="test-time augmentation in --test_cc and live: flip = also the mirrored face (2 views), "
                            f"shifts = also the face moved {SHIFT_PIXELS} pixels each way (10 views); --tta alone = "
                            "flip (default: off)")
    model.add_argument("--device", type=device_arg, default="auto", help="auto, cpu, cuda, mps (default: auto)")
    model.add_argument("--backend", choices=BACKENDS, default="auto",
                       help="the classifier's engine: auto = onnxruntime where it is installed (a .pt checkpoint is "
                            "exported once into the user's cache, ~/.cache/deep-emotion), else PyTorch; onnx; torch "
                            "(training's engine; --attention uses it); an .onnx --model always runs on onnxruntime "
                            "(default: auto)")

    accuracy = parser.add_argument_group("accuracy")
    accuracy.add_argument("-t", "--test_cc", "--test_acc", dest="test_cc", **BOOL_FLAG,
                          help="report accuracy on --split of --data (default: off)")
    accuracy.add_argument("-d", "--data", default="data", help="prepared data folder (default: data)")
    accuracy.add_argument("--split", default="test", choices=["test", "val", "train", "unlabeled"],
                          help="split to score (default: test)")
    accuracy.add_argument("--report", default="", help="write the accuracy report as JSON here (default: none)")
    accuracy.add_argument("--batch_size", type=int_at_least(1), default=512,
                          help="evaluation batch size (default: 512)")

    figures = parser.add_argument_group("figures")
    figures.add_argument("--figures", default="",
                         help="folder for the confusion matrix, attention and samples PNGs (default: the --report's "
                              "folder, else ./figures; the README's imgs/ only when named)")
    figures.add_argument("--attention", action="store_true", help="save faces beside their STN warps (default: off)")
    figures.add_argument("--samples", action="store_true", help="save a grid of predictions on --split (default: off)")

    live = parser.add_argument_group("live inference")
    live.add_argument("-c", "--cam", **BOOL_FLAG, help="live inference on webcam 0 (default: off)")
    live.add_argument("--source", default=None,
                      help="live inference on a camera index, video, image or folder of images (default: none)")
    live.add_argument("--output", default="",
                      help="annotated video, image (one image as --source) or folder (images) to write; never the "
                           "source itself (default: none)")
    live.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR,
                      help="face detector: yunet (OpenCV's CNN, shipped in the package: finds turned, small and "
                           "badly lit faces) or haar (OpenCV's frontal-face cascade, the original repository's: "
                           f"for comparing with it) (default: {DEFAULT_DETECTOR})")
    live.add_argument("--detector_model", default=None,
                      help=f"another YuNet .onnx file (default: ${YUNET_ENV}, else the package's "
                           "face_detection_yunet_2023mar.onnx)")
    live.add_argument("--detect_every", type=int_at_least(1), default=DETECT_EVERY,
                      help="search for faces on one frame in N and follow each face's box in between (at once "
                           "when a face is lost or leaves the frame); 1 = search every frame; photos are always "
                           f"searched (default: {DETECT_EVERY})")
    live.add_argument("--classify_every", type=int_at_least(1), default=CLASSIFY_EVERY,
                      help="classify each face on one of its frames in M and keep its probabilities in between (a new "
                           f"face at once); 1 = every frame (default: {CLASSIFY_EVERY})")
    live.add_argument("--align", action="store_true",
                      help="with yunet: turn each face so its eyes are level before the crop (default: off; on "
                           "FER2013 PublicTest the plain crop scored higher)")
    live.add_argument("--no_display", action="store_true", help="never open a window (default: show one if possible)")
    live.add_argument("--log", default="",
                      help="CSV with one row per face per frame; its found column says whether the box came from a "
                           "search or was followed (default: none)")
    live.add_argument("--timeline", default="",
                      help="PNG of each face's 7 probabilities over time, with a summary per face beside it as "
                           ".json (also: deep-emotion timeline faces.csv) (default: none)")
    live.add_argument("--smooth", type=float_in(0, MAX_SMOOTH), default=0.0,
                      help=f"per-face probability smoothing across frames, 0..{MAX_SMOOTH} (default: 0 = off)")
    live.add_argument("--max_frames", type=int_at_least(0), default=0,
                      help="stop after this many frames (default: 0 = all)")
    for group in parser._action_groups:
        if group.title in SECTIONS and group.title not in sections:
            for action in group._group_actions:  # argparse leaves a group of hidden flags out of --help
                action.help = argparse.SUPPRESS
    if command == "test":
        parser.hide("test_cc")
    return parser


def figures_dir(args):
    """Where figures go: --figures, else beside --report, else ./figures (never the README's imgs/ unless named)."""
    if args.figures:
        return Path(args.figures)
    return Path(args.report).parent if args.report else Path("figures")


def is_within(path, folder):
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def check_outputs(args):
    """Checks every output before any work starts: writable, and never the input it would replace.

    Raises OutputError or SourceError with one line.
    """
    if args.report:
        check_writable_file(args.report, "the report")
    if args.log:
        check_writable_file(args.log, "the face log")
    if args.timeline:
        check_writable_file(args.timeline, "the timeline")
    if args.test_cc or args.attention or args.samples:  # made when the first figure is written, not before
        check_creatable_folder(figures_dir(args), "figures")
    if not args.output or not (args.cam or args.source is not None):
        return
    source = None if args.source is None or str(args.source).isdigit() else Path(args.source)
    output = Path(args.output)
    one_photo = source is not None and source.suffix.lower() in IMAGE_SUFFIXES
    if one_photo and output.suffix and output.suffix.lower() not in IMAGE_SUFFIXES:
        types = ", ".join(sorted(IMAGE_SUFFIXES))
        raise OutputError(f"--output {output}: {output.suffix} is not an image type ({types}); "
                          "name an image file, or a folder without a suffix")
    if source is not None and not source.is_dir() and not one_photo and output.suffix.lower() not in VIDEO_SUFFIXES:
        raise OutputError(f"--output {output}: the annotated video needs one of {', '.join(VIDEO_SUFFIXES)}")
    if (source is None) and output.suffix.lower() not in VIDEO_SUFFIXES:
        raise OutputError(f"--output {output}: the annotated camera video needs one of {', '.join(VIDEO_SUFFIXES)}")
    if source is not None and source.is_dir():
        if is_within(output, source):
            raise SourceError(f"--output {output} is inside the source folder {source}: its annotated copies "
                              "would replace the photos; choose another folder")
        check_writable_folder(output, "annotated images")
    elif source is not None and source.suffix.lower() in IMAGE_SUFFIXES and output.suffix.lower() not in IMAGE_SUFFIXES:
        if source.exists() and (output / source.name).resolve() == source.resolve():
            raise SourceError(f"--output {output} would overwrite the source {source}; choose another folder")
        check_writable_folder(output, "annotated images")
    else:
        if source is not None and source.exists() and output.resolve() == source.resolve():
            raise SourceError(f"--output {output} is the source itself; choose another file name")
        check_writable_file(output, "the annotated output")


# ---------------------------------------------------------------- accuracy

def print_metrics(metrics, title):
    print(f"{title}: {metrics['correct']}/{metrics['total']} = {100 * metrics['accuracy']:.2f}%")
    print(f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for name, m in metrics["per_class"].items():
        print(f"{name:<10}{m['precision']:>10.3f}{m['recall']:>10.3f}{m['f1']:>10.3f}{m['support']:>10}")
    names = list(metrics["per_class"])
    print("confusion (rows: true, columns: predicted)")
    print(" " * 10 + "".join(f"{n[:7]:>8}" for n in names))
    for name, row in zip(names, metrics["confusion"]):
        print(f"{name:<10}" + "".join(f"{v:>8}" for v in row))


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    """Saves a figure atomically and closes it; returns path."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight"))
    _pyplot().close(fig)
    return Path(path)


def plot_confusion(metrics, path, title):
    """Confusion matrix PNG: counts in the cells, colour by row-normalised share."""
    plt = _pyplot()
    confusion = np.array(metrics["confusion"])
    share = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    names = list(metrics["per_class"])
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{confusion[i, j]}\n{share[i, j]:.0%}", ha="center", va="center", fontsize=8,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names, yticklabels=names,
           xlabel="predicted", ylabel="true", title=title)
    plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    return _save(fig, path)


def scoring_head(args, classifier):
    """The head the checkpoints answer in (None = each one's default): --head, or for auto the fer2013 head
    where --test_cc scores FER2013's own labels and every checkpoint has one."""
    if args.head != "auto":
        return args.head
    fer2013_split = args.test_cc and args.data and labels_are_fer2013(args.data)
    return FER2013_HEAD if fer2013_split and FER2013_HEAD in classifier.heads else None


def face_input_note(data_dir, stored, read):
    """One line saying how the faces a prepared folder keeps (stored) fall short of what the model reads (read):
    enlarged (by how much) or without colour; None when they serve it as they are."""
    if stored is None:
        return None
    short = ([f"enlarged {read.size / stored.size:.1f}x from {stored.size}x{stored.size}"] if stored.size < read.size
             else []) + (["without colour (the model reads colour; they are grey)"] if read.colour and not
                         stored.colour else [])
    if not short:
        return None
    if labels_are_fer2013(data_dir):  # FER2013's CSVs hold nothing larger to prepare again
        remedy = "FER2013 holds only 48x48 grey faces"
    else:
        remedy = ("prepare the source again with " + f"--face_size {read.size}" + (" --colour" if read.colour else "")
                  + " to score it on the faces it reads")
    return (f"note: the model reads {read.describe()} faces and {data_dir} keeps {stored.describe()}: they are "
            f"{' and '.join(short)}, which costs accuracy; {remedy}")


def attention_network(model, checkpoint, images):
    """(network, its arch, its normalisation, faces as it reads them) for --attention: the model, or the first
    network of an ensemble that has an STN; raises CheckpointError for a model without one."""
    if checkpoint["arch"] == "ensemble":
        for member, recorded in zip(model.members, checkpoint["arch_args"]["members"]):
            if hasattr(member, "stn"):
                faces = torch.from_numpy(fit_faces(images.numpy(), member.face_input))
                return member, recorded["arch"], recorded["normalization"], faces
    elif hasattr(model, "stn"):
        return model, checkpoint["arch"], checkpoint["normalization"], images
    raise CheckpointError(f"--attention draws a network's spatial transformer, and this {checkpoint['arch']} "
                          "model has none")


def test_accuracy(args, classifier, head=None):
    """Scores --split; prints and returns the metrics dict, writes the confusion PNG and --report.

    head: the head classifier answers in (None: the default). Where the split has FER+ votes, the
    checkpoints' default head (FER+'s sense) is also scored against FER+'s majority.
    """
    note = face_input_note(args.data, stored_face_input(args.data), classifier.face_input)
    if note:
        print(note)
    images, labels, _ = load_split(args.data, args.split, face_input=classifier.face_input)
    probabilities = classifier.predict(images, args.batch_size)
    metrics = classification_scores(probabilities.argmax(1), labels.numpy())
    metrics.update({"split": args.split, "model": [str(m) for m in args.model], "tta": args.tta,
                    "balanced": args.balanced, "head": head or "default"})
    name = "+".join(Path(m).stem for m in args.model)
    title = (f"{name} on {args.split}{f' ({head} head)' if head else ''}{f' with {args.tta} TTA' if args.tta else ''}"
             f"{', balanced' if args.balanced else ''}")
    print_metrics(metrics, title)
    votes = load_votes(args.data, args.split)
    if votes is not None:  # FER+'s relabelling of the same faces: the default head's predictions against its majority
        majority = majority_class(votes)
        voted = majority >= 0
        if head is not None:
            classifier.use_head(None)
            probabilities = classifier.predict(images, args.batch_size)
            classifier.use_head(head)
        metrics["ferplus"] = classification_scores(probabilities.argmax(1)[voted], majority[voted])
        print(f"against FER+'s majority labels ({int(voted.sum())} faces FER+ gives a FER2013 class): "
              f"{metrics['ferplus']['correct']}/{metrics['ferplus']['total']} = "
              f"{100 * metrics['ferplus']['accuracy']:.2f}%")
    stem = (f"confusion_{name}_{args.split}{f'_tta_{args.tta}' if args.tta else ''}"
            f"{'_balanced' if args.balanced else ''}.png")
    print(f"confusion matrix: {plot_confusion(metrics, figures_dir(args) / stem, title)}")
    if args.report:
        print(f"report: {write_text_atomic(args.report, json.dumps(metrics, indent=2))}")
    return metrics


# ---------------------------------------------------------------- figures

def plot_attention(model, arch, normalization, clahe, images, device, path, count=8):
    """Grey faces (top row) beside what the STN of model (a network of arch, reading faces standardised with
    normalization, contrast-equalised first with clahe) makes of them (bottom row)."""
    plt = _pyplot()
    mean, std = normalization
    images = torch.from_numpy(equalize_contrast(images[:count].numpy())) if clahe else images[:count]
    x = ((images.unsqueeze(1).float() / 255 - mean) / std).to(device)
    with torch.no_grad():
        warped, _ = model.stn(x)
    warped = (warped.cpu() * std + mean).clamp(0, 1)
    fig, axes = plt.subplots(2, count, figsize=(1.5 * count, 3.4))
    for i in range(count):
        axes[0, i].imshow(images[i].numpy(), cmap="gray", vmin=0, vmax=255)
        axes[1, i].imshow(warped[i, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        for ax in axes[:, i]:
            ax.axis("off")
    axes[0, 0].set_title("input", loc="left", fontsize=9)
    axes[1, 0].set_title("STN output", loc="left", fontsize=9)
    fig.suptitle(f"{arch}: spatial-transformer attention")
    return _save(fig, path)


def plot_samples(images, labels, predictions, class_names, path, rows=4, cols=8):
    """Grid of faces titled true/predicted, green when right and red when wrong."""
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows))
    for i, ax in enumerate(axes.flat):
        ax.imshow(images[i], cmap="gray", vmin=0, vmax=255)
        right = labels[i] == predictions[i]
        ax.set_title(f"{class_names[labels[i]]}\n-> {class_names[predictions[i]]}", fontsize=8,
                     color="green" if right else "red")
        ax.axis("off")
    fig.suptitle("true -> predicted")
    return _save(fig, path)


def main(args):
    """Runs what the flags ask for; returns the accuracy metrics when --test_cc is given."""
    if args.fast:
        if args.model != [str(DEFAULT_MODEL)]:
            raise DataError("--fast chooses the light model itself: give either --fast or -m")
        args.model = [str(LIGHT_MODEL)]
    check_outputs(args)
    device = pick_device(args.device)
    metrics = None
    if args.test_cc or args.attention or args.samples:
        backend = "torch" if args.attention and args.backend == "auto" else args.backend  # the STN is PyTorch's
        classifier = build_classifier(args.model, device, args.tta, args.balanced, backend,
                                      None if args.head == "auto" else args.head)
        head = scoring_head(args, classifier)
        if head is not None and args.head == "auto":
            classifier.use_head(head)
        if args.test_cc:
            metrics = test_accuracy(args, classifier, head)
        if args.attention or args.samples:
            images, labels, _ = load_split(args.data, args.split, face_input=classifier.face_input)
            if args.attention:  # the first model's STN
                if classifier.backend != "torch":
                    raise OnnxError("--attention shows a PyTorch network's STN: use --backend torch and a .pt model")
                model, checkpoint = classifier.members[0]
                network, arch, normalization, faces = attention_network(model, checkpoint, images)
                figure = plot_attention(network, arch, normalization, checkpoint.get("clahe"), faces, device,
                                        figures_dir(args) / "attention.png")
                print(f"attention: {figure}")
            if args.samples:
                chosen = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:32]
                predictions = classifier.predict(images[chosen]).argmax(1)
                path = plot_samples(images[chosen], labels[chosen].tolist(), predictions.tolist(),
                                    classifier.class_names, figures_dir(args) / "samples.png")
                print(f"samples: {path}")
    if args.cam or args.source is not None:
        run_live(args, device)
    elif not (args.test_cc or args.attention or args.samples):
        print("nothing to do: add --test_cc, --cam, --source, --attention or --samples (see --help)")
    return metrics
