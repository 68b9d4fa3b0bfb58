"""The section "Making the siblings pay" of docs/results.md, generated from committed result files.

    python experiments/studies/credit_report.py            # rewrite the section in docs/results.md
    python experiments/studies/credit_report.py --check    # exit 1 if the section is not what the files give
    python experiments/studies/credit_report.py --pilot experiments/results/credit   # choose the credit from the pilot's logs (pilot.json)

Reads experiments/results/credit/ (experiments/studies/credit.sh): the oracle check (oracle_bridge.json, oracle_pmatch.json:
evaluate.py results on the held-out `distinct` questions, Bridge sampled with the paths siblings,
self and crossed at every width), and their training logs. Every number is computed here from the
per-question choices those files store (metrics.py), so the section is reproducible to the digit.
Reading a result and formatting its cells: credit_cells.py.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments" / "studies"))

import paired  # noqa: E402
from bridgekit import readme_section  # noqa: E402
import siblings_report as sib  # noqa: E402  (the same seedS_ARM.json layout as the first study)
from bridgekit.cli import Parser, run, write_text  # noqa: E402
from bridgekit.metrics import collision_rate, independent_ceiling, paired_set_difference, set_summary  # noqa: E402
from credit_cells import crossed_cell, entry, fmt, rates, read, scores, set_values, signed  # noqa: E402

RES = ROOT / "experiments" / "results" / "credit"
BEGIN = "<!-- credit:begin (written by `python experiments/studies/credit_report.py` from experiments/results/credit; do not edit by hand) -->"
END = "<!-- credit:end -->"
SIZES = (2, 4, 8)


def oracle_rows(bridge, pmatch):
    """The oracle table's rows and the facts the verdict reads."""
    rows, passes = [], {}
    K = bridge["results"][0]["per_problem"][0]["gold"]  # a `distinct` problem's answer holds its K
    for W in SIZES:
        ceiling = independent_ceiling(K, W)
        b_score, b_all = scores(bridge, W, W)
        s_score, _ = scores(bridge, W, W, "self")
        c_score, _ = scores(bridge, W, W, "crossed")
        w1_score, _ = scores(bridge, 1, W)
        p_score, p_all = scores(pmatch, 1, W)
        vs_self = paired_set_difference(entry(bridge, W)["per_problem"], entry(bridge, W, "self")["per_problem"], W)
        a_sets = range(0, entry(bridge, W)["groups"], 2)
        vs_crossed = paired_set_difference(entry(bridge, W)["per_problem"], entry(bridge, W, "crossed")["per_problem"],
                                           W, groups=list(a_sets))
        within, across = collision_rate(entry(bridge, W)["per_problem"], W)
        passes[W] = b_score["mean"] - float(ceiling[0]) > 2 * b_score["se"]
        rows.append(f"| {W} | {float(ceiling[0]):.3f} / {float(ceiling[1]):.3f} | {fmt(b_score)} / {fmt(b_all)} | "
                    f"{fmt(s_score, False)} | {crossed_cell(bridge, W, fmt(c_score, False))} | {fmt(w1_score, False)} | "
                    f"{fmt(p_score)} / {fmt(p_all)} | {signed(vs_self)} | {signed(vs_crossed)} | "
                    f"{rates(within, across)} |")
    return rows, passes


def oracle_section(res):
    bridge, pmatch = read(Path(res) / "oracle_bridge.json"), read(Path(res) / "oracle_pmatch.json")
    if bridge is None or pmatch is None:
        return ["The oracle check has not been run yet (`bash experiments/studies/credit.sh oracle`)."]
    rows, passes = oracle_rows(bridge, pmatch)
    proto = bridge["protocol"]
    n_q, n = proto["problems"], proto["n"]
    log = [json.loads(line) for line in (Path(res) / "oracle_bridge.log.jsonl").read_text().splitlines()]
    lines = [
        f"Blocks alone (the base model frozen), trained teacher-forced for {len(log)} steps on constructed sets "
        "of 4 whose numbers depend on the siblings (`experiments/studies/oracle.py`: a row that writes its number after "
        "a sibling takes the smallest number not yet taken; rows writing first or at the same step take "
        "distinct random ones). These targets are constructed, not self-generated. Then sampled on the "
        f"{n_q} held-out questions, {n} answers each, Bridge on each path with the same random numbers "
        "per row; P-Match trained on the same sets and sampled at width 1 is the control. Per-answer "
        "score / all-distinct share, ± se over questions:",
        "",
        "| W | independent ceiling | Bridge | self-only | crossed | Bridge weights at width 1 | P-Match "
        "| Bridge − self-only (paired) | Bridge − crossed (paired) | collisions within / across sets |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]
    won = [W for W in SIZES if passes[W]]
    if won:
        verdict = (f"**Verdict: Bridge passes the independent ceiling by more than two standard errors at "
                   f"W = {', '.join(map(str, won))}**: the block can carry coordination through the real "
                   "sampling loop when its training data asks for it.")
    else:
        verdict = ("**Verdict: Bridge does not pass the independent ceiling at any width** with these targets and "
                   "this training; the targets taught a shortcut, so this does not show that Bridge cannot "
                   "coordinate ([why](#why-the-first-oracles-verdict-does-not-follow), and [the oracle done "
                   "right](#see-the-siblings-talk)).")
    # why: did the blocks fit the sibling-dependent targets better than a block that cannot read them?
    losses = {arch: [json.loads(line)["loss"] for line in
                     (Path(res) / f"oracle_{arch}.log.jsonl").read_text().splitlines()] for arch in ("bridge", "pmatch")}
    tail = {arch: sum(v[-10:]) / len(v[-10:]) for arch, v in losses.items()}
    head = {arch: sum(v[:10]) / len(v[:10]) for arch, v in losses.items()}
    fit = ("below" if tail["bridge"] < tail["pmatch"] else "not below")
    why = (f"Teacher-forced, the training loss (token mean over the answers) went from {head['bridge']:.3f} to "
           f"{tail['bridge']:.3f} for Bridge and from {head['pmatch']:.3f} to {tail['pmatch']:.3f} for P-Match "
           f"(means of the first and last 10 steps): Bridge's is {fit} the loss of a block that cannot read "
           "the siblings, so in this budget the blocks did not learn to use what the siblings wrote, and "
           "sampling cannot show what training did not put in.")
    return lines + [verdict, "", why]


CREDITS = ("answer", "team", "difference")
PILOT_RULE = ("the credit whose rollouts score best per answer (the log's acc: the share of answers that "
              "are valid and unique in their set) over the second half of the pilot's steps, on the training split")


def pilot_choice(res):
    """{"credits": {credit: {"acc", "steps"}}, "chosen", "rule"} from res/pilot_CREDIT.log.jsonl."""
    credits = {}
    for credit in CREDITS:
        path = Path(res) / f"pilot_{credit}.log.jsonl"
        if not path.is_file():
            raise ValueError(f"{path}: no such file (run bash experiments/studies/credit.sh pilot)")
        log = [json.loads(line) for line in path.read_text().splitlines()]
        half = log[len(log) // 2:]
        credits[credit] = dict(acc=sum(r["acc"] for r in half) / len(half), steps=len(log))
    chosen = max(CREDITS, key=lambda c: credits[c]["acc"])  # ties: the first, the per-answer score
    return dict(credits=credits, chosen=chosen, rule=PILOT_RULE)


# -----------------------------------------------------------------------------
# the study: RLVR only, P-Match and Bridge trained with --sets and the chosen credit


def twin_comparisons(runs):
    """Bridge against its self-only twin and its crossed twin (the same weights, width and random
    numbers per row, one path cut), paired by seed, on the seeds whose result holds the paths."""
    out = []
    for W in SIZES:
        own, alone, crossed, own_a = {}, {}, {}, {}
        for (arm, seed), r in runs.items():
            if arm != "bridge" or entry(r, W, "self") is None:
                continue
            own[seed], alone[seed] = set_values(r, W), set_values(r, W, "self")
            a_sets = list(range(0, entry(r, W)["groups"], 2))
            own_a[seed], crossed[seed] = set_values(r, W, groups=a_sets), set_values(r, W, "crossed")
        if own:
            out.append(paired.compare(own, alone, (f"Bridge at width {W}", "its self-only twin"), W, "score per answer"))
            out.append(paired.compare(own_a, crossed, (f"Bridge at width {W}", "its crossed twin"), W, "score per answer"))
    return out


def collision_lines(runs):
    """Within- vs across-set collisions of Bridge's answers, per seed, at each width."""
    rows = []
    for W in SIZES:
        per = {seed: collision_rate(entry(r, W)["per_problem"], W) for (arm, seed), r in sorted(runs.items())
               if arm == "bridge" and entry(r, W) is not None}
        if per:
            rows.append(f"| {W} | " + "; ".join(f"seed {s}: {rates(*v)}" for s, v in per.items()) + " |")
    if not rows:
        return []
    return ["Collisions of Bridge's answers (the share of pairs of valid answers with the same number), "
            "within a set / across sets of the same question: a Bridge that coordinates collides less "
            "with its own siblings than with answers it could not read.", "",
            "| W | within / across, per seed |", "|---|---|", *rows]


def pilot_lines(res):
    path = Path(res) / "pilot.json"
    if not path.is_file():
        return ["The credit pilot has not been run yet (`bash experiments/studies/credit.sh pilot`)."]
    p = json.loads(path.read_text())
    cells = ", ".join(f"{c} {v['acc']:.3f} ({v['steps']} steps)" for c, v in p["credits"].items())
    return [f"The credit was chosen by a pilot on the training split (Bridge, seed 0, `bash experiments/studies/credit.sh "
            f"pilot`): {p['rule']}. Share of valid unique answers over the second half: {cells}. "
            f"Chosen: **--credit {p['chosen']}**, the same for every arm."]


def run_args(res):
    """{(arm, seed): args.json} of the study's GRPO runs (experiments/results/credit/seedS/grpo_ARM/args.json)."""
    found = {}
    for f in sorted(Path(res).glob("seed*/grpo_*/args.json")):
        found[f.parent.name.removeprefix("grpo_"), int(f.parent.parent.name.removeprefix("seed"))] = read(f)
    return found


PROTOCOL_KEYS = ("task", "width", "sets", "credit", "prompts_per_step", "lr", "lr_new", "train")


def study_protocol(runs, res):
    """The protocol as the runs' own args.json files record it (one value per flag, or each run's)."""
    one = next(iter(runs.values()))["protocol"]
    args = run_args(res)
    logs = {}
    for (arm, seed) in runs:
        log = Path(res) / f"seed{seed}_{arm}.log.jsonl"
        if log.is_file():
            logs.setdefault(arm, []).append((seed, len(log.read_text().splitlines())))
    trained = ", ".join(f"{sib.ARMS[a]} seeds {', '.join(str(s) for s, _ in sorted(v))} "
                        f"({'/'.join(str(n) for _, n in sorted(v))} steps)" for a, v in logs.items())
    flags = []
    for key in PROTOCOL_KEYS:
        values = {json.dumps(a.get(key)) for a in args.values()}
        if len(values) == 1:
            flags.append(f"--{key.replace('_', '-')} {values.pop().strip(chr(34))}")
        elif values:
            flags.append(f"--{key.replace('_', '-')} " + " / ".join(
                f"{json.dumps(a.get(key)).strip(chr(34))} ({sib.ARMS.get(arm, arm)} seed {seed})"
                for (arm, seed), a in sorted(args.items())))
    recorded = (f"GRPO with {' '.join(flags)} (from the runs' args.json)" if flags
                else "GRPO (no run's args.json is committed)")
    return (f"Protocol: {recorded}; trained: {trained}. Held out: {one['problems']} questions, n = {one['n']} "
            "answers each, evaluation seeds equal to the training seed; Bridge at widths 2, 4, 8 on each path, "
            "the arms without a path between rows at width 1, pooled into sets of W. Cells: the mean over seeds "
            "(lowest and highest seed in brackets).")


def above_ceiling_line(runs):
    """[] or one sentence: the no-path arms' seeds that score above the independent ceiling, and why
    that can only be the sampling of the held-out questions (their rows are independent draws)."""
    found = []
    for arm in ("rlvr", "pmatch"):
        by_size = sib.per_seed(runs, arm, sib.sampled_at(arm), "score")
        for W in SIZES:
            ceiling = float(independent_ceiling(9, W)[0])
            for seed, values in sorted(by_size[W].items()):
                mean = sum(values) / len(values)
                se = (sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values)) ** 0.5
                if mean > ceiling:
                    found.append(f"{sib.ARMS[arm]} seed {seed} at W = {W}: {mean:.3f} ± {se:.3f} against {ceiling:.3f}")
    if not found:
        return []
    return ["An arm without a path between rows above the ceiling (" + "; ".join(found) + ", ± se over "
            "questions) is the sampling of the held-out questions: its rows are independent draws from one "
            "distribution per question, whose expected score per answer cannot exceed the ceiling.", ""]


def study_section(res):
    runs, _ = sib.load(res)
    if not runs:
        return ["No arm has results yet (`bash experiments/studies/credit.sh seed 0`)."]
    comps = sib.comparisons(runs) + twin_comparisons(runs)
    lines = [study_protocol(runs, res), ""]
    lines += sib.table(runs, None, "score", res) + [""] + sib.table(runs, None, "distinct", res) + [""]
    lines += above_ceiling_line(runs)
    lines += sib.comparison_lines(comps) + [""]
    lines += collision_lines(runs) + [""]
    return lines + [sib.verdict(runs, comps)]


COMMITTED = {"committed_distinct": "the set-level blocks (`experiments/results/siblings/distinct_blocks.safetensors`)", "committed_default": "`bridges/default.safetensors`",
             "mul2_bridge": "the mul2 study's Bridge (seed 0, retrained)"}


def paths_rows(name, result):
    """One row per width of a result sampled with the three paths: scores and paired differences."""
    rows = []
    for e in result["results"]:
        W = e["width"]
        if "path" in e or entry(result, W, "self") is None:
            continue
        set_task = "choices" in e["per_problem"][0]
        score = (lambda r: set_summary(r["per_problem"], r["n"], W)["set_score"]) if set_task else \
            (lambda r: r["summary"]["accuracy"])
        own, alone, crossed = e, entry(result, W, "self"), entry(result, W, "crossed")
        vs_self = paired_set_difference(own["per_problem"], alone["per_problem"], W)
        vs_crossed = paired_set_difference(own["per_problem"], crossed["per_problem"], W,
                                           groups=list(range(0, own["groups"], 2)))
        within, across = collision_rate(own["per_problem"], W)
        rows.append(f"| {COMMITTED.get(name, name)} | {result['protocol']['task']} | {W} | {fmt(score(own))} | "
                    f"{fmt(score(alone), False)} | {crossed_cell(result, W, fmt(score(crossed), False))} | {signed(vs_self)} | "
                    f"{signed(vs_crossed)} | {rates(within, across)} |")
    return rows


def committed_section(res):
    found = [(name, read(Path(res) / f"{name}.json")) for name in COMMITTED]
    found = [(name, r) for name, r in found if r is not None]
    if not found:
        return ["Not run yet (`bash experiments/studies/credit.sh committed`, `bash experiments/studies/credit.sh mul2`)."]
    return ["The same sets sampled three times with identical random numbers per row: with Bridge's mask, "
            "with each row reading only itself (self-only), and with each row reading another set of its "
            "prompt instead of its own (crossed). Score: per-answer set score for `distinct`, accuracy for "
            "the math task; the differences are paired per set, ± se over questions. Collisions: the share "
            "of pairs of valid answers with the same number (the same extracted answer for math), within "
            "a set / across sets of the same question.",
            "",
            "| Bridge | task | W | Bridge | self-only | crossed | Bridge − self-only | Bridge − crossed | "
            "collisions within / across |",
            "|---|---|---|---|---|---|---|---|---|",
            *[row for name, r in found for row in paths_rows(name, r)],
            "",
            committed_verdict(found)]


def committed_verdict(found):
    """One sentence: which committed Bridge at which width differs from its self-only twin by more
    than two standard errors (paired per set, same random numbers), if any."""
    moved, total = [], 0
    for name, result in found:
        for e in result["results"]:
            W = e["width"]
            if "path" in e or entry(result, W, "self") is None:
                continue
            total += 1
            d = paired_set_difference(e["per_problem"], entry(result, W, "self")["per_problem"], W)
            if abs(d["mean"]) > 2 * d["se"]:
                moved.append(f"{COMMITTED.get(name, name)} at W = {W} ({signed(d)})")
    if not moved:
        return (f"**In words.** At fixed randomness the siblings change no committed Bridge's score: in all "
                f"{total} cases Bridge − self-only is within two standard errors of 0.")
    return (f"**In words.** At fixed randomness Bridge − self-only is more than two standard errors from 0 "
            f"in {len(moved)} of {total} cases: " + "; ".join(moved) + ".")


def stage_kind(stage):
    """The kind of a walltime.jsonl stage: "credit/seed0/grpo_bridge" -> "GRPO", "eval/oracle_bridge" -> ..."""
    if stage.startswith("eval/"):
        return "oracle evaluation" if "/oracle_" in stage else "evaluation"
    if "/oracle_" in stage:
        return "oracle training"
    if "/pilot/" in stage:
        return "pilot GRPO"
    return "warm-up" if "/sft_" in stage else "GRPO" if "/grpo_" in stage else stage


def walltime_lines(res, kind=stage_kind):
    """Minutes per kind of stage and machine (experiments/studies/stages.sh appends every stage to walltime.jsonl);
    kind(stage name) names a stage's kind."""
    path = Path(res) / "walltime.jsonl"
    if not path.is_file():
        return []
    kinds = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        kinds.setdefault((kind(r["stage"]), r["machine"]), []).append(r["seconds"] / 60)
    rows = [f"| {kind} | {machine} | {len(v)} | {min(v):.0f}–{max(v):.0f} |" for (kind, machine), v in kinds.items()]
    return [f"Wall time per stage, from `{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}` "
            "(a stage that shared the CPU with other work says so there):", "",
            "| stage | machine | runs | minutes |", "|---|---|---|---|", *rows]


def section(res=RES):
    lines = [BEGIN, "", "### The oracle check: can Bridge coordinate at all?", ""]
    lines += oracle_section(res)
    lines += ["", "### The study, with the set credited", ""]
    lines += pilot_lines(res) + [""] + study_section(res)
    lines += ["", "### What the siblings add, at fixed randomness: the committed Bridges", ""]
    lines += committed_section(res)
    lines += [""] + walltime_lines(res)
    lines += ["", "Regenerate: `python experiments/studies/credit_report.py`; the runs, in order: `bash experiments/studies/credit.sh oracle`, "
              "`pilot`, `seed 0`, `seed 1`, `seed 2`, `committed`, `mul2` (each skips what is done).", "", END]
    return "\n".join(lines)


def main(argv=None):
    p = Parser(prog="experiments/studies/credit_report.py", description="Write (or --check) the section of the credit study.")
    p.add_argument("--check", action="store_true", help="exit 1 if the section differs from the files")
    p.add_argument("--results", default=str(RES), help="the results folder (default experiments/results/credit)")
    readme_section.add_doc_argument(p, readme_section.DOCS / "results.md")
    p.add_argument("--pilot", default=None, metavar="DIR", help="instead: choose the credit from DIR/pilot_*.log.jsonl "
                   "and write DIR/pilot.json")
    args = p.parse_args(argv)
    if args.pilot:
        choice = pilot_choice(args.pilot)
        write_text(Path(args.pilot) / "pilot.json", json.dumps(choice, indent=1) + "\n")  # (rebuilt from the logs)
        print(f"chose --credit {choice['chosen']}: " + ", ".join(f"{c} {v['acc']:.3f}" for c, v in choice["credits"].items()),
              file=sys.stderr)
        return 0
    readme_section.check_readme(args.doc, write=not args.check)
    return readme_section.update(args.doc, section(args.results), BEGIN, END, check=args.check,
                                 what="credit section", command="python experiments/studies/credit_report.py")


if __name__ == "__main__":
    sys.exit(run(main))
