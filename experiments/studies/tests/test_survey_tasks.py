"""experiments/studies/survey_tasks.py: a configuration whose rollouts fail ends the survey in one line that
names it and the exit code (the child's own error is already on stderr); bad paths fail before; the
rollouts are train_grpo.py's own, never updated."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "studies"))
import survey_tasks  # noqa: E402


def test_a_failing_child_is_one_line_with_its_exit_code(monkeypatch):
    calls = []

    def failing(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 3)
    monkeypatch.setattr(survey_tasks.subprocess, "run", failing)
    with pytest.raises(ValueError, match=r"configuration 1/8 \(word hi=20 shots=2\): its rollouts exited with code 3"):
        survey_tasks.main(["--survey-steps", "1"])
    assert len(calls) == 1  # the survey stops at the first failure


def test_a_missing_model_or_a_bad_out_fail_before_the_survey(tmp_path, monkeypatch):
    monkeypatch.setattr(survey_tasks, "survey_tasks", lambda args: pytest.fail("surveyed before the checks"))
    with pytest.raises(ValueError, match="--model ./nope: no such model directory"):
        survey_tasks.main(["--model", "./nope"])
    with pytest.raises(ValueError, match="is a directory"):
        survey_tasks.main(["--out", str(tmp_path)])


def test_the_rollouts_are_grpos_own_steps_without_an_update(tmp_path):
    from tiny import make_training_model
    model = make_training_model(tmp_path / "model", seed=3)
    survey_tasks.rollouts(["--model", str(model), "--task", "word", "--steps", "2", "--prompts-per-step", "2", "--width", "2",
                           "--max-new-tokens", "4", "--show-every", "0", "--out", str(tmp_path)])
    import json
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1] and all(r["groups_updated"] == 0 and r["loss"] == 0 for r in log)
