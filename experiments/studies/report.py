"""A study's results section of docs/results.md, written from the committed result files and nothing else.

    python experiments/studies/report.py              # rewrite docs/results.md between the results markers, and the plot
    python experiments/studies/report.py --check      # exit 1 if docs/results.md's section is not what the files give
    python experiments/studies/report.py --print      # print the section only
    python experiments/studies/report.py --json PATH  # also write every paired comparison, unrounded, as JSON
    python experiments/studies/report.py --study headroom   # the same for the second study (experiments/results/headroom)
    python experiments/studies/report.py --doc FILE   # the section in another Markdown file (it must hold the markers)

Run from any directory: the files it reads and writes are found from the repository root.

Reads experiments/results/repro/: base.json (the base model), seed{S}_{arm}.json for arm in rlvr, pmatch,
bridge (evaluate.py files, one per trained arm and seed), default_bridge.json (the committed
default Bridge, trained with --train new), walltime.jsonl (experiments/studies/reproduce.sh's wall clock; a
record may carry a "note", added by hand where the clock also counted something else), and
the training logs seed{S}/grpo_{arm}/log.jsonl (the runs' records). Every number printed is computed
here from the per-problem correct counts in those files with the metric functions of metrics.py, so the
section is reproducible to the last digit (`--check` is run by the test suite, experiments/studies/tests/test_report.py).
The train reward and wall time tables, from the logs and the clock: run_record.py.

Uncertainty, two sources, both reported:
- over training seeds: each arm was trained S times; "± sd" is the sample std over the S runs, and
  every comparison of two arms is paired by seed (experiments/studies/paired.py): seed s of one arm against seed
  s of the other, a t interval over the S per-seed differences, the seed as the unit;
- over problems: the 200 held-out problems are one sample of the task, shared by every run; standard
  errors over them (the seed intervals hold the problems fixed).
"""
import json
import statistics
import sys
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the top-level modules (metrics, evaluate, cli), wherever this is run from

from bridgekit.cli import Parser, add_overwrite, check_new_file, check_out_file, run, save_figure, write_text  # noqa: E402
from paired import DETECTABLE, METHOD, TIES, compare  # noqa: E402
from bridgekit import readme_section  # noqa: E402
from pilot import pilot_lines  # noqa: E402
from run_record import reward_table, walltime_table  # noqa: E402
from study import ARMS, RES, STUDIES, load, per_problem, per_seed, study_of  # noqa: E402
from verdict import TRAIN_WIDTH, attribution_line, net_sibling_line, pts, signed, sibling_line, verdict_line  # noqa: E402

TAUS = ("1/8", "1/2", "3/4", "1")
# the markers are matched verbatim in docs/results.md (a new wording must change both)
BEGIN = "<!-- results:begin (written by `python experiments/studies/report.py` from experiments/results/repro; do not edit by hand) -->"
END = "<!-- results:end -->"
DOC = readme_section.DOCS / "results.md"  # where the sections go unless --doc names another file


def markers(study):
    """(begin, end) of a study's section in its document: the first study's are BEGIN and END."""
    if study.name == "repro":
        return BEGIN, END
    return (f"<!-- {study.name}:begin (written by `python experiments/studies/report.py --study {study.name}` from "
            f"experiments/results/{study.name}; do not edit by hand) -->", f"<!-- {study.name}:end -->")


# -----------------------------------------------------------------------------
# statistics

def spread(values):
    """(mean, sample std or None) of a few numbers."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def se_over_problems(values):
    return statistics.stdev(values) / len(values) ** 0.5


def comparisons(runs):
    """Every paired comparison the section prints (experiments/studies/paired.py's dicts): Bridge minus each other
    arm at every width, then the same Bridge runs at width w minus width 1 (the siblings' effect)."""
    widths, arms = runs["base"]["protocol"]["widths"], runs["arms"]
    if not arms["bridge"]:
        return []
    out = [compare(per_seed(arms["bridge"], w), per_seed(arms[other], w), (ARMS["bridge"], ARMS[other]), w)
           for other in ("rlvr", "pmatch") if arms[other] for w in widths]
    if 1 in widths:
        out += [compare(per_seed(arms["bridge"], w), per_seed(arms["bridge"], 1),
                        (f"Bridge at width {w}", "Bridge at width 1"), w) for w in widths if w != 1]
    if 1 in widths and arms["pmatch"]:
        # every run draws its answers from the same evaluation seeds (one generator per width, problem
        # and group), so "width w - width 1" carries the seeds' own width effect in every seed alike;
        # P-Match has no path between rows, so its "width w - width 1" is that effect alone, and the
        # difference of the two differences is what Bridge's path adds
        out += [compare(width_effect(arms["bridge"], w), width_effect(arms["pmatch"], w),
                        ("Bridge's width effect", "P-Match's width effect"), w)
                for w in widths if w != 1]
    return out


def width_effect(seed_runs, width):
    """{seed: per problem, the metric at `width` minus at width 1} of one arm's runs."""
    at_w, at_1 = per_seed(seed_runs, width), per_seed(seed_runs, 1)
    return {s: [x - y for x, y in zip(at_w[s], at_1[s])] for s in at_w}


# -----------------------------------------------------------------------------
# the section

def pct(x):
    return f"{100 * x:.1f}"


def cell(values):
    mean, sd = spread(values)
    return pct(mean) + (f" ± {pct(sd)}" if sd is not None else "")


def settings(runs):
    """[(label, {seed: run})] for the table rows: base, the arms with results, the default Bridge."""
    rows = [("Base model", {0: runs["base"]})]
    rows += [(ARMS[arm], seeds) for arm, seeds in runs["arms"].items() if seeds]
    if runs["default"] is not None:
        rows.append(("Bridge, blocks only (default)", {0: runs["default"]}))
    return rows


def section(runs, res=RES, doc=None):
    """The study's section; its figure is linked from `doc` (default docs/results.md)."""
    doc = DOC if doc is None else doc
    study = study_of(res)
    begin, end = markers(study)
    proto = runs["base"]["protocol"]
    widths, n = proto["widths"], proto["n"]
    rows = settings(runs)
    seeds = {arm: sorted(s) for arm, s in runs["arms"].items()}
    out = [begin, ""]
    out += pilot_lines(res)
    out.append(f"Held-out split: {proto['problems']} test problems of `{proto['task']}` "
               f"(knobs {proto['knobs']}, {proto['shots']} worked examples), n = {n} answers per problem "
               f"at every width, temperature {proto['temperature']}, top-p {proto['top_p']}, "
               f"at most {proto['max_new_tokens']} new tokens, sampling seed {proto['seeds']['sampling']}. "
               "Trained arms: " + ", ".join(f"{ARMS[a]} seeds {seeds[a]}" for a in ARMS if seeds[a]) + ". "
               f"All arms trained at width {TRAIN_WIDTH}.")
    out += ["", "**Mean accuracy (%)** per width. Rows with several training seeds: mean ± sample std "
            "over the seeds; rows with one run: ± standard error over problems.", ""]
    out.append("| setting | seeds | " + " | ".join(f"width {w}" for w in widths) + " |")
    out.append("|---|---|" + "---|" * len(widths))
    for label, sr in rows:
        if len(sr) == 1:
            (run,) = sr.values()
            cells = [f"{pct(statistics.fmean(v))} ± {pct(se_over_problems(v))}"
                     for v in (per_problem(run, w) for w in widths)]
        else:
            cells = [cell([statistics.fmean(per_problem(r, w)) for r in sr.values()]) for w in widths]
        out.append(f"| {label} | {len(sr)} | " + " | ".join(cells) + " |")

    all_seeds = sorted({s for seeds_ in runs["arms"].values() for s in seeds_})
    if all_seeds:
        out += ["", f"Per training seed, mean accuracy (%) at width {TRAIN_WIDTH}:", "",
                "| arm | " + " | ".join(f"seed {s}" for s in all_seeds) + " |", "|---|" + "---|" * len(all_seeds)]
        for arm, sr in runs["arms"].items():
            if sr:
                out.append(f"| {ARMS[arm]} | " + " | ".join(
                    pct(statistics.fmean(per_problem(sr[s], TRAIN_WIDTH))) if s in sr else "-" for s in all_seeds) + " |")
    out += ["", f"**G-Pass@{n}_τ (%)**: the share of problems with at least ⌈{n}τ⌉ of their {n} answers "
            f"right (τ = 1/8 is pass@{n}, τ = 1 all right). Width {n} is one interdependent set of "
            f"{n} per problem, width 1 is {n} independent answers; mean ± std over seeds.", ""]
    out.append("| setting | width | " + " | ".join(f"τ = {t}" for t in TAUS) + " |")
    out.append("|---|---|" + "---|" * len(TAUS))
    for label, sr in rows:
        for w in (1, TRAIN_WIDTH, n):
            if w in widths:
                cells = [cell([statistics.fmean(per_problem(r, w, "gpass", t)) for r in sr.values()])
                         for t in TAUS]
                out.append(f"| {label} | {w} | " + " | ".join(cells) + " |")

    # choice: the base model has no blocks, so its answers are independent at every width and its
    # widths are repeated samples of one thing; the gains use their mean (32 answers per problem)
    base_all = statistics.fmean(statistics.fmean(per_problem(runs["base"], w)) for w in widths)
    base = {w: base_all for w in widths}
    trained = [a for a in ARMS if seeds[a]]
    mean_acc = {a: {w: statistics.fmean([statistics.fmean(per_problem(r, w)) for r in runs["arms"][a].values()])
                    for w in widths} for a in trained}
    out += ["", "**Gain over the base model** (percentage points of mean accuracy, arms averaged over "
            f"seeds, over the base model's {pct(base_all)}, its mean over all widths: without blocks "
            "width changes nothing but the random draws) and the paper's relative gain, "
            "(Bridge's gain - RLVR only's gain) / RLVR only's gain (the paper's \"up to 39%\").", ""]
    out.append("| | " + " | ".join(f"width {w}" for w in widths) + " |")
    out.append("|---|" + "---|" * len(widths))
    for a in trained:
        out.append(f"| {ARMS[a]} | " + " | ".join(signed(100 * (mean_acc[a][w] - base[w])) for w in widths) + " |")
    if "bridge" in trained and "rlvr" in trained:
        rel = []
        for w in widths:
            gb, gr = mean_acc["bridge"][w] - base[w], mean_acc["rlvr"][w] - base[w]
            rel.append(f"{100 * (gb - gr) / gr:+.0f}%" if gr > 0 else "undefined (RLVR gain <= 0)")
        out.append("| relative gain, Bridge vs RLVR only | " + " | ".join(rel) + " |")

    lines, verdict = comparison_lines(comparisons(runs))
    out += lines
    out += ["", f"![accuracy against width and G-Pass]({readme_section.link(figure_home(study) / 'accuracy.png', doc)})", ""]
    out += reward_table(runs, res)
    out += [f"**Wall time** of every stage ({study.script}'s clock, summed over sittings), and the "
            "GRPO training time from the step logs:", ""]
    out += walltime_table(res)
    out += ["", "**Verdict** (at the training width " + str(TRAIN_WIDTH) + "): " +
            (" ".join(verdict) if verdict else "no Bridge arm has results yet."), "", end]
    return "\n".join(out)


def comparison_lines(comps):
    """The paired comparisons' table, and the verdict's sentences about them at the training width."""
    if not comps:
        return [], []
    lines = ["", "**Paired comparisons**, paired by training seed (experiments/studies/paired.py): for each seed s, the first "
             "setting's run s minus the second's on the same problems, percentage points of mean accuracy. "
             f"mean: of the per-seed differences; 95% interval: {METHOD}, so the seed is the unit (it "
             "holds the problems fixed); detectable: the smallest difference the design could have "
             f"detected, {DETECTABLE}; se (problems): over the problems, of the per-problem differences "
             f"averaged over the seeds; seeds higher / tied / lower: {TIES}. The last rows compare the same "
             "Bridge runs at width w and at width 1 (where a row has no sibling): what attending to the "
             "siblings adds at inference, the trained weights fixed. Every run samples from the same "
             "evaluation seeds, which move width w against width 1 alike in every training seed; so the "
             "width effect (an arm's width w minus its width 1, per problem) of Bridge is also compared "
             "with P-Match's, whose rows have no path between them: the difference of the two is what "
             "Bridge's path adds, free of the seeds' own effect.", "",
             "| comparison | width | per seed (seed: difference) | mean | 95% interval (seeds) | "
             "detectable | se (problems) | seeds higher / tied / lower |", "|---|---|---|---|---|---|---|---|"]
    for c in comps:
        lo_hi = "none (1 seed)" if c["interval"] is None else "[{}, {}]".format(*map(signed, pts(c["interval"])))
        found = "none (1 seed)" if c["detectable"] is None else f"{100 * c['detectable']:.1f}"
        each = ", ".join(f"{s}: {signed(100 * d)}" for s, d in zip(c["seeds"], c["differences"]))
        lines.append(f"| {c['arms'][0]} - {c['arms'][1]} | {c['width']} | {each} | {signed(100 * c['mean'])} | "
                     f"{lo_hi} | {found} | {100 * c['se_problems']:.1f} | {c['wins']} / {c['ties']} / {c['losses']} |")
    at_train = [c for c in comps if c["width"] == TRAIN_WIDTH]
    verdict = [verdict_line(c) for c in at_train if c["arms"][0] == "Bridge"]
    verdict += [sibling_line(c) for c in at_train if c["arms"][1] == "Bridge at width 1"]
    verdict += [net_sibling_line(c) for c in at_train if c["arms"][1] == "P-Match's width effect"]
    verdict += attribution_line(comps)
    k = min(len(c["seeds"]) for c in comps)
    if k < 3:
        why = ("no interval over seeds exists" if k < 2 else
               f"the intervals over seeds have {k - 1} degree{'s' * (k > 2)} of freedom and are very wide")
        verdict.append(f"The thinnest comparison pairs only {k} training seed{'s' * (k > 1)} so far: "
                       f"{why}, so none of this is a verdict yet.")
    return lines, verdict


def figure_home(study):
    """Where the section says the study's figure is: a known study's own folder even when its files
    were read from a copy (--results), so the section says what the files say, not where they were."""
    return STUDIES[study.name].res if study.name in STUDIES else study.res


def relative(path):
    """A path as the messages and the JSON name it: from the repository root where it is inside it."""
    where = Path(path).resolve()
    return str(where.relative_to(ROOT)) if where.is_relative_to(ROOT) else str(where)


def plot(runs, out):
    """Accuracy against width, and G-Pass@n_tau against tau at widths 1 and n, per setting."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    proto = runs["base"]["protocol"]
    widths, n = proto["widths"], proto["n"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for i, (label, sr) in enumerate(settings(runs)):
        color = f"C{i}"
        acc = [[statistics.fmean(per_problem(r, w)) for r in sr.values()] for w in widths]
        left.errorbar(widths, [statistics.fmean(a) for a in acc], yerr=[spread(a)[1] or 0 for a in acc],
                      marker="o", capsize=3, color=color, label=f"{label} ({len(sr)} run{'s' * (len(sr) > 1)})")
        for w, style in ((n, "-"), (1, ":")):
            g = [[statistics.fmean(per_problem(r, w, "gpass", t)) for r in sr.values()] for t in TAUS]
            right.errorbar([float(Fraction(t)) for t in TAUS], [statistics.fmean(x) for x in g],
                           yerr=[spread(x)[1] or 0 for x in g], marker="o", capsize=3, color=color,
                           linestyle=style, label=f"{label}, width {w}")
    left.set_xscale("log", base=2)
    left.set_xticks(widths, [str(w) for w in widths])
    left.set(xlabel="generation width", ylabel="mean accuracy",
             title=f"held-out accuracy (± std over seeds), n = {n}")
    right.set(xlabel="τ", ylabel=f"G-Pass@{n}_τ", title=f"G-Pass@{n}_τ: solid width {n}, dotted width 1")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize=7)
    right.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    save_figure(fig, out, dpi=110)


def splice(readme, text, study=STUDIES["repro"]):
    """Document text with the study's section between its markers replaced by `text`."""
    return readme_section.splice(readme, text, *markers(study))


def write_json(runs, res, path):
    """Every paired comparison of the section, unrounded, so that anyone can check the numbers."""
    doc = dict(results=relative(res),
               unit="share of answers right (0 to 1); docs/results.md prints 100 x, in points",
               comparisons=comparisons(runs))
    write_text(path, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {path}", file=sys.stderr)


def main(argv=None):
    p = Parser(description="Write a study's section of docs/results.md (default: the first study, experiments/results/repro).")
    readme_section.add_arguments(p, DOC)
    p.add_argument("--study", default="repro", choices=list(STUDIES),
                   help="which study: repro (the first, saturated one) or headroom (default repro)")
    p.add_argument("--results", default=None, help="the result files (default: the study's, experiments/results/STUDY)")
    p.add_argument("--json", metavar="PATH", help="also write every paired comparison, unrounded, to this JSON file")
    add_overwrite(p, "--json")
    args = p.parse_args(argv)
    res = Path(args.results) if args.results else STUDIES[args.study].res
    if res.exists() and not res.is_dir():
        raise ValueError(f"--results {res} is a file; give the directory of the result files")
    if not args.print:
        readme_section.check_readme(args.doc, write=not args.check)
    check_out_file(args.json, "--json")
    check_new_file(args.json, args.overwrite, "--json")
    study = study_of(res)
    if not (res / "base.json").is_file() and pilot_lines(res):  # a study that has only its pilot so far
        begin, end = markers(study)
        text = "\n".join([begin, ""] + pilot_lines(res) +
                          [f"No evaluation yet: `bash {study.script} base`, then `bash {study.script} seed 0`.", "", end])
        runs = None
    else:
        runs = load(res)
        text = section(runs, res, args.doc)
    if args.json:
        if runs is None:
            raise FileNotFoundError(f"{res}: no comparisons without results (bash {study.script} base)")
        write_json(runs, res, Path(args.json))
    if args.print:
        print(text)
        return 0
    readme = Path(args.doc).read_text()
    new = splice(readme, text, study)
    if args.check:
        if new != readme:
            print(f"{args.doc}: the {study.name} section is stale; run python experiments/studies/report.py "
                  f"--study {study.name}", file=sys.stderr)
            return 1
        print(f"{args.doc}: the {study.name} section matches {relative(res)}", file=sys.stderr)
        return 0
    write_text(args.doc, new)
    if runs is None:
        print(f"wrote the {study.name} section of {args.doc} (the pilot only)", file=sys.stderr)
        return 0
    readme_section.redraw(lambda out: plot(runs, out), res / "accuracy.png")
    print(f"wrote the results section of {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))  # bad input: "error: ..." on one line, exit code 1
