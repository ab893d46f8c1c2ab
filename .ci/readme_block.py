"""Prints the README's shell block that follows `<!-- block: NAME -->`: `python3 .ci/readme_block.py test`."""
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_block(name, text=None):
    """The commands of the README's ```bash block marked `<!-- block: name -->`; raises KeyError when absent."""
    text = README.read_text() if text is None else text
    found = re.search(rf"<!-- block: {re.escape(name)} -->\s*```bash\n(.*?)```", text, re.S)
    if found is None:
        raise KeyError(f"README.md has no block marked <!-- block: {name} -->")
    return found.group(1)


if __name__ == "__main__":
    print(readme_block(sys.argv[1]), end="")
