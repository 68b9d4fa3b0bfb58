"""The README's results section, written from the committed result files and nothing else.

    python tools/report.py              # rewrite README.md between the results markers, and the plot
    python tools/report.py --check      # exit 1 if README.md's section is not what the files give
    python tools/report.py --print      # print the section only

Run from any directory: the files it reads and writes are found from the repository root.

Reads results/repro/: base.json (the base model), seed{S}_{arm}.json for arm in rlvr, pmatch,
bridge (evaluate.py files, one per trained arm and seed), default_bridge.json (the committed
default Bridge, trained with --train new), walltime.jsonl (runs/reproduce.sh's wall clock), and
the training logs runs/seed{S}/grpo_{arm}/log.jsonl. Every number printed is computed here from
the per-problem correct counts in those files with the metric functions of metrics.py, so the section
is reproducible to the last digit (`--check` is run by the test suite, tests/test_report.py).

Uncertainty, two sources, both reported:
- over problems: the 200 held-out problems are one sample of the task; standard errors over them;
- over training seeds: each arm was trained S times; "± sd" is the sample std over the S runs.
The paired comparisons resample both at once (a bootstrap over problems, shared by the two arms
because they answered the same problems, and over each arm's seeds), 95% percentile intervals.
With 3 seeds the seed part of that interval is rough (it cannot be wider than the 3 runs allow).
"""
import json
import statistics
import sys
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the top-level modules (metrics, evaluate, cli), wherever this is run from

import numpy as np  # noqa: E402

from cli import Parser, run  # noqa: E402
from study import ARMS, RES, has_result, load, matrix, per_problem  # noqa: E402

TAUS = ("1/8", "1/2", "3/4", "1")
TRAIN_WIDTH = 4  # the width every arm was trained at (runs/reproduce.sh)
# the markers are matched verbatim in README.md (a new wording must change both)
BEGIN = "<!-- results:begin (written by `python tools/report.py` from results/repro; do not edit by hand) -->"
END = "<!-- results:end -->"
BOOTSTRAP = 4000  # resamples; the generator is seeded, so the intervals are the same every run


# -----------------------------------------------------------------------------
# statistics

def spread(values):
    """(mean, sample std or None) of a few numbers."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def se_over_problems(values):
    return statistics.stdev(values) / len(values) ** 0.5


def bootstrap(a, b, rng, n=BOOTSTRAP, same_runs=False):
    """Resampled mean(a) - mean(b) for (seeds, problems) arrays on the same problems.

    Each resample draws the problems once for both arms (paired) and each arm's seeds on its own;
    same_runs: a and b are the same trained runs (one arm at two widths), so the seeds are drawn once.
    """
    P = a.shape[1]
    p = rng.integers(P, size=(n, P))
    sa = rng.integers(a.shape[0], size=(n, a.shape[0]))
    sb = sa if same_runs else rng.integers(b.shape[0], size=(n, b.shape[0]))
    out = np.empty(n)
    for i in range(n):  # each arm: mean over the drawn seeds per problem, then over the drawn problems
        out[i] = a[sa[i]].mean(axis=0)[p[i]].mean() - b[sb[i]].mean(axis=0)[p[i]].mean()
    return out


def compare(a, b, rng, same_runs=False):
    """Paired comparison of two arms: point difference, se over problems, 95% interval, seed wins."""
    d = a.mean(axis=0) - b.mean(axis=0)  # per problem, each arm averaged over its seeds
    boot = bootstrap(a, b, rng, same_runs=same_runs)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    k = min(a.shape[0], b.shape[0])
    wins = int(sum(a[s].mean() > b[s].mean() for s in range(k)))
    return dict(diff=float(d.mean()), se=se_over_problems(d.tolist()), lo=float(lo), hi=float(hi),
                wins=wins, pairs=k)


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


def section(runs, res=RES):
    rng = np.random.default_rng(0)
    proto = runs["base"]["protocol"]
    widths, n = proto["widths"], proto["n"]
    rows = settings(runs)
    seeds = {arm: sorted(s) for arm, s in runs["arms"].items()}
    out = [BEGIN, ""]
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
        out.append(f"| {ARMS[a]} | " + " | ".join(f"{100 * (mean_acc[a][w] - base[w]):+.1f}" for w in widths) + " |")
    if "bridge" in trained and "rlvr" in trained:
        rel = []
        for w in widths:
            gb, gr = mean_acc["bridge"][w] - base[w], mean_acc["rlvr"][w] - base[w]
            rel.append(f"{100 * (gb - gr) / gr:+.0f}%" if gr > 0 else "undefined (RLVR gain <= 0)")
        out.append("| relative gain, Bridge vs RLVR only | " + " | ".join(rel) + " |")

    verdict = []
    if "bridge" in trained:
        out += ["", "**Paired comparisons** on the same problems: Bridge minus the other arm, percentage "
                "points of mean accuracy. se: over problems (each arm averaged over its seeds); "
                f"95% interval: bootstrap over problems and seeds ({BOOTSTRAP} resamples); "
                "seed wins: seeds s where Bridge's run s scored higher than the other arm's run s. "
                "The last rows compare the same Bridge runs at width w and at width 1 (where a row has "
                "no sibling): what attending to the siblings adds at inference, the trained weights fixed.", ""]
        out.append("| comparison | width | difference | se (problems) | 95% interval | seed wins |")
        out.append("|---|---|---|---|---|---|")
        for other in ("rlvr", "pmatch"):
            if other not in trained:
                continue
            for w in widths:
                c = compare(matrix(runs["arms"]["bridge"], w), matrix(runs["arms"][other], w), rng)
                out.append(f"| Bridge - {ARMS[other]} | {w} | {100 * c['diff']:+.1f} | {100 * c['se']:.1f} | "
                           f"[{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}] | {c['wins']} of {c['pairs']} |")
                if w == TRAIN_WIDTH:
                    verdict.append(verdict_line(other, c, runs, w))
        # the same Bridge weights with and without siblings: what attending to them adds at inference
        one = matrix(runs["arms"]["bridge"], 1) if 1 in widths else None
        for w in widths:
            if one is not None and w != 1:
                c = compare(matrix(runs["arms"]["bridge"], w), one, rng, same_runs=True)
                out.append(f"| Bridge at width {w} - Bridge at width 1 | {w} | {100 * c['diff']:+.1f} | "
                           f"{100 * c['se']:.1f} | [{100 * c['lo']:+.1f}, {100 * c['hi']:+.1f}] | "
                           f"{c['wins']} of {c['pairs']} |")
                if w == TRAIN_WIDTH:
                    verdict.append(sibling_line(c, w))
        n_seeds = min(len(s) for s in runs["arms"].values() if s)
        if n_seeds < 3:
            verdict.append(f"Only {n_seeds} training seed{'s' * (n_seeds > 1)} per arm so far: the intervals "
                           "cover problems and sampling, but hardly or not at all the run-to-run variation of "
                           "training, so none of this is a verdict yet.")
    out += ["", "![accuracy against width and G-Pass](results/repro/accuracy.png)", ""]
    out += reward_table(runs, res)
    out += ["**Wall time** of every stage (runs/reproduce.sh's clock, summed over sittings), and the "
            "GRPO training time from the step logs:", ""]
    out += walltime_table(res)
    out += ["", "**Verdict** (at the training width " + str(TRAIN_WIDTH) + "): " +
            (" ".join(verdict) if verdict else "no Bridge arm has results yet."), "", END]
    return "\n".join(out)


def read_interval(c):
    """A comparison in percentage points, and where its 95% interval lies: 1 above 0, -1 below, 0 across."""
    d, lo, hi = 100 * c["diff"], 100 * c["lo"], 100 * c["hi"]
    return d, lo, hi, 1 if lo > 0 else -1 if hi < 0 else 0


def verdict_line(other, c, runs, w):
    sd_b = spread([statistics.fmean(per_problem(r, w)) for r in runs["arms"]["bridge"].values()])[1]
    sd_o = spread([statistics.fmean(per_problem(r, w)) for r in runs["arms"][other].values()])[1]
    d, lo, hi, side = read_interval(c)
    sds = ("" if sd_b is None or sd_o is None else
           f"; the seed-to-seed std is {100 * sd_b:.1f} (Bridge) and {100 * sd_o:.1f} ({ARMS[other]}) points")
    head = {1: f"Bridge beat {ARMS[other]} by {d:.1f} points (95% interval {lo:+.1f} to {hi:+.1f})",
            -1: f"Bridge lost to {ARMS[other]} by {-d:.1f} points (95% interval {lo:+.1f} to {hi:+.1f})",
            0: (f"Bridge and {ARMS[other]} are not distinguishable: {d:+.1f} points, 95% interval "
                f"{lo:+.1f} to {hi:+.1f}, which contains 0")}[side]
    tail = f"; Bridge scored higher in {c['wins']} of {c['pairs']} seed pairs."
    if other == "rlvr":  # the confound the reading guide above explains
        tail += " (RLVR only gets no warm-up: this gap is warm-up plus blocks, not the siblings alone.)"
    return head + sds + tail


def reward_table(runs, res=RES, window=10):
    """Train reward per window of GRPO steps, each arm averaged over its evaluated seeds (from the logs)."""
    curves = {}
    for arm, seeds in runs["arms"].items():
        logs = [ROOT / "runs" / f"seed{s}" / f"grpo_{arm}" / "log.jsonl" for s in sorted(seeds)]
        logs = [[json.loads(line)["reward"] for line in p.read_text().splitlines()] for p in logs if p.is_file()]
        if logs:
            curves[ARMS[arm]] = logs
    if not curves:
        return []
    steps = min(len(r) for logs in curves.values() for r in logs)
    edges = list(range(0, steps, window))
    lines = [f"**Train reward** (GRPO's own rollouts, 8 prompts x 4 answers per step) per window of "
             f"{window} steps, mean over the evaluated seeds; this is what the budget of {steps} steps "
             "was sized from (the RLVR-only arm's curve flattening), never the held-out split.", "",
             "| arm | seeds | " + " | ".join(f"steps {a + 1}-{min(a + window, steps)}" for a in edges) + " |",
             "|---|---|" + "---|" * len(edges)]
    for label, logs in curves.items():
        cells = [f"{statistics.fmean(x for r in logs for x in r[a:a + window]):.2f}" for a in edges]
        lines.append(f"| {label} | {len(logs)} | " + " | ".join(cells) + " |")
    return lines + [""]


def sibling_line(c, w):
    d, lo, hi, side = read_interval(c)
    what = {1: f"the siblings help: width {w} scored {d:.1f} points above width 1 with the same weights",
            -1: f"the siblings hurt: width {w} scored {-d:.1f} points below width 1 with the same weights",
            0: (f"the siblings add nothing measurable: the same Bridge weights score {d:+.1f} points at "
                f"width {w} against width 1, where there is no sibling to attend to")}[side]
    return f"Within Bridge, {what} (95% interval {lo:+.1f} to {hi:+.1f})."


def walltime_table(res=RES):
    lines = ["| stage | minutes | machine |", "|---|---|---|"]
    path = res / "walltime.jsonl"
    stages = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if not has_result(res, rec["stage"]):
                continue
            s = stages.setdefault(rec["stage"], [0, set()])
            s[0] += rec["seconds"]
            s[1].add(rec["machine"])
    for stage, (seconds, machines) in stages.items():
        lines.append(f"| {stage} | {seconds / 60:.1f} | {', '.join(sorted(machines))} |")
    lines += ["", "| GRPO run | steps | minutes (sum of logged step times) |", "|---|---|---|"]
    for log in sorted((ROOT / "runs").glob("seed*/grpo_*/log.jsonl")):
        stage = str(log.parent.relative_to(ROOT / "runs"))
        if not has_result(res, stage):
            continue
        steps = [json.loads(line) for line in log.read_text().splitlines()]
        lines.append(f"| {log.parent.relative_to(ROOT / 'runs')} | {len(steps)} | "
                     f"{sum(s['step_s'] for s in steps) / 60:.1f} |")
    return lines


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
    fig.savefig(out, dpi=110)


def splice(readme, text):
    """README text with the section between the markers replaced by `text`."""
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"README.md has no results markers ({BEGIN!r} ... {END!r})")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + text + tail


def main(argv=None):
    p = Parser(description="Write the README's results section from results/repro.")
    p.add_argument("--check", action="store_true", help="exit 1 if README.md differs from the files")
    p.add_argument("--print", action="store_true", help="print the section instead of writing README.md")
    p.add_argument("--results", default=str(RES), help="the result files (default results/repro)")
    p.add_argument("--readme", default=str(ROOT / "README.md"), help="the README to update (default README.md)")
    args = p.parse_args(argv)
    res = Path(args.results)
    runs = load(res)
    text = section(runs, res)
    if args.print:
        print(text)
        return 0
    readme = Path(args.readme).read_text()
    new = splice(readme, text)
    if args.check:
        if new != readme:
            print(f"{args.readme}: results section is stale; run python tools/report.py", file=sys.stderr)
            return 1
        print(f"{args.readme}: results section matches results/repro", file=sys.stderr)
        return 0
    Path(args.readme).write_text(new)
    try:
        plot(runs, res / "accuracy.png")
        print(f"wrote {res / 'accuracy.png'}", file=sys.stderr)
    except ImportError:
        print("matplotlib is not installed: the plot was not redrawn (pip install matplotlib)", file=sys.stderr)
    print(f"wrote the results section of {args.readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))  # bad input: "error: ..." on one line, exit code 1
