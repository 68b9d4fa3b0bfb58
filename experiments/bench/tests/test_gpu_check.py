"""experiments/bench/gpu_check.py on CPU with tiny sizes (--dry-run): every part of the GPU check runs, so the
check cannot rot between the sessions that have a GPU."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "bench"))

import gpu_check  # noqa: E402


def test_the_dry_run_writes_every_part(tmp_path):
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path / "check.json")]) == 0
    result = json.loads((tmp_path / "check.json").read_text())
    assert result["dry_run"] and result["device"] == "cpu"
    assert [(r["dtype"], r["width"]) for r in result["sampler"]] == [("fp32", 1), ("fp32", 4), ("bf16", 1), ("bf16", 4)]
    b = result["bridge"]
    assert b["on_off"] == b["on_tok_s"] / b["off_tok_s"]
    assert [s["step"] for s in result["grpo"]["steps"]] == [0, 1]
    assert any(s["groups_updated"] > 0 for s in result["grpo"]["steps"])  # a real update ran
    table = (tmp_path / "check.md").read_text()
    for r in result["sampler"]:  # each row of the table is its measurement, the ratio computed from it
        assert r["ratio"] == r["ours_tok_s"] / r["hf_tok_s"]
        assert f"| {r['dtype']} | {r['width']} | {r['ours_tok_s']:.0f} | {r['hf_tok_s']:.0f} | {r['ratio']:.2f} |" in table
    assert f"(on/off {b['on_off']:.2f})" in table


def test_the_random_model_has_the_default_models_shape(tmp_path):
    from model import load_model
    model, _ = load_model(gpu_check.random_model_dir(tmp_path / "m", gpu_check.TINY_SHAPE))
    assert model.config.num_hidden_layers == 2 and model.config.vocab_size == 272
    from model import Config, Transformer
    with torch.device("meta"):  # SmolLM2-135M's 134,515,008 parameters (tied embeddings), without memory
        big = Transformer(Config.from_dict(dict(gpu_check.DEFAULT_SHAPE, model_type="llama")))
    big.tie_weights()
    total = sum(p.numel() for p in big.parameters())
    assert total == 134_515_008


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_one_line_error():
    done = subprocess.run([sys.executable, "experiments/bench/gpu_check.py"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "error: device 'cuda' requested but CUDA is not available here"


def test_a_bad_out_is_refused_before_the_check(tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_check, "random_model_dir", lambda *a: pytest.fail("ran before checking --out"))
    with pytest.raises(ValueError, match="does not exist"):
        gpu_check.main(["--dry-run", "--out", str(tmp_path / "no" / "check.json")])
    with pytest.raises(ValueError, match="is a directory"):
        gpu_check.main(["--dry-run", "--out", str(tmp_path)])
