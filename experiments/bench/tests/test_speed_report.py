"""experiments/bench/speed_report.py: docs/speed.md's measured section is what experiments/results/speed/ holds."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "bench"))
import speed_report  # noqa: E402


def test_the_committed_speed_section_is_what_the_files_give():
    if not (speed_report.RES / "machine.txt").is_file():
        pytest.skip("no speed measurements committed yet")
    assert speed_report.main(["--check"]) == 0


def test_missing_measurements_are_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="bash experiments/bench/speed.sh"):
        speed_report.load(tmp_path)


def test_the_grpo_rows_and_the_every_group_step_are_computed_from_the_runs():
    """Each step's ratio is TRL's time over ours at that step; the step with every group updated is
    our mean rollout plus our update time per updated group, times the groups of a step."""
    ours = dict(engine="ours", prompts=8, width=4, max_new_tokens=64, step_s=[30.0, 20.0, 25.0],
                groups_per_step=[3, 4, 6], s_per_step=22.5, groups_updated=5.0, gen_s=10.0, update_s=12.5,
                peak_rss_mb=4096.0)
    trl = dict(engine="trl", step_s=[120.0, 100.0, 90.0], s_per_step=95.0, micro_batch=8, peak_rss_mb=8192.0)
    before = [dict(ours, s_per_step=30.0, groups_updated=4.0), dict(trl, s_per_step=120.0)]
    d = dict(trl=[ours, trl], trl_before=before)
    text = "\n".join(speed_report.grpo_steps(d))
    assert "| 1 | 2 | 20.0 | 4 of 8 | 100.0 | 5.00 |" in text
    assert "| 1 | 3 | 25.0 | 6 of 8 | 90.0 | 3.60 |" in text
    assert "| 1 | mean | 22.5 | 5.0 | 95.0 | **4.22** |" in text
    # every group: 10 + 12.5 / 5 * 8 = 30 s, and 95 / 30 = 3.2x
    assert "about 30 s" in text and "3.2x faster than TRL's mean step:" in text
    assert "ours 30.0 s and TRL 120.0 s a step (4.00x), with 4.0 groups of 8" in text
    # a second run of the same code gets its own rows and its own every-group ratio
    ours2 = dict(ours, step_s=[31.0, 18.0, 27.0], s_per_step=22.5, gen_s=12.0, update_s=10.0)
    trl2 = dict(trl, step_s=[110.0, 108.0, 81.0], s_per_step=94.5)
    text = "\n".join(speed_report.grpo_steps(dict(d, trl_more=[[ours2, trl2]])))
    assert "| 2 | 2 | 18.0 | 4 of 8 | 108.0 | 6.00 |" in text and "| 2 | mean | 22.5 | 5.0 | 94.5 | **4.20** |" in text
    assert "3.2x faster than TRL's mean step (run 2: 3.4x):" in text  # 12 + 10 / 5 * 8 = 28 s; 94.5 / 28
    # the runs before the answers ran without their padding: their mean ratio and update cost per group
    padded = [[dict(ours, s_per_step=25.0, update_s=15.0), dict(trl, s_per_step=100.0)]]
    text = "\n".join(speed_report.grpo_steps(dict(d, trl_padded=padded)))
    assert ("gave 4.00x on average, the update costing 3.00 s per group updated and the rollout 10.0 s a step; "
            "now 2.50 s, and 10.0 s.") in text


def test_a_readme_that_is_not_a_file_is_one_line_before_the_files_are_read(tmp_path, monkeypatch):
    monkeypatch.setattr(speed_report, "load", lambda res: pytest.fail("read the measurements first"))
    with pytest.raises(ValueError, match="is a directory"):
        speed_report.main(["--doc", str(tmp_path)])
    with pytest.raises(ValueError, match="no such file"):
        speed_report.main(["--check", "--doc", str(tmp_path / "README.md")])


def test_a_machine_folder_missing_a_part_is_one_line_naming_the_command(tmp_path):
    folder = speed_report.ROOT / "experiments" / "results" / "speed" / "machines" / "not-measured"  # only its name is used
    with pytest.raises(FileNotFoundError, match="missing machine.txt.*bash experiments/bench/speed_machine.sh "
                                                "experiments/results/speed/machines/not-measured"):
        speed_report.load_machine(folder)


def test_each_machine_row_is_computed_from_its_files():
    """Two rows a machine: its decode step with F.linear and packed, the sampler's ratios to generate
    and bf16 over fp32; then the blocks' on/off from both commands, block_cost's floor, and every
    GRPO run's mean ratio."""
    def sampler(scale):
        rows = []
        for dtype, w, ours, hf in (("fp32", 4, 60.0, 50.0), ("fp32", 16, 200.0, 100.0),
                                   ("bf16", 4, 80.0, 40.0), ("bf16", 16, 150.0, 120.0)):
            rows += [dict(engine="ours", dtype=dtype, width=w, tok_s=ours * scale),
                     dict(engine="hf", dtype=dtype, width=w, tok_s=hf * scale)]
        return rows
    compiled = lambda tok: [dict(engine="compiled", dtype="fp32", width=16, tok_s=tok),
                            dict(engine="hf", dtype="fp32", width=16, tok_s=100.0)]
    bridge = [dict(block="bridge", engine="ours", width=16, tok_s=180.0, tok_s_off=200.0)]
    block = dict(l3_mb=32.0, on_off=0.871, products_off=0.92)
    run = lambda o, t: [dict(engine="ours", s_per_step=o), dict(engine="trl", s_per_step=t)]
    d = dict(machine="CPU A, 2 cores", profile=dict(step_ms=68.9), profile_plain=dict(step_ms=99.9),
             sampler=sampler(1.0) + compiled(300.0)[:1], bridge=bridge, block=block, trl=run(20.0, 100.0), trl_more=[run(25.0, 100.0)],
             machines=[dict(machine="CPU B, 2 cores", profile=dict(step_ms=79.1), profile_plain=dict(step_ms=80.7),
                            sampler=sampler(0.5), compiled=compiled(150.0), bridge=bridge, block=dict(block, l3_mb=None), trl=[run(10.0, 45.0)])])
    text = "\n".join(speed_report.machines(d))
    # this section's machine: --compile from its own sampler table (300 / 100); another: from its own run
    assert "| CPU A, 2 cores | 32 | 99.9 | 68.9 | 200 | 1.20 | 2.00 | 2.00 | 1.25 | 0.75 | 3.00 |" in text
    assert "| CPU B, 2 cores | ? | 80.7 | 79.1 | 100 | 1.20 | 2.00 | 2.00 | 1.25 | 0.75 | 1.50 |" in text
    assert "| CPU A, 2 cores | 0.90 | 0.871 | 0.920 | 5.00, 4.00 |" in text
    assert "| CPU B, 2 cores | 0.90 | 0.871 | 0.920 | 4.50 |" in text
    # the goals: the worse of the two on/off measurements, and the worst GRPO run
    assert "| CPU A, 2 cores | 2.00 (met) | 1.20 (not met) | 0.871 (not met) | 4.00 (met) |" in text
    assert "| CPU B, 2 cores | 2.00 (met) | 1.20 (not met) | 0.871 (not met) | 4.50 (met) |" in text
    assert speed_report.machines(dict(d, machines=[])) == []
