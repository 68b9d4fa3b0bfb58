"""experiments/bench/profile_step.py on a tiny model: it runs, and its kinds add up to the measured step."""
import json
import sys
from pathlib import Path

import pytest

import torch

from bridgekit import fast
from tiny import make_tiny_model

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "bench"))
import profile_step  # noqa: E402


def profile(tmp_path, *flags):
    """profile_step on a fresh tiny model with these flags: the result it wrote as JSON."""
    path, _ = make_tiny_model(tmp_path / "m")
    out = tmp_path / "p.json"
    assert profile_step.main(["--model", str(path), *flags, "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_the_kinds_add_up_to_the_step(tmp_path, capsys):
    r = profile(tmp_path, "--width", "4", "--warmup", "1", "--steps", "3", "--bridge")
    assert r["width"] == 4 and r["steps"] == 3
    # what no op accounts for is "Python and dispatch", so the kinds cover the whole step
    assert sum(r["kinds_ms"].values()) >= r["step_ms"] * (1 - 1e-9)
    assert "matmul" in r["kinds_ms"] and r["packed"] == fast.packs(torch.float32)
    text = capsys.readouterr().out
    for kind, ms in r["kinds_ms"].items():  # the table is the JSON
        assert f"| {kind} | {ms:.2f} | {100 * ms / r['step_ms']:.0f}% |" in text
    # the floor reads every weight of the model once, its blocks included, at the rate it reports
    from model import load_model
    model, _ = load_model(tmp_path / "m")
    model.add_bridge("bridge", verbose=False)
    weight_bytes = sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values())
    assert r["weights_mb"] == weight_bytes / 2**20
    assert r["read_gb_s"] == pytest.approx(weight_bytes / r["read_ms"] / 1e6, rel=1e-12)


def test_plain_profiles_f_linear(tmp_path, capsys):
    r = profile(tmp_path, "--width", "2", "--warmup", "0", "--steps", "2", "--plain")
    assert r["packed"] is False and "matmul" in r["kinds_ms"]
    assert "Products: F.linear" in capsys.readouterr().out


def test_kind_of_sorts_the_ops():
    assert profile_step.kind_of("aten::addmm") == "matmul"
    assert profile_step.kind_of("aten::_scaled_dot_product_flash_attention_for_cpu") == "attention"
    assert profile_step.kind_of("aten::cumsum") == "sampling (vocabulary)"
    assert profile_step.kind_of("aten::copy_") == "copies and indexing"
    assert profile_step.kind_of("aten::rsqrt") == "elementwise"
    assert profile_step.kind_of("aten::something_new") == "other ops"


def test_bad_width_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        profile_step.main(["--width", "0"])
    assert e.value.code == 2 and "--width must be >= 1" in capsys.readouterr().err


def test_a_bad_out_is_refused_before_the_profile(tmp_path, monkeypatch):
    monkeypatch.setattr(profile_step, "profile", lambda args: pytest.fail("profiled before checking --out"))
    with pytest.raises(ValueError, match="is a directory"):
        profile_step.main(["--out", str(tmp_path)])
    with pytest.raises(ValueError, match="does not exist"):
        profile_step.main(["--out", str(tmp_path / "no" / "p.json")])
