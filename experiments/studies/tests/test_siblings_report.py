"""experiments/studies/siblings_report.py: its section of docs/results.md regenerates from the committed files, and its
numbers are what the per-question records say (a synthetic study with known answers)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "studies"))

import siblings_report as sr  # noqa: E402


def test_the_readme_section_is_what_the_committed_files_give():
    done = subprocess.run([sys.executable, "experiments/studies/siblings_report.py", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def fake_result(choices_by_width):
    """An evaluate.py result of the set task: {width: [choices of question 1, of question 2, ...]}."""
    return dict(protocol=dict(problems=2, n=4, widths=sorted(choices_by_width), temperature=1.0, max_new_tokens=32),
                results=[dict(width=w, per_problem=[dict(choices=c) for c in qs]) for w, qs in choices_by_width.items()])


def write_study(res):
    """Two seeds of Bridge and P-Match, n = 4, questions with known scores in groups of 2 and 4."""
    res.mkdir()
    all_distinct = [[1, 2, 3, 4], [5, 6, 7, 8]]
    clash = [[1, 1, 2, 2], [3, 3, 3, 3]]
    for seed in (0, 1):
        bridge = {1: clash, 2: all_distinct, 4: all_distinct if seed == 0 else [[1, 2, 3, 4], [1, 1, 2, 3]], 8: clash}
        pmatch = {1: clash, 2: clash, 4: clash, 8: clash}
        (res / f"seed{seed}_bridge.json").write_text(json.dumps(fake_result(bridge)))
        (res / f"seed{seed}_pmatch.json").write_text(json.dumps(fake_result(pmatch)))


def test_scores_and_paired_differences_are_those_of_the_records(tmp_path):
    write_study(tmp_path / "res")
    runs, base = sr.load(tmp_path / "res")
    assert base is None and sorted(runs) == [("bridge", 0), ("bridge", 1), ("pmatch", 0), ("pmatch", 1)]
    # seed 1 of Bridge at width 4: question 1 all score, question 2 [1, 1, 2, 3] -> only 2 and 3 score
    assert sr.per_problem(runs["bridge", 1], 4, 4) == [(1.0, 1.0), (0.5, 0.0)]
    assert sr.per_problem(runs["pmatch", 0], 2, 2) == [(0.0, 0.0), (0.0, 0.0)]
    comps = {(tuple(c["arms"]), c["width"]): c for c in sr.comparisons(runs)}
    at4 = comps[("Bridge", "P-Match"), 4]
    assert at4["differences"] == pytest.approx([1.0, 0.75]) and at4["wins"] == 2
    # width 1 is pooled: [1, 1, 2, 2] in groups of 2 never scores, in groups of 4 neither
    assert comps[("Bridge at width 2", "its weights at width 1"), 2]["differences"] == pytest.approx([1.0, 1.0])
    text = sr.section(tmp_path / "res", tmp_path / "no_control.json")
    assert "| Bridge | 1.000 (1.000–1.000) | 0.875 (0.750–1.000) | 0.000 (0.000–0.000) |" in text
    # the verdict weighs the gap to the ceiling against the noise: per-question means over seeds
    # (1.0 and 0.75 at W = 4), their standard error over the two questions 0.125
    assert "Bridge at W = 4: 0.875 ± 0.125, within 2 se of the ceiling 0.702" in text
    assert "P-Match at W = 4: 0.000 ± 0.000, below the ceiling 0.702" in text
    # in words: W = 2 is above the ceiling beyond 2 se (every answer scores), and Bridge scored higher
    # than P-Match in both seeds everywhere but W = 8, where both clash alike
    words = text.split("**In words.**")[1].split("\n")[0]
    assert "Bridge passed the independent ceiling at W = 2," in words
    assert "scored lower than P-Match" not in words


def test_no_results_yet_is_a_section_that_says_so(tmp_path):
    text = sr.section(tmp_path / "none", tmp_path / "none.json")
    assert "No trained arm has results yet" in text and "not yet" in text


def test_outputs_that_are_directories_are_one_line_before_the_section(tmp_path, monkeypatch):
    monkeypatch.setattr(sr, "section", lambda *a: pytest.fail("computed the section first"))
    readme = tmp_path / "README.md"
    readme.write_text(f"{sr.BEGIN}\n{sr.END}\n")
    with pytest.raises(ValueError, match="--doc .* is a directory"):
        sr.main(["--doc", str(tmp_path)])
    with pytest.raises(ValueError, match="--json .* is a directory"):
        sr.main(["--doc", str(readme), "--json", str(tmp_path)])
