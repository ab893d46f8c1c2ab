// Deep-Emotion in the browser: YuNet finds the faces, the exported classifier reads them, both with
// onnxruntime-web; nothing leaves the page. Each step is a port of the Python pipeline, decision for
// decision, and names the Python function it follows (README "The browser demo" lists them).
//
// URL parameters: backend=wasm|webgpu (default: webgpu when the browser has it), threads=N (WASM
// threads; needs cross-origin isolation, see serve.py), model=default|paper, smooth=0..0.95 (per-track
// smoothing, default 0 as in visualize.py), capture=N (keep the first N frames' pixels, for the
// parity test), models=PATH (where the .onnx files are, default models/).
import * as ort from "./node_modules/onnxruntime-web/dist/ort.webgpu.min.mjs";

const params = new URLSearchParams(location.search);
const MODELS = (params.get("models") || "models").replace(/\/$/, "");
const CAPTURE = Number(params.get("capture") || 0);
const SMOOTH = Math.min(0.95, Math.max(0, Number(params.get("smooth") || 0)));

// face_detectors.py: YuNet's thresholds, the framing and the search sizes
const YUNET_SCORE_THRESHOLD = 0.6;
const YUNET_NMS_THRESHOLD = 0.3;
const YUNET_TOP_K = 5000;
const YUNET_CROP_SCALE = 1.23;
const VIDEO_WIDTH = 320, PHOTO_WIDTH = 1280, VIDEO_MIN_FACE = 16, PHOTO_MIN_FACE = 24;
const IMAGE_SIZE = 48;
const MAX_MISSED = 5, IOU_THRESHOLD = 0.3; // tracking.Tracker's defaults

// what the page has done, for people (the status line) and for tests (window.deepEmotion)
const state = window.deepEmotion = { ready: false, error: null, backend: null, threads: 1, frames: [],
                                     captures: [], fps: null, source: null };

const $ = (id) => document.getElementById(id);

function showError(message) {
  state.error = message;
  $("error").textContent = message;
  $("error").hidden = false;
}

function showStatus(message) {
  $("status").textContent = message;
}

// ---------------------------------------------------------------- numbers as OpenCV and Python make them

// Python's round(): halves go to the even neighbour
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// OpenCV's saturate_cast<uchar>(float): round to nearest even, clamp to 0..255
function saturateU8(x) {
  return Math.min(255, Math.max(0, roundHalfEven(x)));
}

// cv2.cvtColor(BGR2GRAY) on 8 bits: fixed-point 0.299 R + 0.587 G + 0.114 B
function grayFromRGBA(rgba, width, height) {
  const gray = new Uint8Array(width * height);
  for (let i = 0, p = 0; i < gray.length; i++, p += 4) {
    gray[i] = (rgba[p] * 4899 + rgba[p + 1] * 9617 + rgba[p + 2] * 1868 + 8192) >> 14;
  }
  return gray;
}

function bgrFromRGBA(rgba, width, height) {
  const bgr = new Uint8Array(width * height * 3);
  for (let i = 0, p = 0; p < rgba.length; i += 3, p += 4) {
    bgr[i] = rgba[p + 2]; bgr[i + 1] = rgba[p + 1]; bgr[i + 2] = rgba[p];
  }
  return bgr;
}

// One axis of cv2.resize's INTER_AREA table (OpenCV's computeResizeAreaTab): [dst, src, weight] triples.
function areaTable(srcSize, dstSize, scale) {
  const table = [];
  for (let dx = 0; dx < dstSize; dx++) {
    const fsx1 = dx * scale, fsx2 = fsx1 + scale;
    const cellWidth = Math.min(scale, srcSize - fsx1);
    let sx1 = Math.ceil(fsx1), sx2 = Math.floor(fsx2);
    sx2 = Math.min(sx2, srcSize - 1);
    sx1 = Math.min(sx1, sx2);
    if (sx1 - fsx1 > 1e-3) table.push([dx, sx1 - 1, Math.fround((sx1 - fsx1) / cellWidth)]);
    for (let sx = sx1; sx < sx2; sx++) table.push([dx, sx, Math.fround(1 / cellWidth)]);
    if (fsx2 - sx2 > 1e-3) table.push([dx, sx2, Math.fround(Math.min(Math.min(fsx2 - sx2, 1), cellWidth) / cellWidth)]);
  }
  return table;
}

// cv2.resize(src, (dstW, dstH), interpolation=cv2.INTER_AREA) for a downscale, channels interleaved.
// scaleX/Y are OpenCV's source pixels per destination pixel. Integer scales take OpenCV's fast path
// (a plain average, halves rounded up for 2x2); others sum float32 weights row by row as OpenCV does.
function resizeArea(src, srcW, srcH, channels, dstW, dstH, scaleX, scaleY) {
  const dst = new Uint8Array(dstW * dstH * channels);
  const ix = Math.round(scaleX), iy = Math.round(scaleY);
  if (Math.abs(scaleX - ix) < Number.EPSILON && Math.abs(scaleY - iy) < Number.EPSILON) {
    const area = ix * iy, weight = Math.fround(1 / area);
    for (let y = 0; y < dstH; y++) {
      for (let x = 0; x < dstW; x++) {
        for (let c = 0; c < channels; c++) {
          let sum = 0;
          for (let dy = 0; dy < iy; dy++) {
            for (let dx = 0; dx < ix; dx++) sum += src[((y * iy + dy) * srcW + x * ix + dx) * channels + c];
          }
          dst[(y * dstW + x) * channels + c] = area === 4 ? (sum + 2) >> 2 : saturateU8(Math.fround(sum * weight));
        }
      }
    }
    return dst;
  }
  const xTable = areaTable(srcW, dstW, scaleX), yTable = areaTable(srcH, dstH, scaleY);
  const rowWidth = dstW * channels;
  const buf = new Float32Array(rowWidth), sum = new Float32Array(rowWidth);
  let previous = yTable[0][0];
  const flush = (dy) => {
    for (let i = 0; i < rowWidth; i++) dst[dy * rowWidth + i] = saturateU8(sum[i]);
  };
  for (const [dy, sy, beta] of yTable) {
    buf.fill(0);
    for (const [dx, sx, alpha] of xTable) {
      for (let c = 0; c < channels; c++) {
        buf[dx * channels + c] = Math.fround(buf[dx * channels + c] + Math.fround(src[(sy * srcW + sx) * channels + c] * alpha));
      }
    }
    if (dy !== previous) {
      flush(previous);
      for (let i = 0; i < rowWidth; i++) sum[i] = Math.fround(beta * buf[i]);
      previous = dy;
    } else {
      for (let i = 0; i < rowWidth; i++) sum[i] = Math.fround(sum[i] + Math.fround(beta * buf[i]));
    }
  }
  flush(previous);
  return dst;
}

// cv2.resize(..., INTER_LINEAR) for the rare crop smaller than 48 pixels (OpenCV upscales INTER_AREA
// bilinearly): half-pixel centres, edges clamped. Not bit-exact with OpenCV's fixed-point version.
function resizeLinear(src, srcW, srcH, dstW, dstH) {
  const dst = new Uint8Array(dstW * dstH);
  const sx = srcW / dstW, sy = srcH / dstH;
  for (let y = 0; y < dstH; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5), y0 = Math.min(srcH - 1, Math.floor(fy)), y1 = Math.min(srcH - 1, y0 + 1);
    for (let x = 0; x < dstW; x++) {
      const fx = Math.max(0, (x + 0.5) * sx - 0.5), x0 = Math.min(srcW - 1, Math.floor(fx)), x1 = Math.min(srcW - 1, x0 + 1);
      const ax = fx - x0, ay = fy - y0;
      const top = src[y0 * srcW + x0] * (1 - ax) + src[y0 * srcW + x1] * ax;
      const bottom = src[y1 * srcW + x0] * (1 - ax) + src[y1 * srcW + x1] * ax;
      dst[y * dstW + x] = saturateU8(top * (1 - ay) + bottom * ay);
    }
  }
  return dst;
}

// ---------------------------------------------------------------- YuNet (face_detectors.YuNetDetector)

// OpenCV's FaceDetectorYN: pad to a multiple of 32, decode each stride's grid, keep the boxes above the
// score threshold, then non-maximum suppression on integer boxes (NMSBoxes on Rect2i).
async function yunetDetect(session, bgr, width, height) {
  const padW = (Math.floor((width - 1) / 32) + 1) * 32, padH = (Math.floor((height - 1) / 32) + 1) * 32;
  const input = new Float32Array(3 * padW * padH); // zeros past the image: copyMakeBorder's constant 0
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3, q = y * padW + x;
      input[q] = bgr[p]; input[padW * padH + q] = bgr[p + 1]; input[2 * padW * padH + q] = bgr[p + 2];
    }
  }
  const out = await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", input, [1, 3, padH, padW]) });
  const faces = [];
  for (const stride of [8, 16, 32]) {
    const cls = out[`cls_${stride}`].data, obj = out[`obj_${stride}`].data;
    const bbox = out[`bbox_${stride}`].data, kps = out[`kps_${stride}`].data;
    const cols = padW / stride, rows = padH / stride;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        const score = Math.fround(Math.sqrt(Math.fround(Math.min(1, Math.max(0, cls[i])) * Math.min(1, Math.max(0, obj[i])))));
        const cx = Math.fround((c + bbox[i * 4]) * stride), cy = Math.fround((r + bbox[i * 4 + 1]) * stride);
        const w = Math.fround(Math.exp(bbox[i * 4 + 2]) * stride), h = Math.fround(Math.exp(bbox[i * 4 + 3]) * stride);
        const x1 = Math.fround(cx - w / 2), y1 = Math.fround(cy - h / 2);
        const landmarks = [];
        for (let n = 0; n < 5; n++) {
          landmarks.push([Math.fround((kps[i * 10 + 2 * n] + c) * stride), Math.fround((kps[i * 10 + 2 * n + 1] + r) * stride)]);
        }
        faces.push({ box: [x1, y1, w, h], rect: [Math.trunc(x1), Math.trunc(y1), Math.trunc(w), Math.trunc(h)], landmarks, score });
      }
    }
  }
  return nonMaximumSuppression(faces);
}

function rectOverlap(a, b) {
  const ix = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  return inter === 0 ? 0 : inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

// cv::dnn::NMSBoxes: scores above the threshold, best first (stable), each kept unless it overlaps a kept one
function nonMaximumSuppression(faces) {
  const candidates = faces.map((f, i) => [f.score, i]).filter(([s]) => s > YUNET_SCORE_THRESHOLD);
  candidates.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const kept = [];
  for (const [, i] of candidates.slice(0, YUNET_TOP_K)) {
    if (kept.every((k) => rectOverlap(faces[k].rect, faces[i].rect) <= YUNET_NMS_THRESHOLD)) kept.push(i);
  }
  return kept.map((i) => faces[i]);
}

// YuNetDetector.detect: search a copy at most detectWidth wide, boxes back in frame pixels (rounded as
// Python rounds), faces under minFace dropped, the largest first
async function findFaces(session, rgba, width, height, still) {
  const factor = Math.min(1, (still ? PHOTO_WIDTH : VIDEO_WIDTH) / width);
  let bgr = bgrFromRGBA(rgba, width, height), w = width, h = height;
  if (factor < 1) {
    w = roundHalfEven(width * factor); h = roundHalfEven(height * factor);
    bgr = resizeArea(bgr, width, height, 3, w, h, 1 / factor, 1 / factor);
  }
  const minFace = still ? PHOTO_MIN_FACE : VIDEO_MIN_FACE;
  const found = (await yunetDetect(session, bgr, w, h)).map((f) => ({
    box: f.box.map((v) => roundHalfEven(Math.fround(v / factor))),
    landmarks: f.landmarks.map(([x, y]) => [x / factor, y / factor]), score: f.score,
  })).filter((f) => Math.min(f.box[2], f.box[3]) >= minFace);
  return found.map((f, i) => [f, i]).sort((a, b) => b[0].box[2] * b[0].box[3] - a[0].box[2] * a[0].box[3] || a[1] - b[1])
    .map(([f]) => f);
}

// ---------------------------------------------------------------- the crop (face_detectors.crop_box)

// _square: the side x side square at (left, top), integer pixels, the frame's edge replicated past it;
// then INTER_AREA down to 48x48
function cropFace(gray, width, height, box) {
  const [x, y, w, h] = box;
  const exactSide = w * YUNET_CROP_SCALE;
  const left = roundHalfEven(x + w / 2 - exactSide / 2), top = roundHalfEven(y + h / 2 - exactSide / 2);
  const side = Math.max(1, roundHalfEven(exactSide));
  const square = new Uint8Array(side * side);
  for (let r = 0; r < side; r++) {
    const sy = Math.min(height - 1, Math.max(0, top + r));
    for (let c = 0; c < side; c++) {
      square[r * side + c] = gray[sy * width + Math.min(width - 1, Math.max(0, left + c))];
    }
  }
  if (side < IMAGE_SIZE) return resizeLinear(square, side, side, IMAGE_SIZE, IMAGE_SIZE);
  const scale = 1 / (IMAGE_SIZE / side); // OpenCV's scale_x = 1 / inv_scale_x
  return resizeArea(square, side, side, 1, IMAGE_SIZE, IMAGE_SIZE, scale, scale);
}

// ---------------------------------------------------------------- tracking (tracking.Tracker)

function iou(a, b) {
  const ix = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  return inter ? inter / (a[2] * a[3] + b[2] * b[3] - inter) : 0;
}

const centre = (b) => [b[0] + b[2] / 2, b[1] + b[3] / 2];

class Tracker {
  constructor() { this.reset(); }

  reset() { this.tracks = []; this.nextId = 0; }

  update(boxes) {
    const predicted = this.tracks.map((t) => [t.box[0] + t.velocity[0] * (t.missed + 1),
                                             t.box[1] + t.velocity[1] * (t.missed + 1), t.box[2], t.box[3]]);
    const pairs = [];
    boxes.forEach((box, i) => predicted.forEach((p, j) => pairs.push([iou(box, p), i, j])));
    pairs.sort((a, b) => b[0] - a[0] || b[1] - a[1] || b[2] - a[2]); // Python's sorted(..., reverse=True)
    const assigned = new Map(), taken = new Set();
    for (const [overlap, i, j] of pairs) {
      if (overlap >= IOU_THRESHOLD && !assigned.has(i) && !taken.has(j)) { assigned.set(i, j); taken.add(j); }
    }
    boxes.forEach((box, i) => {
      if (assigned.has(i)) return;
      let best = [Infinity, null];
      this.tracks.forEach((_, j) => {
        if (taken.has(j)) return;
        const [a, b] = [centre(box), centre(predicted[j])];
        const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
        if (d < best[0] || (d === best[0] && j < best[1])) best = [d, j];
      });
      if (best[1] !== null && best[0] <= box[2]) { assigned.set(i, best[1]); taken.add(best[1]); }
    });
    const result = boxes.map((box, i) => {
      if (assigned.has(i)) {
        const track = this.tracks[assigned.get(i)], steps = track.missed + 1;
        track.velocity = [(box[0] - track.box[0]) / steps, (box[1] - track.box[1]) / steps];
        track.box = box; track.missed = 0;
        return track;
      }
      const track = { id: this.nextId++, box, velocity: [0, 0], missed: 0, probabilities: null };
      this.tracks.push(track);
      return track;
    });
    this.tracks.forEach((t, j) => { if (!taken.has(j) && !result.includes(t)) t.missed += 1; });
    this.tracks = this.tracks.filter((t) => t.missed <= MAX_MISSED);
    return result;
  }
}

// ---------------------------------------------------------------- the page

let detector = null, classifier = null, classNames = null;
const tracker = new Tracker();
const work = document.createElement("canvas");
const workContext = work.getContext("2d", { willReadFrequently: true });

async function loadModels() {
  const manifestUrl = `${MODELS}/models.json`;
  const manifest = await fetch(manifestUrl).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  if (!manifest) throw new Error(`the model files are missing (${manifestUrl}): run \`python export_onnx.py --web\` and reload`);
  const choice = params.get("model") || "default";
  const entry = manifest.classifiers[choice];
  if (!entry) throw new Error(`no model "${choice}" in ${manifestUrl} (it has: ${Object.keys(manifest.classifiers).join(", ")})`);
  classNames = entry.class_names;
  const webgpu = "gpu" in navigator && params.get("backend") !== "wasm";
  state.threads = Math.max(1, Number(params.get("threads") || 1));
  ort.env.wasm.numThreads = self.crossOriginIsolated ? state.threads : 1;
  if (!self.crossOriginIsolated) state.threads = 1;
  ort.env.wasm.wasmPaths = new URL("./node_modules/onnxruntime-web/dist/", import.meta.url).href;
  const open = async (file, providers) => {
    const response = await fetch(`${MODELS}/${file}`);
    if (!response.ok) throw new Error(`the model file ${MODELS}/${file} is missing: run \`python export_onnx.py --web\``);
    return ort.InferenceSession.create(new Uint8Array(await response.arrayBuffer()), { executionProviders: providers });
  };
  const providers = webgpu ? ["webgpu", "wasm"] : ["wasm"];
  try {
    [detector, classifier] = [await open(manifest.detector, providers), await open(entry.file, providers)];
    state.backend = webgpu ? "webgpu" : "wasm";
  } catch (error) {
    if (!webgpu || /missing/.test(error.message)) throw error;
    [detector, classifier] = [await open(manifest.detector, ["wasm"]), await open(entry.file, ["wasm"])];
    state.backend = "wasm";
  }
  state.model = choice;
  $("backend").textContent = `${state.backend === "webgpu" ? "WebGPU" : `WASM, ${state.threads} thread(s)`} · ${entry.name}`;
}

// EmotionRecognizer.detect_emotions on one frame: find, crop, classify in one batch, track, smooth
async function recognize(rgba, width, height, still) {
  const gray = grayFromRGBA(rgba, width, height);
  const found = await findFaces(detector, rgba, width, height, still);
  if (still) tracker.reset();
  const tracks = tracker.update(found.map((f) => f.box));
  if (!found.length) return [];
  const batch = new Float32Array(found.length * IMAGE_SIZE * IMAGE_SIZE);
  found.forEach((f, i) => batch.set(cropFace(gray, width, height, f.box), i * IMAGE_SIZE * IMAGE_SIZE));
  const out = await classifier.run({ [classifier.inputNames[0]]: new ort.Tensor("float32", batch, [found.length, IMAGE_SIZE, IMAGE_SIZE]) });
  const probabilities = out[classifier.outputNames[0]].data;
  return found.map((f, i) => {
    let p = Array.from(probabilities.slice(i * 7, i * 7 + 7));
    const track = tracks[i];
    if (SMOOTH > 0 && !still && track.probabilities) p = p.map((v, k) => SMOOTH * track.probabilities[k] + (1 - SMOOTH) * v);
    track.probabilities = p;
    const k = p.indexOf(Math.max(...p));
    return { box: f.box, face: track.id, label: classNames[k], confidence: p[k], probabilities: p,
             emotions: Object.fromEntries(classNames.map((n, j) => [n, p[j]])) };
  });
}

// emotion_detector.draw: box, "#id Label 87%", the seven bars, frames/s
function draw(context, results, fps) {
  context.lineWidth = 2;
  for (const r of results) {
    const [x, y, w, h] = r.box;
    context.strokeStyle = "rgb(0,255,0)";
    context.strokeRect(x, y, w, h);
    context.font = "bold 16px sans-serif";
    context.fillStyle = "rgb(0,255,0)";
    context.fillText(`#${r.face} ${r.label} ${Math.round(100 * r.confidence)}%`, x, Math.max(14, y - 6));
    const barX = x + w + 96 < context.canvas.width ? x + w + 6 : Math.max(0, x - 96);
    context.font = "10px sans-serif";
    r.probabilities.forEach((p, i) => {
      const top = y + i * 13;
      context.fillStyle = "rgb(255,200,0)";
      context.fillRect(barX + 30, top, Math.round(60 * p), 10);
      context.fillStyle = "white";
      context.fillText(classNames[i].slice(0, 3), barX, top + 9);
    });
  }
  if (fps !== null) {
    context.font = "bold 16px sans-serif";
    context.fillStyle = "rgb(255,255,0)";
    context.fillText(`${fps.toFixed(1)} FPS`, 8, 20);
  }
}

async function processFrame(source, width, height, still) {
  work.width = width; work.height = height;
  workContext.drawImage(source, 0, 0, width, height);
  const pixels = workContext.getImageData(0, 0, width, height).data;
  if (state.captures.length < CAPTURE) state.captures.push(work.toDataURL("image/png"));
  const start = performance.now();
  const results = await recognize(pixels, width, height, still);
  const end = performance.now();
  state.frames.push({ index: state.frames.length, width, height, ms: end - start, end,
                      faces: results.map(({ box, face, label, confidence, probabilities }) => ({ box, face, label, confidence, probabilities })) });
  // frames/s as visualize.py shows it: from the end of one frame to the end of the next, smoothed
  const seconds = Math.max(1e-6, (end - (lastFrameEnd ?? start)) / 1000);
  lastFrameEnd = end;
  state.fps = state.fps === null ? 1 / seconds : 0.9 * state.fps + 0.1 / seconds;
  const view = $("view");
  view.width = width; view.height = height;
  const context = view.getContext("2d");
  context.drawImage(work, 0, 0);
  draw(context, results, still ? null : state.fps);
}

let running = 0; // bumped to stop the loop of the previous source
let lastFrameEnd = null;

function playVideo(video, label) {
  const run = ++running;
  state.source = label;
  const step = async () => {
    if (run !== running) return;
    if (video.readyState >= 2 && video.videoWidth) {
      try {
        await processFrame(video, video.videoWidth, video.videoHeight, false);
      } catch (error) {
        showError(`processing failed: ${error.message}`);
        return;
      }
    }
    if (!video.ended) requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

async function startCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    showError("This browser offers no camera here (a camera needs https or localhost). Pick a photo or video file instead.");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (error) {
    const why = { NotAllowedError: "Camera permission was refused: allow it in the address bar, or pick a photo or video file.",
                  NotFoundError: "No camera was found: connect one, or pick a photo or video file.",
                  NotReadableError: "The camera is in use by another program: close it, or pick a photo or video file." };
    showError(why[error.name] || `The camera could not be opened (${error.name}): pick a photo or video file instead.`);
    return;
  }
  const video = $("video");
  video.srcObject = stream;
  await video.play();
  showStatus("camera");
  playVideo(video, "camera");
}

function openFile(file) {
  running++;
  $("error").hidden = true;
  const url = URL.createObjectURL(file);
  if (file.type.startsWith("image/")) {
    const image = new Image();
    image.onload = () => {
      state.source = file.name;
      processFrame(image, image.naturalWidth, image.naturalHeight, true).then(() => showStatus(`photo: ${file.name}`))
        .catch((error) => showError(`processing failed: ${error.message}`));
    };
    image.onerror = () => showError(`${file.name} is not an image this browser can read.`);
    image.src = url;
    return;
  }
  const video = $("video");
  video.srcObject = null;
  video.onerror = () => showError(`${file.name} is a video this browser cannot decode; try an MP4 (H.264) or WebM file.`);
  video.src = url;
  video.play().then(() => { showStatus(`video: ${file.name}`); playVideo(video, file.name); })
    .catch(() => showError(`${file.name} is a video this browser cannot decode; try an MP4 (H.264) or WebM file.`));
}

async function main() {
  $("file").addEventListener("change", (event) => event.target.files[0] && openFile(event.target.files[0]));
  $("camera").addEventListener("click", () => { running++; $("error").hidden = true; startCamera(); });
  showStatus("loading the models…");
  try {
    await loadModels();
  } catch (error) {
    showError(`Cannot start: ${error.message}`);
    showStatus("stopped");
    return;
  }
  state.ready = true;
  showStatus("ready");
  if (params.get("camera") !== "0") await startCamera();
}

window.addEventListener("error", (event) => showError(`Unexpected error: ${event.message}`));
main();
