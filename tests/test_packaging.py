"""The project as a library: pyproject.toml and requirements.txt agree, the wheel installs and runs from
anywhere with its default model, and `deep-emotion` runs each command with that script's own parser."""
import os
import re
import shutil
import subprocess
import sys

import pytest
import tomllib
from conftest import ROOT

from deep_emotion import cli

DESIGN_CARD_SCRIPTS = {"main.py", "generate_data.py", "visualize.py", "model.py", "data_loaders.py"}


def requirement_lines(text):
    return {line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()}


def test_requirements_txt_and_pyproject_name_the_same_packages_and_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    # every extra but "pretrained" (dlib's 100 MB network, only to train face_resnet from it) and the analyze
    # command's options (Ray, pyarrow), which the classic scripts never use
    declared = set(project["dependencies"])
    declared |= {r for name, extra in extras.items() if name not in ("pretrained", "cluster", "parquet") for r in extra}
    assert requirement_lines((ROOT / "requirements.txt").read_text()) == declared
    assert any(r.startswith("opencv-python") and "<5" in r for r in project["dependencies"])


def test_the_top_level_holds_the_classic_scripts_and_no_library_module():
    assert {p.name for p in ROOT.glob("*.py")} == DESIGN_CARD_SCRIPTS


def test_the_classic_scripts_and_the_command_share_one_parser_per_command():
    import importlib
    for command in cli.COMMANDS:
        module = importlib.import_module(cli.COMMANDS[command][0])
        assert callable(module.get_args_parser) and callable(module.main)
    for script, module in (("main", "deep_emotion.train"), ("generate_data", "deep_emotion.data.prepare"),
                           ("visualize", "deep_emotion.visualize")):
        script, module = importlib.import_module(script), importlib.import_module(module)
        assert script.get_args_parser is module.get_args_parser and script.main is module.main


def test_every_error_class_of_the_package_is_a_user_error_caught_in_one_place():
    import importlib
    import pkgutil

    import deep_emotion
    from deep_emotion.utils import UserError
    names = [m.name for m in pkgutil.walk_packages(deep_emotion.__path__, "deep_emotion.")
             if m.name != "deep_emotion.__main__"]
    errors = {(cls.__module__, cls.__name__) for name in names for cls in vars(importlib.import_module(name)).values()
              if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__.startswith("deep_emotion")}
    assert len(errors) >= 10, errors
    not_user = [name for module, name in errors
                if not issubclass(getattr(importlib.import_module(module), name), UserError) and name != "InputFailed"]
    assert not_user == [], not_user


def deep_emotion_command(*argv, cwd=ROOT, env=None):
    return subprocess.run([sys.executable, "-m", "deep_emotion", *map(str, argv)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=env)


def test_help_lists_every_command_in_one_line_each():
    result = deep_emotion_command("--help")
    assert result.returncode == 0
    for command in cli.COMMANDS:
        assert re.search(rf"^  {command} +\S", result.stdout, re.M), command


@pytest.mark.parametrize("argv, problem", [((), "no command given"), (("fly",), "unknown command 'fly'")])
def test_no_command_or_an_unknown_one_is_the_usage_and_exit_2(argv, problem):
    result = deep_emotion_command(*argv)
    assert result.returncode == 2 and result.stderr.startswith(f"error: {problem}") and "Traceback" not in result.stderr
    assert "commands:" in result.stderr


def test_a_command_takes_its_scripts_flags_and_errors(tmp_path):
    runs = tmp_path / "runs"
    result = deep_emotion_command("train", "--data", tmp_path, "--out", runs)  # = main.py --train --data ...
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path} is not prepared: run `deep-emotion prepare --data {tmp_path}` first\n"
    assert not runs.exists()  # nothing written before the inputs are checked
    usage = deep_emotion_command("train", "--help").stdout
    assert usage.startswith("usage: deep-emotion train") and "--source_weights" in usage


def test_the_wheel_installs_and_classifies_a_face_from_another_folder(tmp_path):
    source = tmp_path / "source"  # a copy of what the wheel is built from: the build leaves the checkout alone
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "deep_emotion", source / "deep_emotion", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", wheels, source], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(wheels.glob("deep_emotion-*.whl"))
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site, wheel],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # the installed package only: not the checkout
    script = ("import numpy as np, deep_emotion\n"
              "from deep_emotion import DEFAULT_MODEL, EmotionRecognizer\n"
              "recognizer = EmotionRecognizer()\n"
              "p = recognizer.classify([np.full((48, 48), 128, np.uint8)])\n"
              "print(deep_emotion.__file__, DEFAULT_MODEL.is_file(), p.shape, round(float(p.sum()), 4), sep='|')\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    module_file, has_model, shape, total = result.stdout.strip().split("|")
    assert module_file.startswith(str(site)) and (has_model, shape, total) == ("True", "(1, 7)", "1.0")
    listed = deep_emotion_command("--help", cwd=elsewhere, env=env)
    assert listed.returncode == 0 and "export" in listed.stdout
