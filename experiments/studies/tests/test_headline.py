"""experiments/studies/headline.py: README.md's headline tables are the comparisons of docs/results.md at the
training width, and the verdict reads their intervals."""
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "studies"))

import credit_report  # noqa: E402
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
    assert "contains 0 in the other 1 comparisons: no GRPO study shows Bridge gaining from reading its siblings" in v
    found[1] = (saturated, comparison("P-Match", 0.01, 0.03))
    assert "the siblings help where" in headline.verdict(found)
    assert "never excludes 0" in headline.verdict([(saturated, comparison("P-Match", -0.01, 0.01))])


def test_a_document_that_is_not_a_file_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="--doc .* is a directory"):
        headline.main(["--doc", str(tmp_path)])
    with pytest.raises(ValueError, match="no such file"):
        headline.main(["--check", "--readme", str(tmp_path / "README.md")])


def test_the_credit_study_line_reads_its_arms_and_their_sets(tmp_path):
    """Before any arm: says so; after: each arm's score per answer at W = 4 and the --sets of its runs."""
    res = credit_report.RES
    if not (res / "oracle_bridge.json").is_file():
        pytest.skip("no oracle check committed")
    assert "no finished Bridge arm yet" in headline.credit_study_line(tmp_path, 9)
    shutil.copy(res / "oracle_bridge.json", tmp_path / "seed0_bridge.json")  # a Bridge result of every width
    shutil.copy(res / "oracle_pmatch.json", tmp_path / "seed0_pmatch.json")  # a no-path result at width 1
    (tmp_path / "seed0" / "grpo_bridge").mkdir(parents=True)
    (tmp_path / "seed0" / "grpo_bridge" / "args.json").write_text(json.dumps({"sets": 3}))
    line = headline.credit_study_line(tmp_path, 9)
    bridge, _ = credit_report.scores(credit_report.read(res / "oracle_bridge.json"), 4, 4)
    pmatch, _ = credit_report.scores(credit_report.read(res / "oracle_pmatch.json"), 1, 4)
    assert "with 3 sets per prompt" in line and "1 training seed (" in line and "ceiling 0.702" in line
    assert f"P-Match {pmatch['mean']:.3f}, Bridge {bridge['mean']:.3f}." in line and "RLVR" not in line


def test_the_credit_study_line_gives_the_paired_interval_once_the_planned_seeds_are_in(tmp_path):
    """With fewer seeds than planned it says "so far"; with them, no "so far" and Bridge − P-Match at
    W = 4 with its interval over seeds, the comparison the study section prints."""
    res = credit_report.RES
    names = [f"seed{s}_{a}.json" for s in range(headline.PLANNED_SEEDS) for a in ("bridge", "pmatch")]
    if not all((res / n).is_file() for n in names):
        pytest.skip("the credit study's seeds are not all committed")
    for n in names[:2]:
        shutil.copy(res / n, tmp_path / n)
    assert "so far 1 training seed (" in headline.credit_study_line(tmp_path, 9)
    for n in names[2:]:
        shutil.copy(res / n, tmp_path / n)
    line = headline.credit_study_line(tmp_path, 9)
    runs, _ = siblings_report.load(tmp_path)
    vs = next(c for c in siblings_report.comparisons(runs) if c["width"] == 4 and c["arms"] == ["Bridge", "P-Match"])
    lo, hi = vs["interval"]
    assert f"{headline.PLANNED_SEEDS} training seeds (" in line and "so far" not in line
    assert line.endswith(f"Bridge − P-Match {100 * vs['mean']:+.1f} points, 95% interval over seeds "
                         f"[{100 * lo:+.1f}, {100 * hi:+.1f}].")
