"""
Which task gives GRPO the most signal: the task survey behind the default task (docs/tasks.md, "Choosing
the default task"; experiments/results/tasks.md).

    python experiments/studies/survey_tasks.py --out experiments/results/tasks.json > experiments/results/tasks.md
    python experiments/studies/survey_tasks.py --survey-steps 2 --model path/to/model     # a quicker look
    python experiments/studies/survey_tasks.py --configs headroom    # the candidates with headroom (word2, mul2)

Each configuration (task, largest number, worked examples, system message) runs in a fresh process
the rollouts of GRPO exactly (`rollouts`: train_grpo.py's own functions on its arguments; 8 prompts x
width 4, temperature 1, 64 new tokens unless --max-new-tokens, seed 1), never updated. Per configuration the table gives
the accuracy, the share of groups with mixed rewards (the only groups GRPO learns from), answer
length, truncation and the seconds per group, averaged over --survey-steps steps. --configs
headroom surveys the candidates with headroom instead (HEADROOM_CONFIGS).
"""
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the method's files, at the repository root
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments" / "bench"))  # benchkit

import benchkit  # noqa: E402  (in experiments/bench/)
from bridgekit import cli, checks  # noqa: E402
from bridgekit.cli import Parser, add_overwrite, check_new_file, check_out_file, run  # noqa: E402

TASK_CONFIGS = [  # (task, --hi, --shots, --system); system None = the chat template's default
    ("word", 20, 2, None), ("word", 20, 2, "short"), ("word", 9, 2, "short"), ("word", 20, 1, "short"),
    ("add2", None, 2, "short"), ("add2", None, 1, "short"), ("abc", 20, 2, "short"), ("abc", 9, 2, "short"),
]
# The candidates for a task with headroom, whose test split holds out the facts (tasks.FACT_KEYS).
# choice: a separate list, so the default run surveys exactly what experiments/results/tasks.md committed
HEADROOM_CONFIGS = [
    ("word2", 20, 2, "short"), ("word2", 30, 2, "short"), ("mul2", 49, 2, "short"), ("mul2", 99, 2, "short"),
]
CONFIGS = {"default": TASK_CONFIGS, "headroom": HEADROOM_CONFIGS}


NO_UPDATE = dict(loss=0.0, clip_frac=0.0, kl=0.0, ratio_max=0.0, grad_norm=0.0, groups_updated=0)


def rollouts(argv):
    """GRPO's rollouts exactly, never updated: train_grpo.py's own functions on its arguments `argv`
    (one configuration), --steps steps, each step's record in OUT/log.jsonl as train_grpo.py writes it."""
    import train_grpo
    from bridgekit import cli, training
    from train_sft import model_for_run
    args = train_grpo.parse_args(argv)
    model, tokenizer = model_for_run(args)
    pool = training.training_pool(args)
    log = cli.StepLog(args.out, train_grpo.FIELDS, args.steps, 0)
    for step in range(args.steps):
        t0 = time.time()
        batch = train_grpo.step_problems(pool, step, args.prompts_per_step, args.seed)
        r, rewards, scores, _ = train_grpo.sample_sets(model, tokenizer, batch, args)
        log.write(train_grpo.step_record(step, batch, r, rewards, scores, NO_UPDATE, tokenizer.eos_ids, args, t0,
                                         time.time() - t0))


def survey_tasks(args):
    from bridgekit.tasks import SYSTEM
    rows, configs = [], CONFIGS[args.configs]
    for i, (task, hi, shots, system) in enumerate(configs, 1):
        out = Path(tempfile.mkdtemp(prefix="survey-"))
        cmd = [sys.executable, __file__, "--rollouts", "--fast", "--task", task,
               "--shots", str(shots), "--system", SYSTEM if system == "short" else "",
               "--steps", str(args.survey_steps), "--prompts-per-step", "8", "--width", "4",
               "--max-new-tokens", str(args.max_new_tokens), "--seed", "1", "--show-every", "0", "--out", str(out)]
        cmd += ["--hi", str(hi)] if hi else []
        if args.model:
            cmd += ["--model", args.model]
        t0 = time.time()
        try:
            done = subprocess.run(cmd, stdout=subprocess.DEVNULL)
            if done.returncode != 0:  # the child's own one-line error is already on stderr
                raise ValueError(f"configuration {i}/{len(configs)} ({task} hi={hi} shots={shots}): "
                                 f"its rollouts exited with code {done.returncode}")
            log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        finally:
            shutil.rmtree(out, ignore_errors=True)
        mean = lambda k: sum(r[k] for r in log) / len(log)
        rows.append(dict(task=task, hi=hi, shots=shots, system="one line" if system else "template default",
                         acc=mean("acc"), mixed=1 - mean("zero_var"), len=mean("len"), trunc=mean("trunc"),
                         prompt_tokens=mean("prompt_tokens") / 8, s_group=sum(r["rollout_s"] for r in log) / (8 * len(log)),
                         problems=8 * len(log)))
        print(f"[{i}/{len(configs)}] {task} hi={hi} shots={shots}: acc {rows[-1]['acc']:.3f} "
              f"mixed {rows[-1]['mixed']:.2f} ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    lines = ["| task | numbers up to | shots | system message | prompt tokens | accuracy | mixed groups | "
             "mean answer tokens | truncated | s / group |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['hi'] or 99} | {r['shots']} | {r['system']} | {r['prompt_tokens']:.0f} | "
                     f"{100 * r['acc']:.1f}% | {100 * r['mixed']:.0f}% | {r['len']:.1f} | {100 * r['trunc']:.0f}% | "
                     f"{r['s_group']:.2f} |")
    return rows, "\n".join(lines)


def main(argv=None):
    p = Parser(prog="survey_tasks.py", description="Which task gives GRPO the most signal (GRPO's rollouts per configuration, never updated).")
    p.add_argument("--survey-steps", type=int, default=6, help="rollout steps of 8 prompts x 4 answers per configuration (default 6)")
    cli.add_model(p)
    p.add_argument("--out", default=None, help="also write all results as JSON to this file")
    p.add_argument("--configs", default="default", choices=list(CONFIGS),
                   help="which configurations: default (the committed survey) or headroom (word2, mul2; default default)")
    # choice: a flag, not a per-row value: word2's worked reply alone is about 48 tokens, so the pilot
    # may need more room than the committed survey's 64, for every row it compares
    p.add_argument("--max-new-tokens", type=int, default=64, help="answer tokens at most per rollout (default 64)")
    add_overwrite(p)
    args = p.parse_args(argv)
    for flag in ("survey_steps", "max_new_tokens"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    checks.check_model(args.model)
    check_out_file(args.out)
    check_new_file(args.out, args.overwrite)  # a results file is replaced only when asked
    rows, table = survey_tasks(args)
    header = f"# {8 * args.survey_steps} train problems x 4 answers per row, temperature 1, {args.max_new_tokens} new tokens, seed 1\n\n"
    benchkit.emit(rows, header + table, args.out)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rollouts"]:  # one configuration, in the process survey_tasks() starts
        sys.exit(run(lambda: rollouts(sys.argv[2:])))
    sys.exit(run(main))
