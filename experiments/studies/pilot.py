"""The pilot that chooses the second study's task (experiments/studies/headroom.sh pilot), on the training split
only: which candidates to train (pilot_screen), which one the rule takes (pilot_choice), and the
table and sentence docs/results.md shows (pilot_lines, used by report.py --study headroom).

Not a command: report.py and experiments/studies/headroom.sh import it.
"""
import json
import statistics

# the pilot's rule (experiments/studies/headroom.sh pilot), on the training split only: RLVR only's train reward
# over its last 10 of 30 GRPO steps must lie in this band, and of the candidates inside it the
# study takes the hardest. choice: the hardest, because the study trains for 60 steps, not 30: in
# the first study RLVR only went from 0.67 (steps 21-30) to 0.92 (steps 51-60), and the study
# needs it to end below 0.85 to leave room for an effect
PILOT_BAND = (0.30, 0.75)
PILOT_MIN_MIXED = 0.05  # choice: GRPO learns only from groups with mixed rewards; below 1 in 20 most steps update nothing
PILOT_MIN_HELD_OUT = 200  # the protocol's held-out problems


def pilot_screen(survey):
    """[(task, hi)] of the surveyed candidates worth 30 GRPO steps: enough held-out problems for the
    protocol, and enough groups with mixed rewards in the base model's rollouts to learn from."""
    from bridgekit import tasks
    return [(r["task"], r["hi"]) for r in survey
            if r["mixed"] >= PILOT_MIN_MIXED and
            tasks.question_count(r["task"], split="test", hi=r["hi"]) >= PILOT_MIN_HELD_OUT]


def pilot(res):
    """[(task, hi, log rewards)] of the pilot's RLVR-only runs, and the survey's rows; ([], []) if none."""
    where = res / "pilot"
    runs = []
    for log in sorted(where.glob("*_hi*.log.jsonl")):
        task, hi = log.name[:-len(".log.jsonl")].rsplit("_hi", 1)
        runs.append((task, int(hi), [json.loads(line)["reward"] for line in log.read_text().splitlines()]))
    survey = json.loads((where / "survey.json").read_text()) if (where / "survey.json").is_file() else []
    return runs, survey


def pilot_choice(runs):
    """(task, hi) the rule picks from the pilot runs, or None when no candidate is inside the band."""
    inside = [(statistics.fmean(r[-10:]), task, hi) for task, hi, r in runs
              if PILOT_BAND[0] <= statistics.fmean(r[-10:]) <= PILOT_BAND[1]]
    return min(inside)[1:] if inside else None


def pilot_lines(res):
    """The pilot's table and the choice it led to (the headroom study; nothing for the first study)."""
    runs, survey = pilot(res)
    if not survey:
        return []
    from bridgekit import tasks
    trained = {(task, hi): r for task, hi, r in runs}
    lines = ["**The pilot** (`bash experiments/studies/headroom.sh pilot`, training split only): the survey's rollouts of "
             "the base model (48 problems x 4 answers, seed 1, `experiments/studies/survey_tasks.py --configs headroom`), then "
             "RLVR only (GRPO from the base model, all weights, the study's settings) for 30 steps per candidate "
             "that passes the screen; train reward = GRPO's own rollouts, 8 problems x 4 answers per step.", "",
             "| task | numbers up to | held-out problems | base accuracy | mixed groups | truncated | "
             "RLVR train reward, steps 1-10 | steps 21-30 |", "|---|---|---|---|---|---|---|---|"]
    for b in survey:
        key = (b["task"], b["hi"])
        r = trained.get(key)
        cells = [f"{100 * b['acc']:.1f}%", f"{100 * b['mixed']:.0f}%", f"{100 * b['trunc']:.0f}%"]
        rl = [f"{statistics.fmean(r[:10]):.2f}", f"{statistics.fmean(r[-10:]):.2f}"] if r else ["not trained"] * 2
        lines.append(f"| {key[0]} | {key[1]} | {tasks.question_count(key[0], split='test', hi=key[1])} | "
                     + " | ".join(cells + rl) + " |")
    choice = pilot_choice(runs)
    lo, hi_ = PILOT_BAND
    rule = (f"The rule: a candidate is trained if its held-out split has at least {PILOT_MIN_HELD_OUT} problems "
            f"(the protocol) and at least {100 * PILOT_MIN_MIXED:.0f}% of the base model's groups had mixed "
            "rewards (GRPO learns from nothing else); then RLVR only's train reward over steps 21-30 must lie "
            f"between {lo:.2f} and {hi_:.2f}, and of the candidates inside, the study takes the hardest, because it "
            "trains for 60 steps and needs RLVR only to stay below 0.85.")
    lines += ["", rule + (f" It chose `{choice[0]}` with numbers up to {choice[1]}." if choice else
                          " No candidate is inside the band."), ""]
    return lines
