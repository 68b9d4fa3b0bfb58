"""experiments/bench/bench_grpo.py: bad arguments are one line before any engine runs, and a failed engine is
exit code 1 (the rows that ran are still written). The engines themselves run in experiments/bench/speed.sh."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "bench"))
import bench_grpo  # noqa: E402
import benchkit  # noqa: E402


@pytest.fixture
def no_engine(monkeypatch):
    monkeypatch.setattr(bench_grpo, "bench_grpo", lambda args: pytest.fail("an engine ran before the checks"))


@pytest.mark.parametrize("flags, needle", [
    (["--ours-micro-groups", "0"], "--ours-micro-groups must be >= 1, got 0"),   # not train_grpo's default
    (["--grpo-shots", "-1"], "--grpo-shots must be >= 0, got -1"),
    (["--grpo-steps", "0"], "--grpo-steps must be >= 1, got 0"),
    (["--trl-micro-batch", "3"], "--trl-micro-batch must divide 32"),
])
def test_bad_counts_are_one_line(capsys, no_engine, flags, needle):
    with pytest.raises(SystemExit) as e:
        bench_grpo.main(["--grpo-engines", "ours", *flags])
    assert e.value.code == 2 and needle in capsys.readouterr().err


def test_a_missing_model_or_a_bad_out_fail_before_the_engines(tmp_path, no_engine):
    with pytest.raises(ValueError, match="--model /nonexistent: no such model directory"):
        bench_grpo.main(["--grpo-engines", "ours", "--model", "/nonexistent"])
    with pytest.raises(ValueError, match="is a directory"):
        bench_grpo.main(["--grpo-engines", "ours", "--out", str(tmp_path)])


def test_a_failed_engine_is_exit_code_1_and_the_rows_are_written(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_grpo, "grpo_ours", lambda work, micro, engine: dict(work, engine=engine, error="it broke"))
    out = tmp_path / "g.json"
    assert bench_grpo.main(["--grpo-engines", "ours", "--out", str(out)]) == 1
    assert json.loads(out.read_text())[0]["error"] == "it broke"
    captured = capsys.readouterr()
    assert "| ours | error: it broke |" in captured.out and "error: ours failed: it broke" in captured.err


@pytest.mark.parametrize("code, stderr, line", [
    (1, "loading\nerror: --model x: no such model directory\n", "--model x: no such model directory"),
    (1, "Traceback (most recent call last):\n  File \"t.py\", line 1\nValueError: bad\n  warnings.warn(\n", "ValueError: bad"),
    (-9, "UserWarning: something\n  warnings.warn(\n", "killed by signal 9 (SIGKILL; out of memory?)"),
    (3, "  warnings.warn(\n", "exit code 3; its last line: warnings.warn("),
    (2, "", "exit code 2"),
])
def test_a_failed_engine_is_said_in_one_line_that_names_what_ended_it(code, stderr, line):
    # a process that only left a library's warning (a kill, an exit without a message) is not that warning
    assert benchkit.failure(code, stderr) == line
