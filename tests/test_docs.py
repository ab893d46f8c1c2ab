"""The Markdown pages: every relative link resolves, and the README stays a front page."""
import re

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
