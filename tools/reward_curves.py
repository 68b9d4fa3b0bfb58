"""
The train reward of training runs: a markdown table (reward over the first and last steps, seconds
per step, peak memory) and one picture with a curve per run.

    python tools/reward_curves.py experiments/results/repro/seed0/grpo_rlvr experiments/results/repro/seed0/grpo_bridge --out reward.png
    python tools/reward_curves.py RUN... --out reward.png --steps 30 --labels "RLVR only" Bridge

Reads each run directory's log.jsonl and args.json (written by train_grpo.py). Needs matplotlib
(pip install -e ".[plot]").
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the method's files, at the repository root

from bridgekit import cli  # noqa: E402

# what the table and the figure read from every step of train_grpo.py's log
KEYS = ("step", "reward", "step_s", "rollout_s", "update_s", "peak_rss_mb")


def read_log(run, steps=None):
    """The step records of a run directory's log.jsonl (the first `steps` of them, if given); a log
    that is not train_grpo.py's, or has no step yet, is a one-line error naming it."""
    path = Path(run) / "log.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training log")
    log = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {n}: not valid JSON ({e})") from None
        missing = [k for k in KEYS if k not in record] if isinstance(record, dict) else list(KEYS)
        if missing:
            raise ValueError(f"{path}, line {n}: no {', '.join(missing)}; is {run} a GRPO run (train_grpo.py)?")
        log.append(record)
    if not log:
        raise ValueError(f"{path}: no step logged yet")
    return log[:steps] if steps else log


def label_of(run):
    """The default label of a run: its arch (args.json) and directory."""
    path = Path(run) / "args.json"
    try:
        args = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    return f"{args.get('arch')} ({Path(run).name})" if isinstance(args, dict) else f"? ({Path(run).name})"


def plot_runs(run_dirs, out, *, smooth=10, labels=None, steps=None):
    """Train reward per step (and its running mean over `smooth` steps), one line per run directory."""
    try:
        import matplotlib
    except ImportError:
        raise ValueError("plotting needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, run in enumerate(run_dirs):
        log = read_log(run, steps)
        label = labels[i] if labels else label_of(run)
        xs = [r["step"] + 1 for r in log]
        rewards = [r["reward"] for r in log]
        mean = [sum(rewards[max(0, j - smooth + 1):j + 1]) / len(rewards[max(0, j - smooth + 1):j + 1])
                for j in range(len(rewards))]
        line, = ax.plot(xs, mean, label=f"{label}, mean of {smooth} steps")
        ax.plot(xs, rewards, color=line.get_color(), alpha=0.25, linewidth=0.8)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("train reward (share of right answers)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    cli.save_figure(fig, out, dpi=120)
    print(f"wrote {out}", file=sys.stderr)


def summarize_runs(run_dirs, labels=None, first=10, steps=None):
    """A markdown table of runs: steps, mean train reward over the first and the last `first` steps,
    mean seconds per step (rollout, update) and peak resident memory."""
    lines = [f"| run | steps | reward, steps 1-{first} | reward, last {first} steps | s / step | rollout s | "
             "update s | peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
    for i, run in enumerate(run_dirs):
        log = read_log(run, steps)
        mean = lambda rows, k: sum(r[k] for r in rows) / len(rows)
        label = labels[i] if labels else Path(run).name
        lines.append(f"| {label} | {len(log)} | {mean(log[:first], 'reward'):.3f} | {mean(log[-first:], 'reward'):.3f} | "
                     f"{mean(log, 'step_s'):.1f} | {mean(log, 'rollout_s'):.1f} | {mean(log, 'update_s'):.1f} | "
                     f"{max(r['peak_rss_mb'] for r in log):.0f} |")
    return "\n".join(lines)


def main(argv=None):
    p = cli.Parser(prog="reward_curves.py", description="Summarize and plot the train reward per step of train_grpo.py runs.")
    p.add_argument("runs", nargs="+", help="run directories (each with log.jsonl and args.json)")
    p.add_argument("--out", required=True, help="the figure to write (.png, .pdf or .svg)")
    p.add_argument("--smooth", type=int, default=10, help="running mean over this many steps (default 10)")
    p.add_argument("--labels", nargs="+", default=None, help="one label per run (default: arch and directory)")
    p.add_argument("--steps", type=int, default=None, help="only the first N steps of each run (runs still going: compare equal steps)")
    cli.add_overwrite(p)
    a = p.parse_args(argv)
    for flag in ("smooth", "steps"):
        if getattr(a, flag) is not None and getattr(a, flag) < 1:
            p.error(f"--{flag} must be >= 1, got {getattr(a, flag)}")
    if a.labels is not None and len(a.labels) != len(a.runs):
        p.error(f"--labels: {len(a.labels)} given for {len(a.runs)} run directories; give one label per run")
    cli.check_figure_out(a.out, a.overwrite)
    for run in a.runs:  # every run readable before the table and the figure, not halfway through them
        read_log(run)
        if a.labels is None:
            label_of(run)
    print(summarize_runs(a.runs, labels=a.labels, steps=a.steps))
    plot_runs(a.runs, a.out, smooth=a.smooth, labels=a.labels, steps=a.steps)


if __name__ == "__main__":
    cli.run(main)
