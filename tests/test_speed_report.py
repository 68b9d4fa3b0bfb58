"""tools/speed_report.py: README's measured speed section is what results/speed/ holds."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import speed_report  # noqa: E402


def test_the_committed_speed_section_is_what_the_files_give():
    if not (speed_report.RES / "machine.txt").is_file():
        pytest.skip("no speed measurements committed yet")
    assert speed_report.main(["--check"]) == 0


def test_missing_measurements_are_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="bash runs/speed.sh"):
        speed_report.load(tmp_path)
