"""Serves this folder, the browser page, on localhost: `python web/serve.py` is `deep-emotion serve` run here.

    python web/serve.py              # http://localhost:8000/  (--port to change it)
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's package, installed or not

from deep_emotion.serve import get_args_parser, main  # noqa: E402
from deep_emotion.utils import run_script  # noqa: E402

if __name__ == "__main__":
    run_script(get_args_parser, main, [*sys.argv[1:], "--web_dir", str(Path(__file__).resolve().parent)])
