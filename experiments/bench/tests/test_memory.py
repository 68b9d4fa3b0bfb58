"""experiments/bench/memory.py: parameter counts of the public shapes, and what --shard divides."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "bench"))

import memory  # noqa: E402


def test_counts_and_shares(tmp_path):
    memory.main(["--processes", "1", "4", "--out", str(tmp_path / "m.json")])
    import json
    rows = json.loads((tmp_path / "m.json").read_text())["rows"]
    default = [r for r in rows if r["model"].startswith("SmolLM2")]
    # SmolLM2-135M has 134,515,008 parameters; 4 x 16 Bridge blocks add 4,440,960 (3.30%)
    assert default[0]["parameters"] == 134_515_008 + 4_440_960 and default[0]["new_parameters"] == 4_440_960
    assert [(r["processes"], r["mode"]) for r in default] == [(1, "replicas"), (4, "replicas"), (4, "--shard")]
    one, four = default[0], default[2]
    assert four["adamw_gib"] * 4 == one["adamw_gib"] and four["activations_gib"] == one["activations_gib"] > 0
    assert (tmp_path / "m.md").read_text().count("| Qwen2-7B |") == 3


def test_the_table_of_docs_training_is_the_committed_json():
    import json
    rows = json.loads((ROOT / "experiments" / "results" / "memory.json").read_text())["rows"]
    readme = (ROOT / "docs" / "training.md").read_text()
    for name in ("SmolLM2-135M (default)", "Qwen2-1.5B", "Qwen2-7B"):
        at8 = {r["mode"]: r for r in rows if r["model"] == name and r["processes"] == 8}
        line = (f"| {name} | {at8['replicas']['total_gib']:.1f} GiB | {at8['--shard']['total_gib']:.1f} GiB | "
                f"{at8['--shard']['rollout_gib']:.1f} GiB |")
        assert line in readme, line


def test_a_bad_out_is_refused_before_the_work(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "rows_for", lambda *a: pytest.fail("computed before checking --out"))
    with pytest.raises(ValueError, match="is a directory"):
        memory.main(["--out", str(tmp_path)])
    with pytest.raises(ValueError, match="does not exist"):
        memory.main(["--out", str(tmp_path / "no" / "m.json")])
    with pytest.raises(ValueError, match="goes beside the JSON as .md"):  # the table would overwrite the JSON
        memory.main(["--out", str(tmp_path / "m.md")])
    (tmp_path / "m.md").mkdir()  # where the table goes
    with pytest.raises(ValueError, match="is a directory"):
        memory.main(["--out", str(tmp_path / "m.json")])
