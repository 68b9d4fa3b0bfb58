"""The section "Both paths" of docs/speed.md: the naive path (every command's default) and --fast,
each against its peer, from committed files measured in one sitting on one machine.

    python experiments/bench/paths_report.py            # rewrite the section
    python experiments/bench/paths_report.py --check    # exit 1 if it is not what the files give

Reads experiments/results/speed/: sampler_naive.json (experiments/bench/bench_sampler.py --naive),
grpo_trl_naive.json (experiments/bench/bench_grpo.py --grpo-engines ours naive trl), eval_paths.json
(experiments/bench/bench_paths.py) and paths_machine.txt (the machine they ran on); and
layout_{before,after}_{sampler,grpo}.json: the same benchmarks at the commit before the layout
(LAYOUT_BEFORE, where the commands ran the speed-ups by default) and with --fast after it, in the same
sitting on the same machine.
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bridgekit import readme_section  # noqa: E402
from bridgekit.cli import Parser, run  # noqa: E402

RES = ROOT / "experiments" / "results" / "speed"
BEGIN = ("<!-- paths:begin (written by `python experiments/bench/paths_report.py` from experiments/results/speed; "
         "do not edit by hand) -->")
END = "<!-- paths:end -->"
LAYOUT_BEFORE = "3c3df7e"


def layout_lines(res):
    """The speed-ups' ratios before the layout (its default path) and after it (--fast), one sitting."""
    read = lambda name: json.loads((Path(res) / name).read_text())
    if not (Path(res) / "layout_after_grpo.json").is_file():
        return []
    lines = ["", f"Before and after the layout, the same sitting: the speed-ups at {LAYOUT_BEFORE} (where every "
             "command ran them by default) and with `--fast` now.", "",
             f"| workload | {LAYOUT_BEFORE} | now, --fast |", "|---|---|---|"]
    for width in (4, 16):
        cells = []
        for when in ("before", "after"):
            tok = {r["engine"]: r["tok_s"] for r in read(f"layout_{when}_sampler.json") if r["width"] == width}
            cells.append(f"{tok['ours'] / tok['hf']:.2f}")
        lines.append(f"| sampler, width {width}: ours / transformers.generate (tokens/s) | {cells[0]} | {cells[1]} |")
    steps = [read(f"layout_{when}_grpo.json")[0]["s_per_step"] for when in ("before", "after")]
    lines.append(f"| GRPO step, RLVR only (s/step) | {steps[0]:.2f} | {steps[1]:.2f} |")
    return lines


def rows(res):
    """(workload, unit, naive, fast, peer name, peer) per workload; larger is better for tok/s."""
    sampler = json.loads((Path(res) / "sampler_naive.json").read_text())
    grpo = {r["engine"]: r for r in json.loads((Path(res) / "grpo_trl_naive.json").read_text())}
    ev = json.loads((Path(res) / "eval_paths.json").read_text())
    out = []
    for width in sorted({r["width"] for r in sampler}):
        tok = {r["engine"]: r["tok_s"] for r in sampler if r["width"] == width}
        out.append((f"sampler, one prompt, width {width}, 128 tokens a row, no early stop, fp32", "tokens/s",
                    tok["naive"], tok["ours"], "transformers.generate", tok["hf"]))
    out.append((f"GRPO step, RLVR only, {grpo['ours']['prompts']} prompts x {grpo['ours']['width']} answers, fp32 "
                f"(mean of steps 2-{grpo['ours']['steps']})", "s/step", grpo["naive"]["s_per_step"],
                grpo["ours"]["s_per_step"], "TRL GRPOTrainer", grpo["trl"]["s_per_step"]))
    out.append((f"evaluation, default task, {ev['problems']} problems x {ev['n']} answers, widths 4 and 8 "
                f"(best of {len(ev['seconds']['naive'])})", "s", min(ev["seconds"]["naive"]),
                min(ev["seconds"]["fast"]), None, None))
    return out, ev


def speedup(unit, a, b):
    """How many times faster b is than a."""
    return b / a if unit == "tokens/s" else a / b


def section(res=RES):
    table, ev = rows(res)
    machine = (Path(res) / "paths_machine.txt").read_text().strip()
    lines = [BEGIN, "", f"Measured on {machine} ({ev['threads']} threads, torch {ev['torch']}), alone on the machine, "
             "one sitting: every command's default path (the naive `sample.sample`) and `--fast`, each against "
             "its peer. A ratio above 1 means the first is faster.", "",
             "| workload | unit | naive | --fast | --fast vs naive | peer | naive vs peer | --fast vs peer |",
             "|---|---|---|---|---|---|---|---|"]
    best = 0.0
    for name, unit, naive, fast, peer_name, peer in table:
        gain = speedup(unit, naive, fast)
        if not name.startswith("sampler"):
            best = max(best, gain)
        vs = ("–", "–") if peer is None else (f"{speedup(unit, peer, naive):.2f}", f"{speedup(unit, peer, fast):.2f}")
        lines.append(f"| {name} | {unit} | {naive:.1f} | {fast:.1f} | {gain:.2f} | {peer_name or '–'} | {vs[0]} | {vs[1]} |")
    verdict = ("pays at least 10%" if best >= 1.10 else "pays less than 10%")
    lines += layout_lines(res)
    lines += ["", f"On this machine `--fast` {verdict} on the real workloads (GRPO, evaluation: at most "
              f"{best:.2f}x); the evaluation's answers differ between the paths in {ev['differing_rows']} of "
              f"{ev['rows']} (a token flipped by the packed weights' rounding).", "",
              "Measure again: `python experiments/bench/bench_sampler.py --what sampler --dtypes fp32 --widths 4 16 "
              "--naive --out experiments/results/speed/sampler_naive.json`, `python experiments/bench/bench_grpo.py "
              "--grpo-engines ours naive trl --grpo-steps 3 --trl-micro-batch 8 --out "
              "experiments/results/speed/grpo_trl_naive.json`, `python experiments/bench/bench_paths.py --out "
              "experiments/results/speed/eval_paths.json`; before and after the layout: `bench/bench_sampler.py --what "
              "sampler --dtypes fp32 --widths 4 16` and `bench/bench_grpo.py --grpo-engines ours --grpo-steps 3` in a "
              f"checkout of {LAYOUT_BEFORE}, then the same under `experiments/` here; then this section: "
              "`python experiments/bench/paths_report.py`.",
              "", END]
    return "\n".join(lines)


def main(argv=None):
    p = Parser(prog="experiments/bench/paths_report.py", description="Write (or --check) the both-paths section of docs/speed.md.")
    readme_section.add_arguments(p, readme_section.DOCS / "speed.md")
    args = p.parse_args(argv)
    return readme_section.write_or_check(args, section, BEGIN, END, what="both-paths section",
                                         command="python experiments/bench/paths_report.py")


if __name__ == "__main__":
    sys.exit(run(main))
