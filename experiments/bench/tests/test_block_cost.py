"""experiments/bench/block_cost.py on a tiny model: every stage is timed in a step and alone; on/off and the products-only floor are ratios."""
import json
import statistics
import sys
from pathlib import Path

import pytest

import bridge
from tiny import make_tiny_model

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "bench"))
import block_cost  # noqa: E402


def test_every_stage_is_timed_and_bridge_forward_is_put_back(tmp_path, capsys):
    path, _ = make_tiny_model(tmp_path / "m")
    out = tmp_path / "b.json"
    forward = bridge.Bridge.forward
    assert block_cost.main(["--model", str(path), "--width", "4", "--steps", "2", "--rounds", "2",
                            "--repeats", "3", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert set(r["in_step_us"]) == set(r["alone_us"]) == set(block_cost.STAGES)
    assert len(r["ms_off"]) == len(r["ms_on"]) == len(r["ms_products"]) == 2
    # each ratio is the median over rounds of the round's off / arm, from the step times it stored
    for arm, key in (("ms_on", "on_off"), ("ms_products", "products_off")):
        assert r[key] == statistics.median(off / t for off, t in zip(r["ms_off"], r[arm]))
    assert set(r["probe_us"]) == {"warm", "product", "layer", "step"}
    assert 0 < r["layer_mb"] < r["step_mb"]  # one layer's weights are part of a step's
    assert bridge.Bridge.forward is forward
    text = capsys.readouterr().out
    for s in block_cost.STAGES:  # the table is the JSON, and its block row the sum of the stages
        a, b = r["alone_us"][s], r["in_step_us"][s]
        assert f"| {s} | {a:.1f} | {b:.1f} | {b / a:.1f} |" in text
    a, b = sum(r["alone_us"].values()), sum(r["in_step_us"].values())
    assert f"| **block** | **{a:.1f}** | **{b:.1f}** | **{b / a:.1f}** |" in text
    assert f"products-only/off {r['products_off']:.3f}" in text
    assert f"the add costs {r['probe_us']['product'] / r['probe_us']['warm']:.1f} times" in text


def test_bad_counts_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        block_cost.main(["--steps", "0"])
    assert e.value.code == 2 and "--steps must be >= 1" in capsys.readouterr().err


def test_a_bad_out_is_refused_before_the_measurement(tmp_path, monkeypatch):
    monkeypatch.setattr(block_cost, "measure", lambda args: pytest.fail("measured before checking --out"))
    with pytest.raises(ValueError, match="is a directory"):
        block_cost.main(["--out", str(tmp_path)])
    with pytest.raises(ValueError, match="does not exist"):
        block_cost.main(["--out", str(tmp_path / "no" / "b.json")])
