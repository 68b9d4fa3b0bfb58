"""A study's record of its runs, for report.py's section: the train reward per window of GRPO steps,
from the step logs, and the wall time of every stage, from the study's clock (walltime.jsonl) and the
logged step times.
"""
import json
import statistics

from study import ARMS, RES, has_result, study_of


def reward_table(runs, res=RES, window=10):
    """Train reward per window of GRPO steps, each arm averaged over its evaluated seeds (from the logs)."""
    curves, study = {}, study_of(res)
    for arm, seeds in runs["arms"].items():
        logs = [study.log(s, arm) for s in sorted(seeds)]
        logs = [[json.loads(line)["reward"] for line in p.read_text().splitlines()] for p in logs if p.is_file()]
        if logs:
            curves[ARMS[arm]] = logs
    if not curves:
        return []
    steps = min(len(r) for logs in curves.values() for r in logs)
    edges = list(range(0, steps, window))
    if study.name == "repro":
        why = (f"this is what the budget of {steps} steps was sized from (the RLVR-only arm's curve "
               "flattening), never the held-out split.")
    else:  # a later study keeps the first study's budget; its task must leave RLVR only room
        rlvr = curves.get(ARMS["rlvr"], [])
        last = statistics.fmean(x for r in rlvr for x in r[steps - window:steps]) if rlvr else None
        why = (f"the budget of {steps} steps is the first study's. The task leaves room if RLVR only's "
               f"train reward over its last {window} steps stays below 0.85" +
               (f": it is {last:.2f}." if last is not None else "."))
    lines = [f"**Train reward** (GRPO's own rollouts, 8 prompts x 4 answers per step) per window of "
             f"{window} steps, mean over the evaluated seeds; {why}", "",
             "| arm | seeds | " + " | ".join(f"steps {a + 1}-{min(a + window, steps)}" for a in edges) + " |",
             "|---|---|" + "---|" * len(edges)]
    for label, logs in curves.items():
        cells = [f"{statistics.fmean(x for r in logs for x in r[a:a + window]):.2f}" for a in edges]
        lines.append(f"| {label} | {len(logs)} | " + " | ".join(cells) + " |")
    return lines + [""]


def walltime_table(res=RES):
    lines = ["| stage | minutes | machine |", "|---|---|---|"]
    path = res / "walltime.jsonl"
    stages = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if not has_result(res, rec["stage"]):
                continue
            s = stages.setdefault(rec["stage"], [0, set(), []])
            s[0] += rec["seconds"]
            s[1].add(rec["machine"])
            if rec.get("note"):  # written by hand beside a clock that counted something else too
                s[2].append(rec["note"])
    for stage, (seconds, machines, notes) in stages.items():
        note = "".join(f" ({n})" for n in notes)
        lines.append(f"| {stage} | {seconds / 60:.1f}{note} | {', '.join(sorted(machines))} |")
    lines += ["", "| GRPO run | steps | minutes (sum of logged step times) |", "|---|---|---|"]
    logs = {str(p.parent.relative_to(res)): p for p in res.glob("seed*/grpo_*/log.jsonl")}  # the runs' records
    for p in res.glob("seed*_*.log.jsonl"):  # the copies beside the results (experiments/studies/stages.sh)
        seed, arm = p.name[len("seed"):-len(".log.jsonl")].split("_", 1)
        logs.setdefault(f"seed{seed}/grpo_{arm}", p)
    for stage in sorted(logs):
        if not has_result(res, stage):
            continue
        steps = [json.loads(line) for line in logs[stage].read_text().splitlines()]
        lines.append(f"| {stage} | {len(steps)} | {sum(s['step_s'] for s in steps) / 60:.1f} |")
    return lines
