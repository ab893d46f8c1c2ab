"""Face detectors (OpenCV's Haar cascade and YuNet) and the FER2013-framed crop of each face, at the size and
in the colours the network reads (emotions.FaceInput: 48x48 grey for most).

The network learnt FER2013's framing, so each crop is cut to frame its face as a FER2013
face is framed; the constants below were measured by benchmarks/face_framing.py, which
finds FER2013 training faces upscaled into a larger frame with each detector.
"""
import hashlib
import os
from pathlib import Path

import cv2
import numpy as np

from deep_emotion.emotions import IMAGE_SIZE, FaceInput
from deep_emotion.utils import UserError

HAAR_CASCADE = "haarcascade_frontalface_default.xml"
HAAR_WINDOW = 24  # the cascade's smallest face, in pixels of the image it searches
# A FER2013 face spans 1.02x the Haar box around it, centred on it (median over the 470 of 600 faces found).
HAAR_CROP_SCALE = 1.02
# With YuNet: 1.23x its box's width, centred (median over the 589 of 600 faces found).
YUNET_CROP_SCALE = 1.23
YUNET_SCORE_THRESHOLD = 0.6  # a box scored below this is no face (OpenCV's sample)
YUNET_NMS_THRESHOLD = 0.3  # overlap above which YuNet keeps only the higher-scored of two boxes (OpenCV's sample)
YUNET_TOP_K = 5000  # boxes NMS considers at most

YUNET_URL = ("https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
             "face_detection_yunet_2023mar.onnx")
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
YUNET_ENV = "DEEP_EMOTION_YUNET"  # another model file, used when --detector_model is not given
# shipped inside the package (MIT; its licence and sha256 beside it), so no download is ever needed
PACKAGED_YUNET = Path(__file__).resolve().parent / "models" / "face_detection_yunet_2023mar.onnx"
DETECTORS = ("yunet", "haar")
# YuNet found all six faces of a group photo where the cascade found three and called a hand a face;
# the cascade stays for the original repository's behaviour (--detector haar)
DEFAULT_DETECTOR = "yunet"
# A video frame is searched at 320 pixels wide, to keep a webcam fast; a still image (a photo) at up to
# 1280, and for faces down to the cascade's 24-pixel window, since its faces may be small and there is time.
# YuNet finds video faces down to 16 pixels.
VIDEO_WIDTH, PHOTO_WIDTH, VIDEO_MIN_FACE, PHOTO_MIN_FACE = 320, 1280, 16, 24


class DetectorError(UserError):
    """A face detector that cannot be set up, reported as one line (exit code 2)."""


def yunet_model_path(path=None, needed_by="--detector yunet"):
    """The YuNet model file: path, else $DEEP_EMOTION_YUNET, else the package's copy; raises DetectorError
    when missing or wrong.

    needed_by: what asked for YuNet, as the user knows it, for the message when no file is found.
    """
    path = path or os.environ.get(YUNET_ENV) or (str(PACKAGED_YUNET) if PACKAGED_YUNET.is_file() else None)
    fetch = f"download {YUNET_URL} (sha256 {YUNET_SHA256}) and pass it as --detector_model or ${YUNET_ENV}"
    if not path:
        raise DetectorError(f"{needed_by} needs OpenCV's YuNet face detector: {fetch}")
    if not Path(path).is_file():
        raise DetectorError(f"YuNet model {path} does not exist: {fetch}")
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if digest != YUNET_SHA256:
        raise DetectorError(f"{path} is not the YuNet model (sha256 {digest[:12]}..., expected "
                            f"{YUNET_SHA256[:12]}...): {fetch}")
    return str(path)


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, on a copy downscaled to about `detect_width` pixels for speed.

    detect() returns faces as {"box": (x, y, w, h), "landmarks": None, "score": 1.0}, largest first.
    """

    def __init__(self, min_face=48, detect_width=320):
        self.cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / HAAR_CASCADE))
        if self.cascade.empty():
            raise DetectorError(f"could not load {HAAR_CASCADE} from {cv2.data.haarcascades}")
        self.min_face, self.detect_width = min_face, detect_width

    def detect(self, frame):
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        # never so small that a min_face face falls below the cascade's window
        factor = min(1.0, max(self.detect_width / gray.shape[1], HAAR_WINDOW / self.min_face))
        small = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else gray
        min_side = max(HAAR_WINDOW, int(round(self.min_face * factor)))
        boxes = self.cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        boxes = sorted(boxes, key=lambda box: -box[2] * box[3])
        return [{"box": tuple(int(round(v / factor)) for v in box), "landmarks": None, "score": 1.0}
                for box in boxes]


class YuNetDetector:
    """OpenCV's YuNet CNN detector (cv2.FaceDetectorYN): a box, five landmarks and a score per face.

    Frames wider than `detect_width` are searched downscaled. Landmarks are (5, 2): the eyes
    (image-left first), the nose tip, the mouth corners.
    """

    def __init__(self, model_path=None, min_face=None, detect_width=None, score_threshold=YUNET_SCORE_THRESHOLD):
        min_face, detect_width = min_face or VIDEO_MIN_FACE, detect_width or VIDEO_WIDTH
        path = yunet_model_path(model_path)
        try:
            self.net = cv2.FaceDetectorYN.create(path, "", (320, 320), score_threshold, YUNET_NMS_THRESHOLD,
                                                 YUNET_TOP_K)
        except cv2.error as error:
            reason = str(error).strip().splitlines()[-1]
            raise DetectorError(f"OpenCV could not load {path} as YuNet: {reason}") from None
        self.min_face, self.detect_width, self.input_size = min_face, detect_width, None

    def detect(self, frame):
        bgr = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR) if frame.ndim == 2 else frame
        factor = min(1.0, self.detect_width / bgr.shape[1])
        small = cv2.resize(bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA) if factor < 1 else bgr
        size = (small.shape[1], small.shape[0])
        if size != self.input_size:
            self.net.setInputSize(size)
            self.input_size = size
        _, found = self.net.detect(small)
        faces = []
        for row in [] if found is None else found / factor:
            x, y, w, h = (int(round(v)) for v in row[:4])
            if min(w, h) >= self.min_face:
                faces.append({"box": (x, y, w, h), "landmarks": row[4:14].reshape(5, 2), "score": float(row[14])})
        return sorted(faces, key=lambda face: -face["box"][2] * face["box"][3])


def build_detector(name=DEFAULT_DETECTOR, model_path=None, min_face=None, stills=False):
    """A face detector by name ("yunet" or "haar"), for video frames or (stills=True) still images; raises
    DetectorError."""
    options = {"detect_width": PHOTO_WIDTH if stills else VIDEO_WIDTH}
    if min_face or stills:
        options["min_face"] = min_face or PHOTO_MIN_FACE
    if name == "haar":
        return HaarDetector(**options)
    if name == "yunet":
        return YuNetDetector(model_path, **options)
    raise DetectorError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")


def _square(image, left, top, side):
    """The side x side square of image at (left, top), integer pixels; the frame edge is replicated past it."""
    left, top, side = int(round(left)), int(round(top)), max(1, int(round(side)))
    pad = max(0, -left, -top, left + side - image.shape[1], top + side - image.shape[0])
    if pad:
        image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        left, top = left + pad, top + pad
    return image[top:top + side, left:left + side]


def frame_pixels(frame, face_input=FaceInput()):
    """A BGR (or grey) frame as the network's faces are cut from it: grey, or RGB for a colour network."""
    if face_input.colour:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame


def fit_face(face, face_input=FaceInput()):
    """A face image (grey, or RGB when it has 3 channels) as face_input reads it: its colours, its size (shrunk
    by area averaging, enlarged bilinearly)."""
    if face.ndim == 3 and not face_input.colour:
        face = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    elif face.ndim == 2 and face_input.colour:
        face = cv2.cvtColor(face, cv2.COLOR_GRAY2RGB)
    if face.shape[:2] != (face_input.size, face_input.size):
        shrink = face.shape[0] >= face_input.size
        face = cv2.resize(face, (face_input.size, face_input.size),
                          interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return face


def fit_faces(faces, face_input):
    """fit_face of each uint8 face of a batch (N, H, W) or (N, H, W, 3): a batch as face_input reads it; the batch
    itself when it already is one."""
    faces = np.asarray(faces)
    if faces.shape[1:] == face_input.shape(0)[1:]:
        return faces
    fitted = np.empty(face_input.shape(len(faces)), np.uint8)
    for i, face in enumerate(faces):
        fitted[i] = fit_face(face, face_input)
    return fitted


def read_face_image(path, face_input=FaceInput()):
    """An image file as face_input's pixels (grey or RGB), at its own size; None when unreadable."""
    if not face_input.colour:
        return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def bordered(image):
    """The image with a replicated border of half its size on each side, so a detector can find a tight crop.

    Images under 96 pixels (FER2013's 48x48 faces) are first upscaled 4x, as a photo would show them.
    """
    if image.shape[0] < 96:
        image = cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    pad = max(image.shape[:2]) // 2
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def nearest_to_centre(faces, frame):
    """Of faces ({"box": (x, y, w, h), ...}), the one whose box centre is nearest the frame's centre."""
    centre = np.array(frame.shape[1::-1]) / 2
    return min(faces, key=lambda face: np.linalg.norm(np.add(face["box"][:2], np.divide(face["box"][2:], 2)) - centre))


def crop_box(image, box, scale, size=IMAGE_SIZE):
    """The size x size face `scale` times the box's width, centred on it (Haar's boxes are square, YuNet's
    taller); image: grey or RGB (frame_pixels)."""
    x, y, w, h = box
    side = w * scale
    face = _square(image, x + w / 2 - side / 2, y + h / 2 - side / 2, side)
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)


def crop_aligned(image, box, landmarks, scale=None, size=IMAGE_SIZE):
    """The size x size face turned so its eyes are level, then framed from its box as crop_box frames it.

    The turn comes from the eye landmarks; the size and centre from the box, since YuNet's eye
    distance is a noisier measure of a face's size (it shrinks as the head turns aside).
    """
    scale = scale or YUNET_CROP_SCALE
    left_eye, right_eye = np.asarray(landmarks[0], float), np.asarray(landmarks[1], float)
    angle = float(np.degrees(np.arctan2(*(right_eye - left_eye)[::-1])))  # the eye line's tilt
    x, y, w, h = box
    side = w * scale
    # turn a square that holds the crop at the frame's own resolution (little blur), then
    # cut the crop from its middle and shrink it by area averaging, as crop_box does
    region = int(np.ceil(1.5 * side))
    patch = _square(image, x + w / 2 - region / 2, y + h / 2 - region / 2, region)
    middle = (region - 1) / 2
    upright = cv2.warpAffine(patch, cv2.getRotationMatrix2D((middle, middle), angle, 1.0), (region, region),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    face = _square(upright, middle + 0.5 - side / 2, middle + 0.5 - side / 2, side)
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)


def crop_face(image, face, align=False, size=IMAGE_SIZE):
    """The FER2013-framed size x size crop of a detected face from frame_pixels' image; align=True turns it
    upright first (needs landmarks)."""
    if face["landmarks"] is not None and align:
        return crop_aligned(image, face["box"], face["landmarks"], size=size)
    scale = HAAR_CROP_SCALE if face["landmarks"] is None else YUNET_CROP_SCALE
    return crop_box(image, face["box"], scale, size)


# CLAHE on 48x48 faces: 4x4 tiles of 12 pixels (an eye, a mouth corner), OpenCV's default clip limit
CLAHE_CLIP_LIMIT, CLAHE_TILES = 2.0, (4, 4)


def equalize_contrast(faces):
    """Contrast-limited adaptive histogram equalisation (CLAHE) of uint8 faces (N, H, W): numpy in and out.

    Why: a network that only ever sees contrast-equalised faces, in training (main.py --clahe) and
    at inference (checkpoints record it), cannot depend on a face's exposure or a camera's contrast
    curve. Here, not in data/loaders.py, so that the ONNX runtime path needs no PyTorch.
    """
    clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP_LIMIT, tileGridSize=CLAHE_TILES)
    faces = np.asarray(faces, dtype=np.uint8)
    return np.stack([clahe.apply(np.ascontiguousarray(face)) for face in faces]) if len(faces) else faces.copy()
