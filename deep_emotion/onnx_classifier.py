"""A Deep-Emotion network exported to ONNX (export_onnx.py), run by onnxruntime: no PyTorch needed.

    from deep_emotion.onnx_classifier import OnnxClassifier
    classifier = OnnxClassifier("deep_emotion_vgg.onnx")
    probabilities = classifier.predict(faces)    # uint8 (N, 48, 48) -> (N, 7)

The graph takes faces as its network reads them (classifier.face_input), float32 in 0..255: grey
(N, 48, 48) for most, RGB (N, S, S, 3) for a colour network; it returns probabilities:
the input normalisation and the calibration temperature are inside it. Its metadata holds
the class names, the training prior, the normalisation and the temperature, for reference,
and whether the faces' contrast is equalised first (CLAHE, for checkpoints trained with --clahe:
ONNX has no such operator, so OnnxClassifier does it with OpenCV before the graph).
"""
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from deep_emotion.emotions import SHIFT_ORIGINS, SHIFT_PIXELS, FaceInput, balance, standardize, widest_face_input
from deep_emotion.face_detectors import equalize_contrast, fit_faces
from deep_emotion.utils import atomic_write

OPSET = 18


class OnnxError(Exception):
    """An ONNX file or runtime that cannot be used, reported as one line (exit code 2)."""


def tta_views(faces, tta):
    """The views (numpy (N, H, W) or (N, H, W, 3) each) that test-time augmentation `tta` averages; see
    inference.tta_views."""
    views = [faces]
    if tta == "shifts":
        p, (h, w) = SHIFT_PIXELS, faces.shape[1:3]
        padded = np.pad(faces, ((0, 0), (p, p), (p, p)) + ((0, 0),) * (faces.ndim - 3), mode="edge")
        for top, left in SHIFT_ORIGINS:
            views.append(padded[:, top:top + h, left:left + w])
    if tta:
        views += [view[:, :, ::-1] for view in views]
    return views


class OnnxClassifier:
    """The ONNX counterpart of inference.Ensemble: one or more exported checkpoints, their probabilities averaged.

    balanced=True divides out the training prior stored in the files' metadata.
    """

    def __init__(self, paths, tta=None, balanced=False, threads=0):
        try:
            import onnxruntime
        except ImportError:
            raise OnnxError("the ONNX backend needs onnxruntime: pip install onnxruntime") from None
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0 = onnxruntime's own choice
        self.sessions, self.clahe, self.priors, self.exponents = [], [], [], []
        for path in paths:
            try:
                session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception as error:  # onnxruntime raises its own kinds for missing and malformed files
                raise OnnxError(f"onnxruntime cannot load {path}: {str(error).strip().splitlines()[0][:160]}") from None
            metadata = session.get_modelmeta().custom_metadata_map
            if "class_names" not in metadata:
                raise OnnxError(f"{path} was not written by export_onnx.py (no class_names in its metadata)")
            self.class_names = json.loads(metadata["class_names"])
            self.priors.append(np.asarray(json.loads(metadata["class_prior"]), np.float32))
            self.exponents.append(json.loads(metadata.get("prior_exponent", "0")))  # applied inside the graph
            self.clahe.append(json.loads(metadata.get("clahe", "false")))
            self.sessions.append(session)
        self.face_inputs = [face_input_of(session) for session in self.sessions]
        self.face_input = widest_face_input(self.face_inputs)  # each member shrinks and greys these, as Ensemble's
        self.tta, self.balanced = tta, balanced

    def predict(self, images, batch_size=512):
        """Class probabilities (N, 7) of uint8 faces as self.face_input reads them, as a numpy array."""
        images = np.asarray(images)
        probabilities = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            as_read = {self.face_input: batch}
            members = []
            for session, face_input, clahe, prior, exponent in zip(self.sessions, self.face_inputs, self.clahe,
                                                                   self.priors, self.exponents):
                if face_input not in as_read:
                    as_read[face_input] = fit_faces(batch, face_input)
                faces = as_read[face_input]
                views = [np.ascontiguousarray(view, dtype=np.float32)  # each member reads the faces its own way
                         for view in tta_views(equalize_contrast(faces) if clahe else faces, self.tta)]
                member = np.mean([session.run(None, {session.get_inputs()[0].name: view})[0] for view in views],
                                 axis=0)
                if self.balanced and exponent:  # undo the graph's decision rule: balanced divides the mean prior
                    member = balance(member, prior, -exponent)
                members.append(member)
            probabilities.append(np.mean(members, axis=0))
        result = np.concatenate(probabilities) if probabilities else np.zeros((0, len(self.class_names)), np.float32)
        return balance(result, np.mean(self.priors, axis=0)) if self.balanced else result


def face_input_of(session):
    """The FaceInput an exported graph reads, from its input's shape: (batch, S, S) grey, (batch, S, S, 3) RGB."""
    shape = session.get_inputs()[0].shape
    return FaceInput(int(shape[1]), 3 if len(shape) == 4 else 1)


def export(checkpoint_path, out_path, int8=False):
    """Writes a checkpoint as ONNX (atomically), normalisation and temperature inside; returns out_path.

    int8=True quantises the weights to 8 bits (onnxruntime's dynamic quantisation). Needs
    PyTorch, onnx and onnxscript, unlike running the file.
    """
    import torch

    from deep_emotion.data.loaders import channels_first
    from deep_emotion.inference import class_prior, load_model, prior_exponent

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
            probabilities = (self.model(x) / self.temperature).softmax(1)
            return balance(probabilities, self.prior, self.exponent) if self.exponent else probabilities

    model, checkpoint = load_model(checkpoint_path, "cpu")  # in its default head, as the live pipeline reads faces
    exponent = prior_exponent(checkpoint)
    deployable = Deployable(model, checkpoint["normalization"], checkpoint.get("temperature", 1.0),
                            class_prior(checkpoint), exponent).eval()
    example = torch.rand(model.face_input.shape(2)) * 255
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "model.onnx"
        program = torch.onnx.export(deployable, (example,), dynamo=True, opset_version=OPSET,
                                    input_names=["faces"], output_names=["probabilities"],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
        program.save(str(raw))
        import onnx
        graph = onnx.load(str(raw))
        metadata = {"class_names": json.dumps(list(checkpoint.get("class_names", []))),
                    "class_prior": json.dumps(class_prior(checkpoint).tolist()),
                    "normalization": json.dumps(list(checkpoint["normalization"])),
                    "temperature": json.dumps(checkpoint.get("temperature", 1.0)),
                    "prior_exponent": json.dumps(exponent),
                    "heads": json.dumps(getattr(model, "heads", ["default"])),
                    "clahe": json.dumps(bool(checkpoint.get("clahe", False))),
                    "arch": checkpoint["arch"],
                    "input": f"faces: float32 {model.face_input.shape('batch')} {model.face_input.describe()} 0..255",
                    "source_sha256": hashlib.sha256(Path(checkpoint_path).read_bytes()).hexdigest()}
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
