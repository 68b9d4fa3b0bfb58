"""experiments/bench/bench_sampler.py on a tiny model: every engine runs in its own process, and the tables read them."""
import json
import sys
from pathlib import Path

import pytest

from tiny import make_tiny_model

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "bench"))
import bench_sampler  # noqa: E402


def run(tmp_path, capsys, *more):
    path, _ = make_tiny_model(tmp_path / "m")
    out = tmp_path / "b.json"
    bench_sampler.main(["--what", "all", "--model", str(path), "--widths", "2", "--bridge-widths", "2",
                        "--dtypes", "fp32", "--new-tokens", "4", "--repeats", "1", "--out", str(out), *more])
    results = json.loads(out.read_text())
    assert not [r for r in results if "error" in r], results
    return results, capsys.readouterr().out


def find(results, **kw):
    """The one result with these fields."""
    (r,) = [r for r in results if all(r.get(k) == v for k, v in kw.items())]
    return r


def test_every_engine_runs_and_the_tables_read_them(tmp_path, capsys):
    results, text = run(tmp_path, capsys)
    assert {(r["table"], r["engine"]) for r in results} == {("sampler", "ours"), ("sampler", "hf"), ("bridge", "ours")}
    # each row is its results: tokens per second as measured, the ratios computed from them
    o, h = (find(results, table="sampler", engine=e) for e in ("ours", "hf"))
    assert f"| cpu | fp32 | 2 | {o['tok_s']:.1f} | {h['tok_s']:.1f} | {o['tok_s'] / h['tok_s']:.2f} |" in text
    b, p = (find(results, table="bridge", block=k) for k in ("bridge", "pmatch"))
    assert (f"| cpu | 2 | {b['tok_s_off']:.1f} | {b['tok_s']:.1f} | {b['tok_s'] / b['tok_s_off']:.2f} | "
            f"{p['tok_s_off']:.1f} | {p['tok_s']:.1f} | {p['tok_s'] / p['tok_s_off']:.2f} |") in text


def test_plain_adds_the_f_linear_engine(tmp_path, capsys):
    results, text = run(tmp_path, capsys, "--plain")
    assert {(r["table"], r["engine"]) for r in results} == {("sampler", "ours"), ("sampler", "hf"),
                                                           ("sampler", "plain"), ("bridge", "ours"),
                                                           ("bridge", "plain")}
    assert "| ours F.linear tok/s | F.linear / HF |" in text
    o, h, f = (find(results, table="sampler", engine=e) for e in ("ours", "hf", "plain"))
    assert f"| {o['tok_s'] / h['tok_s']:.2f} | {f['tok_s']:.1f} | {f['tok_s'] / h['tok_s']:.2f} |" in text
    b = find(results, table="bridge", block="bridge", engine="plain")
    assert f"| cpu | 2 (F.linear) | {b['tok_s_off']:.1f} | {b['tok_s']:.1f} | {b['tok_s'] / b['tok_s_off']:.2f} |" in text


def no_jobs(*a):
    pytest.fail("a job ran before the arguments were checked")


@pytest.mark.parametrize("flags, needle", [
    (["--widths", "4", "0"], "--widths must be >= 1, got 0"),
    (["--bridge-widths", "-1"], "--bridge-widths must be >= 1, got -1"),
    (["--new-tokens", "0"], "--new-tokens must be >= 1, got 0"),
    (["--repeats", "0"], "--repeats must be >= 1, got 0"),
])
def test_bad_counts_are_one_line(capsys, monkeypatch, flags, needle):
    monkeypatch.setattr(bench_sampler.benchkit, "run_job", no_jobs)
    with pytest.raises(SystemExit) as e:
        bench_sampler.main(flags)
    assert e.value.code == 2 and needle in capsys.readouterr().err


def test_a_missing_model_a_bad_device_or_out_fail_once_before_the_jobs(tmp_path, monkeypatch):
    import torch
    monkeypatch.setattr(bench_sampler.benchkit, "run_job", no_jobs)
    with pytest.raises(ValueError, match="--model /nonexistent: no such model directory"):
        bench_sampler.main(["--model", "/nonexistent"])
    with pytest.raises(ValueError, match="is not a model directory"):
        bench_sampler.main(["--model", str(tmp_path)])
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda"):
        bench_sampler.main(["--devices", "tpu"])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            bench_sampler.main(["--devices", "cuda"])
    with pytest.raises(ValueError, match="is a directory"):
        bench_sampler.main(["--out", str(tmp_path)])


def test_a_failed_job_is_exit_code_1_and_the_rest_is_written(tmp_path, monkeypatch, capsys):
    def run_job(script, job):  # HF fails, ours runs
        if job["engine"] == "hf":
            return dict(job, error="no transformers")
        return dict(job, tok_s=10.0, warmup_s=0.1, peak_mb=1.0)
    monkeypatch.setattr(bench_sampler.benchkit, "run_job", run_job)
    out = tmp_path / "b.json"
    assert bench_sampler.main(["--widths", "2", "--dtypes", "fp32", "--devices", "cpu", "--out", str(out)]) == 1
    assert [r["engine"] for r in json.loads(out.read_text())] == ["ours", "hf"]
    assert "error: 1 of 2 configurations failed (first: no transformers)" in capsys.readouterr().err
