"""The section "Making the siblings pay" of docs/results.md, generated from committed result files.

    python studies/credit_report.py            # rewrite the section in docs/results.md
    python studies/credit_report.py --check    # exit 1 if the section is not what the files give
    python studies/credit_report.py --pilot results/credit   # choose the credit from the pilot's logs (pilot.json)

Reads results/credit/ (studies/credit.sh): the oracle check (oracle_bridge.json, oracle_pmatch.json:
evaluate.py results on the held-out `distinct` questions, Bridge sampled with the paths siblings,
self and crossed at every width), and their training logs. Every number is computed here from the
per-question choices those files store (metrics.py), so the section is reproducible to the digit.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "studies"))

import readme_section  # noqa: E402
from cli import Parser, run, write_text  # noqa: E402
from metrics import collision_rate, independent_ceiling, paired_set_difference, set_summary  # noqa: E402

RES = ROOT / "results" / "credit"
BEGIN = "<!-- credit:begin (written by `python studies/credit_report.py` from results/credit; do not edit by hand) -->"
END = "<!-- credit:end -->"
SIZES = (2, 4, 8)


def read(path):
    return json.loads(Path(path).read_text()) if Path(path).is_file() else None


def entry(result, width, path="siblings"):
    """The results entry of one width and path (None if the file has none)."""
    return next((r for r in result["results"] if r["width"] == width and r.get("path", "siblings") == path), None)


def scores(result, width, size, path="siblings"):
    """(per-answer score, all-distinct share) {"mean", "se"} of the width-`width` run in sets of `size`."""
    e = entry(result, width, path)
    s = set_summary(e["per_problem"], e["n"], size)
    return s["set_score"], s["all_distinct"]


def fmt(v, se=True):
    return f"{v['mean']:.3f} ± {v['se']:.3f}" if se and v["se"] is not None else f"{v['mean']:.3f}"


def signed(v):
    return f"{v['mean']:+.3f} ± {v['se']:.3f}"


def rates(within, across):
    """Collision shares (None: no pair of valid answers) as 'within / across'."""
    return " / ".join("–" if x is None else f"{x:.3f}" for x in (within, across))


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
                    f"{fmt(s_score, False)} | {fmt(c_score, False)} | {fmt(w1_score, False)} | "
                    f"{fmt(p_score)} / {fmt(p_all)} | {signed(vs_self)} | {signed(vs_crossed)} | "
                    f"{rates(within, across)} |")
    return rows, passes


def oracle_section(res):
    bridge, pmatch = read(Path(res) / "oracle_bridge.json"), read(Path(res) / "oracle_pmatch.json")
    if bridge is None or pmatch is None:
        return ["The oracle check has not been run yet (`bash studies/credit.sh oracle`)."]
    rows, passes = oracle_rows(bridge, pmatch)
    proto = bridge["protocol"]
    n_q, n = proto["problems"], proto["n"]
    log = [json.loads(line) for line in (Path(res) / "oracle_bridge.log.jsonl").read_text().splitlines()]
    lines = [
        f"Blocks alone (the base model frozen), trained teacher-forced for {len(log)} steps on constructed sets "
        "of 4 whose numbers depend on the siblings (`studies/oracle.py`: a row that writes its number after "
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
        verdict = ("**Verdict: Bridge does not pass the independent ceiling at any width**, even on data built "
                   "so that reading the siblings pays. Then no RL result on this task can be expected to pass "
                   "it either, with these blocks and this training.")
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
            raise ValueError(f"{path}: no such file (run bash studies/credit.sh pilot)")
        log = [json.loads(line) for line in path.read_text().splitlines()]
        half = log[len(log) // 2:]
        credits[credit] = dict(acc=sum(r["acc"] for r in half) / len(half), steps=len(log))
    chosen = max(CREDITS, key=lambda c: credits[c]["acc"])  # ties: the first, the per-answer score
    return dict(credits=credits, chosen=chosen, rule=PILOT_RULE)


COMMITTED = {"committed_distinct": "`bridges/distinct.safetensors`", "committed_default": "`bridges/default.safetensors`"}


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
                    f"{fmt(score(alone), False)} | {fmt(score(crossed), False)} | {signed(vs_self)} | "
                    f"{signed(vs_crossed)} | {rates(within, across)} |")
    return rows


def committed_section(res):
    found = [(name, read(Path(res) / f"{name}.json")) for name in COMMITTED]
    found = [(name, r) for name, r in found if r is not None]
    if not found:
        return ["Not run yet (`bash studies/credit.sh committed`)."]
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
            *[row for name, r in found for row in paths_rows(name, r)]]


def section(res=RES):
    lines = [BEGIN, "", "### The oracle check: can Bridge coordinate at all?", ""]
    lines += oracle_section(res)
    lines += ["", "### What the siblings add, at fixed randomness: the committed Bridges", ""]
    lines += committed_section(res)
    lines += ["", "Regenerate: `python studies/credit_report.py`; the runs: `bash studies/credit.sh oracle`, "
              "`bash studies/credit.sh committed` (wall times in `results/credit/walltime.jsonl`).", "", END]
    return "\n".join(lines)


def main(argv=None):
    p = Parser(prog="studies/credit_report.py", description="Write (or --check) the section of the credit study.")
    p.add_argument("--check", action="store_true", help="exit 1 if the section differs from the files")
    p.add_argument("--results", default=str(RES), help="the results folder (default results/credit)")
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
                                 what="credit section", command="python studies/credit_report.py")


if __name__ == "__main__":
    sys.exit(run(main))
