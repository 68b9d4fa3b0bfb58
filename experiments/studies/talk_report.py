"""The section "See the siblings talk" of docs/results.md, generated from committed result files.

    python experiments/studies/talk_report.py            # rewrite the section in docs/results.md
    python experiments/studies/talk_report.py --check    # exit 1 if the section is not what the files give

Reads experiments/results/talk/ (experiments/studies/talk.sh): per training seed S, the teacher-forced read of the oracle
Bridge and P-Match on the held-out sets (seedS_ARCH_read.json), their sampled evaluations
(seedS_bridge.json: W = 2 4 8 on the paths siblings, self and crossed; seedS_pmatch.json: width 1
in sets of 2 4 8) and training logs; and experiments/results/credit/oracle_bridge.json, the first oracle, for
what its Bridge learned instead. Every number is computed here from those files.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments" / "studies"))

import credit_report  # noqa: E402  (entry, scores, fmt, signed: the same evaluate.py files)
import oracle  # noqa: E402
import oracle_read  # noqa: E402
from bridgekit import readme_section  # noqa: E402
from bridgekit.cli import Parser, run  # noqa: E402
from bridgekit.metrics import independent_ceiling, paired_set_difference  # noqa: E402

RES = ROOT / "experiments" / "results" / "talk"
FIRST = ROOT / "experiments" / "results" / "credit" / "oracle_bridge.json"
BEGIN = "<!-- talk:begin (written by `python experiments/studies/talk_report.py` from experiments/results/talk; do not edit by hand) -->"
END = "<!-- talk:end -->"
SIZES = (2, 4, 8)
TYPE_WORDS = {"readable": "its earlier writer readable at the decision", "two-hop": "its earlier writers only two hops away",
              "simultaneous": "writing at the same step as a sibling", "first": "writing first"}


def runs(res):
    """The oracle runs whose Bridge read is committed: "seedS" (the first setting) or "seedS_VARIANT",
    in the order of their seed, then the variant's name."""
    found = [p.name[:-len("_bridge_read.json")] for p in Path(res).glob("seed*_bridge_read.json")]
    return sorted(found, key=lambda r: (int(r[4:].split("_")[0]), r))


def setting(res, run):
    """What a run trained with, from its log: steps, epochs, and the number's weight (its loss is the
    text loss plus weight x the number loss)."""
    log = [json.loads(line) for line in (Path(res) / f"{run}_bridge.log.jsonl").read_text().splitlines()]
    last = log[-1]
    weight = (last["loss"] - last["text_loss"]) / last["number_loss"]
    return dict(steps=len(log), epochs=last["epoch"], weight=round(weight, 3))


def targets(res, run):
    """The rule a run's sets were numbered by (its args.json; the runs before --targets free was
    written down were all successor)."""
    args = credit_report.read(Path(res) / f"{run}_bridge.args.json")
    return args["targets"] if args else "successor"


def setting_text(res, run):
    s = setting(res, run)
    args = credit_report.read(Path(res) / f"{run}_bridge.args.json") or {}
    after = f", from {Path(args['init']).parts[-3]}'s blocks" if args.get("init") else ""
    return f"{targets(res, run)} targets, weight {s['weight']:g}, {s['epochs']:.2f} epochs ({s['steps']} steps){after}"


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
        "The first oracle (`experiments/studies/oracle.py --targets smallest --number-weight 0`, 60 steps, the table "
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


def taken_text(read, kind="readable"):
    """The taken mass of `kind` rows, reading the siblings / reading only itself; "–" for a read made
    before it was measured."""
    sib, own = read["siblings"][kind].get("taken"), read["self"][kind].get("taken")
    return "–" if sib is None else f"{credit_report.fmt(sib)} / {own['mean']:.3f}"


def read_rows(res, rs):
    """Per run: how often the most likely number is the target, by row type, for Bridge reading its
    siblings / reading only itself (and P-Match, where trained); then the readable rows' taken mass."""
    rows = []
    for run in rs:
        read = credit_report.read(Path(res) / f"{run}_bridge_read.json")["paths"]
        pm = credit_report.read(Path(res) / f"{run}_pmatch_read.json")
        cells = []
        for kind in oracle.ROW_TYPES:
            sib, own = read["siblings"][kind], read["self"][kind]
            cells.append(f"{credit_report.fmt(sib['hit'])} / {own['hit']['mean']:.3f}")
        readable = pm["paths"]["siblings"]["readable"]["hit"]["mean"] if pm else None
        cells.append("–" if readable is None else f"{readable:.3f}")
        pm_taken = pm["paths"]["siblings"]["readable"].get("taken") if pm else None
        cells.append(taken_text(read) + ("" if pm_taken is None else f" (P-Match {pm_taken['mean']:.3f})"))
        rows.append(f"| {run} | {setting_text(res, run)} | " + " | ".join(cells) + " |")
    return rows


def run_facts(res, run, W):
    """One run's sampled numbers at width W, or None if it has no evaluation."""
    bridge = credit_report.read(Path(res) / f"{run}_bridge.json")
    if bridge is None:
        return None
    pmatch = credit_report.read(Path(res) / f"{run}_pmatch.json")
    K = bridge["results"][0]["per_problem"][0]["gold"]  # a `distinct` problem's answer holds its K
    ceiling = float(independent_ceiling(K, W)[0])
    sib = credit_report.scores(bridge, W, W)[0]
    vs_self = paired_set_difference(credit_report.entry(bridge, W)["per_problem"],
                                    credit_report.entry(bridge, W, "self")["per_problem"], W)
    return dict(ceiling=ceiling, bridge=sib, own=credit_report.scores(bridge, W, W, "self")[0],
                crossed=credit_report.scores(bridge, W, W, "crossed")[0], vs_self=vs_self,
                pmatch=credit_report.scores(pmatch, 1, W)[0] if pmatch else None,
                bounds=oracle_read.bounds(bridge, W), passes=sib["mean"] - ceiling > 2 * sib["se"],
                beats_self=vs_self["mean"] > 2 * vs_self["se"])


def sampled_rows(res, rs):
    """Per run and width: the ceiling, the policy bounds on Bridge's own timing, Bridge on each path,
    P-Match, the paired difference; and each run's facts by width."""
    rows, facts = [], {}
    for run in rs:
        for W in SIZES:
            f = run_facts(res, run, W)
            if f is None:
                break
            facts.setdefault(run, {})[W] = f
            b = f["bounds"]
            rows.append(f"| {run} | {W} | {f['ceiling']:.3f} | {b['independent']:.3f} / {b['readable']:.3f} / "
                        f"{b['earlier']:.3f} | **{credit_report.fmt(f['bridge'])}** | {f['own']['mean']:.3f} | "
                        f"{f['crossed']['mean']:.3f} | {'–' if f['pmatch'] is None else credit_report.fmt(f['pmatch'])} | "
                        f"{credit_report.signed(f['vs_self'])} |")
    return rows, facts


def control_text(facts):
    """What P-Match, trained on the same sets, scores against the ceiling: the control for the read."""
    runs = [run for run, by_w in facts.items() if all(f["pmatch"] is not None for f in by_w.values())]
    if not runs:
        return ""
    said = []
    for run in runs:
        by_w = facts[run]
        over = [W for W, f in by_w.items() if f["pmatch"]["mean"] - f["ceiling"] > 2 * f["pmatch"]["se"]]
        scores = " / ".join(f"{by_w[W]['pmatch']['mean']:.3f}" for W in by_w)
        said.append(f"{run}'s, at W = {' / '.join(str(W) for W in by_w)}: {scores}, "
                    + ("past the ceiling by more than two standard errors at W = " + ", ".join(map(str, over))
                       if over else "none past the ceiling by two standard errors"))
    return (" The control, P-Match (as many new parameters at the same place, each row alone) trained on the "
            "same sets, sampled in sets of W: " + "; ".join(said) + ".")


def verdict(facts):
    """facts: {run: {W: run_facts}}."""
    won = [f"{run} at W = {W}" for run, by_w in facts.items() for W, f in by_w.items()
           if f["passes"] and f["beats_self"]]
    if won:
        seeds = sorted({run.split("_")[0] for run, by_w in facts.items()
                        if any(f["passes"] and f["beats_self"] for f in by_w.values())})
        return (f"**Verdict: the siblings talk** ({'; '.join(won)}): the oracle Bridge passes the independent "
                "ceiling by more than two standard errors and beats its own weights reading only themselves (the "
                "same random numbers) by more than two: sampled, in the real loop, on the real model, the rows "
                "read what their siblings wrote. The targets are constructed: this shows what the path can "
                f"carry, not what RL finds. Training seeds behind it: {len(seeds)} ({', '.join(seeds)})."
                + control_text(facts))
    read = [f"{run} at W = {W} ({credit_report.signed(f['vs_self'])})" for run, by_w in facts.items()
            for W, f in by_w.items() if f["beats_self"]]
    if read:
        return ("**Verdict: the siblings are read in sampling, but not past the ceiling.** Bridge beats its own "
                f"weights reading only themselves by more than two standard errors ({'; '.join(read)}): in the real "
                "loop the rows use what their siblings wrote. No run's Bridge passes the exact independent ceiling "
                "by more than two standard errors: its own answers (their validity and the spread of their "
                "numbers) leave the independent policy on its timing below that ceiling (the policy bounds column).")
    return ("**Verdict: not shown.** No run's Bridge both passes the independent ceiling and beats its own "
            "weights reading only themselves by more than two standard errors at any width.")


def grpo_runs(res):
    """The oracle runs GRPO started from (talk.sh grpo: grpo_RUN_bridge.json), in name order."""
    return sorted(f.name[len("grpo_"):-len("_bridge.json")] for f in Path(res).glob("grpo_*_bridge.json"))


def mean_length(result, W, path="siblings"):
    """The mean tokens an answer at width W on one path, as evaluate.py summarised it."""
    return credit_report.entry(result, W, path)["summary"]["length"]["mean"]


def grpo_lines(res):
    """Item 2: GRPO with the set credited, from an oracle run's blocks. Per width: the ceiling, the oracle
    blocks before GRPO, after, after minus before (the same random numbers per row: same questions
    and sampling seed), after minus its own self path, the tokens an answer (when a row writes decides
    which siblings it can read); then the train reward's first and last steps."""
    rs = [r for r in grpo_runs(res) if credit_report.read(Path(res) / f"{r}_bridge.json") is not None]
    if not rs:
        return []
    lines = ["### Does GRPO keep what the oracle taught?", "",
             "GRPO with the set credited (`bash experiments/studies/talk.sh grpo`: 2 sets of 4 per prompt, each answer's "
             "reward its score in its set, the advantage over both sets, only the blocks training, learning rate 1e-3), "
             "starting from an oracle run's blocks; sampled as above (the same questions and sampling seed as the "
             "oracle run's own evaluation, so the same random numbers per row). Score per answer, ± se over questions; "
             "last, the mean tokens an answer (EOS included) before / after / after reading only itself, since when a "
             "row writes decides which siblings it can read:",
             "", "| from | GRPO steps | W | independent ceiling | oracle blocks | after GRPO | after − before (paired) "
             "| after − its self path (paired) | tokens an answer |", "|---|---|---|---|---|---|---|---|---|"]
    verdicts, at_4 = [], []  # at_4: each run's word at W = 4 (raises / keeps / loses)
    for run in rs:
        elsewhere = []  # the other widths where GRPO moved the score by more than two standard errors
        before = credit_report.read(Path(res) / f"{run}_bridge.json")
        after = credit_report.read(Path(res) / f"grpo_{run}_bridge.json")
        log = [json.loads(x) for x in (Path(res) / f"grpo_{run}_bridge.log.jsonl").read_text().splitlines()]
        K = after["results"][0]["per_problem"][0]["gold"]
        for W in SIZES:
            a = credit_report.scores(after, W, W)[0]
            b = credit_report.scores(before, W, W)[0]
            gain = paired_set_difference(credit_report.entry(after, W)["per_problem"],
                                         credit_report.entry(before, W)["per_problem"], W)
            own = paired_set_difference(credit_report.entry(after, W)["per_problem"],
                                        credit_report.entry(after, W, "self")["per_problem"], W)
            lines.append(f"| {run} | {len(log)} | {W} | {float(independent_ceiling(K, W)[0]):.3f} | "
                         f"{credit_report.fmt(b)} | **{credit_report.fmt(a)}** | {credit_report.signed(gain)} | "
                         f"{credit_report.signed(own)} | {mean_length(before, W):.1f} / {mean_length(after, W):.1f} / "
                         f"{mean_length(after, W, 'self'):.1f} |")
            word = ("raises" if gain["mean"] > 2 * gain["se"] else "loses" if gain["mean"] < -2 * gain["se"]
                    else "keeps (within two standard errors)")
            if W == 4:
                at_4.append(word.split()[0])
                verdicts.append(f"from {run}, GRPO {word} what the oracle taught at W = 4 ({credit_report.signed(gain)})")
            elif not word.startswith("keeps"):
                elsewhere.append(f"{word} it at W = {W} ({credit_report.signed(gain)})")
        if elsewhere:
            verdicts[-1] += ", " + " and ".join(elsewhere)
        k = min(5, len(log))
        first, last = (sum(r["reward"] for r in part) / k for part in (log[:k], log[-k:]))
        verdicts[-1] += f"; its train reward moved from {first:.3f} (first {k} steps) to {last:.3f} (last {k})"
    seeds = f"{len(rs)} training seed{'s' if len(rs) > 1 else ''}" + ("" if len(rs) >= 3 else " of the 3 planned")
    tally = ("At W = 4, GRPO raises / keeps / loses it from "
             + " / ".join(str(at_4.count(w)) for w in ("raises", "keeps", "loses")) + " of them")
    return lines + ["", "**Verdict**: " + "; ".join(verdicts) + f". {seeds}. {tally}.", ""]


def talk_lines(res):
    rs = runs(res)
    if not rs:
        return ["The oracle has not been run yet (`bash experiments/studies/talk.sh heldout`, then `seed 0`).", ""]
    n_sets = credit_report.read(Path(res) / f"{rs[0]}_bridge_read.json")["n_sets"]
    rows, facts = sampled_rows(res, rs)
    lines = [
        "### The oracle done right",
        "",
        "Blocks alone (the base model frozen), trained teacher-forced on constructed sets of 4 (`experiments/studies/oracle.py`, "
        "16 sets per training question): rows writing first, or at the same step as a sibling, take distinct "
        "random numbers; a row writing alone after its siblings takes, with `--targets successor`, the number "
        "after the most recent writer's, counting on past taken ones (9 is followed by 1), so that only a row "
        "that reads its sibling can know its own; with `--targets free`, a number uniform over those no "
        "earlier sibling took, learnt against that whole distribution, so that reading tells a row what to "
        "avoid, which is what sampling needs. Under both rules every row's number is uniform over 1..9. The "
        "loss is the token mean over the answer plus the number's cross-entropy times a weight. Each run is "
        "`seedS` (the first setting) or `seedS_VARIANT` (`bash experiments/studies/talk.sh`); P-Match trained on the "
        "same sets is the control. **These targets are constructed, not self-generated.**",
        "",
        f"**Teacher-forced**, on {n_sets} held-out sets (the base model's answers to the held-out questions, "
        "numbered by the same rule; `experiments/studies/oracle_read.py read`): how often the most likely number is the "
        "target, Bridge reading its siblings (± se over rows) / the same Bridge reading only itself, by what a "
        "row can read when it decides (chance: 1/9 for a first row, 1/8 to 1/6 for the others), and P-Match "
        "on the rows whose earlier writer is readable; last, the readable rows' taken mass (the share of "
        "their probability over 1..9 on numbers earlier siblings wrote; a row that ignores its siblings puts "
        "about 1/9 a writer there, one that avoids them 0), reading the siblings / reading only itself (P-Match's):",
        "",
        "| run | setting | " + " | ".join(TYPE_WORDS[k] for k in oracle.ROW_TYPES)
        + " | P-Match, readable | taken mass, readable |",
        "|---|---|---|---|---|---|---|---|",
        *read_rows(res, rs),
        "",
    ]
    if rows:
        lines += [
            "**Sampled** on the held-out questions, 32 answers each (sampling seed = training seed), Bridge on each "
            "path with the same random numbers per row; P-Match sampled at width 1 in sets of W. The policy bounds "
            "are what a policy scores on Bridge's own sets (its timing and valid answers, the number at step "
            "length − 2) choosing independently / avoiding the siblings readable at its decision / avoiding every "
            "earlier number (`experiments/studies/oracle_read.py bounds`). Score per answer, ± se over questions:",
            "",
            "| run | W | independent ceiling (exact) | policy bounds on its timing | Bridge | reading only itself "
            "| crossed | P-Match | Bridge − reading only itself (paired) |",
            "|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            verdict(facts),
            "",
        ]
    return lines


def talking_lines(res, c, facts):
    """The README's lines once the committed candidate passes both bars: the file, how it was made,
    its fresh-seed numbers, the study's own sampling of the same run at every width, and how many
    candidates and training seeds stand behind it."""
    link = f"{readme_section.link(readme_section.DOCS / 'results.md', ROOT / 'README.md')}#see-the-siblings-talk"
    study = ""
    if c["run"] in facts:
        by_w = facts[c["run"]]
        study = (" In the study's own sampling of the same run (its fp32 blocks, sampling seed = training seed), at W = "
                 + " / ".join(str(W) for W in by_w) + ": " + " / ".join(credit_report.fmt(f["bridge"]) for f in by_w.values())
                 + " against the ceilings " + " / ".join(f"{f['ceiling']:.3f}" for f in by_w.values())
                 + ", " + " / ".join(credit_report.signed(f["vs_self"]) for f in by_w.values()) + " over itself.")
    seeds = sorted({r.split("_")[0] for r in runs(res) if r.partition("_")[2] == c["run"].partition("_")[2]})
    return [f"**The siblings talk, with constructed targets** ([full section]({link})): blocks alone, trained "
            f"teacher-forced on `distinct` sets where a row keeps its number apart from its siblings' only by reading "
            f"those that wrote before it ({c['run']}: {setting_text(res, c['run'])}; an oracle, not RL). The committed "
            f"`bridges/distinct.safetensors` (its bf16 copy), sampled with seed {c['seed']}, which no run used, on "
            f"the held-out questions at W = {c['W']}, scores {credit_report.fmt(c['bridge'])} per answer against "
            f"the exact independent ceiling {c['ceiling']:.3f}; the same weights reading only themselves, with the "
            f"same random numbers, {credit_report.fmt(c['own'])}; Bridge − itself {credit_report.signed(c['vs_self'])} "
            f"(paired per set).{study} Training seeds of this setting: {len(seeds)} ({', '.join(seeds)}); "
            f"candidates tried for the file: {len(earlier_runs(res)) + 1}.", ""]


def headline_lines(res=RES):
    """The README's lines on the oracle done right: each sampled run's Bridge against the ceiling and
    its self path, per width."""
    rs = runs(res)
    rows, facts = sampled_rows(res, rs)
    c = committed_facts(res)
    if c is not None and c["passes"] and c["beats_self"]:
        return talking_lines(res, c, facts)
    if rs and not any(f["passes"] and f["beats_self"] for by_w in facts.values() for f in by_w.values()):
        return not_yet_lines(res, rs)
    if not facts:
        return []
    lines = ["**The oracle done right** (constructed sets whose every number is uniform and which a row "
             "can meet only by reading the siblings that wrote before it; the number's loss weighted; ± se over questions; "
             f"[full section]({readme_section.link(readme_section.DOCS / 'results.md', ROOT / 'README.md')}"
             "#see-the-siblings-talk)):", "",
             "| run | W | independent ceiling | Bridge | Bridge − itself reading only itself (paired) |",
             "|---|---|---|---|---|"]
    for run, by_w in facts.items():
        for W, f in by_w.items():
            lines.append(f"| {run} | {W} | {f['ceiling']:.3f} | {credit_report.fmt(f['bridge'])} | "
                         f"{credit_report.signed(f['vs_self'])} |")
    return lines + ["", verdict(facts), ""]


def stage_kind(stage):
    """The kind of a experiments/results/talk/walltime.jsonl stage: "eval/seed0_bridge" -> "evaluation", ..."""
    head = stage.split("/")[0]
    if head in ("eval", "read"):
        return "evaluation (sampled)" if head == "eval" else "teacher-forced read"
    return "held-out answers" if stage == "talk/heldout" else "GRPO" if "/grpo" in stage else "oracle training"


def committed_facts(res, name="candidate_distinct", run=None):
    """The candidate for bridges/distinct.safetensors, evaluated afresh at W = 4 (talk.sh commit; name
    candidate_fp32: the same run's fp32 blocks, the same seed; name earlier_RUN_distinct with run=RUN:
    a candidate tried before it): which run it is, its score, its self path's, the ceiling, the
    paired difference; None before it exists."""
    result = credit_report.read(Path(res) / f"{name}.json")
    source = dict(run=run) if run is not None else credit_report.read(Path(res) / "candidate.json")
    if result is None or source is None:
        return None
    W = 4
    K = result["results"][0]["per_problem"][0]["gold"]
    ceiling = float(independent_ceiling(K, W)[0])
    sib, own = credit_report.scores(result, W, W)[0], credit_report.scores(result, W, W, "self")[0]
    d = paired_set_difference(credit_report.entry(result, W)["per_problem"],
                              credit_report.entry(result, W, "self")["per_problem"], W)
    return dict(run=source["run"], seed=result["protocol"]["seeds"]["sampling"], W=W, ceiling=ceiling, bridge=sib,
                own=own, vs_self=d, passes=sib["mean"] - ceiling > 2 * sib["se"], beats_self=d["mean"] > 2 * d["se"])


def earlier_runs(res):
    """The runs of the candidates tried before the present one (talk.sh commit keeps their results as
    earlier_RUN_distinct.json and earlier_RUN_fp32.json), in name order."""
    return sorted(f.name[len("earlier_"):-len("_distinct.json")] for f in Path(res).glob("earlier_*_distinct.json"))


def earlier_lines(res):
    """One sentence on every candidate tried before the present one, bf16 and fp32 alike: the
    candidates are all evaluated on the same held-out questions with the same seed, so a reader
    weighs a pass against how many were tried."""
    parts, how = [], ""
    for run in earlier_runs(res):
        got = []
        for kind, what in (("distinct", "bf16"), ("fp32", "fp32")):
            f = committed_facts(res, f"earlier_{run}_{kind}", run)
            if f is not None:
                how = f"seed {f['seed']}, W = {f['W']}"
                got.append(f"{what} {credit_report.fmt(f['bridge'])}, {credit_report.signed(f['vs_self'])} over its self path"
                           + ("" if f["passes"] and f["beats_self"] else ", not passing both"))
        parts.append(f"{run} ({'; '.join(got)})")
    if not parts:
        return []
    return [f"Candidates tried before it, each sampled the same way ({how}, the same held-out questions), "
            f"so {len(parts) + 1} candidates in all: {'; '.join(parts)}.", ""]


def committed_lines(res):
    f = committed_facts(res)
    if f is None:
        return []
    both = f["passes"] and f["beats_self"]
    end = ("It passes both by more than two standard errors: it is the committed `bridges/distinct.safetensors`."
           if both else "It does not pass both by more than two standard errors, so `bridges/distinct.safetensors` "
           "stays the set-level study's.")
    fp32 = committed_facts(res, "candidate_fp32")
    if fp32 is not None:
        end += (f" The same run's fp32 blocks sampled with the same seed {fp32['seed']} score "
                f"{credit_report.fmt(fp32['bridge'])}, {credit_report.signed(fp32['vs_self'])} over reading only "
                "themselves" + (", by more than two standard errors." if fp32["beats_self"] else
                                ": the gain over the self path is not shown on fresh random numbers."))
    return [f"**The candidate for `bridges/distinct.safetensors`**: {f['run']}'s Bridge stored in bf16 "
            f"(`bash experiments/studies/talk.sh commit`), sampled afresh with seed {f['seed']}, which no run used, on the "
            f"held-out questions at W = {f['W']}: {credit_report.fmt(f['bridge'])} per answer against the "
            f"independent ceiling {f['ceiling']:.3f}; reading only itself (the same random numbers) "
            f"{credit_report.fmt(f['own'])}; Bridge − reading only itself {credit_report.signed(f['vs_self'])} "
            f"(paired per set). {end}", "", *earlier_lines(res)]


def not_yet_lines(res, rs):
    """The README's two sentences while no Bridge passes: what was tried, what the read showed."""
    tried = "; ".join(f"{r}: {setting_text(res, r)}" for r in rs)
    reads = []
    for r in rs:
        read = credit_report.read(Path(res) / f"{r}_bridge_read.json")["paths"]
        if targets(res, r) == "free":
            reads.append(f"put {read['siblings']['readable']['taken']['mean']:.3f} of their probability on the "
                         f"numbers written before them reading their siblings and "
                         f"{read['self']['readable']['taken']['mean']:.3f} reading only themselves ({r})")
        else:
            reads.append(f"predict their number {read['siblings']['readable']['hit']['mean']:.3f} reading their "
                         f"siblings and {read['self']['readable']['hit']['mean']:.3f} reading only themselves ({r}, "
                         "chance about 1/8)")
    _, facts = sampled_rows(res, rs)
    sampled = "".join(
        f"; sampled, {run}'s Bridge scores {credit_report.fmt(by_w[4]['bridge'])} per answer at W = 4 against the "
        f"independent ceiling {by_w[4]['ceiling']:.3f}, {credit_report.signed(by_w[4]['vs_self'])} over itself "
        "reading only itself" for run, by_w in facts.items() if 4 in by_w)
    for name, what in (("candidate_fp32", "the same blocks"), ("candidate_distinct", "their bf16 copy")):
        f = committed_facts(res, name)
        if f is not None:
            sampled += (f"; {what} sampled afresh with seed {f['seed']}: {credit_report.fmt(f['bridge'])}, "
                        f"{credit_report.signed(f['vs_self'])} over itself")
    link = f"{readme_section.link(readme_section.DOCS / 'results.md', ROOT / 'README.md')}#see-the-siblings-talk"
    return [f"**The oracle done right** ([full section]({link})): blocks alone were trained on constructed "
            "`distinct` sets whose every number is uniform and which a row can meet only by reading the siblings "
            f"that wrote before it, with the number's loss weighted ({tried}). Teacher-forced on held-out sets, rows "
            f"whose earlier writer is readable {'; '.join(reads)}"
            f"{sampled}: no Bridge passes yet, so `bridges/distinct.safetensors` is still the set-level study's.", ""]


def rerun_text(res):
    """How the committed candidate's setting is run again: its VARIANT and flags, read back from its files."""
    source = credit_report.read(Path(res) / "candidate.json")
    if source is None or "_" not in source["run"]:
        return ""
    seed, variant = source["run"][len("seed"):].split("_", 1)
    st = setting(res, source["run"])
    env = f"VARIANT={variant} TARGETS={targets(res, source['run'])} NUMBER_WEIGHT={st['weight']:g} EPOCHS={round(st['epochs']):d}"
    return (f"; the committed candidate's setting is `{env} bash experiments/studies/talk.sh seed {seed}`, "
            f"then the same with `commit {seed}`")


def section(res=RES, first=FIRST):
    lines = [BEGIN, "", *first_oracle_lines(first), *talk_lines(res), *committed_lines(res), *grpo_lines(res)]
    if Path(res, "walltime.jsonl").is_file():
        lines += [*credit_report.walltime_lines(res, stage_kind), ""]
    lines += ["Regenerate: `python experiments/studies/talk_report.py`; the runs, in order: `bash experiments/studies/talk.sh heldout`, "
              "`seed 0`, `seed 1`, `seed 2` (each skips what is done)" + rerun_text(res) + ".", "", END]
    return "\n".join(lines)


def main(argv=None):
    p = Parser(prog="experiments/studies/talk_report.py", description="Write (or --check) the section of the oracle done right.")
    readme_section.add_arguments(p, readme_section.DOCS / "results.md")
    p.add_argument("--results", default=str(RES), help="the results folder (default experiments/results/talk)")
    args = p.parse_args(argv)
    return readme_section.write_or_check(args, lambda: section(args.results), BEGIN, END, what="talk section",
                                         command="python experiments/studies/talk_report.py")


if __name__ == "__main__":
    sys.exit(run(main))
