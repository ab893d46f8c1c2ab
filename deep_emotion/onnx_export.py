"""Checkpoints to ONNX graphs (export), and the user's cache of exported graphs (exported): what runs on onnxruntime.

    from deep_emotion.onnx_export import export, exported
    export("weights/face_resnet.pt", "face_resnet.onnx")      # a file of your own
    path = exported("weights/face_resnet.pt")                  # the cached file, exported on first use

Exporting needs PyTorch, onnx and onnxscript; running the files (onnx_classifier.OnnxClassifier) needs
onnxruntime alone. The cache lives in $DEEP_EMOTION_CACHE, else $XDG_CACHE_HOME/deep-emotion, else
~/.cache/deep-emotion: one file per checkpoint, named by the sha256 of its bytes and the exporter's version,
written atomically, so a changed checkpoint or a newer exporter gets a new file and a stale one is never read.
"""
import contextlib
import json
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

from deep_emotion.emotions import ALL_HEADS, CLASS_NAMES, balance, channels_first, standardize
from deep_emotion.utils import atomic_write, file_sha256

OPSET = 18
# bump when export() writes a different graph for the same checkpoint: cached files of older versions are then
# left unread and exported again
EXPORT_VERSION = 2


def cache_folder():
    """Where exported graphs are cached: $DEEP_EMOTION_CACHE, else $XDG_CACHE_HOME/deep-emotion, else
    ~/.cache/deep-emotion."""
    if os.environ.get("DEEP_EMOTION_CACHE"):
        return Path(os.environ["DEEP_EMOTION_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deep-emotion"


def checkpoint_sha256(path):
    """The sha256 of a checkpoint's bytes, in hex; a missing file is a CheckpointError, as loading it would be."""
    try:
        return file_sha256(path)
    except FileNotFoundError:
        from deep_emotion.inference import CheckpointError
        raise CheckpointError(f"checkpoint {path} does not exist") from None


def exported(checkpoint_path):
    """The ONNX graph of a checkpoint from the user's cache (cache_folder), exported there first when it is not
    there yet; returns its path. Where the cache cannot be written, the graph goes to a temporary folder that
    lives as long as the process (a warning says so once)."""
    digest = checkpoint_sha256(checkpoint_path)
    name = f"{Path(checkpoint_path).stem}-{digest[:16]}-v{EXPORT_VERSION}-opset{OPSET}.onnx"
    cached = cache_folder() / name
    if cached.is_file():
        return cached
    # a user waits for this once per checkpoint (the default model: about 15 s on a 2-core CPU): say what it is
    note = f"preparing {Path(checkpoint_path).name} for onnxruntime, once (cached in {cache_folder()})"
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        return export(checkpoint_path, cached, note=note)
    except PermissionError:
        folder = Path(tempfile.mkdtemp(prefix="deep-emotion-onnx-"))
        print(f"warning: cannot write the ONNX cache {cache_folder()} (set DEEP_EMOTION_CACHE to a writable "
              f"folder); exporting into {folder} for this run")
        return export(checkpoint_path, folder / name)


@contextlib.contextmanager
def quiet_exporter():
    """Keeps PyTorch's exporter quiet: its warnings (torchvision's operators it skips, deprecations) say nothing
    a user can act on, and a command's answer is one line."""
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export(checkpoint_path, out_path, int8=False, note=None):
    """Writes a checkpoint as ONNX (atomically), normalisation inside; returns out_path. Its outputs: `probabilities`
    in the default head, temperature and decision rule inside, and `logits` (N, heads, 7) of every head.

    int8=True quantises the weights to 8 bits (onnxruntime's dynamic quantisation). note: a line printed to
    stderr once the checkpoint has loaded (a file that is no checkpoint is its one-line error alone). Needs
    PyTorch, onnx and onnxscript, unlike running the file.
    """
    import torch

    from deep_emotion.inference import class_prior, head_names, load_model, prior_exponent
    from deep_emotion.model import set_head

    class Deployable(torch.nn.Module):
        """The network with its input normalisation and temperature: 0..255 faces in, probabilities out."""

        def __init__(self, model, normalization, temperature, prior, exponent):
            super().__init__()
            self.model, self.temperature = model, float(temperature)
            self.mean, self.std = (float(v) for v in normalization)
            self.register_buffer("prior", prior)
            self.exponent = float(exponent)

        def forward(self, faces):  # (B, S, S) grey or (B, S, S, 3) RGB, in 0..255
            x = standardize(channels_first(faces), self.mean, self.std)
            logits = self.model(x).unflatten(1, (-1, len(CLASS_NAMES)))  # (B, heads, 7), the default head first
            probabilities = (logits[:, 0] / self.temperature).softmax(1)
            if self.exponent:
                probabilities = balance(probabilities, self.prior, self.exponent)
            return probabilities, logits

    model, checkpoint = load_model(checkpoint_path, "cpu")
    if note:
        print(note, file=sys.stderr, flush=True)
    set_head(model, ALL_HEADS)  # every head's logits, concatenated in model.heads' order
    exponent = prior_exponent(checkpoint)
    deployable = Deployable(model, checkpoint["normalization"], checkpoint.get("temperature", 1.0),
                            class_prior(checkpoint), exponent).eval()
    example = torch.rand(model.face_input.shape(2)) * 255
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "model.onnx"
        with quiet_exporter():
            program = torch.onnx.export(deployable, (example,), dynamo=True, opset_version=OPSET,
                                        input_names=["faces"], output_names=["probabilities", "logits"],
                                        dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
        program.save(str(raw))
        import onnx
        graph = onnx.load(str(raw))
        metadata = {"class_names": json.dumps(list(checkpoint.get("class_names", []))),
                    "class_prior": json.dumps(class_prior(checkpoint).tolist()),
                    "normalization": json.dumps(list(checkpoint["normalization"])),
                    "temperature": json.dumps(checkpoint.get("temperature", 1.0)),
                    "prior_exponent": json.dumps(exponent),
                    "heads": json.dumps(head_names(model)),
                    "clahe": json.dumps(bool(checkpoint.get("clahe", False))),
                    "arch": checkpoint["arch"],
                    "input": f"faces: float32 {model.face_input.shape('batch')} {model.face_input.describe()} 0..255",
                    "source_sha256": file_sha256(checkpoint_path)}
        for key, value in metadata.items():
            entry = graph.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(graph, str(raw))
        if int8:
            from onnxruntime.quantization import QuantType, quantize_dynamic
            quantized = Path(folder) / "int8.onnx"
            quantize_dynamic(str(raw), str(quantized), weight_type=QuantType.QInt8)
            raw = quantized
        atomic_write(out_path, lambda tmp: os.replace(raw, tmp))
    return Path(out_path)
