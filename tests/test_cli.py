"""The `deep-emotion` command (cli.py): each command's own --help, resume's form, and the nearest command."""
import pytest

from deep_emotion import cli


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of deep-emotion argv, run in this process."""
    code = 0
    try:
        cli.main(list(argv))
    except SystemExit as stop:
        code = stop.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_resume_help_is_its_own_usage(capsys, flag):
    code, out, err = run_cli(capsys, "resume", flag)
    assert code == 0 and err == ""
    assert out.startswith("usage: deep-emotion resume RUN/last.pt") and "--epochs" in out


def test_bare_resume_says_what_it_needs_in_one_line(capsys):
    code, out, err = run_cli(capsys, "resume")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("error: deep-emotion resume needs the run's last.pt first")


def test_resume_passes_the_run_and_its_flags_to_main_py(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr("deep_emotion.train.main", lambda args: seen.update(vars(args)))
    code, _, _ = run_cli(capsys, "resume", "runs/x/last.pt", "--epochs", "9")
    assert code == 0 and seen["resume"] == "runs/x/last.pt" and seen["epochs"] == 9 and seen["train"] is True


def test_test_and_live_each_show_their_own_flags(capsys):
    _, test_help, _ = run_cli(capsys, "test", "--help")
    _, live_help, _ = run_cli(capsys, "live", "--help")
    assert "--split" in test_help and "--report" in test_help and "--cam" not in test_help
    assert "--cam" in live_help and "--detector" in live_help and "--split" not in live_help
    assert "--model" in test_help and "--model" in live_help  # the model flags serve both


def test_live_still_accepts_its_hidden_neighbours_defaults(monkeypatch, capsys):
    seen = {}
    monkeypatch.setattr("deep_emotion.visualize.main", lambda args: seen.update(vars(args)))
    run_cli(capsys, "live", "--cam")
    assert seen["cam"] is True and seen["test_cc"] is False and seen["split"] == "test"


def test_a_mistyped_command_gets_the_nearest(capsys):
    code, _, err = run_cli(capsys, "lvie")
    assert code == 2 and err.startswith("error: unknown command 'lvie'; did you mean 'live'?")
    code, _, err = run_cli(capsys, "zzzz")
    assert code == 2 and "did you mean" not in err
