"""The section "See the siblings talk" of docs/results.md, generated from committed result files.

    python studies/talk_report.py            # rewrite the section in docs/results.md
    python studies/talk_report.py --check    # exit 1 if the section is not what the files give

Reads results/talk/ (studies/talk.sh): per training seed S, the teacher-forced read of the oracle
Bridge and P-Match on the held-out sets (seedS_ARCH_read.json), their sampled evaluations
(seedS_bridge.json: W = 2 4 8 on the paths siblings, self and crossed; seedS_pmatch.json: width 1
in sets of 2 4 8) and training logs; and results/credit/oracle_bridge.json, the first oracle, for
what its Bridge learned instead. Every number is computed here from those files.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "studies"))

import credit_report  # noqa: E402  (entry, scores, fmt, signed: the same evaluate.py files)
import oracle  # noqa: E402
import oracle_read  # noqa: E402
import readme_section  # noqa: E402
from cli import Parser, run  # noqa: E402
from metrics import independent_ceiling, mean_se, paired_set_difference  # noqa: E402

RES = ROOT / "results" / "talk"
FIRST = ROOT / "results" / "credit" / "oracle_bridge.json"
BEGIN = "<!-- talk:begin (written by `python studies/talk_report.py` from results/talk; do not edit by hand) -->"
END = "<!-- talk:end -->"
SIZES = (2, 4, 8)
PLANNED_SEEDS = 3
TYPE_WORDS = {"readable": "its earlier writer readable at the decision", "two-hop": "its earlier writers only two hops away",
              "simultaneous": "writing at the same step as a sibling", "first": "writing first"}


def seeds(res):
    """The training seeds whose Bridge read, Bridge evaluation and P-Match evaluation are all committed."""
    found = sorted(int(p.name[4:-len("_bridge.json")]) for p in Path(res).glob("seed*_bridge.json"))
    return [s for s in found if all((Path(res) / f"seed{s}_{n}.json").is_file()
                                    for n in ("bridge_read", "pmatch_read", "pmatch"))]

# -----------------------------------------------------------------------------
# the first oracle: what its Bridge learned


def shortcut(result, width=4):
    """On the first oracle's sampled sets at `width`, per path: the share of rows writing after a
    sibling (some sibling's number strictly earlier, at step length - 2) that say 1, and the share of
    sets with two or more 1s."""
    out = {}
    for path in ("siblings", "self"):
        after = ones = sets = doubled = 0
        for problem in credit_report.entry(result, width, path)["per_problem"]:
            choices, lengths = problem["choices"], problem["lengths"]
            for g in range(0, len(choices), width):
                c = choices[g:g + width]
                at = [None if v is None else n - 2 for v, n in zip(c, lengths[g:g + width])]
                sets, doubled = sets + 1, doubled + (c.count(1) >= 2)
                for i, p in enumerate(at):
                    if p is not None and any(q is not None and q < p for q in at):
                        after, ones = after + 1, ones + (c[i] == 1)
        out[path] = dict(says_one=ones / after, rows=after, two_ones=doubled / sets)
    return out


def first_oracle_lines(res_first):
    first = credit_report.read(res_first)
    if first is None:
        return []
    s = shortcut(first)
    sib, own = s["siblings"], s["self"]
    length = credit_report.entry(first, 1)["summary"]["length"]["mean"]
    return [
        "### Why the first oracle's verdict does not follow",
        "",
        "The first oracle (`studies/oracle.py --targets smallest --number-weight 0`, 60 steps, the table "
        "under [Making the siblings pay](#making-the-siblings-pay)) concluded that Bridge cannot coordinate even "
        "on data built for it. Its targets taught a shortcut: a row writing after a sibling took the smallest "
        "number not yet taken, which after one earlier writer is 1 with probability 8/9, whatever the "
        "sibling wrote. Its Bridge learned *that* a sibling wrote, not *what*: in its own W = 4 samples "
        f"(the same random numbers on both paths), rows writing after a sibling say 1 {sib['says_one']:.3f} of "
        f"the time reading their siblings against {own['says_one']:.3f} reading only themselves "
        f"({sib['rows']} and {own['rows']} rows), and sets with two or more 1s rise from {own['two_ones']:.3f} to "
        f"{sib['two_ones']:.3f}: that is its score below the ceiling. Its loss was also the token mean "
        f"over {length:.1f} tokens an answer (EOS included), where the number is one token, so reading a sibling was worth a few "
        "hundredths of a nat a token. Nothing there says that no RL result could pass the ceiling; it says "
        "those targets and that loss did not ask for reading.",
        "",
    ]

# -----------------------------------------------------------------------------
# the oracle done right


def read_rows(res, ss):
    """Per row type: the read's hit rate and cross-entropy on both paths, mean over seeds."""
    rows = []
    for kind in oracle.ROW_TYPES:
        cells = []
        for arch in ("bridge", "pmatch"):
            for path in oracle_read.PATHS if arch == "bridge" else ("siblings",):
                r = [credit_report.read(Path(res) / f"seed{s}_{arch}_read.json")["paths"][path][kind] for s in ss]
                hit = mean_se([x["hit"]["mean"] for x in r]) if len(ss) > 1 else r[0]["hit"]
                nll = sum(x["nll"]["mean"] for x in r) / len(r)
                cells.append(f"{credit_report.fmt(hit)} ({nll:.2f})")
        n = credit_report.read(Path(res) / f"seed{ss[0]}_bridge_read.json")["paths"]["siblings"][kind]["rows"]
        rows.append(f"| {TYPE_WORDS[kind]} | {n} | " + " | ".join(cells) + " |")
    return rows


def sampled_rows(res, ss):
    """Per width: the ceiling, the policy bounds on Bridge's own timing, Bridge on each path, P-Match,
    and the paired differences (mean over seeds; ± se over questions for one seed, over seeds else)."""
    rows, facts = [], {}
    for W in SIZES:
        per_seed = []
        for s in ss:
            bridge = credit_report.read(Path(res) / f"seed{s}_bridge.json")
            pmatch = credit_report.read(Path(res) / f"seed{s}_pmatch.json")
            sib = credit_report.scores(bridge, W, W)[0]
            own = credit_report.scores(bridge, W, W, "self")[0]
            crossed = credit_report.scores(bridge, W, W, "crossed")[0]
            pm = credit_report.scores(pmatch, 1, W)[0]
            vs_self = paired_set_difference(credit_report.entry(bridge, W)["per_problem"],
                                            credit_report.entry(bridge, W, "self")["per_problem"], W)
            bounds = oracle_read.bounds(bridge, W)
            per_seed.append(dict(sib=sib, own=own, crossed=crossed, pm=pm, vs_self=vs_self, bounds=bounds))
        K = credit_report.read(Path(res) / f"seed{ss[0]}_bridge.json")["results"][0]["per_problem"][0]["gold"]
        ceiling = float(independent_ceiling(K, W)[0])

        def over(key):
            if len(ss) == 1:
                return per_seed[0][key]
            return mean_se([x[key]["mean"] for x in per_seed])
        bound = {k: sum(x["bounds"][k] for x in per_seed) / len(per_seed) for k in oracle_read.POLICIES}
        sib, vs_self = over("sib"), over("vs_self")
        facts[W] = dict(ceiling=ceiling, bridge=sib, vs_self=vs_self,
                        passes=sib["mean"] - ceiling > 2 * sib["se"], beats_self=vs_self["mean"] > 2 * vs_self["se"])
        rows.append(f"| {W} | {ceiling:.3f} | {bound['independent']:.3f} / {bound['readable']:.3f} / "
                    f"{bound['earlier']:.3f} | **{credit_report.fmt(sib)}** | {credit_report.fmt(over('own'))} | "
                    f"{credit_report.fmt(over('crossed'))} | {credit_report.fmt(over('pm'))} | "
                    f"{credit_report.signed(vs_self)} |")
    return rows, facts


def verdict(facts):
    won = [W for W in SIZES if facts[W]["passes"] and facts[W]["beats_self"]]
    if won:
        return (f"**Verdict: the siblings talk.** At W = {', '.join(map(str, won))} the oracle Bridge passes the "
                "independent ceiling by more than two standard errors, and beats its own weights reading only "
                "themselves (the same random numbers) by more than two: sampled, in the real loop, on the "
                "real model, the rows read what their siblings wrote. The targets are constructed: this shows "
                "what the path can carry, not what RL finds.")
    return ("**Verdict: not shown.** At no width does the oracle Bridge both pass the independent ceiling and "
            "beat its own weights reading only themselves by more than two standard errors.")


def talk_lines(res):
    ss = seeds(res)
    if not ss:
        return ["The oracle has not been run yet (`bash studies/talk.sh heldout`, then `seed 0`).", ""]
    log = [json.loads(line) for line in (Path(res) / f"seed{ss[0]}_bridge.log.jsonl").read_text().splitlines()]
    proto = credit_report.read(Path(res) / f"seed{ss[0]}_bridge.json")["protocol"]
    n_sets = credit_report.read(Path(res) / f"seed{ss[0]}_bridge_read.json")["n_sets"]
    unit = "± se over questions" if len(ss) == 1 else f"mean over seeds ± se over the {len(ss)} seeds"
    so_far = "" if len(ss) >= PLANNED_SEEDS else f" (so far: {len(ss)} of {PLANNED_SEEDS} planned training seeds)"
    rows, facts = sampled_rows(res, ss)
    return [
        "### The oracle done right",
        "",
        "Blocks alone (the base model frozen), trained teacher-forced on constructed sets of 4 (`studies/oracle.py "
        "--targets successor`): rows writing first, or at the same step as a sibling, take distinct random numbers; "
        "a row writing alone after its siblings takes the number after the most recent writer's, counting on "
        "past taken ones (9 is followed by 1). Every row's number is uniform over 1..9, so only a row that reads "
        "its sibling can know its own. The loss is the token mean over the answer plus the number's "
        f"cross-entropy (weight 1). {len(log)} steps of 8 sets, {log[-1]['epoch']:.2f} epochs; P-Match trained "
        f"on the same sets is the control. Seeds: {', '.join(map(str, ss))}{so_far}. **These targets are "
        "constructed, not self-generated.**",
        "",
        f"**Teacher-forced**, on {n_sets} held-out sets (the base model's answers to the {proto['problems']} held-out "
        "questions, numbered by the same rule; `studies/oracle_read.py read`): how often the most likely number "
        "is the target (its cross-entropy in nats), by what a row can read when it decides. Bridge reading "
        "its siblings, the same Bridge reading only itself, and P-Match:",
        "",
        "| row | rows | Bridge | Bridge, reading only itself | P-Match |",
        "|---|---|---|---|---|",
        *read_rows(res, ss),
        "",
        f"**Sampled** on the {proto['problems']} held-out questions, {proto['n']} answers each (sampling seed = "
        "training seed), Bridge on each path with the same random numbers per row; P-Match sampled at width 1 "
        "in sets of W. The policy bounds are what a policy scores on Bridge's own sets (its timing and valid "
        "answers, the number at step length − 2) choosing independently / avoiding the siblings readable at "
        f"its decision / avoiding every earlier number (`studies/oracle_read.py bounds`). Score per answer, {unit}:",
        "",
        "| W | independent ceiling (exact) | policy bounds on its timing | Bridge | reading only itself | crossed "
        "| P-Match | Bridge − reading only itself (paired) |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        verdict(facts),
        "",
    ]


def headline_lines(res=RES):
    """The README's lines on the oracle done right: Bridge against the ceiling and its self path, per width."""
    ss = seeds(res)
    if not ss:
        return []
    rows, facts = sampled_rows(res, ss)
    count = f"{len(ss)} training seed{'s' * (len(ss) > 1)}" + ("" if len(ss) >= PLANNED_SEEDS else
                                                                  f" of {PLANNED_SEEDS} planned")
    unit = "± se over questions" if len(ss) == 1 else "± se over seeds"
    lines = [f"**The oracle done right** (constructed sets whose every number is uniform and knowable only by "
             f"reading the sibling that wrote just before; the number's loss weighted; {count}; {unit}; "
             f"[full section]({readme_section.link(readme_section.DOCS / 'results.md', ROOT / 'README.md')}"
             "#see-the-siblings-talk)):", "",
             "| W | independent ceiling | Bridge | Bridge − itself reading only itself (paired) |", "|---|---|---|---|"]
    for W in SIZES:
        f = facts[W]
        lines.append(f"| {W} | {f['ceiling']:.3f} | {credit_report.fmt(f['bridge'])} | {credit_report.signed(f['vs_self'])} |")
    return lines + ["", verdict(facts), ""]


def stage_kind(stage):
    """The kind of a results/talk/walltime.jsonl stage: "eval/seed0_bridge" -> "evaluation", ..."""
    head = stage.split("/")[0]
    if head in ("eval", "read"):
        return "evaluation (sampled)" if head == "eval" else "teacher-forced read"
    return "held-out answers" if stage == "talk/heldout" else "GRPO" if "/grpo" in stage else "oracle training"


def section(res=RES, first=FIRST):
    lines = [BEGIN, "", *first_oracle_lines(first), *talk_lines(res)]
    if Path(res, "walltime.jsonl").is_file():
        lines += [*credit_report.walltime_lines(res, stage_kind), ""]
    lines += ["Regenerate: `python studies/talk_report.py`; the runs, in order: `bash studies/talk.sh heldout`, "
              "`seed 0`, `seed 1`, `seed 2` (each skips what is done).", "", END]
    return "\n".join(lines)


def main(argv=None):
    p = Parser(prog="studies/talk_report.py", description="Write (or --check) the section of the oracle done right.")
    readme_section.add_arguments(p, readme_section.DOCS / "results.md")
    p.add_argument("--results", default=str(RES), help="the results folder (default results/talk)")
    args = p.parse_args(argv)
    return readme_section.write_or_check(args, lambda: section(args.results), BEGIN, END, what="talk section",
                                         command="python studies/talk_report.py")


if __name__ == "__main__":
    sys.exit(run(main))
