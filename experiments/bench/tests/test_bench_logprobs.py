"""experiments/bench/bench_logprobs.py on a tiny model: both ways and both dtypes run, and the table names the CPU."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tiny import make_training_model

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "bench"))
import bench_logprobs  # noqa: E402


def test_both_ways_in_both_dtypes_and_the_machine(tmp_path, capsys):
    path = make_training_model(tmp_path / "m", seed=1)
    out = tmp_path / "b.json"
    bench_logprobs.main(["--model", str(path), "--repeats", "1", "--out", str(out)])
    r = json.loads(out.read_text())
    assert [row["dtype"] for row in r["rows"]] == ["fp32", "bf16"]
    assert 0 <= r["drift"]["mean_abs"] <= r["drift"]["max_abs"]
    # whether bf16 autocast pays depends on the CPU: the result says which one, and what it offers
    assert r["machine"] and set(r["bf16_instructions"]) <= {"avx512_bf16", "amx_bf16"}
    text = capsys.readouterr().out
    for row in r["rows"]:  # the table is the JSON: the seconds it measured, the speed-up computed from them
        assert (f"| {row['dtype']} | {row['shared_s']:.1f} | {row['plain_s']:.1f} | "
                f"{row['plain_s'] / row['shared_s']:.2f} |") in text
    assert f"bf16 product instructions: {', '.join(r['bf16_instructions']) or 'none'}" in text


def test_with_eos_the_answers_end_and_the_prompt_once_computes_fewer_positions(tmp_path, capsys):
    path = make_training_model(tmp_path / "m", seed=1)
    out = tmp_path / "b.json"
    bench_logprobs.main(["--model", str(path), "--repeats", "1", "--eos", "--out", str(out)])
    r = json.loads(out.read_text())
    assert r["eos"] and 0 < r["answer_tokens"] <= 8 * 4 * 64
    assert 0 < r["cells"]["shared"] < r["cells"]["plain"]
    assert f"prompt once {r['cells']['shared']}, plain {r['cells']['plain']}" in capsys.readouterr().out


def test_a_missing_model_is_one_line_from_the_command():
    done = subprocess.run([sys.executable, "experiments/bench/bench_logprobs.py", "--model", "/nonexistent"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        "error: --model /nonexistent: no such model directory"]


def test_a_bad_out_is_refused_before_the_work(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_logprobs, "bench_logprobs", lambda args: pytest.fail("ran before checking --out"))
    with pytest.raises(ValueError, match="is a directory"):
        bench_logprobs.main(["--out", str(tmp_path)])
