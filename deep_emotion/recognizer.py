"""Face detection + expression classification on BGR frames: the Python API behind `visualize.py --cam`.

    from deep_emotion.recognizer import EmotionRecognizer
    recognizer = EmotionRecognizer()                # the default model; or a checkpoint, or several
    for face in recognizer.detect_emotions(frame):   # frame: BGR uint8 (H, W, 3)
        print(face["box"], face["label"], face["confidence"], face["emotions"])
"""
import collections
import dataclasses
import importlib.util
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from deep_emotion import face_detectors, tracking
from deep_emotion.emotions import CLASS_NAMES
from deep_emotion.face_detectors import DEFAULT_DETECTOR, build_detector, crop_face, frame_pixels
from deep_emotion.tracking import Tracker, iou

# the engines that run the classifier; "auto" is onnxruntime where it can run the model (pick_backend)
BACKENDS = ("auto", "onnx", "torch")
# faces are searched for on one frame in DETECT_EVERY and followed (tracking.Tracker.follow) in between:
# chosen with benchmarks/follow_faces.py, speed against boxes and labels (benchmarks/README.md); each face is
# classified on one frame in CLASSIFY_EVERY of its frames and keeps its probabilities in between
DETECT_EVERY = 3
CLASSIFY_EVERY = 3
# frames of a video in flight in EmotionRecognizer.stream at most: a search and the classification of other frames
# overlap on two cores
STREAM_AHEAD = 4
# in stream, a frame's faces are classified in two halves at once from this many on (a group of people): the live
# rate of group scenes of 4 and 9 faces rose by a quarter and a half; with 2-3 faces it did not move
# (benchmarks/README.md)
PARALLEL_FACES = 4
# The default model of the API, the commands (visualize.py, analyze.py) and export_onnx.py: two networks as one
# checkpoint (model.FaceEnsemble), deep_emotion_vgg_heads and dlib's face trunk fine-tuned (face_resnet), each
# trained on FER+'s votes, FER2013's labels (a head each) and RAF-DB, calibrated as a whole: better on real faces
# than either alone and as good as the first on FER2013's labels (its model card)
PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"  # installed with the package
DEFAULT_MODEL = PACKAGE_WEIGHTS / "deep_emotion_pair.pt"
PAPER_MODEL = PACKAGE_WEIGHTS / "deep_emotion.pt"  # the paper's network, trained on FER2013
# the light twin (a tenth of the default's work per face): the browser page's model and visualize.py --fast
LIGHT_MODEL = PACKAGE_WEIGHTS / "deep_emotion_light.pt"


@dataclasses.dataclass(frozen=True)
class LiveSettings:
    """How the pipeline reads a video, as one object: the face detector, the search and classification intervals,
    alignment, smoothing, test-time augmentation, the decision rule, the engine and the head. visualize.py's live
    flags and analyze's build it (from_args), EmotionRecognizer takes it (recognizer_kwargs), and export --web
    writes it into the page's models.json; each field's default is the pipeline's."""

    detector: str = DEFAULT_DETECTOR
    detector_model: str = None
    detect_every: int = DETECT_EVERY
    classify_every: int = CLASSIFY_EVERY
    align: bool = False
    smooth: float = 0.0
    tta: str = None
    balanced: bool = False
    backend: str = "auto"
    head: str = None

    @classmethod
    def from_args(cls, args, **given):
        """The settings of a parser's namespace (a field it lacks keeps its default; --head auto is None), with
        `given` over them."""
        values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
        if values.get("head") == "auto":
            values["head"] = None
        return cls(**{**values, **given})

    def recognizer_kwargs(self):
        """EmotionRecognizer's keyword arguments for these settings."""
        return dataclasses.asdict(self)


def pick_backend(backend, model_paths, device="cpu"):
    """The engine "auto" means: onnxruntime (the faster on a CPU: benchmarks/README.md) where it is installed, the
    device is the CPU and every model is an .onnx file or can be exported (onnx and onnxscript installed);
    PyTorch otherwise. An .onnx model always runs on onnxruntime; "torch" and "onnx" are taken as they are."""
    paths = [model_paths] if isinstance(model_paths, (str, os.PathLike)) else list(model_paths)
    if backend != "auto":
        return "onnx" if any(str(p).endswith(".onnx") for p in paths) else backend
    if any(str(p).endswith(".onnx") for p in paths):
        return "onnx"
    installed = [importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx", "onnxscript")]
    return "onnx" if str(device) == "cpu" and all(installed) else "torch"


def build_classifier(model_paths, device="cpu", tta=None, balanced=False, backend="auto", head=None, threads=0):
    """The classifier of one or more checkpoints, on the engine `backend` picks (pick_backend): OnnxClassifier
    (onnxruntime) or inference.Ensemble (PyTorch), which answer alike (numpy probabilities, heads, use_head).

    The ONNX engine takes .onnx files as they are, and .pt checkpoints as exported once into the user's cache
    (onnx_export.exported); given only .onnx files, or checkpoints already cached, it runs without PyTorch.
    head: a multi-head checkpoint's label set (None = its default). threads: onnxruntime's threads (0: its own
    choice; PyTorch's are the process's, torch.set_num_threads).
    """
    paths = [model_paths] if isinstance(model_paths, (str, os.PathLike)) else list(model_paths)
    if pick_backend(backend, paths, device) == "onnx":
        from deep_emotion.onnx_classifier import OnnxClassifier
        if any(not str(p).endswith(".onnx") for p in paths):
            from deep_emotion.onnx_export import exported  # PyTorch only to export a graph not cached yet
            paths = [p if str(p).endswith(".onnx") else exported(p) for p in paths]
        classifier = OnnxClassifier(paths, tta, balanced, threads)
        if head is not None:
            classifier.use_head(head)
        return classifier
    from deep_emotion.inference import Ensemble  # here, so that the ONNX engine never imports PyTorch
    return Ensemble(paths, device, tta, balanced, head)


class EmotionRecognizer:
    """Finds every face in a frame and classifies all of them in one batch.

    model_path: one checkpoint, or a list whose probabilities are averaged (an ensemble).
    detector: "yunet" (OpenCV's CNN detector, the default, shipped in the package; detector_model
    names another .onnx file) or "haar" (OpenCV's frontal-face cascade, the original repository's);
    with YuNet, align=True turns each face so its eyes are level before the crop.
    Each face gets a track id that follows it from frame to frame (tracking.Tracker);
    `smooth` in [0, 1) averages each track's probabilities over its frames
    (exponential moving average), so labels do not flicker; 0 turns it off.
    stills=True treats every frame as an unrelated photo: ids start again at 0 and
    nothing is smoothed. detect_every=N searches for faces on one frame in N and follows
    the tracks' boxes in between (Tracker.follow), searching at once when a track is lost
    or about to leave the frame; 1 searches every frame. classify_every=M classifies each
    face on one of its frames in M (a new face at once) and gives it the same probabilities
    in between: expressions change over several frames. Stills are always searched and
    classified. `tta` ("flip" or "shifts", see `inference.TTA_MODES`) also classifies
    mirrored (and shifted) copies of each face and averages: 2 or 10 times the
    classification time. balanced=True divides
    out the training prior (`emotions.balance`); head picks a multi-head checkpoint's
    label set (None: its default, FER+'s sense). backend: "auto" (onnxruntime where installed, else PyTorch),
    "onnx" or "torch" (see pick_backend), with `threads` threads for onnxruntime (0: its choice).
    """

    def __init__(self, model_path=DEFAULT_MODEL, device="cpu", smooth=0.0, min_face=None, tta=None,
                 detector=DEFAULT_DETECTOR, detector_model=None, align=False, balanced=False, stills=False,
                 backend="auto", head=None, detect_every=DETECT_EVERY, classify_every=CLASSIFY_EVERY, threads=0):
        if detect_every < 1 or classify_every < 1:
            raise ValueError("detect_every and classify_every must be at least 1, "
                             f"not {detect_every}, {classify_every}")
        self.classifier = build_classifier(model_path, device, tta, balanced, backend, head, threads)
        self.class_names = self.classifier.class_names
        self.face_input = self.classifier.face_input  # each face is cropped at the network's size and colours
        self.detector = build_detector(detector, detector_model, min_face, stills=stills)
        self.smooth, self.align, self.stills = smooth, align, stills
        self.tracker = Tracker()
        self.detect_every = 1 if stills else detect_every
        self.classify_every = 1 if stills else classify_every
        self.since_search = 0  # frames since the last search
        self.timings = {"detect": 0.0, "crop": 0.0, "classify": 0.0}
        self.helper = None  # in stream: the thread that classifies the second half of a group's faces

    def reset(self):
        """Forgets every face followed so far, as before a new, unrelated video: ids start again from 0."""
        self.tracker.reset()
        self.since_search = 0

    def find_faces(self, frame):
        """The faces of a frame, largest first: {"box": (x, y, w, h), "landmarks": (5, 2) or None, "score"}."""
        return self.detector.detect(frame)

    def classify(self, faces):
        """Probabilities (N, 7) for uint8 faces as self.face_input reads them ((N, 48, 48) grey for most). In stream,
        PARALLEL_FACES faces or more are read in two halves at once: the core that searches for faces between
        frames is idle most of the time (both engines answer from several threads at once)."""
        faces = np.stack(faces)
        if self.helper is None or len(faces) < PARALLEL_FACES:
            return self.classifier.predict(faces)
        first, second = np.array_split(faces, 2)
        later = self.helper.submit(self.classifier.predict, second)
        return np.concatenate([self.classifier.predict(first), later.result()])

    def _find_and_crop(self, frame):
        """(faces, crops) of every face in a BGR frame, searched for; faces are find_faces' dicts."""
        start = time.perf_counter()
        found = self.find_faces(frame)
        detected = time.perf_counter()
        pixels = frame_pixels(frame, self.face_input)
        crops = [crop_face(pixels, face, self.align, self.face_input.size) for face in found]
        self.timings["detect"] += detected - start
        self.timings["crop"] += time.perf_counter() - detected
        return found, crops

    def _follow_and_crop(self, frame):
        """(tracks, crops) at the tracks' followed boxes, or None when this frame must be searched."""
        if self.since_search + 1 >= self.detect_every:
            return None
        tracks = self.tracker.follow(frame.shape[1], frame.shape[0])
        if tracks is None:
            return None
        start = time.perf_counter()
        pixels = frame_pixels(frame, self.face_input)
        crops = [crop_face(pixels, {"box": shown_box(track.box), "landmarks": track.landmarks}, self.align,
                           self.face_input.size) for track in tracks]
        self.timings["crop"] += time.perf_counter() - start
        self.since_search += 1
        return tracks, crops

    def _track_found(self, found):
        """The tracks of a searched frame's faces, in their order."""
        if self.stills:
            self.tracker.reset()
        self.since_search = 0
        tracks = self.tracker.update([face["box"] for face in found])
        for track, face in zip(tracks, found):
            track.landmarks, track.score = face["landmarks"], face.get("score")
        return tracks

    def _locate(self, frame):
        """The first stage of a frame, geometry only: (tracks, their boxes and scores now, crops, how), how
        "followed" or "search". The boxes are taken now because a track moves on with the next frame's first stage,
        which may run before this frame's second stage (_classify) in stream()."""
        frame = as_bgr(frame)
        followed = self._follow_and_crop(frame)
        if followed is not None:
            tracks, crops = followed
            how = "followed"
        else:
            found, crops = self._find_and_crop(frame)
            tracks, how = self._track_found(found), "search"
        return tracks, [(shown_box(track.box), track.score) for track in tracks], crops, how

    def _classify(self, tracks, boxes, crops, how):
        """The second stage: the result dicts of detect_emotions for the tracks of _locate, from their crops. It
        touches only the tracks' probabilities, so that it may run beside the next frame's _locate."""
        if not tracks:
            return []
        due = [i for i, track in enumerate(tracks)
               if track.probabilities is None or track.since_classified + 1 >= self.classify_every]
        start = time.perf_counter()
        fresh = dict(zip(due, self.classify([crops[i] for i in due]))) if due else {}
        self.timings["classify"] += time.perf_counter() - start
        results = []
        for i, (track, (box, score)) in enumerate(zip(tracks, boxes)):
            if i in fresh:
                p = fresh[i]
                if self.smooth > 0 and not self.stills and track.probabilities is not None:
                    p = self.smooth * track.probabilities + (1 - self.smooth) * p
                track.probabilities, track.since_classified = p, 0
            else:  # classified a frame or two ago: the same reading
                p = track.probabilities
                track.since_classified += 1
            k = int(p.argmax())
            results.append({"box": box, "face": track.id, "label": self.class_names[k],
                            "confidence": float(p[k]), "emotions": dict(zip(self.class_names, map(float, p))),
                            "found": how, "score": score})
        return results

    def detect_emotions(self, frame):
        """Every face in a BGR frame: a list of {"box": (x, y, w, h), "face", "label", "confidence", "emotions",
        "found", "score"}.

        "face" is the face's track id, the same number for the same face from frame to frame;
        "emotions" maps each class name to its probability, as the `fer` package does; "found" says
        whether the box came from a face search ("search") or was followed from earlier frames
        ("followed", see detect_every); "score" is the detector's confidence in the face, from the
        search that last found it (1.0 from the Haar cascade, which gives none).
        """
        return self._classify(*self._locate(frame))

    def stream(self, frames):
        """detect_emotions over an iterable of (name, frame): yields (name, frame, results) in order, the same
        results as detect_emotions frame by frame.

        Three things overlap on two cores: the next frame's faces are searched for or followed and cropped
        (_locate, one worker thread), this frame's are classified (_classify, another; a group's faces in two
        halves, classify), and the caller draws or writes the frame before (OpenCV and the engines release the
        GIL). The two stages share no state: _locate moves the tracks' boxes, _classify their probabilities; each
        runs its frames in order. A frame is yielded once it is done and the next one has been read.
        """
        pending = collections.deque()  # (name, frame, the future of its results), oldest first
        with ThreadPoolExecutor(1) as locating, ThreadPoolExecutor(1) as classifying, ThreadPoolExecutor(1) as helper:
            self.helper = helper  # classify() hands it half of a group's faces
            try:
                for name, frame in frames:
                    located = locating.submit(self._locate, frame)
                    pending.append((name, frame, classifying.submit(lambda located=located: self._classify(
                        *located.result()))))
                    # what is done goes out at once (a camera's frame waits for nothing but the next one); a video
                    # read faster than it is classified keeps up to STREAM_AHEAD frames in flight
                    while pending and (pending[0][2].done() or len(pending) > STREAM_AHEAD):
                        oldest_name, oldest_frame, results = pending.popleft()
                        yield oldest_name, oldest_frame, results.result()
                for oldest_name, oldest_frame, results in pending:
                    yield oldest_name, oldest_frame, results.result()
            finally:
                self.helper = None


def as_bgr(frame):
    """A frame as the pipeline reads it, uint8 BGR (H, W, 3), from what a user plausibly passes: BGR, grey (H, W)
    or (H, W, 1), BGRA (H, W, 4), in uint8, or in floats of 0..1 (an image's maximum at most 1) or 0..255.
    Anything else raises ValueError in one line naming its shape and dtype."""
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"detect_emotions needs an image array (H, W, 3) or (H, W), not {type(frame).__name__}"
                         + (": cv2.imread gives None for a file that is missing or not an image"
                            if frame is None else ""))
    channels = 1 if frame.ndim == 2 else frame.shape[2] if frame.ndim == 3 else None
    numeric = np.issubdtype(frame.dtype, np.integer) or np.issubdtype(frame.dtype, np.floating)
    if channels not in (1, 3, 4) or not numeric or frame.dtype == np.bool_ or min(frame.shape[:2]) < 1:
        raise ValueError(f"detect_emotions needs a BGR (H, W, 3), BGRA (H, W, 4) or grey (H, W) image, not an array "
                         f"of shape {frame.shape} and dtype {frame.dtype}")
    if frame.dtype != np.uint8:
        values = frame.astype(np.float32)
        low, high = float(values.min()), float(values.max())
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 255:
            raise ValueError(f"detect_emotions needs pixel values in 0..255 (or 0..1 floats); this {frame.dtype} "
                             f"image of shape {frame.shape} holds {low:g}..{high:g}")
        if np.issubdtype(frame.dtype, np.floating) and high <= 1:
            values = values * 255
        frame = np.round(values).astype(np.uint8)
    if channels == 1:
        return cv2.cvtColor(frame.reshape(frame.shape[:2]), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(frame)


def shown_box(box):
    """A box as results and drawings give it: whole pixels, Python's rounding (a followed box is fractional)."""
    return tuple(int(round(v)) for v in box)


BAR_WIDTH, BAR_ROW = 96, 13  # a face's bar chart: its width (names and bars) and one class's row


def bar_chart_origin(box, others, frame_width, frame_height):
    """Where a face's bar chart goes: right of its box, else left of it, else below it, at the first place
    inside the frame that covers none of the other faces' boxes; right of the box (or left, at the frame's
    edge) when every place covers one."""
    x, y, w, h = box
    height = len(CLASS_NAMES) * BAR_ROW
    for left, top in ((x + w + 6, y), (x - BAR_WIDTH, y), (x, y + h + 6)):
        area = (left, top, BAR_WIDTH, height)
        inside = left >= 0 and top >= 0 and left + BAR_WIDTH <= frame_width and top + height <= frame_height
        if inside and not any(iou(area, other) > 0 for other in others):
            return left, top
    return (x + w + 6 if x + w + BAR_WIDTH < frame_width else max(0, x - BAR_WIDTH)), y


def draw(frame, results, fps=None):
    """Draws each face's box, label, confidence and a bar chart of the 7 probabilities, in place; fps, when given,
    is the frame rate over the last RECENT_FRAMES frames, shown under that name."""
    boxes = [face["box"] for face in results]
    for face in results:
        x, y, w, h = face["box"]
        cv2.rectangle(frame, (x, y), (x + w, y + h), (0, 255, 0), 2)
        track = f"#{face['face']} " if "face" in face else ""
        cv2.putText(frame, f"{track}{face['label']} {face['confidence']:.0%}", (x, max(12, y - 6)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 2, cv2.LINE_AA)
        others = [box for box in boxes if box is not face["box"]]
        bar_x, bar_y = bar_chart_origin(face["box"], others, frame.shape[1], frame.shape[0])
        for i, (name, p) in enumerate(face["emotions"].items()):
            top = bar_y + i * BAR_ROW
            cv2.rectangle(frame, (bar_x + 30, top), (bar_x + 30 + int(60 * p), top + 10), (0, 200, 255), -1)
            cv2.putText(frame, name[:3], (bar_x, top + 9), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                        cv2.LINE_AA)
    if fps is not None:
        cv2.putText(frame, fps_label(fps), (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 2, cv2.LINE_AA)
    return frame


RECENT_FRAMES = 30  # the overlay's frame rate is over the last this many frames


def fps_label(fps):
    """The overlay's frame rate, named as what it is: over the recent frames, not the run's average."""
    return f"{fps:.1f} frames/s (last {RECENT_FRAMES})"


# The class's name until it was renamed: "detector" now means the face detector alone
EmotionDetector = EmotionRecognizer


def pipeline_settings():
    """The constants the page's pipeline (web/pipeline.js) shares with the Python one, from their definitions."""
    return {"yunet_score_threshold": face_detectors.YUNET_SCORE_THRESHOLD,
            "yunet_nms_threshold": face_detectors.YUNET_NMS_THRESHOLD, "yunet_top_k": face_detectors.YUNET_TOP_K,
            "yunet_crop_scale": face_detectors.YUNET_CROP_SCALE, "video_width": face_detectors.VIDEO_WIDTH,
            "photo_width": face_detectors.PHOTO_WIDTH, "video_min_face": face_detectors.VIDEO_MIN_FACE,
            "photo_min_face": face_detectors.PHOTO_MIN_FACE,
            "max_missed": tracking.MAX_MISSED, "iou_threshold": tracking.IOU_THRESHOLD,
            "bar_width": BAR_WIDTH, "bar_row": BAR_ROW}
