"""Small helpers the scripts share: atomic writes, argparse types, output checks and the command-line wrapper."""
import argparse
import contextlib
import hashlib
import math
import os
import sys
import tempfile
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


class UserError(Exception):
    """The base of every error that means a user's mistake or a bad input (a missing file, a wrong flag, an output
    that cannot be written): the commands print it as one line, `error: ...`, with exit code 2, never a traceback
    (run_script and one_line_errors catch this class, so a new error subclasses it and is caught everywhere)."""


class OutputError(UserError):
    """An output that cannot be written, reported as one line (exit code 2)."""


class TrainingError(UserError):
    """A run's flags, configuration, checkpoint or data that do not fit, reported as one line (exit code 2)."""


def atomic_write(path, write):
    """Calls write(tmp) on a temporary file beside path, then renames it over path; returns path.

    A crash mid-write leaves the old file (or none) in place, never a half-written one. The
    temporary name keeps the suffix, so writers that choose the format by it (matplotlib, cv2) work.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def file_sha256(path, chunk=1 << 20):
    """The sha256 of a file's bytes, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_text_atomic(path, text):
    """Writes a text file atomically; returns path."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def check_writable_folder(folder, what):
    """Creates folder (and its parents) if needed and checks a file can be written there; raises OutputError."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as error:
        raise OutputError(f"cannot write {what} to {folder}: {error.strerror or error}") from None
    return folder


def check_creatable_folder(folder, what):
    """Checks that folder exists writable, or could be made (its nearest existing parent is a writable folder),
    without making it: a run that fails leaves no empty folder behind. Raises OutputError."""
    folder = Path(folder).resolve()
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if not existing.is_dir():
        raise OutputError(f"cannot write {what} to {folder}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {what} to {folder}: {existing} is not writable")
    return folder


def check_writable_file(path, what):
    """Checks that path's folder exists (or can be made) and is writable; raises OutputError."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder, not a file")
    check_writable_folder(path.parent, what)
    return path


def str2bool(value):
    """argparse type for the original's `--flag True/False` form."""
    if isinstance(value, bool):
        return value
    if value.lower() in ("true", "1", "yes", "y", "on"):
        return True
    if value.lower() in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


# a flag that also takes the original's spelled-out value: `--cam`, `--cam True`, `--cam False`
BOOL_FLAG = dict(nargs="?", const=True, default=False, type=str2bool)


def int_at_least(low):
    """argparse type: an integer >= low."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def float_in(low, high, low_open=False, high_open=False):
    """argparse type: a finite float in [low, high] (an open end excludes that bound; None = unbounded)."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            left = "-inf" if low is None else f"{low}"
            right = "inf" if high is None else f"{high}"
            opening = "(" if low_open or low is None else "["
            closing = ")" if high_open or high is None else "]"
            interval = f"{opening}{left}, {right}{closing}"
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {value:g}")
        return value
    return parse


# How the user started this program, so that a hint names the commands they type: "deep-emotion" (the
# command, and the API) or "scripts" (the classic main.py, generate_data.py and visualize.py)
_COMMAND_STYLE = ["deep-emotion"]
CLASSIC_SCRIPTS = {"prepare": "python generate_data.py", "train": "python main.py --train",
                   "resume": "python main.py --train --resume", "test": "python visualize.py --test_cc",
                   "live": "python visualize.py"}


def set_command_style(style):
    """Makes hints name "deep-emotion" commands or the classic "scripts"."""
    if style not in ("deep-emotion", "scripts"):
        raise ValueError(f"unknown command style {style!r}")
    _COMMAND_STYLE[0] = style


def command_hint(command, flags=""):
    """The command line a hint shows, e.g. command_hint("prepare", "--data data/fer") ->
    `deep-emotion prepare --data data/fer` or, under the classic scripts, `python generate_data.py --data data/fer`."""
    if _COMMAND_STYLE[0] == "scripts" and command in CLASSIC_SCRIPTS:
        base = CLASSIC_SCRIPTS[command]
    else:
        base = f"deep-emotion {command}"
    return f"`{base}{' ' + flags if flags else ''}`"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error: `error: argument --x: ...` and exit code 2, no usage screen."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")

    def hide(self, *dests):
        """Leaves the flags that set these destinations out of --help and the usage line; they still parse (a
        `deep-emotion` subcommand shows its own flags, the classic script that shares its parser all of them)."""
        for action in self._actions:
            if action.dest in dests:
                action.help = argparse.SUPPRESS
        return self


def run_script(get_args_parser, main, argv=None, command_style=None):
    """The `if __name__ == "__main__"` body of every script: run main(args), one line for a UserError (exit 2).

    Ctrl-C exits 130 with one line. argv: the flags (default: the command line's). command_style: what hints
    name (set_command_style).
    """
    if command_style:
        set_command_style(command_style)
    with one_line_errors():
        main(get_args_parser().parse_args(argv))


@contextlib.contextmanager
def one_line_errors():
    """Within it, a UserError (bad input) is `error: ...` on stderr and exit code 2, and Ctrl-C one line and exit
    code 130: never a traceback for a user's mistake (run_script, the benchmarks)."""
    try:
        yield
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
