"""The Markdown pages: every relative link resolves, and the README stays a front page."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys

from conftest import ROOT

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SKIP = {"node_modules", ".git", "runs", "data", ".pytest_cache", "build", "dist"}


def markdown_files():
    return [p for p in ROOT.rglob("*.md") if not SKIP & set(p.relative_to(ROOT).parts)]


def test_every_relative_link_points_at_a_file_that_exists():
    broken = []
    for page in markdown_files():
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold commands, not links
        for target in LINK.findall(text):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
    assert len(markdown_files()) >= 8


def test_the_readme_is_a_front_page_that_links_every_topic():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) <= 16_000
    for page in ("results/README.md", "benchmarks/README.md", "docs/training.md", "docs/data.md", "docs/web.md",
                 "docs/video.md", "docs/troubleshooting.md"):
        assert f"]({page}" in readme, page


def readme_blocks():
    """{name: commands} of the README's set-up blocks, as .ci/run reads them."""
    spec = importlib.util.spec_from_file_location("readme_block", ROOT / ".ci" / "readme_block.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    names = re.findall(r"<!-- block: (\w+) -->", (ROOT / "README.md").read_text())
    return {name: module.readme_block(name) for name in names}


def test_the_readme_has_two_setup_blocks_and_ci_runs_the_test_block_as_written():
    blocks = readme_blocks()
    assert list(blocks) == ["try", "test"]
    assert "readme_block.py test" in (ROOT / ".ci" / "run").read_text()  # CI runs the second block itself
    test_block = blocks["test"].splitlines()
    assert re.search(r'pip install "\.\[[a-z,]*test[a-z,]*\]"', blocks["test"])  # pytest, Playwright, scikit-image
    assert "npm ci" in blocks["test"] and test_block[-1] == "python -m pytest -q tests"
    for block in blocks.values():  # PyTorch's CPU wheels only where no PyTorch is installed
        assert block.splitlines()[0].startswith('python -c "import torch" 2>/dev/null || pip install torch')


def test_the_try_block_runs_as_written_on_the_shipped_photo(tmp_path):
    commands = [line.split("#")[0].split() for line in readme_blocks()["try"].splitlines()
                if line.startswith("deep-emotion ")]
    assert commands, "the try block runs deep-emotion on something shipped"
    for command in commands:  # from a folder holding what the block names, as a fresh clone does
        for word in command:
            if (ROOT / word).is_file():
                (tmp_path / word).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / word, tmp_path / word)
        installed = shutil.which("deep-emotion")
        argv = [installed] if installed else [sys.executable, "-m", "deep_emotion"]
        result = subprocess.run(argv + command[1:], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert result.returncode == 0, result.stderr[-2000:]
        output = tmp_path / command[command.index("--output") + 1]
        assert output.stat().st_size > 10_000 and re.search(r"face 0 Happy \d+%", result.stdout), result.stdout


def test_the_readmes_python_api_snippet_runs_from_any_folder(tmp_path):
    """The snippet under "Python API" says it works from any folder: run it from one holding only the photo."""
    readme = (ROOT / "README.md").read_text()
    snippet = re.search(r"### Python API\n\n```python\n(.*?)```", readme, re.S)
    assert snippet, "the README's Python API snippet moved"
    shutil.copy(ROOT / "imgs" / "astronaut.jpg", tmp_path)
    result = subprocess.run([sys.executable, "-c", snippet.group(1)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and "Happy" in lines[0]  # the astronaut's one face, smiling


def test_the_short_synthetic_run_reaches_what_the_readme_says_on_each_split(tmp_path):
    """The README's short run on data/synthetic: about 89% on val (where best.pt is chosen), about 84% on test."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(deep-emotion train --setup --data data/synthetic[^\n]*)\n(deep-emotion test [^\n]*)",
                      readme)
    prose = " ".join(readme.split())
    assert block and "about 89% on their val split" in prose and "about 84% on their test split" in prose
    shutil.copytree(ROOT / "data" / "synthetic", tmp_path / "data" / "synthetic")
    outputs = []
    for line in block.groups():
        argv = [sys.executable, "-m", "deep_emotion", *[w.strip("'") for w in line.split("#")[0].split()[1:]]]
        result = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append(result.stdout)
    val = float(re.search(r"val accuracy of synthetic ([\d.]+)%", outputs[0]).group(1))
    test = float(re.search(r"on test: \d+/\d+ = ([\d.]+)%", outputs[1]).group(1))
    assert abs(val - 89) <= 8 and abs(test - 84) <= 8, (val, test)
