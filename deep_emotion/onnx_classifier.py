"""A Deep-Emotion network exported to ONNX (onnx_export.py), run by onnxruntime: no PyTorch needed.

    from deep_emotion.onnx_classifier import OnnxClassifier
    classifier = OnnxClassifier("deep_emotion_vgg.onnx")
    probabilities = classifier.predict(faces)    # uint8 (N, 48, 48) -> (N, 7)

The graph takes faces as its network reads them (classifier.face_input), float32 in 0..255: grey
(N, 48, 48) for most, RGB (N, S, S, 3) for a colour network, with the input normalisation inside.
It answers `probabilities` (N, 7) in the default head, temperature and decision rule inside (what the
browser page reads), and `logits` (N, heads, 7) of every head, from which OnnxClassifier computes
its answer with the rule inference.Ensemble uses (emotions.decide). Its metadata holds the class names,
the heads, the training prior, the normalisation, the temperature and the prior exponent, and whether
the faces' contrast is equalised first (CLAHE, for checkpoints trained with --clahe:
ONNX has no such operator, so OnnxClassifier does it with OpenCV before the graph).
"""
import json
import os

import numpy as np

from deep_emotion.emotions import (
    SHIFT_ORIGINS,
    SHIFT_PIXELS,
    FaceInput,
    balance,
    decide,
    widest_face_input,
)
from deep_emotion.face_detectors import equalize_contrast, fit_faces
from deep_emotion.utils import UserError


class OnnxError(UserError):
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


class OnnxMember:
    """One exported graph and what its metadata says: heads, temperature, training prior, decision rule, CLAHE."""

    def __init__(self, path, session):
        metadata = session.get_modelmeta().custom_metadata_map
        if "class_names" not in metadata:
            raise OnnxError(f"{path} was not written by deep-emotion export (no class_names in its metadata)")
        self.path, self.session = path, session
        self.class_names = json.loads(metadata["class_names"])
        self.heads = json.loads(metadata.get("heads", '["default"]'))
        self.temperature = float(json.loads(metadata.get("temperature", "1.0")))
        self.prior = np.asarray(json.loads(metadata["class_prior"]), np.float32)
        self.exponent = float(json.loads(metadata.get("prior_exponent", "0")))
        self.clahe = json.loads(metadata.get("clahe", "false"))
        self.face_input = face_input_of(session)
        # graphs exported before version 2 answer in their default head alone, its decision rule inside
        self.has_logits = "logits" in [output.name for output in session.get_outputs()]

    def probabilities(self, faces, tta, head):
        """(probabilities (N, 7) in head (None: the default), temperature applied, averaged over the views of
        tta; the prior exponent of the decision rule that emotions.decide applies to them)."""
        views = [np.ascontiguousarray(view, dtype=np.float32)
                 for view in tta_views(equalize_contrast(faces) if self.clahe else faces, tta)]
        feed = self.session.get_inputs()[0].name
        if not self.has_logits:
            answer = np.mean([self.session.run(["probabilities"], {feed: view})[0] for view in views], axis=0)
            # undo the rule the graph applied, so that decide() applies it as it does for every member
            return (balance(answer, self.prior, -self.exponent) if self.exponent else answer), self.exponent
        index = self.heads.index(head) if head is not None else 0
        answer = np.mean([softmax(self.session.run(["logits"], {feed: view})[0][:, index] / self.temperature)
                          for view in views], axis=0)
        return answer, self.exponent if index == 0 else 0.0  # the fitted rule belongs to the default head


class OnnxClassifier:
    """The ONNX engine: one or more exported checkpoints, their probabilities averaged, with the interface of
    inference.Ensemble: predict(faces) -> numpy (N, 7); class_names (the first member's); heads and
    use_head(name); face_input; backend ("onnx"). The temperature is applied to each member's logits and the
    decision rule is emotions.decide, as in Ensemble; balanced=True divides the members' mean training prior
    out of the average. threads: onnxruntime's intra-op threads (0: its own choice).
    """

    backend = "onnx"

    def __init__(self, paths, tta=None, balanced=False, threads=0):
        try:
            import onnxruntime
        except ImportError:
            raise OnnxError("the ONNX backend needs onnxruntime: pip install onnxruntime") from None
        paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.members = []
        for path in paths:
            try:
                session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            except Exception as error:  # onnxruntime raises its own kinds for missing and malformed files
                raise OnnxError(f"onnxruntime cannot load {path}: {str(error).strip().splitlines()[0][:160]}") from None
            self.members.append(OnnxMember(path, session))
        self.class_names = self.members[0].class_names
        self.heads = [h for h in self.members[0].heads if all(h in m.heads for m in self.members)]
        self.face_input = widest_face_input(m.face_input for m in self.members)  # each member shrinks and greys these
        self.tta, self.balanced, self.head = tta, balanced, None

    def use_head(self, head):
        """Makes every member answer in head (None: each member's default head); raises OnnxError."""
        for member in self.members:
            if head is not None and head not in member.heads:
                raise OnnxError(f"{member.path} has no head {head!r}; it has {', '.join(member.heads)}")
            if head not in (None, member.heads[0]) and not member.has_logits:
                raise OnnxError(f"{member.path} answers in its default head only (exported by an older version): "
                                "export it again with deep-emotion export")
        self.head = head

    def predict(self, images, batch_size=512):
        """Class probabilities (N, 7), a float32 numpy array, of uint8 faces: as self.face_input reads them, or of any
        other size and colour, which each member enlarges or shrinks and greys to its own (face_detectors.fit_faces).
        Safe to call from several threads at once (onnxruntime's sessions are)."""
        images = np.asarray(images)
        probabilities = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            as_read = {}  # the faces as each member reads them, converted once per kind (as given when they fit)
            members = []
            for member in self.members:
                if member.face_input not in as_read:
                    as_read[member.face_input] = fit_faces(batch, member.face_input)
                answer, exponent = member.probabilities(as_read[member.face_input], self.tta, self.head)
                members.append((answer, member.prior, exponent))
            probabilities.append(decide(members, self.balanced))
        if not probabilities:
            return np.zeros((0, len(self.class_names)), np.float32)
        return np.concatenate(probabilities).astype(np.float32)


def softmax(logits):
    """Softmax over the last axis of a numpy array, computed stably."""
    exponentials = np.exp(logits - logits.max(-1, keepdims=True))
    return exponentials / exponentials.sum(-1, keepdims=True)


def face_input_of(session):
    """The FaceInput an exported graph reads, from its input's shape: (batch, S, S) grey, (batch, S, S, 3) RGB."""
    shape = session.get_inputs()[0].shape
    return FaceInput(int(shape[1]), 3 if len(shape) == 4 else 1)
