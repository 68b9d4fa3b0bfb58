"""experiments/studies/survey_tasks.py: a configuration whose train_grpo.py fails ends the survey in one line that
names it and the exit code (the child's own error is already on stderr); bad paths fail before."""
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
    with pytest.raises(ValueError, match=r"configuration 1/8 \(word hi=20 shots=2\): train_grpo.py "
                                         r"--rollout-only exited with code 3"):
        survey_tasks.main(["--survey-steps", "1"])
    assert len(calls) == 1  # the survey stops at the first failure


def test_a_missing_model_or_a_bad_out_fail_before_the_survey(tmp_path, monkeypatch):
    monkeypatch.setattr(survey_tasks, "survey_tasks", lambda args: pytest.fail("surveyed before the checks"))
    with pytest.raises(ValueError, match="--model ./nope: no such model directory"):
        survey_tasks.main(["--model", "./nope"])
    with pytest.raises(ValueError, match="is a directory"):
        survey_tasks.main(["--out", str(tmp_path)])
