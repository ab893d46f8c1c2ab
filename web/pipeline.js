// The Python pipeline's decisions, ported one for one and free of the page: OpenCV's numbers
// (rounding, colour conversion, INTER_AREA resizing), YuNet's decoding and NMS, the crop, the tracker
// and the face search every N frames (EmotionRecognizer.detect_emotions). app.js runs them on the
// page; `node --test` checks them (web/test/). Each names the Python function it follows.

// The numbers the Python pipeline defines (YuNet's thresholds, the framing, the search sizes, the tracker's
// and the bar chart's), as `deep-emotion export --web` writes them into models.json's "pipeline" from their
// Python definitions (recognizer.pipeline_settings). configure() takes them before anything runs.
export const settings = {};
const SETTING_NAMES = ["yunet_score_threshold", "yunet_nms_threshold", "yunet_top_k", "yunet_crop_scale", "video_width",
  "photo_width", "video_min_face", "photo_min_face", "max_missed", "iou_threshold", "bar_width", "bar_row"];
export function configure(pipeline) {
  const missing = SETTING_NAMES.filter((name) => typeof (pipeline || {})[name] !== "number");
  if (missing.length) throw new Error(`models.json lacks the pipeline's ${missing.join(", ")}: run \`deep-emotion export --web\` again`);
  Object.assign(settings, pipeline);
}

// ---------------------------------------------------------------- numbers as OpenCV and Python make them

// Python's round(): halves go to the even neighbour
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// OpenCV's saturate_cast<uchar>(float): round to nearest even, clamp to 0..255
export function saturateU8(x) {
  return Math.min(255, Math.max(0, roundHalfEven(x)));
}

// cv2.cvtColor(BGR2GRAY) on 8 bits: fixed-point 0.299 R + 0.587 G + 0.114 B
export function grayFromRGBA(rgba, width, height) {
  const gray = new Uint8Array(width * height);
  for (let i = 0, p = 0; i < gray.length; i++, p += 4) {
    gray[i] = (rgba[p] * 4899 + rgba[p + 1] * 9617 + rgba[p + 2] * 1868 + 8192) >> 14;
  }
  return gray;
}

// the frame as a colour network's faces are cut from it (face_detectors.frame_pixels: RGB)
export function rgbFromRGBA(rgba, width, height) {
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0, p = 0; p < rgba.length; i += 3, p += 4) {
    rgb[i] = rgba[p]; rgb[i + 1] = rgba[p + 1]; rgb[i + 2] = rgba[p + 2];
  }
  return rgb;
}

export function bgrFromRGBA(rgba, width, height) {
  const bgr = new Uint8Array(width * height * 3);
  for (let i = 0, p = 0; p < rgba.length; i += 3, p += 4) {
    bgr[i] = rgba[p + 2]; bgr[i + 1] = rgba[p + 1]; bgr[i + 2] = rgba[p];
  }
  return bgr;
}

// One axis of cv2.resize's INTER_AREA table (OpenCV's computeResizeAreaTab): [dst, src, weight] triples.
export function areaTable(srcSize, dstSize, scale) {
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
export function resizeArea(src, srcW, srcH, channels, dstW, dstH, scaleX, scaleY) {
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

// cv2.resize(..., INTER_LINEAR) for a crop smaller than the network's faces (OpenCV upscales INTER_AREA
// bilinearly): half-pixel centres, edges clamped, channels interleaved. Not bit-exact with OpenCV's
// fixed-point version.
export function resizeLinear(src, srcW, srcH, dstW, dstH, channels = 1) {
  const dst = new Uint8Array(dstW * dstH * channels);
  const sx = srcW / dstW, sy = srcH / dstH;
  for (let y = 0; y < dstH; y++) {
    const fy = Math.max(0, (y + 0.5) * sy - 0.5), y0 = Math.min(srcH - 1, Math.floor(fy)), y1 = Math.min(srcH - 1, y0 + 1);
    for (let x = 0; x < dstW; x++) {
      const fx = Math.max(0, (x + 0.5) * sx - 0.5), x0 = Math.min(srcW - 1, Math.floor(fx)), x1 = Math.min(srcW - 1, x0 + 1);
      const ax = fx - x0, ay = fy - y0;
      const p00 = (y0 * srcW + x0) * channels, p01 = (y0 * srcW + x1) * channels;
      const p10 = (y1 * srcW + x0) * channels, p11 = (y1 * srcW + x1) * channels;
      for (let k = 0; k < channels; k++) {
        const top = src[p00 + k] * (1 - ax) + src[p01 + k] * ax;
        const bottom = src[p10 + k] * (1 - ax) + src[p11 + k] * ax;
        dst[(y * dstW + x) * channels + k] = saturateU8(top * (1 - ay) + bottom * ay);
      }
    }
  }
  return dst;
}

// ---------------------------------------------------------------- YuNet (face_detectors.YuNetDetector)

// OpenCV's FaceDetectorYN, the part before the network: the BGR image padded to a multiple of 32
// (zeros past the image: copyMakeBorder's constant 0), as planar float32 (1, 3, padH, padW)
export function yunetInput(bgr, width, height) {
  const padW = (Math.floor((width - 1) / 32) + 1) * 32, padH = (Math.floor((height - 1) / 32) + 1) * 32;
  const input = new Float32Array(3 * padW * padH);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3, q = y * padW + x;
      input[q] = bgr[p]; input[padW * padH + q] = bgr[p + 1]; input[2 * padW * padH + q] = bgr[p + 2];
    }
  }
  return { input, padW, padH };
}

// ... and after it: decode each stride's grid (outputs: name -> flat data), keep the boxes above the
// score threshold, then non-maximum suppression on integer boxes (NMSBoxes on Rect2i)
export function decodeYunet(outputs, padW, padH) {
  const faces = [];
  for (const stride of [8, 16, 32]) {
    const cls = outputs[`cls_${stride}`], obj = outputs[`obj_${stride}`];
    const bbox = outputs[`bbox_${stride}`], kps = outputs[`kps_${stride}`];
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

export function rectOverlap(a, b) {
  const ix = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  return inter === 0 ? 0 : inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

// cv::dnn::NMSBoxes: scores above the threshold, best first (stable), each kept unless it overlaps a kept one
export function nonMaximumSuppression(faces) {
  const candidates = faces.map((f, i) => [f.score, i]).filter(([s]) => s > settings.yunet_score_threshold);
  candidates.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const kept = [];
  for (const [, i] of candidates.slice(0, settings.yunet_top_k)) {
    if (kept.every((k) => rectOverlap(faces[k].rect, faces[i].rect) <= settings.yunet_nms_threshold)) kept.push(i);
  }
  return kept.map((i) => faces[i]);
}

// YuNetDetector.detect, around the network: the copy searched is at most detectWidth wide ...
export function searchImage(rgba, width, height, still) {
  const factor = Math.min(1, (still ? settings.photo_width : settings.video_width) / width);
  let bgr = bgrFromRGBA(rgba, width, height), w = width, h = height;
  if (factor < 1) {
    w = roundHalfEven(width * factor); h = roundHalfEven(height * factor);
    bgr = resizeArea(bgr, width, height, 3, w, h, 1 / factor, 1 / factor);
  }
  return { bgr, width: w, height: h, factor };
}

// ... and its faces go back to frame pixels (rounded as Python rounds), those under minFace dropped,
// the largest first
export function facesInFrame(faces, factor, still) {
  const minFace = still ? settings.photo_min_face : settings.video_min_face;
  const found = faces.map((f) => ({
    box: f.box.map((v) => roundHalfEven(Math.fround(v / factor))),
    landmarks: f.landmarks.map(([x, y]) => [x / factor, y / factor]), score: f.score,
  })).filter((f) => Math.min(f.box[2], f.box[3]) >= minFace);
  return found.map((f, i) => [f, i]).sort((a, b) => b[0].box[2] * b[0].box[3] - a[0].box[2] * a[0].box[3] || a[1] - b[1])
    .map(([f]) => f);
}

// ---------------------------------------------------------------- the crop (face_detectors.crop_box)

// _square: the side x side square at (left, top), integer pixels, the frame's edge replicated past it;
// then INTER_AREA to the network's faces. input: the classifier's {size, channels} from models.json;
// pixels: grey (grayFromRGBA) for channels 1, RGB (rgbFromRGBA) for 3, as face_detectors.frame_pixels
export function cropFace(pixels, width, height, box, input) {
  const [x, y, w, h] = box;
  const exactSide = w * settings.yunet_crop_scale, { size, channels } = input;
  const left = roundHalfEven(x + w / 2 - exactSide / 2), top = roundHalfEven(y + h / 2 - exactSide / 2);
  const side = Math.max(1, roundHalfEven(exactSide));
  const square = new Uint8Array(side * side * channels);
  for (let r = 0; r < side; r++) {
    const sy = Math.min(height - 1, Math.max(0, top + r));
    for (let c = 0; c < side; c++) {
      const from = (sy * width + Math.min(width - 1, Math.max(0, left + c))) * channels;
      for (let k = 0; k < channels; k++) square[(r * side + c) * channels + k] = pixels[from + k];
    }
  }
  if (side < size) return resizeLinear(square, side, side, size, size, channels);
  const scale = 1 / (size / side); // OpenCV's scale_x = 1 / inv_scale_x
  return resizeArea(square, side, side, channels, size, size, scale, scale);
}

// ---------------------------------------------------------------- tracking (tracking.Tracker)

export function iou(a, b) {
  const ix = Math.max(0, Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  return inter ? inter / (a[2] * a[3] + b[2] * b[3] - inter) : 0;
}

const centre = (b) => [b[0] + b[2] / 2, b[1] + b[3] / 2];

// a track: id, boxes (seenBox: where a search last found it; box: where it is now), velocity of the
// box's corner in pixels a frame, missed searches and followed frames since seenBox, searches that found it
function newTrack(id, box) {
  return { id, box, seenBox: box, velocity: [0, 0], missed: 0, followed: 0, seen: 1, landmarks: null, probabilities: null,
           sinceClassified: 0 };
}

// Track.predicted: the next frame's box, at constant velocity from the last search's box
function predicted(t) {
  const steps = t.missed + t.followed + 1;
  return [t.seenBox[0] + t.velocity[0] * steps, t.seenBox[1] + t.velocity[1] * steps, t.seenBox[2], t.seenBox[3]];
}

export class Tracker {
  constructor(iouThreshold = settings.iou_threshold, maxMissed = settings.max_missed) {
    this.iouThreshold = iouThreshold; this.maxMissed = maxMissed;
    this.reset();
  }

  reset() { this.tracks = []; this.nextId = 0; }

  // Tracker.follow: every track moved to its predicted box for a frame that is not searched, or null
  // (nothing moved) when that frame must be searched
  follow(width, height) {
    if (!this.tracks.length || this.tracks.some((t) => t.missed || t.seen < 2)) return null;
    const boxes = this.tracks.map((t) => predicted(t));
    if (boxes.some(([x, y, w, h]) => x < 0 || y < 0 || x + w > width || y + h > height)) return null;
    this.tracks.forEach((t, j) => {
      if (t.landmarks) t.landmarks = t.landmarks.map(([lx, ly]) => [lx + boxes[j][0] - t.box[0], ly + boxes[j][1] - t.box[1]]);
      t.box = boxes[j];
      t.followed += 1;
    });
    return [...this.tracks];
  }

  // Tracker.update: the tracks of a searched frame's boxes, in the boxes' order
  update(boxes) {
    const predictions = this.tracks.map((t) => predicted(t));
    const pairs = [];
    boxes.forEach((box, i) => predictions.forEach((p, j) => pairs.push([iou(box, p), i, j])));
    pairs.sort((a, b) => b[0] - a[0] || b[1] - a[1] || b[2] - a[2]); // Python's sorted(..., reverse=True)
    const assigned = new Map(), taken = new Set();
    for (const [overlap, i, j] of pairs) {
      if (overlap >= this.iouThreshold && !assigned.has(i) && !taken.has(j)) { assigned.set(i, j); taken.add(j); }
    }
    boxes.forEach((box, i) => {
      if (assigned.has(i)) return;
      let best = [Infinity, null];
      this.tracks.forEach((_, j) => {
        if (taken.has(j)) return;
        const [a, b] = [centre(box), centre(predictions[j])];
        const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
        if (d < best[0] || (d === best[0] && j < best[1])) best = [d, j];
      });
      if (best[1] !== null && best[0] <= box[2]) { assigned.set(i, best[1]); taken.add(best[1]); }
    });
    const result = boxes.map((box, i) => {
      if (assigned.has(i)) {
        const t = this.tracks[assigned.get(i)], steps = t.missed + t.followed + 1;
        t.velocity = [(box[0] - t.seenBox[0]) / steps, (box[1] - t.seenBox[1]) / steps];
        t.box = t.seenBox = box; t.missed = 0; t.followed = 0; t.seen += 1;
        return t;
      }
      const t = newTrack(this.nextId++, box);
      this.tracks.push(t);
      return t;
    });
    this.tracks.forEach((t, j) => { if (!taken.has(j) && !result.includes(t)) t.missed += 1; });
    this.tracks = this.tracks.filter((t) => t.missed <= this.maxMissed);
    return result;
  }
}

// recognizer.shown_box: a box in whole pixels, Python's rounding (a followed box is fractional)
export const shownBox = (box) => box.map(roundHalfEven);

// EmotionRecognizer's choice for one frame: the followed tracks, or null when the frame is searched
// (one frame in detectEvery, and at once when a track is lost or about to leave the frame).
// sinceSearch is the frames since the last search; the caller counts it.
// EmotionRecognizer._classify's choice: the tracks (their indices) classified on this frame, one frame in
// classifyEvery of each track's, a new track at once; the others keep their probabilities
export function dueForClassification(tracks, classifyEvery) {
  return tracks.map((t, i) => [t, i]).filter(([t]) => t.probabilities === null || t.sinceClassified + 1 >= classifyEvery)
    .map(([, i]) => i);
}

export function followOrSearch(tracker, sinceSearch, detectEvery, width, height, still) {
  if (still || sinceSearch + 1 >= detectEvery) return null;
  return tracker.follow(width, height);
}

// recognizer.bar_chart_origin: right of the box, else left, else below, the first place inside the frame
// that covers no other face's box; else right of it (left at the frame's edge)
export function barChartOrigin(box, others, frameWidth, frameHeight, classes = 7) {
  const [x, y, w, h] = box, height = classes * settings.bar_row, BAR_WIDTH = settings.bar_width;
  for (const [left, top] of [[x + w + 6, y], [x - BAR_WIDTH, y], [x, y + h + 6]]) {
    const area = [left, top, BAR_WIDTH, height];
    const inside = left >= 0 && top >= 0 && left + BAR_WIDTH <= frameWidth && top + height <= frameHeight;
    if (inside && !others.some((other) => iou(area, other) > 0)) return [left, top];
  }
  return [x + w + BAR_WIDTH < frameWidth ? x + w + 6 : Math.max(0, x - BAR_WIDTH), y];
}
