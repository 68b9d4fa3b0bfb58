"""How alike the answers of one group are: the share of held-out groups whose answers extract to the
same number, and the share that are word for word the same (docs/results.md, "What Bridge attends to").

    python evaluate.py --bridge bridges/default.safetensors --widths 1 4 --save-texts \
        --out experiments/results/agreement/default_bridge.json
    python tools/agreement.py                # rewrite docs/results.md between the agreement markers
    python tools/agreement.py --check        # exit 1 if docs/results.md's table is not what the files give
    python tools/agreement.py --doc FILE     # the table in another Markdown file (it must hold the markers)

Reads every evaluate.py file in experiments/results/agreement/ (written with --save-texts, so the texts are
there) and the first study's trained Bridge runs, experiments/results/repro/seed*_bridge.json (numbers only:
their texts were not kept). At a width W > 1 a group is one of the run's own groups of W
interdependent answers; at width 1 the independent answers are pooled into pseudo-groups of
--size (default 4, the training width), the same share for rows that cannot see each other.
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the top-level modules, wherever this is run from

from bridgekit import readme_section  # noqa: E402
from bridgekit.cli import Parser, run  # noqa: E402
from bridgekit.result_files import label_of, read_result  # noqa: E402
from bridgekit.metrics import agreement  # noqa: E402

RES = ROOT / "experiments" / "results" / "agreement"
BEGIN = "<!-- agreement:begin (written by `python tools/agreement.py` from experiments/results/agreement and experiments/results/repro; do not edit by hand) -->"
END = "<!-- agreement:end -->"
DOC = readme_section.DOCS / "results.md"  # where the table goes unless --doc names another file


def rows(paths, size):
    """One row per (file, width): label, width, group size, groups, same number, same text (or None)."""
    out = []
    for path in paths:
        result = read_result(path)
        label = label_of(result["protocol"])
        if label == "default":
            label = "default Bridge (blocks only, `bridges/default.safetensors`)"
        if path.parent.name == "repro":  # the first study's runs: seed{S}_bridge.json
            label = f"Bridge (first study, {path.stem.split('_')[0].replace('seed', 'seed ')})"
        for r in result["results"]:
            w, per = r["width"], r["per_problem"]
            if w not in (1, size):  # width 1 pooled, and the groups of `size` themselves
                continue
            if r["n"] % size:  # a row left out of every group would silently drop out of the table
                raise ValueError(f"--size {size} does not divide the n = {r['n']} answers per problem of {path} "
                                 f"at width {w}")
            g = size
            numbers = [agreement(p["answers"], g) for p in per]
            texts = [agreement(p["texts"], g) for p in per] if all("texts" in p for p in per) else None
            out.append(dict(file=str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
                            label=label, width=w, size=g, groups=len(per) * r["n"] // g,
                            same_number=sum(numbers) / len(numbers),
                            same_text=None if texts is None else sum(texts) / len(texts)))
    return out


def rerun_lines(paths):
    """For a file here with a namesake in experiments/results/repro (the same evaluation, made again with
    --save-texts): how many extracted answers the rerun reproduced, width by width, and where each ran."""
    lines = []
    for path in paths:
        old = ROOT / "experiments" / "results" / "repro" / path.name
        if path.parent.name == "repro" or not old.is_file():
            continue
        new_run, old_run = read_result(path), read_result(old)
        cells = []
        for r in new_run["results"]:
            before = next((o for o in old_run["results"] if o["width"] == r["width"]), None)
            if before is None:
                continue
            pairs = [(x, y) for a, b in zip(r["per_problem"], before["per_problem"]) for x, y in zip(a["answers"], b["answers"])]
            cells.append(f"width {r['width']}: {sum(x == y for x, y in pairs)} of {len(pairs)}")
        lines.append(f"Rerun check: `{path.relative_to(ROOT)}` is the evaluation of `experiments/results/repro/{path.name}` made "
                     f"again (same seeds) on {new_run['timing']['machine']}, the first on "
                     f"{old_run['timing']['machine']}; it reproduced the extracted answers of " + "; ".join(cells) + ".")
    return lines


def table(found, reruns=()):
    lines = [BEGIN, "",
             "| setting | width | groups of | groups | same extracted number | word for word the same |",
             "|---|---|---|---|---|---|"]
    for r in found:
        kind = "its own groups" if r["width"] > 1 else "pseudo-groups of independent answers"
        same_text = "not kept" if r["same_text"] is None else f"{100 * r['same_text']:.1f}%"
        lines.append(f"| {r['label']} | {r['width']} | {r['size']} ({kind}) | {r['groups']} | "
                     f"{100 * r['same_number']:.1f}% | {same_text} |")
    if reruns:
        lines += [""] + list(reruns)
    return "\n".join(lines + ["", END])


def agreement_table(size):
    """The section from the committed files: the first study's Bridge runs and experiments/results/agreement."""
    paths = sorted(RES.glob("*.json")) + sorted((ROOT / "experiments" / "results" / "repro").glob("seed*_bridge.json"))
    if not paths:
        raise FileNotFoundError(f"{RES}: no evaluate.py files (see this file's docstring for the command)")
    found = rows(paths, size)
    if not found:
        raise ValueError(f"no result at width 1 or {size} in {RES} or experiments/results/repro: an empty table")
    return table(found, rerun_lines(paths))


def main(argv=None):
    p = Parser(prog="agreement.py", description="Share of groups agreeing on one number, and word for word.")
    p.add_argument("--size", type=int, default=4, help="pseudo-group size at width 1 (default 4, the training width)")
    readme_section.add_arguments(p, DOC, "table")
    args = p.parse_args(argv)
    if args.size < 1:
        p.error(f"--size must be >= 1, got {args.size}")
    return readme_section.write_or_check(args, lambda: agreement_table(args.size), BEGIN, END, what="agreement table",
                                         command="python tools/agreement.py")


if __name__ == "__main__":
    sys.exit(run(main))
