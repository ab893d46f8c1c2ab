"""Measures every test's duration and writes tests/durations.json, from which conftest.py marks the slow tier.

    python tests/measure_durations.py            # the whole suite once (about 6 minutes on 2 cores)

A test whose setup and call took SLOW_SECONDS (conftest.py) or more, or that is not in the file yet, is `slow`;
`pytest -m "not slow"` runs the others, the fast tier. Run this after adding or changing tests, and commit the file.
"""
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def main():
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                                str(TESTS)], cwd=TESTS.parent, capture_output=True, text=True, check=True)
    ids = [line for line in collected.stdout.splitlines() if "::" in line]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "--durations=0", "--durations-min=0",
                          "-p", "no:cacheprovider", str(TESTS)], cwd=TESTS.parent, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"the suite failed; durations not written:\n{run.stdout[-3000:]}")
    seconds = defaultdict(float)
    for line in run.stdout.splitlines():
        match = re.match(r"([\d.]+)s (setup|call|teardown)\s+(\S+)", line)
        if match:
            seconds[match.group(3)] += float(match.group(1))
    measured = {test: round(seconds.get(test, 0.0), 2) for test in ids}
    (TESTS / "durations.json").write_text(json.dumps(measured, indent=1, sort_keys=True) + "\n")
    print(f"{len(measured)} tests measured: {TESTS / 'durations.json'}")


if __name__ == "__main__":
    main()
