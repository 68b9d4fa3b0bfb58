"""tools/reward_curves.py: every bad input (options, runs, logs) is one line naming it, before the table."""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import reward_curves  # noqa: E402


def grpo_run(path, steps=3, **fields):
    """A run directory as train_grpo.py leaves it: args.json and one log line per step."""
    path.mkdir(parents=True)
    (path / "args.json").write_text(json.dumps(dict(arch="bridge")))
    rows = [dict(step=s, reward=s / 10, step_s=2.0, rollout_s=1.5, update_s=0.5, peak_rss_mb=100.0, **fields)
            for s in range(steps)]
    (path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_two_runs_give_the_table_and_the_figure(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    a, b = grpo_run(tmp_path / "a"), grpo_run(tmp_path / "b", steps=5)
    reward_curves.main([str(a), str(b), "--out", str(tmp_path / "r.png"), "--steps", "2", "--labels", "A", "B"])
    text = capsys.readouterr().out
    assert "| A | 2 | 0.050 | 0.050 |" in text and "| B | 2 |" in text
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("flags, needle", [
    (["--smooth", "0"], "--smooth must be >= 1, got 0"),
    (["--steps", "0"], "--steps must be >= 1, got 0"),          # not "all steps"
    (["--steps", "-1"], "--steps must be >= 1, got -1"),        # not "all but the last"
    (["--labels", "A", "B"], "--labels: 2 given for 1 run directories"),
])
def test_bad_options_are_one_line(tmp_path, capsys, flags, needle):
    run = grpo_run(tmp_path / "a")
    with pytest.raises(SystemExit) as e:
        reward_curves.main([str(run), "--out", str(tmp_path / "r.png"), *flags])
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_a_figure_name_matplotlib_would_change_is_refused(tmp_path):
    run = grpo_run(tmp_path / "a")
    for name in ("r", "r.txt", "r."):  # savefig would write r.png, fail on .txt, or write r.png
        with pytest.raises(ValueError, match="ends in .png, .pdf, .svg"):
            reward_curves.main([str(run), "--out", str(tmp_path / name)])
    with pytest.raises(ValueError, match="does not exist"):
        reward_curves.main([str(run), "--out", str(tmp_path / "no" / "r.png")])


def test_bad_logs_are_one_line_naming_the_file(tmp_path, capsys):
    good = grpo_run(tmp_path / "good")
    empty = grpo_run(tmp_path / "empty")
    (empty / "log.jsonl").write_text("")
    broken = grpo_run(tmp_path / "broken")
    (broken / "log.jsonl").write_text('{"step": 0, "reward": 1.0}\n{"step": 1\n')
    sft = tmp_path / "sft"  # train_sft.py's log: a loss, no reward
    sft.mkdir()
    (sft / "log.jsonl").write_text(json.dumps(dict(step=0, loss=1.0, step_s=1.0, peak_rss_mb=1.0)) + "\n")
    for run, needle in ((empty, "log.jsonl: no step logged yet"), (broken, "log.jsonl, line 1: no step_s"),
                        (sft, "log.jsonl, line 1: no reward, rollout_s, update_s; is .*sft a GRPO run"),
                        (tmp_path / "none", "log.jsonl: no training log")):
        with pytest.raises((ValueError, FileNotFoundError), match=needle):
            reward_curves.main([str(good), str(run), "--out", str(tmp_path / "r.png")])
    (broken / "log.jsonl").write_text(json.dumps(dict(step=0, reward=1.0, step_s=1, rollout_s=1, update_s=0,
                                                      peak_rss_mb=1)) + "\n{\"step\": 1\n")
    with pytest.raises(ValueError, match=r"broken.log\.jsonl, line 2: not valid JSON"):
        reward_curves.main([str(good), str(broken), "--out", str(tmp_path / "r.png")])
    (good / "args.json").write_text("{")
    with pytest.raises(ValueError, match=r"good.args\.json: not valid JSON"):
        reward_curves.main([str(good), "--out", str(tmp_path / "r.png")])
    assert capsys.readouterr().out == ""  # no half table before the error
