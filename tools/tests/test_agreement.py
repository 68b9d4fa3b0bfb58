"""metrics.agreement and tools/agreement.py: the share of groups whose answers are all the same."""
import json
import random
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from evaluate import FORMAT
from bridgekit.metrics import agreement

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import agreement as tool  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(groups=st.integers(1, 5), size=st.integers(1, 4), seed=st.integers(0, 10**6))
def test_agreement_counts_the_groups_whose_members_are_all_equal(groups, size, seed):
    rng = random.Random(seed)
    values = [rng.choice([None, 1, 2]) if rng.random() < 0.5 else 1 for _ in range(groups * size)]
    chunks = [values[i:i + size] for i in range(0, len(values), size)]
    expected = sum(len(set(c)) == 1 and c[0] is not None for c in chunks) / groups
    assert agreement(values, size) == expected


def test_agreement_edges():
    assert agreement(["a b", "a b", "a c", "a c"], 2) == 1.0
    assert agreement(["a b", "a b", "a c", "a c"], 4) == 0.0
    assert agreement([None, None], 2) == 0.0          # no answer agrees with anything
    assert agreement([3, 7], 1) == 1.0                 # a group of one agrees with itself
    with pytest.raises(ValueError, match="do not divide"):
        agreement([1, 1, 1], 2)


def test_tool_rows_read_numbers_and_texts(tmp_path):
    per = [dict(answers=[5, 5, 5, 5, 5, 5, 4, 5], texts=["x", "x", "x", "x", "y", "x", "x", "x"], correct=7)]
    run = dict(format=FORMAT, protocol=dict(bridge="bridges/b.safetensors", bridge_on=True, model=None),
               problems=[dict(question="q", answer=5)],
               results=[dict(width=w, n=8, per_problem=per) for w in (1, 2, 4)], timing={})
    path = tmp_path / "b.json"
    path.write_text(json.dumps(run))
    found = tool.rows([path], 4)
    assert [(r["width"], r["size"], r["groups"]) for r in found] == [(1, 4, 2), (4, 4, 2)]  # width 2 is skipped
    assert found[0]["same_number"] == 0.5 and found[0]["same_text"] == 0.5
    text = tool.table(found)
    assert "| b | 4 | 4 (its own groups) | 2 | 50.0% | 50.0% |" in text


def test_the_committed_readme_table_is_what_the_files_give():
    if not any(tool.RES.glob("*.json")):
        pytest.skip("no agreement results committed yet")
    assert tool.main(["--check"]) == 0


def test_a_size_that_does_not_divide_n_is_refused_not_an_empty_table(tmp_path):
    per = [dict(answers=[5] * 8, correct=8)]
    run = dict(format=FORMAT, protocol=dict(bridge="bridges/b.safetensors", bridge_on=True, model=None),
               problems=[dict(question="q", answer=5)], results=[dict(width=1, n=8, per_problem=per)], timing={})
    path = tmp_path / "b.json"
    path.write_text(json.dumps(run))
    with pytest.raises(ValueError, match="--size 3 does not divide the n = 8 answers per problem of .*b.json at width 1"):
        tool.rows([path], 3)


def test_a_readme_that_is_not_a_file_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        tool.main(["--doc", str(tmp_path)])
    with pytest.raises(ValueError, match="no such file"):
        tool.main(["--check", "--doc", str(tmp_path / "README.md")])
