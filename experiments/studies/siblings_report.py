"""The section "Do the siblings matter?" of docs/results.md, generated from committed result files.

    python experiments/studies/siblings_report.py            # rewrite the section in docs/results.md (+ the figure)
    python experiments/studies/siblings_report.py --check    # exit 1 if docs/results.md's section is not what the files give
    python experiments/studies/siblings_report.py --json P   # also write every paired comparison, unrounded
    python experiments/studies/siblings_report.py --doc FILE # the section in another Markdown file (it must hold the markers)

Reads experiments/results/positive_control.json (tools/positive_control.py) and experiments/results/siblings/ (experiments/studies/siblings.sh:
evaluate.py results of the base model and of each arm and seed on the set-level task `distinct`,
and each arm's GRPO log). Every number of the section is computed here from those files, so the
section is reproducible to the last digit (experiments/studies/tests/test_siblings_report.py runs --check).
"""
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments" / "studies"))

import paired  # noqa: E402
from bridgekit import readme_section  # noqa: E402
from bridgekit.cli import Parser, add_overwrite, check_new_file, check_out_file, run, save_figure, write_text  # noqa: E402
from bridgekit.result_files import check_summaries  # noqa: E402
from bridgekit.metrics import distinct_scores, independent_ceiling  # noqa: E402

RES = ROOT / "experiments" / "results" / "siblings"
CONTROL = ROOT / "experiments" / "results" / "positive_control.json"
BEGIN = "<!-- siblings:begin (written by `python experiments/studies/siblings_report.py` from experiments/results/siblings; do not edit by hand) -->"
END = "<!-- siblings:end -->"
DOC = readme_section.DOCS / "results.md"  # where the section goes unless --doc names another file
ARMS = {"rlvr": "RLVR only", "pmatch": "P-Match", "bridge": "Bridge"}
SIZES = (2, 4, 8)


def load(res=RES):
    """{(arm, seed): result} for every seedS_ARM.json, and the base model's result (or None)."""
    runs = {}
    for path in sorted(Path(res).glob("seed*_*.json")):
        seed, arm = path.stem.removeprefix("seed").split("_", 1)
        if arm in ARMS and seed.isdigit():
            runs[arm, int(seed)] = read(path)
    return runs, read(Path(res) / "base.json")


def read(path):
    """An evaluate.py result, its stored summaries checked against its records; None if there is none."""
    if not Path(path).is_file():
        return None
    data = json.loads(Path(path).read_text())
    check_summaries(data, path)
    return data


def per_problem(result, width, size):
    """Per question: (share of answers that score, share of groups all distinct), the n answers of
    the width-`width` run scored in consecutive groups of `size`."""
    entry = next(r for r in result["results"] if r["width"] == width and r.get("path", "siblings") == "siblings")
    out = []
    for p in entry["per_problem"]:
        c = p["choices"]
        groups = [distinct_scores(c[i:i + size]) for i in range(0, len(c), size)]
        out.append((sum(map(sum, groups)) / len(c), sum(map(all, groups)) / len(groups)))
    return out


def sampled_at(arm):
    """The run width whose answers are scored in groups of W: Bridge's own width W; the arms without a
    path between rows (RLVR only, P-Match) were sampled at width 1 only (experiments/studies/siblings.sh), since
    their answers are independent draws at any width."""
    return (lambda size: size) if arm == "bridge" else (lambda size: 1)


def per_seed(runs, arm, width_of, metric):
    """{seed: per-question values} of `arm`; width_of(size) -> the run width scored at that size."""
    k = 0 if metric == "score" else 1
    return {size: {seed: [v[k] for v in per_problem(r, width_of(size), size)]
                   for (a, seed), r in runs.items() if a == arm} for size in SIZES}


def mean_of(values_by_seed):
    """The mean over seeds of each seed's mean over questions, and the per-seed means."""
    means = [statistics.fmean(v) for _, v in sorted(values_by_seed.items())]
    return (statistics.fmean(means) if means else None), means


def cell(values_by_seed):
    mean, means = mean_of(values_by_seed)
    if mean is None:
        return "—"
    spread = f" ({min(means):.3f}–{max(means):.3f})" if len(means) > 1 else ""
    return f"{mean:.3f}{spread}"


def table(runs, base, metric, res=RES):
    k = 0 if metric == "score" else 1
    title = "score per answer" if metric == "score" else "share of groups all distinct"
    lines = [f"| {title}, groups of W | W = 2 | W = 4 | W = 8 |", "|---|---|---|---|"]
    if base:
        lines.append("| base model (independent rows) | " + " | ".join(
            f"{statistics.fmean(v[k] for v in per_problem(base, 1, s)):.3f}" for s in SIZES) + " |")
    for arm, name in ARMS.items():
        at_w = per_seed(runs, arm, sampled_at(arm), metric)
        lines.append(f"| {name} | " + " | ".join(cell(at_w[s]) for s in SIZES) + " |")
    at_1 = per_seed(runs, "bridge", lambda s: 1, metric)
    lines.append("| Bridge weights at width 1 (independent rows, pooled into groups of W) | "
                 + " | ".join(cell(at_1[s]) for s in SIZES) + " |")
    blocks = read(Path(res) / "distinct_bridge.json")
    if blocks:  # the committed blocks-only Bridge (experiments/studies/siblings.sh blocks), one run
        for width_of, name in ((lambda s: s, "at width W"), (lambda s: 1, "at width 1, pooled")):
            lines.append(f"| Bridge, blocks only (`experiments/results/siblings/distinct_blocks.safetensors`, seed 0) {name} | " + " | ".join(
                f"{statistics.fmean(v[k] for v in per_problem(blocks, width_of(s), s)):.3f}" for s in SIZES) + " |")
    lines.append("| **independent ceiling** (exact) | " + " | ".join(
        f"**{float(independent_ceiling(9, s)[k]):.3f}**" for s in SIZES) + " |")
    return lines


def comparisons(runs):
    """Bridge vs P-Match and Bridge at width W vs its own weights at width 1, paired by seed."""
    out = []
    bridge = per_seed(runs, "bridge", lambda s: s, "score")
    pmatch = per_seed(runs, "pmatch", sampled_at("pmatch"), "score")
    alone = per_seed(runs, "bridge", lambda s: 1, "score")
    for s in SIZES:
        for other, arms in ((pmatch, ("Bridge", "P-Match")), (alone, (f"Bridge at width {s}", "its weights at width 1"))):
            if set(bridge[s]) & set(other[s]):  # a comparison needs a seed both arms have
                out.append(paired.compare(bridge[s], other[s], arms, s, "score per answer"))
    return out


def comparison_lines(comps):
    lines = ["| comparison (score per answer, points) | W | per-seed differences | mean | 95% interval "
             "(seeds as the unit) | seeds higher / tied / lower | detectable |", "|---|---|---|---|---|---|---|"]
    for c in comps:
        if not c["differences"]:
            continue
        diffs = ", ".join(f"{100 * d:+.1f}" for d in c["differences"])
        lo_hi = "—" if c["interval"] is None else f"[{100 * c['interval'][0]:+.1f}, {100 * c['interval'][1]:+.1f}]"
        det = "—" if c["detectable"] is None else f"{100 * c['detectable']:.1f}"
        lines.append(f"| {c['arms'][0]} − {c['arms'][1]} | {c['width']} | {diffs} | {100 * c['mean']:+.1f} | "
                     f"{lo_hi} | {c['wins']} / {c['ties']} / {c['losses']} | {det} |")
    return lines


def control_lines(path=CONTROL, doc=DOC):
    if not Path(path).is_file():
        return ["No positive-control result yet: `python tools/positive_control.py --steps 150`."]
    r = json.loads(Path(path).read_text())
    lines = [f"Each of W = {r['width']} rows reads `Ticket: d` (its own digit, {r['tickets']} values) and must "
             f"predict the largest ticket of its group. From its own row no model can beat the floor "
             f"H(max | own ticket) = **{r['floor']:.3f} nats** (exact). Only the blocks train "
             f"({r['heads']} heads x {r['head_dim']}, Adam lr {r['lr']:g}, {r['groups']} groups per step, "
             f"{r['steps']} steps, the base frozen; `python tools/positive_control.py --steps {r['steps']}`, "
             f"{r['machine']}); the loss is on {r['eval_groups']} fresh groups.", "",
             "| blocks | loss at step 0 | at the last step | same weights at width 1 | floor |",
             "|---|---|---|---|---|"]
    for kind, arm in r["arms"].items():
        first, last = arm["curve"][0], arm["curve"][-1]
        lines.append(f"| {dict(bridge='Bridge', pmatch='P-Match')[kind]} | {first['loss']:.3f} | {last['loss']:.3f} | "
                     f"{last['loss_width1']:.3f} | {r['floor']:.3f} |")
    lines += ["", f"![positive control]({readme_section.link(ROOT / 'experiments' / 'results' / 'positive_control.png', doc)})"]
    return lines


def protocol_line(runs, res=RES):
    if not runs:
        return "No trained arm has results yet: `bash experiments/studies/siblings.sh seed 0`."
    one = next(iter(runs.values()))["protocol"]
    seeds = {a: sorted(s for (b, s) in runs if b == a) for a in ARMS}
    steps = {}
    for (arm, seed) in runs:
        log = Path(res) / f"seed{seed}_{arm}.log.jsonl"
        if log.is_file():
            steps[arm] = len(log.read_text().splitlines())
    bridge = next((r["protocol"] for (a, _), r in runs.items() if a == "bridge"), None)
    widths = ", ".join(map(str, bridge["widths"])) if bridge else "(none yet)"
    trained = [f"{ARMS[a]} {steps.get(a, '?')} steps (seeds {', '.join(map(str, s))})" for a, s in seeds.items() if s]
    return (f"Protocol: task `distinct` (K = 9), {one['problems']} held-out questions, n = {one['n']} answers "
            f"each, temperature {one['temperature']:g}, at most {one['max_new_tokens']} new tokens. Bridge is "
            f"sampled at widths {widths}; the base model, RLVR only and P-Match at width 1, their answers "
            "pooled into groups of W (rows without a path between them are independent at any width). "
            "GRPO at width 4: " + ", ".join(trained) + ". Cells: the mean over seeds (the lowest and "
            "highest seed in brackets).")


def against_ceiling(values_by_seed, size):
    """(mean, se, where): the per-question values averaged over seeds, their mean and standard error
    over questions, and whether the mean is above, within or below 2 se of the independent ceiling."""
    per_question = [statistics.fmean(v) for v in zip(*values_by_seed.values())]
    mean = statistics.fmean(per_question)
    se = statistics.stdev(per_question) / len(per_question) ** 0.5
    gap = mean - float(independent_ceiling(9, size)[0])
    return mean, se, "above" if gap > 2 * se else "below" if gap < -2 * se else "within 2 se of"


def verdict(runs, comps):
    """A plain sentence from the numbers: is Bridge above the ceiling beyond the noise, and how does
    P-Match (which cannot beat the ceiling in expectation) sit against it, as a gauge of that noise?"""
    seeds = sorted(s for (a, s) in runs if a == "bridge")
    if len(seeds) < 2:
        return "**Verdict:** not yet: fewer than two Bridge seeds have results."
    parts = []
    for arm in ("bridge", "pmatch"):
        values = per_seed(runs, arm, sampled_at(arm), "score")
        if not all(values[s] for s in SIZES):
            continue
        for s in SIZES:
            mean, se, where = against_ceiling(values[s], s)
            parts.append(f"{ARMS[arm]} at W = {s}: {mean:.3f} ± {se:.3f}, {where} the ceiling "
                         f"{float(independent_ceiling(9, s)[0]):.3f}")
    vs = [c for c in comps if c["arms"] == ["Bridge", "P-Match"] and c["interval"]]
    tail = "; ".join(f"Bridge − P-Match at W = {c['width']}: {100 * c['mean']:+.1f} points, interval "
                     f"[{100 * c['interval'][0]:+.1f}, {100 * c['interval'][1]:+.1f}]" for c in vs)
    return (f"**Verdict** (mean over seeds ± standard error over the questions): {'; '.join(parts)}. "
            f"{tail}.\n\n" + in_words(runs, comps, len(seeds)))


def in_words(runs, comps, n_seeds):
    """The verdict in one plain paragraph, every clause decided by the numbers above."""
    values = per_seed(runs, "bridge", sampled_at("bridge"), "score")
    above = [s for s in SIZES if values[s] and against_ceiling(values[s], s)[2] == "above"]
    side = lambda c: 0 if c["interval"] is None else 1 if c["interval"][0] > 0 else -1 if c["interval"][1] < 0 else 0
    def summary(name, cs):
        if not cs:
            return f"no comparison with {name} yet"
        better = [c["width"] for c in cs if side(c) > 0]
        worse = [c["width"] for c in cs if side(c) < 0]
        lower = [c["width"] for c in cs if c["losses"] == len(c["seeds"])]
        words = (f"Bridge beat {name} at W = {', '.join(map(str, better))}" if better else
                 f"Bridge beat {name} at no width")
        if worse:
            words += f" and lost to it at W = {', '.join(map(str, worse))}"
        words += " (interval over seeds above 0)" if better else " (no interval over seeds above 0)"
        if lower:
            words += (f"; it scored lower than {name} in every one of the {n_seeds} seeds at W = "
                      f"{', '.join(map(str, lower))}")
        return words
    vs_pmatch = [c for c in comps if c["arms"] == ["Bridge", "P-Match"]]
    vs_alone = [c for c in comps if c["arms"][1] == "its weights at width 1"]
    head = ("**In words.** The positive control shows that the siblings' information reaches a row through "
            "Bridge and through nothing else. On the set-level task, ")
    head += (f"Bridge passed the independent ceiling at W = {', '.join(map(str, above))}, which only reading the "
             "siblings can do. " if above else
             "GRPO at this scale did not teach Bridge to use it: at no width did Bridge pass the independent "
             "ceiling, which only reading the siblings can do. ")
    return (head + summary("P-Match", vs_pmatch) + ". Against the same weights sampled at width 1 (no "
            "sibling to read), " + summary("its own weights at width 1", vs_alone)
            + f". With {n_seeds} seeds the intervals are wide (the detectable column).")


def walltime_lines(res=RES):
    """The minutes each kind of stage took (experiments/studies/siblings.sh appends every stage to walltime.jsonl)."""
    path = Path(res) / "walltime.jsonl"
    if not path.is_file():
        return []
    kinds = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        kind = ("evaluation" if r["stage"].startswith("eval/") else "warm-up" if "/sft_" in r["stage"]
                else "GRPO" if "/grpo_" in r["stage"] else r["stage"])
        kinds.setdefault(kind, []).append(r["seconds"] / 60)
        machine = r["machine"]
    parts = [f"{k} {min(v):.0f}–{max(v):.0f} min ({len(v)} runs)" if round(min(v)) != round(max(v))
             else f"{k} {v[0]:.0f} min ({len(v)} run{'s' * (len(v) > 1)})" for k, v in kinds.items()]
    return ["", f"Wall time per stage ({machine}, from `experiments/results/siblings/walltime.jsonl`): " + "; ".join(parts) + "."]


# what the width rows above cannot separate, said where they are printed
SHARED_SEEDS = ("Every run of this study samples from the same evaluation seeds (one generator per width, question "
                "and group), so \"Bridge at width W − its weights at width 1\" also carries those seeds' own width "
                "effect, alike in every training seed; the arms without a path between rows were sampled at width 1 "
                "only, so that effect cannot be netted out here. The credit study below draws its evaluation "
                "seeds from the training seed and compares each set with itself sampled without the path.")


def section(res=RES, control=CONTROL, doc=DOC):
    """The section; its figures are linked from `doc`."""
    runs, base = load(res)
    comps = comparisons(runs)
    out = [BEGIN, "", "**Positive control: information flows between siblings.**", ""] + control_lines(control, doc)
    out += ["", "**The set-level task.** " + protocol_line(runs, res), ""]
    out += table(runs, base, "score", res) + [""] + table(runs, base, "distinct", res) + [""]
    if runs:
        out += [f"![score per answer against the independent ceiling]({readme_section.link(RES / 'set_score.png', doc)})", ""]
    out += (comparison_lines(comps) if comps else ["No paired comparison yet (it needs a seed both arms have)."])
    if comps:
        out += ["", SHARED_SEEDS]
    out += ["", verdict(runs, comps)] + walltime_lines(res) + ["", END]
    return "\n".join(out)


def splice(readme, text):
    return readme_section.splice(readme, text, BEGIN, END)


def plot(res, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs, base = load(res)
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(SIZES, [float(independent_ceiling(9, s)[0]) for s in SIZES], "k--", label="independent ceiling (exact)")
    if base:
        ax.plot(SIZES, [statistics.fmean(v[0] for v in per_problem(base, 1, s)) for s in SIZES], "o:", label="base model")
    for arm, name in ARMS.items():
        means = [mean_of(per_seed(runs, arm, sampled_at(arm), "score")[s])[0] for s in SIZES]
        if None not in means:
            ax.plot(SIZES, means, "o-", label=name)
    alone = [mean_of(per_seed(runs, "bridge", lambda s: 1, "score")[s])[0] for s in SIZES]
    if None not in alone:
        ax.plot(SIZES, alone, "s-.", label="Bridge weights at width 1, pooled")
    blocks = read(Path(res) / "distinct_bridge.json")
    if blocks:
        ax.plot(SIZES, [statistics.fmean(v[0] for v in per_problem(blocks, s, s)) for s in SIZES], "^-",
                label="Bridge, blocks only (seed 0)")
        ax.plot(SIZES, [statistics.fmean(v[0] for v in per_problem(blocks, 1, s)) for s in SIZES], "^:",
                label="its weights at width 1, pooled")
    ax.set_xscale("log", base=2)
    ax.set_xticks(SIZES, [str(s) for s in SIZES])
    ax.set_xlabel("group size W")
    ax.set_ylabel("score per answer (distinct, K = 9)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out, dpi=110)


def main(argv=None):
    p = Parser(description="Write the section 'Do the siblings matter?' of docs/results.md from experiments/results/siblings.")
    p.add_argument("--check", action="store_true", help="exit 1 if the document differs from the files")
    readme_section.add_doc_argument(p, DOC)
    p.add_argument("--json", metavar="PATH", help="also write every paired comparison, unrounded")
    add_overwrite(p, "--json")
    args = p.parse_args(argv)
    readme_section.check_readme(args.doc, write=not args.check)
    check_out_file(args.json, "--json")
    check_new_file(args.json, args.overwrite, "--json")
    text = section(doc=args.doc)
    if args.json:
        write_text(args.json, json.dumps(comparisons(load()[0]), indent=1) + "\n")
    readme = Path(args.doc).read_text()
    new = splice(readme, text)
    if args.check:
        if new != readme:
            print(f"{args.doc}: the siblings section is stale; run python experiments/studies/siblings_report.py", file=sys.stderr)
            return 1
        return 0
    write_text(args.doc, new)
    RES.mkdir(parents=True, exist_ok=True)
    readme_section.redraw(lambda out: plot(RES, out), RES / "set_score.png")
    print(f"wrote the siblings section of {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
