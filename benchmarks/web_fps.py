"""Frames per second of the browser page (web/) in headless Chromium, on WASM with 1 and 2 threads.

    deep-emotion export --web                    # once: web/models/
    python benchmarks/web_fps.py --frames 60 --repeats 3
    python benchmarks/web_fps.py --frames 5 --repeats 1 --screenshot imgs/web_demo.png   # the README's picture

The fake camera plays a 640x480 clip of the astronaut photo that scikit-image ships (tests/web_harness.py),
one face per frame. A measurement is the frames the page finished after the first 5 (warm-up),
over the time they took; each model and thread count is measured --repeats times, the median quoted.
Compare with `python benchmarks/live_fps.py --clip` (the Python pipeline on the same clip).
"""
import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from common import ROOT, median_report

sys.path.insert(0, str(ROOT / "tests"))  # the browser test's driver
import web_harness as harness  # noqa: E402

WARM_UP = 5


def measure(site, clip, query, frames):
    """(frames/s after the warm-up, median ms per frame in the pipeline, the backend the page used)."""
    with harness.page_session(site, clip, query) as page:
        done = harness.wait_for_frames(page, WARM_UP + frames)
        backend = page.evaluate("`${window.deepEmotion.backend}, ${window.deepEmotion.threads} thread(s)`")
    timed = done[WARM_UP - 1:]
    seconds = (timed[-1]["end"] - timed[0]["end"]) / 1000
    return (len(timed) - 1) / seconds, statistics.median(f["ms"] for f in timed[1:]), backend


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=str(ROOT / "web" / "models"),
                        help="the folder export_onnx.py --web wrote (default: web/models)")
    parser.add_argument("--frames", type=int, default=60, help="frames timed per measurement (default: 60)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each setting (default: 3)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="WASM threads (default: 1 2)")
    parser.add_argument("--model", nargs="+", default=["default", "paper"],
                        help="classifiers of models.json to time (default: default paper)")
    parser.add_argument("--detect_every", type=int, nargs="*", default=[],
                        help="face-search (and classification) intervals to time, each in turn; 1 = every frame "
                             "searched and classified (default: models.json's)")
    parser.add_argument("--screenshot", default="", help="also save a screenshot of the page here (default: none)")
    args = parser.parse_args()
    missing = harness.missing_requirements()
    if missing:
        raise SystemExit(f"error: {missing}")
    if not (Path(args.models) / "models.json").is_file():
        raise SystemExit(f"error: {args.models} has no models.json: run `deep-emotion export --web` first")
    with tempfile.TemporaryDirectory() as tmp:
        clip = harness.write_clip(Path(tmp) / "face.y4m", frames=60)
        site = harness.make_site(Path(tmp) / "site", args.models)
        for model in args.model:
            for threads in args.threads:
                for every in args.detect_every or [None]:
                    query = f"backend=wasm&threads={threads}&model={model}" + (
                        f"&detect_every={every}&classify_every={every}" if every else "")
                    label = f"{model}{f', detect_every {every}' if every else ''}"
                    rates, per_frame, backend = [], [], None
                    for _ in range(args.repeats):
                        rate, ms, backend = measure(site, clip, query, args.frames)
                        rates.append(rate)
                        per_frame.append(ms)
                    median_report(f"{label}, {backend}: frames/s", rates, "")
                    median_report(f"{label}, {backend}: pipeline ms per frame", per_frame, "")
        if args.screenshot:
            with harness.page_session(site, clip, "backend=wasm") as page:
                harness.wait_for_frames(page, 12)
                page.screenshot(path=args.screenshot)
            print(f"screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
