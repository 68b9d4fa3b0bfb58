"""A short GRPO run on the tiny model whose log pins the one-set algorithm (train_grpo.py --sets 1).

    python tests/grpo_golden.py tests/data/grpo_one_set_log.json   # rewrite the pinned log

The pinned file was written by this script at the commit before --sets existed (c89efaf), on a 2-core
AMD EPYC; test_one_set_gives_the_log_it_gave_before_sets_existed reruns it and compares every field
except the timings (the floats within a tolerance for fp32 rounding, the rest exactly).
"""
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))         # tiny.py
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the method's files

TIMING = {"tok_s", "step_s", "rollout_s", "update_s", "elapsed_s", "eta_s", "peak_rss_mb"}


def run(tmp):
    """The log records (timings left out) of 3 steps: Bridge blocks, --train all, an even-length reward."""
    import train_grpo
    from tiny import SMALL, even_length_group_reward, make_training_model
    model_dir = make_training_model(Path(tmp) / "model", seed=3)
    real = train_grpo.group_reward
    train_grpo.group_reward = even_length_group_reward
    try:
        train_grpo.main(["--model", str(model_dir), "--out", str(Path(tmp) / "run"), "--steps", "3",
                         "--prompts-per-step", "3", "--width", "3", "--lr", "1e-3", "--lr-new", "1e-2", *SMALL])
    finally:
        train_grpo.group_reward = real
    lines = (Path(tmp) / "run" / "log.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        Path(sys.argv[1]).write_text(json.dumps(run(tmp), indent=1) + "\n")
