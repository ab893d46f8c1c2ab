"""The `deep-emotion` command: one subcommand per classic script, each with that script's own parser.

    deep-emotion prepare --data data/fer          # = python generate_data.py --data data/fer
    deep-emotion train --data data/fer            # = python main.py --train --data data/fer
    deep-emotion resume runs/deep_emotion-0/last.pt
    deep-emotion test --data data/fer             # = python visualize.py --test_cc --data data/fer
    deep-emotion live --cam                       # = python visualize.py --cam
    deep-emotion export --web                     # = python export_onnx.py --web
    deep-emotion calibrate --data data --model m.pt --write
    deep-emotion timeline faces.csv --out timeline.png
    deep-emotion analyze videos/ --out results/      # a corpus: a table per input, a summary, every core
"""
import difflib
import importlib
import sys

from deep_emotion import __version__
from deep_emotion.utils import run_script

# command -> (module with get_args_parser/main, flags put before the user's, one line of help,
# keyword arguments of its get_args_parser: the groups of flags its --help shows)
COMMANDS = {
    "prepare": ("deep_emotion.data.prepare", [], "convert FER2013 or a labelled face set into prepared splits", {}),
    "train": ("deep_emotion.train", ["--train"], "train a network on prepared data (main.py --train)",
              {"command": "train"}),
    "resume": ("deep_emotion.train", ["--train"], "continue a run: deep-emotion resume RUN/last.pt",
               {"command": "resume"}),
    "test": ("deep_emotion.visualize", ["--test_cc"], "test accuracy of a checkpoint (visualize.py --test_cc)",
             {"sections": ("model", "accuracy", "figures"), "command": "test"}),
    "live": ("deep_emotion.visualize", [], "classify faces live: --cam, --source VIDEO, or photos",
             {"sections": ("model", "live inference")}),
    "export": ("deep_emotion.export_onnx", [], "export a checkpoint to ONNX, or the browser page's models (--web)",
               {}),
    "calibrate": ("deep_emotion.calibrate", [], "fit a checkpoint's temperature on its validation data", {}),
    "timeline": ("deep_emotion.timeline", [], "plot emotion over time per face from a --log CSV", {}),
    "serve": ("deep_emotion.serve", [], "serve the browser page (web/) on localhost", {}),
    "analyze": ("deep_emotion.analyze", [], "analyse a corpus of videos and photos on every core, resumably", {}),
}


def usage():
    width = max(map(len, COMMANDS))
    lines = ["usage: deep-emotion <command> [flags]   (deep-emotion <command> --help for its flags)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {help_text}" for name, (_, _, help_text, _) in COMMANDS.items()]
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
        nearest = difflib.get_close_matches(argv[0], COMMANDS, n=1) if argv else []
        if nearest:
            problem += f"; did you mean {nearest[0]!r}?"
        print(f"error: {problem}\n\n{usage()}", end="", file=sys.stderr)
        sys.exit(2)
    command, *rest = argv
    module_name, fixed, _, parser_options = COMMANDS[command]
    if command == "resume":
        rest = resume_flags(rest)
    module = importlib.import_module(module_name)

    def parser():
        built = module.get_args_parser(**parser_options)
        built.prog = f"deep-emotion {command}"
        if command == "resume":
            built.usage = "deep-emotion resume RUN/last.pt [--epochs N] [--workers N] [--quiet] ..."
        return built

    run_script(parser, module.main, fixed + rest, command_style="deep-emotion")


def resume_flags(rest):
    """`deep-emotion resume RUN/last.pt [flags]` as main.py's `--resume RUN/last.pt [flags]`; --help passes through."""
    if any(flag in rest for flag in ("-h", "--help")):
        return ["--help"]
    if not rest or rest[0].startswith("-"):
        print("error: deep-emotion resume needs the run's last.pt first, e.g. deep-emotion resume "
              "runs/deep_emotion-0/last.pt (see deep-emotion resume --help)", file=sys.stderr)
        sys.exit(2)
    return ["--resume", rest[0], *rest[1:]]
