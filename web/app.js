// Deep-Emotion in the browser: YuNet finds the faces, the exported classifier reads them, both with
// onnxruntime-web; nothing leaves the page. Each step is a port of the Python pipeline, decision for
// decision, and names the Python function it follows (README "The browser demo" lists them).
//
// URL parameters: backend=wasm|webgpu (default: webgpu when the browser has it), threads=N (WASM
// threads; needs cross-origin isolation, see serve.py), model=default|paper, smooth=0..0.95 (per-track
// smoothing, default 0 as in visualize.py), capture=N (keep the first N frames' pixels, for the
// parity test), models=PATH (where the .onnx files are, default models/), detect_every=N (search for
// faces on one frame in N, following them in between), classify_every=M (classify each face on one of its
// frames in M); both default to models.json's, visualize.py's defaults.
import * as ort from "./node_modules/onnxruntime-web/dist/ort.webgpu.min.mjs";
import { configure, settings, Tracker, barChartOrigin, cropFace, dueForClassification, decodeYunet, facesInFrame, followOrSearch, grayFromRGBA, rgbFromRGBA,
         searchImage, shownBox, yunetInput } from "./pipeline.js";

const params = new URLSearchParams(location.search);
const MODELS = (params.get("models") || "models").replace(/\/$/, "");
const CAPTURE = Number(params.get("capture") || 0);
const SMOOTH = Math.min(0.95, Math.max(0, Number(params.get("smooth") || 0)));

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

// ---------------------------------------------------------------- the page

let detector = null, classifier = null, classNames = null, faceInput = null, detectEvery = 1, classifyEvery = 1;
let sinceSearch = 0; // frames since the last face search
let tracker = null; // made once models.json has given the tracker's settings
const work = document.createElement("canvas");
const workContext = work.getContext("2d", { willReadFrequently: true });

async function loadModels() {
  const manifestUrl = `${MODELS}/models.json`;
  const manifest = await fetch(manifestUrl).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  if (!manifest) throw new Error(`the model files are missing (${manifestUrl}): run \`deep-emotion export --web\` and reload`);
  const choice = params.get("model") || "default";
  const entry = manifest.classifiers[choice];
  if (!entry) throw new Error(`no model "${choice}" in ${manifestUrl} (it has: ${Object.keys(manifest.classifiers).join(", ")})`);
  classNames = entry.class_names;
  faceInput = entry.input; // {size, channels}: the faces this classifier reads (export_onnx.export_web)
  if (!faceInput) throw new Error(`models.json lacks the classifier's input: run \`deep-emotion export --web\` again`);
  configure(manifest.pipeline); // the pipeline's numbers, from their Python definitions
  tracker = new Tracker();
  // "gpu" in navigator says only that the browser knows WebGPU: without an adapter (no GPU, or one it blocks)
  // onnxruntime-web runs the models on WASM, so the page asks for one before it says WebGPU
  const adapter = "gpu" in navigator && params.get("backend") !== "wasm" ? await navigator.gpu.requestAdapter().catch(() => null) : null;
  const webgpu = adapter !== null;
  state.threads = Math.max(1, Number(params.get("threads") || 1));
  ort.env.wasm.numThreads = self.crossOriginIsolated ? state.threads : 1;
  if (!self.crossOriginIsolated) state.threads = 1;
  ort.env.wasm.wasmPaths = new URL("./node_modules/onnxruntime-web/dist/", import.meta.url).href;
  const open = async (file, providers) => {
    const response = await fetch(`${MODELS}/${file}`);
    if (!response.ok) throw new Error(`the model file ${MODELS}/${file} is missing: run \`deep-emotion export --web\``);
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
  detectEvery = Math.max(1, Math.round(Number(params.get("detect_every") || manifest.detect_every || 1)));
  classifyEvery = Math.max(1, Math.round(Number(params.get("classify_every") || manifest.classify_every || 1)));
  state.detectEvery = detectEvery;
  state.classifyEvery = classifyEvery;
  $("backend").textContent = `${state.backend === "webgpu" ? "WebGPU" : `WASM, ${state.threads} thread(s)`} · ${entry.name}`;
}

// YuNetDetector.detect: the search copy, the network, the decoding, the faces in frame pixels
async function findFaces(session, rgba, width, height, still) {
  const image = searchImage(rgba, width, height, still);
  const { input, padW, padH } = yunetInput(image.bgr, image.width, image.height);
  const out = await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", input, [1, 3, padH, padW]) });
  const outputs = Object.fromEntries(Object.entries(out).map(([name, tensor]) => [name, tensor.data]));
  return facesInFrame(decodeYunet(outputs, padW, padH), image.factor, still);
}

// EmotionRecognizer.detect_emotions on one frame: search (or follow), crop, classify in one batch, smooth
async function recognize(rgba, width, height, still) {
  let tracks = followOrSearch(tracker, sinceSearch, detectEvery, width, height, still);
  const found = tracks ? "followed" : "search";
  if (tracks) {
    sinceSearch += 1;
  } else {
    const faces = await findFaces(detector, rgba, width, height, still);
    if (still) tracker.reset();
    sinceSearch = 0;
    tracks = tracker.update(faces.map((f) => f.box));
    tracks.forEach((t, i) => { t.landmarks = faces[i].landmarks; });
  }
  if (!tracks.length) return [];
  const due = dueForClassification(tracks, still ? 1 : classifyEvery);
  const fresh = new Map();
  if (due.length) {
    // the faces as the classifier reads them (models.json's input: size, grey or RGB), as EmotionRecognizer crops
    const { size, channels } = faceInput, face = size * size * channels, classes = classNames.length;
    const pixels = channels === 3 ? rgbFromRGBA(rgba, width, height) : grayFromRGBA(rgba, width, height);
    const batch = new Float32Array(due.length * face);
    due.forEach((i, n) => batch.set(cropFace(pixels, width, height, shownBox(tracks[i].box), faceInput), n * face));
    const dims = channels === 3 ? [due.length, size, size, 3] : [due.length, size, size];
    const out = await classifier.run({ [classifier.inputNames[0]]: new ort.Tensor("float32", batch, dims) });
    const probabilities = out[classifier.outputNames[0]].data;
    due.forEach((i, n) => fresh.set(i, Array.from(probabilities.slice(n * classes, (n + 1) * classes))));
  }
  return tracks.map((track, i) => {
    let p;
    if (fresh.has(i)) {
      p = fresh.get(i);
      if (SMOOTH > 0 && !still && track.probabilities) p = p.map((v, k) => SMOOTH * track.probabilities[k] + (1 - SMOOTH) * v);
      track.probabilities = p; track.sinceClassified = 0;
    } else { // classified a frame or two ago: the same reading
      p = track.probabilities; track.sinceClassified += 1;
    }
    const k = p.indexOf(Math.max(...p));
    return { box: shownBox(track.box), face: track.id, label: classNames[k], confidence: p[k], probabilities: p,
             emotions: Object.fromEntries(classNames.map((n, j) => [n, p[j]])), found };
  });
}

// recognizer.draw: box, "#id Label 87%", the seven bars (beside the box, clear of the other faces), frames/s
function draw(context, results, fps) {
  context.lineWidth = 2;
  const boxes = results.map((r) => r.box);
  for (const r of results) {
    const [x, y, w, h] = r.box;
    context.strokeStyle = "rgb(0,255,0)";
    context.strokeRect(x, y, w, h);
    context.font = "bold 16px sans-serif";
    context.fillStyle = "rgb(0,255,0)";
    context.fillText(`#${r.face} ${r.label} ${Math.round(100 * r.confidence)}%`, x, Math.max(14, y - 6));
    const [barX, barY] = barChartOrigin(r.box, boxes.filter((b) => b !== r.box), context.canvas.width, context.canvas.height,
      classNames.length);
    context.font = "10px sans-serif";
    r.probabilities.forEach((p, i) => {
      const top = barY + i * settings.bar_row;
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
                      faces: results.map(({ box, face, label, confidence, probabilities, found }) => ({ box, face, label, confidence, probabilities, found })) });
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
