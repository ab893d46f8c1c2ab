"""What the networks, the ONNX runtime, the detectors and the plots share, with no PyTorch or OpenCV import.

The class names in FER2013's label order, what a network reads (FaceInput), how pixels are standardised, the
views test-time augmentation averages, the division by the training prior and an ensemble's decision. Each function
works on numpy arrays and torch tensors alike, so model.py and onnx_classifier.py share one rule.
"""
from dataclasses import dataclass

CLASS_NAMES = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
IMAGE_SIZE = 48  # FER2013's faces, and what every network read before FaceInput: 48x48 greyscale


@dataclass(frozen=True)
class FaceInput:
    """The faces a network reads: size x size pixels, grey (channels 1) or colour (channels 3, RGB order).

    A property of the network (its arch_args `image_size` and `in_channels`, so every checkpoint
    carries it); every consumer follows it: training and test data (data/loaders.py), the live
    crop (face_detectors.py), ONNX export and the page (models.json). A batch of such faces is
    uint8 (N, size, size) when grey, (N, size, size, 3) when colour.
    """
    size: int = IMAGE_SIZE
    channels: int = 1

    def __post_init__(self):
        if self.channels not in (1, 3) or self.size < 8:
            raise ValueError(f"a network reads grey (1) or RGB (3) faces of 8 pixels or more, not {self}")

    @property
    def colour(self):
        return self.channels == 3

    def shape(self, batch):
        """The shape of a uint8 batch of `batch` such faces."""
        return (batch, self.size, self.size) + ((3,) if self.colour else ())

    def describe(self):
        return f"{self.size}x{self.size} {'RGB' if self.colour else 'grey'}"


# the faces the default model reads (recognizer.DEFAULT_MODEL, the widest of its two networks'; a test holds the two
# equal): what prepare keeps a face folder's faces at unless told, so that the default reads them as it reads a crop
DEFAULT_FACE_INPUT = FaceInput(150, 3)


def widest_face_input(face_inputs):
    """The faces from which each of face_inputs can be cut without loss: the largest size, in colour if any reads
    colour. An ensemble of networks that read different faces crops these once; each member shrinks them."""
    face_inputs = list(face_inputs)
    return FaceInput(max(i.size for i in face_inputs), 3 if any(i.colour for i in face_inputs) else 1)


# Test-time augmentation (--tta): "flip" averages each face's probabilities with its
# mirror image's (2 views); "shifts" also with the face moved SHIFT_PIXELS up, down,
# left and right, each mirrored too (10 views). Training shifts faces by up to 10%
# (4.8 pixels), so these views are ones the network has learned to read.
TTA_MODES = ("flip", "shifts")
SHIFT_PIXELS = 2
# where each shifted view starts in the face padded by SHIFT_PIXELS on every side: (top, left)
SHIFT_ORIGINS = ((0, SHIFT_PIXELS), (2 * SHIFT_PIXELS, SHIFT_PIXELS), (SHIFT_PIXELS, 0),
                 (SHIFT_PIXELS, 2 * SHIFT_PIXELS))


def standardize(pixels, mean, std):
    """Faces in 0..255 (float array or tensor) -> standardised with the training statistics (mean, std of 0..1)."""
    return (pixels / 255.0 - mean) / std


def channels_first(images):
    """A batch of faces (a tensor), grey (B, H, W) or RGB (B, H, W, 3) -> (B, C, H, W), as the networks read it."""
    return images.permute(0, 3, 1, 2) if images.ndim == 4 else images.unsqueeze(1)


def normalize(images, mean, std):
    """uint8 faces (a tensor) (B, H, W) or (B, H, W, 3) -> float (B, C, H, W), standardised with the training
    statistics."""
    return standardize(channels_first(images).float(), mean, std)


def balance(probabilities, prior, exponent=1.0):
    """Post-hoc logit adjustment (Menon et al. 2021): p(class | face) / p(class)^exponent, renormalised; (N, 7).

    A network trained on FER2013 learnt its prior too (disgust is 1.5% of it); dividing it out
    (exponent 1) gives the decision of a balanced training set, which is what faces elsewhere look
    like more; an exponent between 0 and 1 divides part of it out (a checkpoint's prior_exponent).
    """
    adjusted = probabilities / prior ** exponent
    return adjusted / adjusted.sum(1)[:, None]


def decide(members, balanced=False):
    """An ensemble's answer (N, 7), the one decision rule of both engines (inference.Ensemble, OnnxClassifier).

    members: (probabilities (N, 7) with the member's temperature applied, its training prior (7,), the prior
    exponent of its decision rule: 0 in a head other than its default, whose rule was fitted on no data).
    Each member's rule divides its own prior out of its own probabilities, then they are averaged;
    balanced=True instead divides the members' mean prior whole out of the plain average.
    """
    if balanced:
        average = sum(p for p, _, _ in members) / len(members)
        return balance(average, sum(prior for _, prior, _ in members) / len(members))
    return sum(balance(p, prior, exponent) if exponent else p for p, prior, exponent in members) / len(members)


# a network's heads: label sets it answers in (model.DeepEmotionHeads)
DEFAULT_HEAD = "default"  # the one head of a network trained on one label set
ALL_HEADS = "all"         # forward() answers with every head, concatenated (training)
FER2013_HEAD = "fer2013"  # the head that answers in FER2013's own labels (the paper's benchmark)
