"""README "Speed": the measured part, written from results/speed/ (runs/speed.sh) and nothing else.

    bash runs/speed.sh                  # the measurements (37 minutes on 2 CPU cores, run alone)
    python tools/speed_report.py        # rewrite README.md between the speed markers
    python tools/speed_report.py --check

Reads profile_w16.json (tools/profile_step.py), sampler.json and bridge.json (tools/bench_sampler.py),
eval_{plain,compile}.json (evaluate.py) and grpo_{plain,compile}.log.jsonl (train_grpo.py's step log).
"""
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import readme_section  # noqa: E402  (next to this file)
from cli import Parser, run  # noqa: E402

RES = ROOT / "results" / "speed"
BEGIN = "<!-- speed:begin (written by `python tools/speed_report.py` from results/speed; do not edit by hand) -->"
END = "<!-- speed:end -->"


def load(res):
    need = ["profile_w16.json", "sampler.json", "bridge.json", "eval_plain.json", "eval_compile.json",
            "grpo_plain.log.jsonl", "grpo_compile.log.jsonl", "machine.txt"]
    missing = [n for n in need if not (res / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{res}: missing {', '.join(missing)} (bash runs/speed.sh)")
    read = lambda n: json.loads((res / n).read_text())
    log = lambda n: [json.loads(line) for line in (res / n).read_text().splitlines()]
    return dict(profile=read("profile_w16.json"), sampler=read("sampler.json"), bridge=read("bridge.json"),
                eval={m: read(f"eval_{m}.json") for m in ("plain", "compile")},
                grpo={m: log(f"grpo_{m}.log.jsonl") for m in ("plain", "compile")},
                machine=(res / "machine.txt").read_text().strip())


def find(rows, **kw):
    return next(r for r in rows if all(r.get(k) == v for k, v in kw.items()))


def section(d):
    p, out = d["profile"], [BEGIN, ""]
    out += [f"Measured with `bash runs/speed.sh` on {d['machine']} ({p['threads']} threads, torch {p['torch']}), "
            "each part alone on the machine.", "",
            f"**Where one decode step goes** (`python tools/profile_step.py --width 16`): {p['step_ms']:.1f} ms at "
            f"width {p['width']} in {p['dtype']}, the kinds of op by their own time, averaged over {p['steps']} "
            "profiled steps. \"Python and dispatch\" is the wall time no op accounts for.", "",
            "| kind | ms per step | share |", "|---|---|---|"]
    for kind, ms in p["kinds_ms"].items():
        out.append(f"| {kind} | {ms:.1f} | {100 * ms / p['step_ms']:.0f}% |")
    if "floor_ms" in p:
        out += ["", f"**The floor.** Every weight is read once per decode step, whatever the width: "
                f"{p['weights_mb']:.0f} MB. The lm_head alone, timed as one matrix product on these rows, took "
                f"{p['lm_head_ms']:.1f} ms ({p['stream_gb_s']:.1f} GB/s), so at that rate no fp32 decode step can "
                f"take less than {p['floor_ms']:.0f} ms here, in this engine or in `generate`."]
    s = d["sampler"]
    out += ["", "**The sampler against `transformers.generate`** (`python tools/bench_sampler.py --dtypes fp32 "
            "--widths 4 16 --compile`): tokens per second, 128 new tokens per row, no early stop, prefill "
            "included; `--compile` is `sample.decoder(model, compile=True)`, its compile time (the first call) "
            "apart.", "",
            "| width | ours | ours --compile | generate | ours / generate | --compile / generate | compile s |",
            "|---|---|---|---|---|---|---|"]
    for w in sorted({r["width"] for r in s}):
        o, c, h = (find(s, engine=e, width=w) for e in ("ours", "compiled", "hf"))
        out.append(f"| {w} | {o['tok_s']:.1f} | {c['tok_s']:.1f} | {h['tok_s']:.1f} | {o['tok_s'] / h['tok_s']:.2f} | "
                   f"{c['tok_s'] / h['tok_s']:.2f} | {c['warmup_s']:.0f} |")
    b = d["bridge"]
    out += ["", "**The cost of the blocks** (`python tools/bench_sampler.py --what bridge --bridge-widths 16 "
            "--compile`): the same model with its blocks off and on, alternating, best of 3 each.", "",
            "| width | decode | blocks off tok/s | Bridge on tok/s | Bridge on / off | P-Match on / off |",
            "|---|---|---|---|---|---|"]
    for r in sorted((r for r in b if r["block"] == "bridge"), key=lambda r: (r["width"], r["engine"] != "ours")):
        pm = find(b, block="pmatch", width=r["width"], engine=r["engine"])
        out.append(f"| {r['width']} | {'--compile' if r['engine'] == 'compiled' else 'plain'} | {r['tok_s_off']:.1f} | "
                   f"{r['tok_s']:.1f} | {r['tok_s'] / r['tok_s_off']:.2f} | {pm['tok_s'] / pm['tok_s_off']:.2f} |")
    e = d["eval"]
    proto = e["plain"]["protocol"]
    same = sum(a == b for ra, rb in zip(e["plain"]["results"], e["compile"]["results"])
               for pa, pb in zip(ra["per_problem"], rb["per_problem"]) for a, b in zip(pa["answers"], pb["answers"]))
    total = sum(len(p["answers"]) for r in e["plain"]["results"] for p in r["per_problem"])
    t = {m: e[m]["timing"]["total_seconds"] for m in e}
    late = {m: sum(e[m]["timing"]["widths"][w]["seconds"] for w in ("4", "8")) for m in e}
    g = {m: d["grpo"][m] for m in d["grpo"]}
    step = {m: statistics.fmean(r["step_s"] for r in g[m][1:]) for m in g}
    roll = {m: statistics.fmean(r["rollout_s"] for r in g[m][1:]) for m in g}
    out += ["", "**End to end.** One evaluation stage (`evaluate.py`, the default Bridge, "
            f"{proto['problems']} held-out problems, n = {proto['n']}, widths {' '.join(map(str, proto['widths']))}; "
            "sampling time, the model load not counted, the compilation counted) and GRPO steps (`train_grpo.py --arch bridge --train all`, "
            f"steps 2-{len(g['plain'])}, 8 prompts x 4 answers; the first step, which compiles, not counted):", "",
            "| seconds | plain | --compile | speed-up of --compile |", "|---|---|---|---|",
            f"| evaluation, all widths | {t['plain']:.0f} | {t['compile']:.0f} | {t['plain'] / t['compile']:.2f} |",
            f"| evaluation, widths 4 and 8 (compiled by then) | {late['plain']:.0f} | {late['compile']:.0f} | "
            f"{late['plain'] / late['compile']:.2f} |",
            f"| GRPO step | {step['plain']:.1f} | {step['compile']:.1f} | {step['plain'] / step['compile']:.2f} |",
            f"| of which rollout | {roll['plain']:.1f} | {roll['compile']:.1f} | {roll['plain'] / roll['compile']:.2f} |",
            "", f"The compiled evaluation extracted the same answer as the plain one for {same} of {total} answers "
            "(the two differ only where float rounding moves a draw across a token boundary, after which the "
            "answer goes its own way).", "", END]
    return "\n".join(out)


def main(argv=None):
    p = Parser(prog="speed_report.py", description="README's measured speed section, from results/speed.")
    p.add_argument("--check", action="store_true", help="exit 1 if README.md differs from the files")
    p.add_argument("--print", action="store_true", help="print the section instead of writing README.md")
    p.add_argument("--readme", default=str(ROOT / "README.md"), help="the README to update (default README.md)")
    args = p.parse_args(argv)
    text = section(load(RES))
    if args.print:
        print(text)
        return 0
    return readme_section.update(args.readme, text, BEGIN, END, check=args.check, what="speed section",
                                 command="python tools/speed_report.py")


if __name__ == "__main__":
    sys.exit(run(main))
