"""studies/headline.py: README.md's headline tables are the comparisons of docs/results.md at the
training width, and the verdict reads their intervals."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "studies"))

import headline  # noqa: E402
import report  # noqa: E402
import siblings_report  # noqa: E402
from study import STUDIES, load  # noqa: E402


def test_the_committed_readme_tables_are_what_the_files_give():
    if not (STUDIES["repro"].res / "base.json").is_file():
        pytest.skip("no committed results yet")
    assert headline.main(["--check"]) == 0


def test_each_row_is_a_comparison_of_the_full_section_at_the_training_width():
    if not (STUDIES["repro"].res / "base.json").is_file():
        pytest.skip("no committed results yet")
    text = headline.section()
    for name in ("repro", "headroom"):
        for c in report.comparisons(load(STUDIES[name].res)):
            if c["arms"][1] == "P-Match's width effect":  # full section only
                assert c["arms"][1] not in text
                continue
            assert (headline.row(c) in text) == (c["width"] == 4), (name, c["arms"], c["width"])
    for c in siblings_report.comparisons(siblings_report.load()[0]):
        assert (headline.row(c) in text) == (c["width"] == 4), (c["arms"], c["width"])
    # the row carries the interval the full section prints, in points
    c = next(c for c in report.comparisons(load(STUDIES["repro"].res)) if c["width"] == 4 and c["arms"][1] == "P-Match")
    lo, hi = (100 * x for x in c["interval"])
    assert f"| {100 * c['mean']:+.1f} | [{lo:+.1f}, {hi:+.1f}] |" in headline.row(c)


def comparison(other, lo, hi):
    return dict(arms=["Bridge", other], mean=(lo + hi) / 2, interval=[lo, hi], detectable=0.01, wins=1, ties=0, losses=1)


def test_the_verdict_names_the_intervals_that_exclude_0():
    saturated, headroom = "The paper's comparison on a saturated task", "The same comparison on a task with headroom"
    found = [(saturated, comparison("RLVR only", 0.01, 0.03)), (saturated, comparison("P-Match", -0.02, 0.03)),
             (headroom, comparison("Bridge at width 1", -0.03, -0.01))]
    v = headline.verdict(found)
    assert "lies above 0 against RLVR only on the saturated task (warm-up plus blocks" in v
    assert "below 0 against the same Bridge weights at width 1 on the task with headroom" in v
    assert "contains 0 in the other 1 comparisons: no study shows Bridge gaining from reading its siblings" in v
    found[1] = (saturated, comparison("P-Match", 0.01, 0.03))
    assert "the siblings help where" in headline.verdict(found)
    assert "never excludes 0" in headline.verdict([(saturated, comparison("P-Match", -0.01, 0.01))])


def test_a_document_that_is_not_a_file_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="--doc .* is a directory"):
        headline.main(["--doc", str(tmp_path)])
    with pytest.raises(ValueError, match="no such file"):
        headline.main(["--check", "--readme", str(tmp_path / "README.md")])
