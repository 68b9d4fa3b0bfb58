"""experiments/studies/stages.sh, the stages every study is made of, run with a stand-in `python` that only writes
the files each command would write: what runs, in which order, and what a rerun skips or resumes."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# the stand-in: records its arguments, then writes what the real command leaves behind
FAKE_PYTHON = r'''#!/usr/bin/env bash
echo "$*" >> "$CALLS"
[ "$1" = -c ] && { echo "fake machine"; exit 0; }
script=$1; shift
out=""; steps=0; resume=0; model=""
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift;;
    --steps) steps=$2; shift;;
    --resume) resume=1;;
  esac
  shift
done
case $script in
  train_sft.py) mkdir -p "$out/checkpoint"; touch "$out/checkpoint/state.pt" "$out/checkpoint/bridge.safetensors"
                [ -f "$out/data.jsonl" ] || echo '{"problem": 0}' > "$out/data.jsonl"  # sampled unless given
                echo '{"step": 0}' > "$out/log.jsonl";;
  train_grpo.py)
    mkdir -p "$out/checkpoint"; touch "$out/checkpoint/state.pt" "$out/checkpoint/config.json"
    have=0; [ -f "$out/log.jsonl" ] && have=$(wc -l < "$out/log.jsonl")
    [ "$resume" = 1 ] || { have=0; : > "$out/log.jsonl"; }
    [ -n "${FAIL_AT:-}" ] && steps=$FAIL_AT
    for ((s = have; s < steps; s++)); do echo "{\"step\": $s, \"reward\": 0.5, \"step_s\": 1}" >> "$out/log.jsonl"; done
    [ -n "${FAIL_AT:-}" ] && exit 3;;
  evaluate.py) echo '{}' > "$out";;
esac
exit 0
'''


@pytest.fixture
def study(tmp_path):
    (tmp_path / "experiments" / "studies").mkdir(parents=True)
    for name in ("stages.sh", "reproduce.sh", "headroom.sh", "siblings.sh", "talk.sh"):
        shutil.copy(ROOT / "experiments" / "studies" / name, tmp_path / "experiments" / "studies" / name)
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "python").write_text(FAKE_PYTHON)
    (bin_ / "python").chmod(0o755)
    calls = tmp_path / "calls.txt"

    def run(*args, **env):
        calls.write_text("")
        done = subprocess.run(["bash", str(tmp_path / "experiments" / "studies" / args[0]), *args[1:]], capture_output=True, text=True,
                              env={**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "CALLS": str(calls), **env})
        made = [line.split()[0] for line in calls.read_text().splitlines() if not line.startswith("-c")]
        return done, made, calls.read_text()
    return tmp_path, run


def test_a_seed_runs_every_stage_in_order_and_a_rerun_skips_them(study):
    root, run = study
    done, made, _ = run("reproduce.sh", "seed", "0")
    assert done.returncode == 0, done.stderr
    assert made == ["train_sft.py", "train_sft.py", "train_grpo.py", "evaluate.py", "train_grpo.py",
                    "evaluate.py", "train_grpo.py", "evaluate.py"]
    res = root / "experiments" / "results" / "repro"
    assert sorted(p.name for p in res.glob("seed0_*.json")) == ["seed0_bridge.json", "seed0_pmatch.json", "seed0_rlvr.json"]
    log = (root / "experiments/runs/repro/seed0/grpo_rlvr/log.jsonl").read_text()  # scratch: the run itself
    assert len(log.splitlines()) == 60 and (res / "seed0_rlvr.log.jsonl").read_text() == log
    # each finished run's record is kept under the results: its files, byte for byte, not its checkpoint
    for stage in ("sft_bridge", "sft_pmatch", "grpo_rlvr", "grpo_pmatch", "grpo_bridge"):
        ran = {p.name: p.read_bytes() for p in (root / "experiments/runs/repro/seed0" / stage).iterdir() if p.is_file()}
        assert {p.name: p.read_bytes() for p in (res / "seed0" / stage).iterdir()} == ran
        assert {"log.jsonl", "stdout.txt"} <= set(ran)
    walls = [json.loads(line) for line in (res / "walltime.jsonl").read_text().splitlines()]
    assert [w["stage"] for w in walls][:3] == ["repro/seed0/sft_bridge", "repro/seed0/sft_pmatch", "repro/seed0/grpo_rlvr"]
    assert all(w["machine"] == "fake machine" for w in walls)
    # the P-Match warm-up reuses the Bridge warm-up's sampled answers
    assert (root / "experiments/runs/repro/seed0/sft_pmatch/data.jsonl").read_text() == '{"problem": 0}\n'
    done, made, _ = run("reproduce.sh", "seed", "0")
    assert done.returncode == 0 and made == []


def test_a_warm_up_in_a_fresh_clone_trains_on_the_answers_the_study_committed(study):
    root, run = study
    kept = root / "experiments/results/siblings/seed1/sft_bridge"
    kept.mkdir(parents=True)
    (kept / "data.jsonl").write_text('{"problem": 7}\n')
    done, _, _ = run("siblings.sh", "seed", "1")
    assert done.returncode == 0, done.stderr
    for arch in ("bridge", "pmatch"):
        assert (root / f"experiments/runs/siblings/seed1/sft_{arch}/data.jsonl").read_text() == '{"problem": 7}\n'
    assert (kept / "data.jsonl").read_text() == '{"problem": 7}\n'


def test_the_blocks_only_bridge_trains_the_blocks_alone_and_evaluates_its_bf16_file(study):
    root, run = study
    done, made, calls = run("siblings.sh", "blocks")
    assert done.returncode == 0, done.stderr
    assert made == ["train_sft.py", "train_grpo.py", "evaluate.py"]
    grpo, evaluation = [line for line in calls.splitlines() if line.split()[0] in ("train_grpo.py", "evaluate.py")]
    assert "--train new" in grpo and "--init experiments/runs/siblings/seed0/sft_bridge/checkpoint/bridge.safetensors" in grpo
    assert "--bridge experiments/results/siblings/distinct_blocks.safetensors --widths 1 2 4 8" in evaluation
    res = root / "experiments/results/siblings"
    assert (res / "distinct_bridge.log.jsonl").read_text() == (res / "seed0/grpo_bridge_new/log.jsonl").read_text()
    assert "convert_bridge" in calls
    done, made, _ = run("siblings.sh", "blocks")
    assert done.returncode == 0 and made == []


def test_an_interrupted_arm_resumes_and_a_missing_result_is_only_evaluated(study):
    root, run = study
    done, _, _ = run("reproduce.sh", "seed", "0", FAIL_AT="25")   # GRPO stops at step 25 of 60
    assert done.returncode != 0
    done, made, calls = run("reproduce.sh", "seed", "0")
    assert done.returncode == 0, done.stderr
    assert "--resume" in calls.splitlines()[next(i for i, m in enumerate(calls.splitlines()) if "grpo_rlvr" in m)]
    assert len((root / "experiments/runs/repro/seed0/grpo_rlvr/log.jsonl").read_text().splitlines()) == 60
    (root / "experiments/results/repro/seed0_pmatch.json").unlink()  # trained, checkpoint kept: evaluate only
    done, made, _ = run("reproduce.sh", "seed", "0")
    assert done.returncode == 0 and made == ["evaluate.py"]


def test_clean_deletes_a_full_model_once_evaluated(study):
    root, run = study
    done, _, _ = run("reproduce.sh", "seed", "1", CLEAN="1")
    assert done.returncode == 0
    assert not (root / "experiments/runs/repro/seed1/grpo_rlvr/checkpoint").exists()
    assert (root / "experiments/runs/repro/seed1/sft_bridge/checkpoint").exists()  # warm-ups are kept


def test_headroom_passes_its_task_to_every_stage(study):
    root, run = study
    done, _, calls = run("headroom.sh", "seed", "0")
    assert done.returncode == 0, done.stderr
    lines = [line for line in calls.splitlines() if not line.startswith("-c")]
    assert all("--task" in line and "--max-new-tokens 96" in line for line in lines)
    assert all("--split test --problems 200" in line for line in lines if line.startswith("evaluate.py"))
    assert (root / "experiments/results/headroom/seed0_bridge.json").is_file()


def test_siblings_evaluates_bridge_at_every_width_and_the_others_pooled(study):
    root, run = study
    done, _, calls = run("siblings.sh", "seed", "0")
    assert done.returncode == 0, done.stderr
    evals = {line.split("--out ")[1].split()[0]: line for line in calls.splitlines() if line.startswith("evaluate.py")}
    assert "--widths 1 2 4 8" in evals["experiments/results/siblings/seed0_bridge.json.tmp"]
    for arm in ("rlvr", "pmatch"):
        assert "--widths 1 --set-sizes 2 4 8" in evals[f"experiments/results/siblings/seed0_{arm}.json.tmp"]
    sft = [line for line in calls.splitlines() if line.startswith("train_sft.py")]
    assert all("--problems 39 --samples-per-problem 16 --task distinct" in line for line in sft)


def test_a_new_candidate_is_evaluated_afresh_and_the_earlier_one_s_results_are_kept_under_its_name(study):
    """talk.sh commit: another run's candidate files are moved to earlier_RUN_*.json before the new
    candidate is evaluated (left in place, they would read as the new one's and skip its evaluation)."""
    root, run = study
    res, runs = root / "experiments/results/talk", root / "experiments/runs/talk"
    (runs / "seed0_free4_bridge/checkpoint").mkdir(parents=True)
    (runs / "seed0_free4_bridge/checkpoint/bridge.safetensors").touch()
    res.mkdir(parents=True)
    (res / "candidate.json").write_text('{"run": "seed0_w10e2"}\n')
    for kind in ("distinct", "fp32"):
        (res / f"candidate_{kind}.json").write_text(f'{{"old": "{kind}"}}')
    done, made, _ = run("talk.sh", "commit", "0", VARIANT="free4")
    assert done.returncode == 0, done.stderr
    assert made == ["evaluate.py", "evaluate.py"]
    assert json.loads((res / "candidate.json").read_text()) == {"run": "seed0_free4"}
    for kind in ("distinct", "fp32"):
        assert json.loads((res / f"earlier_seed0_w10e2_{kind}.json").read_text()) == {"old": kind}
        assert json.loads((res / f"candidate_{kind}.json").read_text()) == {}  # the new candidate's own
    done, made, _ = run("talk.sh", "commit", "0", VARIANT="free4")  # the same candidate again: nothing moves
    assert done.returncode == 0 and made == [] and len(list(res.glob("earlier_*.json"))) == 2


@pytest.mark.parametrize("args, first", [(("bridge", "0"), "heldout"), (("grpo", "2"), "seed 2"),
                                         (("commit", "1"), "seed 1")])
def test_a_talk_stage_without_its_inputs_names_the_stage_to_run_first_in_one_line(study, args, first):
    root, run = study
    done, made, _ = run("talk.sh", *args, VARIANT="free4")
    assert done.returncode == 1 and made == []
    assert done.stderr.count("\n") == 1 and f"run 'bash experiments/studies/talk.sh {first}' first" in done.stderr
