"""The `deep-emotion` command: one subcommand per classic script, each with that script's own parser.

    deep-emotion prepare --data data/fer          # = python generate_data.py --data data/fer
    deep-emotion train --data data/fer            # = python main.py --train --data data/fer
    deep-emotion resume runs/deep_emotion-0/last.pt
    deep-emotion test --data data/fer             # = python visualize.py --test_cc --data data/fer
    deep-emotion live --cam                       # = python visualize.py --cam
    deep-emotion export --web                     # = python export_onnx.py --web
    deep-emotion calibrate --data data --model m.pt --write
    deep-emotion timeline faces.csv --out timeline.png
"""
import importlib
import sys

from deep_emotion import __version__
from deep_emotion.utils import run_script

# command -> (module with get_args_parser/main/ERRORS, flags put before the user's, one line of help)
COMMANDS = {
    "prepare": ("deep_emotion.prepare", [], "convert FER2013 or a labelled face set into prepared splits"),
    "train": ("deep_emotion.train", ["--train"], "train a network on prepared data (main.py --train)"),
    "resume": ("deep_emotion.train", ["--train", "--resume"], "continue a run: deep-emotion resume RUN/last.pt"),
    "test": ("deep_emotion.visualize", ["--test_cc"], "test accuracy of a checkpoint (visualize.py --test_cc)"),
    "live": ("deep_emotion.visualize", [], "classify faces live: --cam, --source VIDEO, or photos"),
    "export": ("deep_emotion.export_onnx", [], "export a checkpoint to ONNX, or the browser page's models (--web)"),
    "calibrate": ("deep_emotion.calibrate", [], "fit a checkpoint's temperature on its validation data"),
    "timeline": ("deep_emotion.timeline", [], "plot emotion over time per face from a --log CSV"),
}


def usage():
    width = max(map(len, COMMANDS))
    lines = ["usage: deep-emotion <command> [flags]   (deep-emotion <command> --help for its flags)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {help_text}" for name, (_, _, help_text) in COMMANDS.items()]
    return "\n".join(lines) + f"\n\nDeep-Emotion {__version__}\n"


def main(argv=None):
    """Runs the command named first in argv; no command or an unknown one prints the usage, exit 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(usage(), end="")
        return
    if argv and argv[0] == "--version":
        print(__version__)
        return
    if not argv or argv[0] not in COMMANDS:
        problem = "no command given" if not argv else f"unknown command {argv[0]!r}"
        print(f"error: {problem}\n\n{usage()}", end="", file=sys.stderr)
        sys.exit(2)
    command, *rest = argv
    module_name, fixed, _ = COMMANDS[command]
    module = importlib.import_module(module_name)

    def parser():
        built = module.get_args_parser()
        built.prog = f"deep-emotion {command}"
        return built

    run_script(parser, module.main, module.ERRORS, fixed + rest)
