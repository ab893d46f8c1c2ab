"""Runs web/index.html in headless Chromium with a fake camera, for the browser test and benchmarks/web_fps.py.

    with page_session(site, clip) as page:        # Playwright's page, camera fed from clip.y4m
        frames = wait_for_frames(page, 10)          # the page's per-frame results (window.deepEmotion)

Needs Debian's `chromium` and the `playwright` Python package (its own browser downloads are never
used: Playwright drives the system Chromium). The clip is the astronaut photo that scikit-image
ships (Eileen Collins, a NASA photo in the public domain), moved a little from frame to frame.
"""
import base64
import contextlib
import os
import shutil
import threading
from pathlib import Path

import cv2
import numpy as np

from deep_emotion.serve import serve

WEB = Path(__file__).resolve().parent.parent / "web"


PAGE_FILES = ("index.html", "app.js", "pipeline.js", "style.css")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path():
    """The system Chromium, or None."""
    return next((shutil.which(name) for name in CHROMIUM_NAMES if shutil.which(name)), None)


def missing_requirements():
    """Why the page cannot be run here (a sentence), or None when it can."""
    if chromium_path() is None:
        return "Chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    if not (WEB / "node_modules" / "onnxruntime-web").is_dir():
        return "web/node_modules is missing (cd web && npm ci)"
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        return "scikit-image (the clip's face) is not installed (pip install scikit-image)"
    return None


def face_frame(shift=0, size=(640, 480)):
    """A BGR frame with the astronaut's face, moved `shift` pixels right and down."""
    from skimage.data import astronaut
    photo = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)  # 512x512, the face in the upper middle
    frame = np.full((size[1], size[0], 3), 90, np.uint8)
    left, top = 64 + shift, 20 + shift // 2
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(size[0], left + photo.shape[1]), min(size[1], top + photo.shape[0])
    frame[y0:y1, x0:x1] = photo[y0 - top:y1 - top, x0 - left:x1 - left]
    return frame


def write_clip(path, frames=30, fps=15):
    """A YUV4MPEG2 (.y4m) clip of the moving face, which Chromium's fake camera plays in a loop; returns path."""
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W640 H480 F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            f.write(b"FRAME\n" + cv2.cvtColor(face_frame(2 * i), cv2.COLOR_BGR2YUV_I420).tobytes())
    return Path(path)


def make_site(folder, models_dir):
    """A folder to serve: the page's files and node_modules linked from web/, the models given."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in PAGE_FILES + ("node_modules",):
        (folder / name).symlink_to(WEB / name)
    if models_dir is not None:
        (folder / "models").symlink_to(Path(models_dir).resolve())
    return folder


@contextlib.contextmanager
def served(folder):
    """Serves folder on a free localhost port (with cross-origin isolation); yields the base URL."""
    server = serve(folder, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def page_session(site, clip=None, query="", camera_allowed=True):
    """A Playwright page on the site's index.html; the camera plays clip (none: no camera at all)."""
    from playwright.sync_api import sync_playwright
    args = ["--use-fake-ui-for-media-stream"] if camera_allowed else ["--deny-permission-prompts"]
    if clip is not None:
        args += ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}"]
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with served(site) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=args + ["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1000, "height": 760})
            if camera_allowed and clip is not None:
                context.grant_permissions(["camera"])
            page = context.new_page()
            page.goto(url + "index.html" + (f"?{query}" if query else ""))
            yield page
        finally:
            browser.close()


def wait_for_frames(page, count, timeout_s=180):
    """The page's first `count` frame results, once it has them (raises on a page error or a time-out)."""
    page.wait_for_function("window.deepEmotion && (window.deepEmotion.error "
                           f"|| window.deepEmotion.frames.length >= {count})",
                           timeout=timeout_s * 1000)
    error = page.evaluate("window.deepEmotion.error")
    if error:
        raise RuntimeError(f"the page says: {error}")
    return page.evaluate(f"window.deepEmotion.frames.slice(0, {count})")


def captured_frames(page):
    """The frames the page processed with ?capture=N, as BGR arrays (decoded from its lossless PNGs)."""
    frames = []
    for url in page.evaluate("window.deepEmotion.captures"):
        png = base64.b64decode(url.split(",", 1)[1])
        frames.append(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR))
    return frames
