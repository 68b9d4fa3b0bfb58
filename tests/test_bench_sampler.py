"""tools/bench_sampler.py on a tiny model: every engine runs in its own process, and the tables read them."""
import json
import sys
from pathlib import Path

import pytest

from tiny import make_tiny_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import bench_sampler  # noqa: E402


def run(tmp_path, capsys, *more):
    path, _ = make_tiny_model(tmp_path / "m")
    out = tmp_path / "b.json"
    bench_sampler.main(["--what", "all", "--model", str(path), "--widths", "2", "--bridge-widths", "2",
                        "--dtypes", "fp32", "--new-tokens", "4", "--repeats", "1", "--out", str(out), *more])
    results = json.loads(out.read_text())
    assert not [r for r in results if "error" in r], results
    return results, capsys.readouterr().out


def test_every_engine_runs_and_the_tables_read_them(tmp_path, capsys):
    results, text = run(tmp_path, capsys)
    assert {(r["table"], r["engine"]) for r in results} == {("sampler", "ours"), ("sampler", "hf"), ("bridge", "ours")}
    assert "| cpu | fp32 | 2 |" in text and "| cpu | 2 |" in text and "--compile" not in text


@pytest.mark.slow  # three compilations (the sampler, then Bridge and P-Match off and on)
def test_compile_adds_its_engine_and_compile_time(tmp_path, capsys):
    results, text = run(tmp_path, capsys, "--compile")
    assert {(r["table"], r["engine"]) for r in results} == {("sampler", "ours"), ("sampler", "hf"),
                                                           ("sampler", "compiled"), ("bridge", "ours"),
                                                           ("bridge", "compiled")}
    assert "| ours --compile tok/s | compiled / HF | compile s |" in text
    assert "| cpu | 2 (--compile) |" in text and "| cpu | 2 |" in text


def test_plain_adds_the_f_linear_engine(tmp_path, capsys):
    results, text = run(tmp_path, capsys, "--plain")
    assert {(r["table"], r["engine"]) for r in results} == {("sampler", "ours"), ("sampler", "hf"),
                                                           ("sampler", "plain"), ("bridge", "ours"),
                                                           ("bridge", "plain")}
    assert "| ours F.linear tok/s | F.linear / HF |" in text
    assert "| cpu | 2 (F.linear) |" in text and "| cpu | 2 |" in text
