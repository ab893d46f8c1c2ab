// Unit tests of the ported pipeline (web/pipeline.js): `node --test test/` in web/ (.ci/run runs it).
// Each expected value is worked out by hand from what the Python function it ports does.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";

import {
  configure, Tracker, barChartOrigin, cropFace, decodeYunet, dueForClassification, facesInFrame, followOrSearch, nonMaximumSuppression, resizeArea,
  roundHalfEven, saturateU8, shownBox, yunetInput,
} from "../pipeline.js";

// the pipeline's numbers as `deep-emotion export --web` writes them into models.json, from their Python definitions
const PIPELINE = JSON.parse(execFileSync("python3", ["-c",
  "import json; from deep_emotion.recognizer import pipeline_settings; print(json.dumps(pipeline_settings()))"],
  { cwd: new URL("../..", import.meta.url) }).toString());
configure(PIPELINE);

test("the pipeline refuses a models.json without its numbers, naming the ones it lacks", () => {
  assert.throws(() => configure({ ...PIPELINE, yunet_crop_scale: undefined }), /lacks the pipeline's yunet_crop_scale: run/);
  assert.throws(() => configure(undefined), /lacks the pipeline's yunet_score_threshold, /);
});

test("rounding is Python's: halves go to the even neighbour", () => {
  assert.deepEqual([0.5, 1.5, 2.5, -1.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -2, 2, 3]);
  assert.deepEqual([-3, 127.5, 300].map(saturateU8), [0, 128, 255]);
});

test("INTER_AREA by 2 averages each 2x2 block, halves rounded up", () => {
  const src = Uint8Array.from([0, 1, 10, 20, 2, 3, 30, 40, 5, 5, 0, 0, 5, 6, 0, 1]);
  assert.deepEqual(Array.from(resizeArea(src, 4, 4, 1, 2, 2, 2, 2)), [2, 25, 5, 0]); // 1.5 -> 2, 25, 5.25 -> 5, 0.25 -> 0
});

test("INTER_AREA at a fractional scale keeps a flat image flat", () => {
  const src = new Uint8Array(100 * 100).fill(77);
  const dst = resizeArea(src, 100, 100, 1, 48, 48, 100 / 48, 100 / 48);
  assert.ok(dst.every((v) => v === 77));
});

test("YuNet's input is padded to a multiple of 32, planar BGR", () => {
  const bgr = Uint8Array.from([1, 2, 3, 4, 5, 6]); // a 2x1 image
  const { input, padW, padH } = yunetInput(bgr, 2, 1);
  assert.deepEqual([padW, padH, input.length], [32, 32, 3 * 32 * 32]);
  assert.deepEqual([input[0], input[1], input[1024], input[2048 + 1], input[2]], [1, 4, 2, 6, 0]);
});

test("YuNet decoding puts a confident cell's box where its offsets say, and NMS keeps the better of two", () => {
  const outputs = {};
  for (const stride of [8, 16, 32]) {
    const cells = (32 / stride) ** 2;
    outputs[`cls_${stride}`] = new Float32Array(cells); outputs[`obj_${stride}`] = new Float32Array(cells);
    outputs[`bbox_${stride}`] = new Float32Array(4 * cells); outputs[`kps_${stride}`] = new Float32Array(10 * cells);
  }
  // stride 16, cell (row 1, column 0): centre (0.5 + 0, 0.5 + 1) * 16 = (8, 24), size exp(0) * 16 = 16
  outputs.cls_16[2] = 0.9; outputs.obj_16[2] = 0.9;
  outputs.bbox_16.set([0.5, 0.5, 0, 0], 2 * 4);
  // a weaker copy one pixel away: suppressed
  outputs.cls_8[4 * 2 + 1] = 0.8; outputs.obj_8[4 * 2 + 1] = 0.8;
  outputs.bbox_8.set([0, 0, Math.log(2), Math.log(2)], (4 * 2 + 1) * 4); // centre (8, 16), 16 wide
  const faces = decodeYunet(outputs, 32, 32);
  assert.equal(faces.length, 1);
  assert.deepEqual(faces[0].box, [0, 16, 16, 16]);
  assert.ok(Math.abs(faces[0].score - 0.9) < 1e-6);
  const [kept] = nonMaximumSuppression([{ ...faces[0], score: 0.7 }, { ...faces[0], score: 0.95 }]);
  assert.equal(kept.score, 0.95);
});

test("faces go back to frame pixels, the small ones dropped, the largest first", () => {
  const face = (box) => ({ box, landmarks: [[0, 0]], score: 0.9 });
  const found = facesInFrame([face([10, 10, 10, 10]), face([0, 0, 40, 40]), face([5, 5, 4, 4])], 0.5, false);
  assert.deepEqual(found.map((f) => f.box), [[0, 0, 80, 80], [20, 20, 20, 20]]); // 8 px is under the 16-pixel minimum
});

test("the crop replicates the frame's edge past it", () => {
  const width = 100, height = 100, gray = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) gray[y * width + x] = x; // brightness = column
  const crop = cropFace(gray, width, height, [0, 20, 60, 60], { size: 48, channels: 1 });
  assert.equal(crop.length, 48 * 48);
  assert.ok(crop[0] <= 1 && crop[47] > crop[0]); // its left columns repeat column 0
});

test("a colour network's crop keeps the channels apart, at its own size, enlarged when the face is smaller", () => {
  const width = 100, height = 100, rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) rgb.set([200, 100, i % width], i * 3); // red 200, green 100, blue = column
  const crop = cropFace(rgb, width, height, [20, 20, 40, 40], { size: 112, channels: 3 }); // 49-pixel square, enlarged
  assert.equal(crop.length, 112 * 112 * 3);
  assert.deepEqual([crop[0], crop[1]], [200, 100]);
  assert.ok(crop[3 * 111 + 2] > crop[2] + 40); // blue grows to the right, as the frame's columns
});

test("the tracker keeps a moving face's id and overlap decides before distance", () => {
  const tracker = new Tracker();
  const [first] = tracker.update([[100, 100, 50, 50]]);
  assert.equal(tracker.update([[110, 100, 50, 50]])[0], first);
  const other = new Tracker();
  const [a] = other.update([[0, 0, 100, 100], [90, 40, 20, 20]]);
  assert.equal(other.update([[40, 0, 100, 100]])[0].id, a.id); // IoU 0.43 with A, nearer B's centre
});

test("between searches tracks follow their velocity; a lost track or the frame's edge asks for a search", () => {
  const tracker = new Tracker();
  tracker.update([[20, 40, 60, 60]]);
  assert.equal(followOrSearch(tracker, 0, 3, 320, 240, false), null); // seen once: no velocity yet
  const [track] = tracker.update([[23, 41, 60, 60]]);
  const followed = followOrSearch(tracker, 0, 3, 320, 240, false);
  assert.deepEqual(followed.map((t) => shownBox(t.box)), [[26, 42, 60, 60]]);
  assert.equal(followOrSearch(tracker, 2, 3, 320, 240, false), null); // the third frame is searched
  assert.equal(followOrSearch(tracker, 0, 3, 320, 240, true), null); // stills are always searched
  tracker.update([[29, 43, 60, 60]]);
  assert.deepEqual(track.velocity, [3, 1]); // measured from the last search, across the followed frame
  assert.equal(followOrSearch(tracker, 0, 3, 60, 240, false), null); // the predicted box leaves a 60-wide frame
  tracker.update([]);
  assert.equal(followOrSearch(tracker, 0, 3, 320, 240, false), null); // a track the search missed
});

test("a bar chart avoids the other faces' boxes", () => {
  assert.deepEqual(barChartOrigin([100, 100, 50, 50], [], 640, 480), [156, 100]);
  assert.deepEqual(barChartOrigin([100, 100, 50, 50], [[160, 100, 50, 50]], 640, 480), [4, 100]);
  assert.deepEqual(barChartOrigin([0, 0, 50, 50], [[60, 0, 50, 50]], 640, 480), [0, 56]);
});

test("each track is classified once in M of its frames, a new one at once", () => {
  const tracks = [{ probabilities: [1], sinceClassified: 2 }, { probabilities: [1], sinceClassified: 0 },
                  { probabilities: null, sinceClassified: 0 }];
  assert.deepEqual(dueForClassification(tracks, 3), [0, 2]);
  assert.deepEqual(dueForClassification(tracks, 1), [0, 1, 2]);
});
