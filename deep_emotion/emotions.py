"""What the networks, the ONNX runtime, the detectors and the plots share, with no PyTorch or OpenCV import.

The class names in FER2013's label order, the face size, how pixels are standardised, the
views test-time augmentation averages, and the division by the training prior. Each function
works on numpy arrays and torch tensors alike, so model.py and onnx_classifier.py share one rule.
"""
CLASS_NAMES = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
IMAGE_SIZE = 48  # faces are IMAGE_SIZE x IMAGE_SIZE greyscale

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


def balance(probabilities, prior, exponent=1.0):
    """Post-hoc logit adjustment (Menon et al. 2021): p(class | face) / p(class)^exponent, renormalised; (N, 7).

    A network trained on FER2013 learnt its prior too (disgust is 1.5% of it); dividing it out
    (exponent 1) gives the decision of a balanced training set, which is what faces elsewhere look
    like more; an exponent between 0 and 1 divides part of it out (a checkpoint's prior_exponent).
    """
    adjusted = probabilities / prior ** exponent
    return adjusted / adjusted.sum(1)[:, None]
