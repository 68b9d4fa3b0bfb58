"""experiments/bench/paths_report.py: both paths against their peers, from committed files."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import paths_report  # noqa: E402


def test_the_committed_section_is_what_the_files_give():
    assert paths_report.main(["--check"]) == 0


def test_ratios_say_which_is_faster_in_each_unit_and_the_verdict_follows_the_real_workloads(tmp_path):
    sampler = [dict(width=4, engine=e, tok_s=v) for e, v in (("ours", 60.0), ("hf", 40.0), ("naive", 50.0))]
    grpo = [dict(engine=e, s_per_step=v, prompts=8, width=4, steps=4) for e, v in (("ours", 10.0), ("naive", 12.0),
                                                                                   ("trl", 40.0))]
    ev = dict(problems=2, n=8, seconds=dict(naive=[30.0, 31.0], fast=[29.0, 33.0]), rows=32, differing_rows=0,
              threads=2, torch="t")
    for name, data in (("sampler_naive.json", sampler), ("grpo_trl_naive.json", grpo), ("eval_paths.json", ev)):
        (tmp_path / name).write_text(json.dumps(data))
    (tmp_path / "paths_machine.txt").write_text("a CPU, 2 cores\n")
    text = paths_report.section(tmp_path)
    assert "| tokens/s | 50.0 | 60.0 | 1.20 | transformers.generate | 1.25 | 1.50 |" in text
    assert "| s/step | 12.0 | 10.0 | 1.20 | TRL GRPOTrainer | 3.33 | 4.00 |" in text
    assert "| s | 30.0 | 29.0 | 1.03 | – | – | – |" in text
    assert "pays at least 10%" in text and "at most 1.20x" in text and "on a CPU, 2 cores" in text


def test_before_and_after_the_layout_is_the_ratio_to_the_peer_and_the_step_time(tmp_path):
    for when, ours, step in (("before", 66.0, 23.5), ("after", 60.0, 22.0)):
        (tmp_path / f"layout_{when}_sampler.json").write_text(json.dumps(
            [dict(width=w, engine=e, tok_s=v) for w in (4, 16) for e, v in (("ours", ours), ("hf", 50.0))]))
        (tmp_path / f"layout_{when}_grpo.json").write_text(json.dumps([dict(engine="ours", s_per_step=step)]))
    lines = paths_report.layout_lines(tmp_path)
    assert "| sampler, width 4: ours / transformers.generate (tokens/s) | 1.32 | 1.20 |" in lines
    assert "| GRPO step, RLVR only (s/step) | 23.50 | 22.00 |" in lines
