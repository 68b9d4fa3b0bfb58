"""The README's headline results: one small table per study, written from the committed result files.

    python experiments/studies/headline.py            # rewrite README.md between the headline markers
    python experiments/studies/headline.py --check    # exit 1 if README.md's tables are not what the files give
    python experiments/studies/headline.py --print    # print them only

Each table is Bridge at the training width (4) against the other arms, paired by training seed:
the same comparisons, computed by the same functions, as the full sections of docs/results.md
(experiments/studies/report.py for experiments/results/repro and experiments/results/headroom, experiments/studies/siblings_report.py for
experiments/results/siblings), which hold every width and every table. The verdict under them says which
intervals over seeds lie above or below 0.
"""
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the top-level modules, wherever this is run from

import credit_report  # noqa: E402  (next to this file)
import talk_report  # noqa: E402
from bridgekit import readme_section  # noqa: E402
import siblings_report  # noqa: E402
from bridgekit.cli import Parser, run  # noqa: E402
from bridgekit.metrics import independent_ceiling  # noqa: E402
from report import comparisons  # noqa: E402
from study import STUDIES, load, per_problem  # noqa: E402
from verdict import TRAIN_WIDTH  # noqa: E402

BEGIN = ("<!-- headline:begin (written by `python experiments/studies/headline.py` from experiments/results/repro, experiments/results/headroom "
         "and experiments/results/siblings; do not edit by hand) -->")
END = "<!-- headline:end -->"
DOC = ROOT / "README.md"
RESULTS = "docs/results.md"  # the full sections, linked from README.md
STUDY_TEXT = {  # (title, what its task is, the anchor of its full section in docs/results.md)
    "repro": ("The paper's comparison on a saturated task", "word problems", "the-first-study-a-saturated-task"),
    "headroom": ("The same comparison on a task with headroom", "two-digit times one-digit products",
                 "the-second-study-a-task-with-headroom"),
}
SHORT = {"The paper's comparison on a saturated task": "the saturated task",
         "The same comparison on a task with headroom": "the task with headroom",
         "The set-level task": "the set-level task"}
OTHER = {  # the second arm of a comparison, as the headline rows name it
    "RLVR only": "RLVR only (no new block, no warm-up)",
    "P-Match": "P-Match (the same warm-up and parameter count, no path between rows)",
    "Bridge at width 1": "the same Bridge weights at width 1 (no sibling to read)",
    "its weights at width 1": "the same Bridge weights at width 1 (no sibling to read)",
}
HEADER = ["| Bridge minus | mean (points) | 95% interval, seeds as the unit | detectable | seeds higher / tied / lower |",
          "|---|---|---|---|---|"]


def row(c):
    lo_hi = "—" if c["interval"] is None else f"[{100 * c['interval'][0]:+.1f}, {100 * c['interval'][1]:+.1f}]"
    det = "—" if c["detectable"] is None else f"{100 * c['detectable']:.1f}"
    return f"| {OTHER[c['arms'][1]]} | {100 * c['mean']:+.1f} | {lo_hi} | {det} | {c['wins']} / {c['ties']} / {c['losses']} |"


def study_lines(name):
    """(lines, [(study title, comparison)]) of one accuracy study at the training width."""
    title, what, anchor = STUDY_TEXT[name]
    runs = load(STUDIES[name].res)
    proto = runs["base"]["protocol"]
    # (the width effects against P-Match's stay in the full section: a first reader gets the plain rows)
    comps = [c for c in comparisons(runs) if c["width"] == TRAIN_WIDTH and c["arms"][0] == "Bridge" or
             c["width"] == TRAIN_WIDTH and c["arms"][1] == "Bridge at width 1"]
    bridge = statistics.fmean(statistics.fmean(per_problem(r, TRAIN_WIDTH)) for r in runs["arms"]["bridge"].values())
    lines = [f"**{title}** (`{proto['task']}`, {what} with numbers up to {proto['knobs']['hi']}; "
             f"{len(comps[0]['seeds'])} training seeds per arm, {proto['problems']} held-out problems, n = {proto['n']} "
             f"answers each, width {TRAIN_WIDTH}): Bridge's mean accuracy is {100 * bridge:.1f}%; "
             f"[full section]({RESULTS}#{anchor}).", ""] + HEADER + [row(c) for c in comps]
    return lines, [(title, c) for c in comps]


def siblings_lines():
    """(lines, [(study title, comparison)]) of the set-level task at the training width."""
    title = "The set-level task"
    runs, _ = siblings_report.load()
    one = next(iter(runs.values()))["protocol"]
    comps = [c for c in siblings_report.comparisons(runs) if c["width"] == TRAIN_WIDTH]
    bridge = siblings_report.mean_of(siblings_report.per_seed(runs, "bridge", lambda s: s, "score")[TRAIN_WIDTH])[0]
    ceiling = float(independent_ceiling(9, TRAIN_WIDTH)[0])
    lines = [f"**{title}** (`distinct`: pick a number from 1 to 9 that no sibling picked; "
             f"{len(comps[0]['seeds'])} training seeds per arm, {one['problems']} held-out questions, n = {one['n']} "
             f"answers each, groups of {TRAIN_WIDTH}): Bridge's score per answer is {bridge:.3f}, "
             f"{'below' if bridge < ceiling else 'above'} the {ceiling:.3f} that independent answers can reach at best; "
             f"[full section]({RESULTS}#do-the-siblings-matter).", ""] + HEADER + [row(c) for c in comps]
    return lines, [(title, c) for c in comps]


def verdict(found):
    """One sentence: which intervals lie above 0, which below, and that every other contains 0."""
    def named(items):
        return " and ".join(f"against {OTHER[c['arms'][1]].split(' (')[0]} on {SHORT[t]}" for t, c in items)
    above = [(t, c) for t, c in found if c["interval"] and c["interval"][0] > 0]
    below = [(t, c) for t, c in found if c["interval"] and c["interval"][1] < 0]
    parts = [f"lies above 0 {named(above)}"] * bool(above) + [f"below 0 {named(below)}"] * bool(below)
    if any(c["arms"][1] == "RLVR only" for _, c in above):
        parts[0] += " (warm-up plus blocks: RLVR only gets no warm-up)"
    rest = len(found) - len(above) - len(below)
    siblings = [c for _, c in above if c["arms"][1] != "RLVR only"]
    end = ("no GRPO study shows Bridge gaining from reading its siblings at this scale" if not siblings else
           "the siblings help where an interval against P-Match or width 1 lies above 0")
    return (f"**Verdict**: Bridge's interval over seeds {', '.join(parts) or 'never excludes 0'}, and contains 0 "
            f"in the other {rest} comparisons: {end}.")


def oracle_lines(res=credit_report.RES):
    """The oracle check (one training run; se over held-out questions), or nothing before it has run."""
    bridge, pmatch = credit_report.read(res / "oracle_bridge.json"), credit_report.read(res / "oracle_pmatch.json")
    if bridge is None or pmatch is None:
        return []
    proto = bridge["protocol"]
    K = bridge["results"][0]["per_problem"][0]["gold"]
    sizes = " / ".join(map(str, credit_report.SIZES))
    scores = " / ".join(f"{credit_report.scores(bridge, W, W)[0]['mean']:.3f}" for W in credit_report.SIZES)
    ceilings = " / ".join(f"{float(independent_ceiling(K, W)[0]):.3f}" for W in credit_report.SIZES)
    lines = [f"**The first oracle check** (blocks alone, teacher-forced on constructed `distinct` sets whose numbers "
             f"depend on the siblings, then sampled; {proto['problems']} held-out questions, n = {proto['n']}; "
             f"[full section]({RESULTS}#making-the-siblings-pay)): Bridge scored {scores} per answer against the "
             f"independent ceilings {ceilings} at W = {sizes}."]
    below = all(credit_report.scores(bridge, W, W)[0]["mean"] < float(independent_ceiling(K, W)[0])
                for W in credit_report.SIZES)
    lines += ["", "Bridge stays " + ("below" if below else "not everywhere below") + " the independent ceiling "
              "here, but these targets taught a shortcut (a row writing after a sibling says 1, whatever the "
              f"sibling wrote; [why]({RESULTS}#why-the-first-oracles-verdict-does-not-follow)), so this does not "
              "show that Bridge cannot coordinate. " + credit_study_line(res, K)]
    return lines + [""] + talk_report.headline_lines()


PLANNED_SEEDS = 3  # choice: the credit study's seeds per arm; before that the line says how far it is


def credit_study_line(res, K):
    """Where the GRPO study with the set credited stands: its arms' score per answer at the training width."""
    runs, _ = siblings_report.load(res)
    seeds = sorted(s for (a, s) in runs if a == "bridge")
    if not seeds:
        return "GRPO with several sets per prompt (`bash experiments/studies/credit.sh seed S`) has no finished Bridge arm yet."
    W = TRAIN_WIDTH
    cells = [f"{siblings_report.ARMS[a]} {siblings_report.mean_of(siblings_report.per_seed(runs, a, siblings_report.sampled_at(a), 'score')[W])[0]:.3f}"
             for a in ("rlvr", "pmatch", "bridge") if any(b == a for b, _ in runs)]
    sets = "/".join(sorted({str(a.get("sets")) for a in credit_report.run_args(res).values()})) or "?"
    count = f"{len(seeds)} training seed{'s' * (len(seeds) > 1)}"
    if len(seeds) < PLANNED_SEEDS:
        count = "so far " + count
    line = (f"GRPO with {sets} sets per prompt, the advantage over all of them, {count} (score per answer at "
            f"W = {W}, ceiling {float(independent_ceiling(K, W)[0]):.3f}): {', '.join(cells)}")
    vs = next((c for c in siblings_report.comparisons(runs)
               if c["width"] == W and c["arms"] == ["Bridge", "P-Match"] and c["interval"]), None)
    if vs is None:
        return line + "."
    lo, hi = (100 * x for x in vs["interval"])
    return line + f"; Bridge − P-Match {100 * vs['mean']:+.1f} points, 95% interval over seeds [{lo:+.1f}, {hi:+.1f}]."


def section():
    out, found = [BEGIN, ""], []
    for lines, comps in (study_lines("repro"), study_lines("headroom"), siblings_lines()):
        out += lines + [""]
        found += comps
    out += [verdict(found), ""]
    return "\n".join(out + oracle_lines() + [END])


def main(argv=None):
    p = Parser(prog="headline.py", description="The README's headline results tables, from the committed result files.")
    readme_section.add_arguments(p, DOC, "tables")
    args = p.parse_args(argv)
    return readme_section.write_or_check(args, section, BEGIN, END, what="headline section",
                                         command="python experiments/studies/headline.py")


if __name__ == "__main__":
    sys.exit(run(main))
