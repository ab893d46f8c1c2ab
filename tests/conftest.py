import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import generate_data  # noqa: E402
from synthetic_faces import SYNTHETIC_CSV, write_synthetic_csv  # noqa: E402

SHARED_FER = ROOT.parent / "shared" / "fer2013" / "fer2013-dev.csv.gz"


@pytest.fixture(scope="session")
def prepared(tmp_path_factory):
    """A prepared synthetic data folder: 16/4/4 faces per class in train/val/test."""
    data = tmp_path_factory.mktemp("synthetic")
    write_synthetic_csv(data / SYNTHETIC_CSV, per_class=(16, 4, 4), seed=1)
    generate_data.prepare(data)
    return data


def run_args(module, *argv):
    """Parses argv with a script's own parser, as its command line would."""
    return module.get_args_parser().parse_args([str(a) for a in argv])
