"""docs/speed.md: the measured part, written from experiments/results/speed/ (experiments/bench/speed.sh) and nothing else.

    bash experiments/bench/speed.sh                  # the measurements (about 80 minutes on 2 CPU cores, run alone; the parts are timed in experiments/bench/speed.sh)
    python experiments/bench/speed_report.py        # rewrite docs/speed.md between the speed markers
    python experiments/bench/speed_report.py --check  # exit 1 if docs/speed.md's section is not what the files give
    python experiments/bench/speed_report.py --doc FILE  # the section in another Markdown file (it must hold the markers)

Reads profile_w16{,_plain,_bridge}.json (experiments/bench/profile_step.py), sampler.json and bridge.json
(experiments/bench/bench_sampler.py), block_cost.json (experiments/bench/block_cost.py), eval_{plain,compile,bf16}.json (evaluate.py), grpo_plain.log.jsonl
(train_grpo.py's step log), grpo_trl.json and any grpo_trl_run*.json (experiments/bench/bench_grpo.py, later runs of the same code), and in before/ the same parts as
measured at earlier commits (named in the file names, kept as they were measured): 9a9068b, before
the fused AdamW kernel and the cut micro-batches; 57c38b0, before the packed weights (fast.packed_linears),
also GRPO with --compile (its rollouts compile without freezing the weights, which change); 3225dc8
and b45ea49 (GRPO and the two runs against TRL) and 7b27b40 (the evaluation), before the answers ran
in pieces (since deleted) and finished rows left their groups (fast.drop_finished_rows).
Each folder in machines/ (experiments/bench/speed_machine.sh) adds a row to the table of other machines.
"""
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bridgekit import readme_section  # noqa: E402
from bridgekit.cli import Parser, run  # noqa: E402
from bridgekit.result_files import read_result  # noqa: E402

RES = ROOT / "experiments" / "results" / "speed"
BEGIN = "<!-- speed:begin (written by `python experiments/bench/speed_report.py` from experiments/results/speed; do not edit by hand) -->"
END = "<!-- speed:end -->"
DOC = readme_section.DOCS / "speed.md"  # where the section goes unless --doc names another file
# the earlier measurements in experiments/results/speed/before, by the commit they measured
# (GRPO with --compile too: its rollouts compile without freezing, and the packed weights do not reach them)
BEFORE = {"grpo 9a9068b": "grpo_9a9068b.log.jsonl", "grpo 57c38b0": "grpo_57c38b0.log.jsonl",
          "grpo compile": "grpo_compile_57c38b0.log.jsonl", "eval": "eval_57c38b0.json",
          "trl": "grpo_trl_57c38b0.json", "grpo 3225dc8": "grpo_3225dc8.log.jsonl",
          "trl padded": "grpo_trl_3225dc8.json", "trl padded run2": "grpo_trl_run2_b45ea49.json",
          "eval rows": "eval_7b27b40.json"}


def load(res):
    need = ["profile_w16.json", "profile_w16_plain.json", "profile_w16_bridge.json", "sampler.json", "bridge.json", "block_cost.json", "eval_plain.json",
            "eval_compile.json", "eval_bf16.json", "grpo_plain.log.jsonl", "grpo_trl.json", "machine.txt"] + [f"before/{n}" for n in BEFORE.values()]
    missing = [n for n in need if not (res / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{res}: missing {', '.join(missing)} (bash experiments/bench/speed.sh)")
    read = lambda n: json.loads((res / n).read_text())
    log = lambda n: [json.loads(line) for line in (res / n).read_text().splitlines()]
    grpo = {"plain": log("grpo_plain.log.jsonl")}
    grpo.update({k: log(f"before/{n}") for k, n in BEFORE.items() if k.startswith("grpo")})
    return dict(profile=read("profile_w16.json"), profile_plain=read("profile_w16_plain.json"),
                profile_bridge=read("profile_w16_bridge.json"),
                sampler=read("sampler.json"), bridge=read("bridge.json"), block=read("block_cost.json"),
                eval={m: read_result(res / f"eval_{m}.json") for m in ("plain", "compile", "bf16")},  # (summaries checked)
                eval_before=read_result(res / "before" / BEFORE["eval"]),
                eval_rows=read_result(res / "before" / BEFORE["eval rows"]), grpo=grpo, trl=read("grpo_trl.json"),
                trl_before=read(f"before/{BEFORE['trl']}"), machine=(res / "machine.txt").read_text().strip(),
                trl_more=sorted_runs(res, read)[1:],
                trl_padded=[read(f"before/{BEFORE[k]}") for k in ("trl padded", "trl padded run2")],
                machines=[load_machine(m) for m in sorted(p for p in (res / "machines").glob("*") if p.is_dir())])


# (sampler_compile.json, the --compile engine of the sampler table, exists only for the machines measured
# before --compile was removed)
MACHINE_PARTS = ("machine.txt", "profile_w16.json", "profile_w16_plain.json", "sampler.json", "bridge.json",
                 "block_cost.json", "grpo_trl.json")


def sorted_runs(res, read):
    """grpo_trl.json, then any grpo_trl_run*.json (later runs of the same benchmark), in name order."""
    return [read("grpo_trl.json")] + [read(p.name) for p in sorted(res.glob("grpo_trl_run*.json"))]


def load_machine(res):
    """The core measurements of one other machine (experiments/bench/speed_machine.sh DIR)."""
    missing = [n for n in MACHINE_PARTS if not (res / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{res}: missing {', '.join(missing)} (bash experiments/bench/speed_machine.sh {res.relative_to(ROOT)})")
    read = lambda n: json.loads((res / n).read_text())
    return dict(machine=(res / "machine.txt").read_text().strip(), profile=read("profile_w16.json"),
                profile_plain=read("profile_w16_plain.json"), sampler=read("sampler.json"),
                compiled=read("sampler_compile.json") if (res / "sampler_compile.json").is_file() else None,
                bridge=read("bridge.json"),
                block=read("block_cost.json"), trl=sorted_runs(res, read))


def same_answers(a, b):
    """(answers of evaluation b equal to a's, all answers): the extracted answers, position by position."""
    same = sum(x == y for ra, rb in zip(a["results"], b["results"])
               for pa, pb in zip(ra["per_problem"], rb["per_problem"]) for x, y in zip(pa["answers"], pb["answers"]))
    return same, sum(len(p["answers"]) for r in a["results"] for p in r["per_problem"])


def find(rows, **kw):
    return next(r for r in rows if all(r.get(k) == v for k, v in kw.items()))


def section(d):
    p, f, br, out = d["profile"], d["profile_plain"], d["profile_bridge"], [BEGIN, ""]
    out += [f"Measured with `bash experiments/bench/speed.sh` on {d['machine']} ({p['threads']} threads, torch {p['torch']}), "
            "each part alone on the machine.", "",
            f"**Where one decode step goes** (`python experiments/bench/profile_step.py --width 16`, with `--plain`, and with "
            f"`--bridge`): width {p['width']}, {p['dtype']}, the kinds of op by their own time, averaged over "
            f"{p['steps']} profiled steps. \"Python and dispatch\" is the wall time no op accounts for. The products "
            "multiply by weights packed once for oneDNN (`fast.packed_linears`), or, with `--plain`, call `F.linear` as the "
            "model did before. `--bridge` is the packed step with 30 random non-zero Bridge blocks; its last column is "
            "what the blocks add (one profile each, so the difference carries the noise of two).", "",
            "| kind | F.linear, ms per step | packed, ms per step | share (packed) | packed + Bridge | Bridge adds |",
            "|---|---|---|---|---|---|"]
    for kind, ms in p["kinds_ms"].items():
        on = br["kinds_ms"].get(kind, 0.0)
        out.append(f"| {kind} | {f['kinds_ms'].get(kind, 0.0):.1f} | {ms:.1f} | {100 * ms / p['step_ms']:.0f}% | "
                   f"{on:.1f} | {on - ms:+.1f} |")
    out += [f"| **step** | **{f['step_ms']:.1f}** | **{p['step_ms']:.1f}** | | **{br['step_ms']:.1f}** | "
            f"**{br['step_ms'] - p['step_ms']:+.1f}** |", "",
            f"**The floor.** Every weight is read once per decode step, whatever the width: {p['weights_mb']:.0f} MB. "
            f"Reading each once (a sum over it, the fastest of 10 passes) took {p['read_ms']:.1f} ms "
            f"({p['read_gb_s']:.1f} GB/s), so memory is not what bounds a step here: the products are. With "
            "`F.linear`, a product of a few rows runs far below this CPU's matmul rate (MKL re-packs the whole weight "
            "on every call); the packed weights are read in the layout oneDNN's kernel wants. The blocks add "
            f"{br['weights_mb'] - p['weights_mb']:.0f} MB of weights ({100 * (br['weights_mb'] / p['weights_mb'] - 1):.1f}%), "
            "and as large a share of the products' work: at the rate of the rest of the step, that alone would leave "
            f"{p['weights_mb'] / br['weights_mb']:.3f} of the speed without them; the small ops of each block "
            "(its norm, the attention over siblings, the residual add, the Python between them), 30 times a step, "
            "are the rest of the cost."]
    s = d["sampler"]
    out += ["", "**The sampler against `transformers.generate`** (`python experiments/bench/bench_sampler.py --dtypes fp32 bf16 "
            "--widths 4 16 --compile --plain`, one run): tokens per second, 128 new tokens per row, no early stop, "
            "prefill included; \"F.linear\" is our sampler inside `fast.sample(packed=False)`; `--compile` is what the "
            "evaluate and sample commands ran with `--compile` until it was removed (it never paid for its compile "
            "time on a real workload: the table at the top of this page): inductor with the "
            "weights frozen as constants (on CPU packed for oneDNN at compile time) and a C++ wrapper calling its "
            "kernels, its compile time (the warm-up call, which compiles the decode step) apart. In bf16 both "
            "engines hold bf16 weights: this CPU multiplies bf16 matrices natively, and every weight read is half "
            "the bytes.", "",
            "| weights | width | ours | ours F.linear | ours --compile | generate | ours / generate | F.linear / generate "
            "| --compile / generate | compile s |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for dtype in ("fp32", "bf16"):
        for w in sorted({r["width"] for r in s if r["dtype"] == dtype}):
            o, pl, c, h = (find(s, engine=e, width=w, dtype=dtype) for e in ("ours", "plain", "compiled", "hf"))
            out.append(f"| {dtype} | {w} | {o['tok_s']:.1f} | {pl['tok_s']:.1f} | {c['tok_s']:.1f} | {h['tok_s']:.1f} | "
                       f"**{o['tok_s'] / h['tok_s']:.2f}** | {pl['tok_s'] / h['tok_s']:.2f} | {c['tok_s'] / h['tok_s']:.2f} | "
                       f"{c['warmup_s']:.0f} |")
    mem = {(r["engine"], r["dtype"]): r["peak_mb"] for r in s if r["width"] == max(x["width"] for x in s)}
    out += ["", f"Peak memory at width {max(r['width'] for r in s)} in fp32: ours {mem[('ours', 'fp32')]:.0f} MB "
            f"(the packed copy of the weights included), F.linear {mem[('plain', 'fp32')]:.0f} MB, generate "
            f"{mem[('hf', 'fp32')]:.0f} MB.", "",
            "bf16 weights against the fp32 engines of the same run, tokens per second over tokens per second:", "",
            "| width | ours bf16 / ours fp32 | ours bf16 / generate fp32 | ours bf16 --compile / generate fp32 |",
            "|---|---|---|---|"]
    for w in sorted({r["width"] for r in s if r["dtype"] == "bf16"}):
        o16, c16, o32, h32 = (find(s, engine=e, width=w, dtype=t) for e, t in
                              (("ours", "bf16"), ("compiled", "bf16"), ("ours", "fp32"), ("hf", "fp32")))
        out.append(f"| {w} | {o16['tok_s'] / o32['tok_s']:.2f} | {o16['tok_s'] / h32['tok_s']:.2f} | "
                   f"{c16['tok_s'] / h32['tok_s']:.2f} |")
    b = d["bridge"]
    reps = b[0]["repeats"]
    out += ["", "**The cost of the blocks** (`python experiments/bench/bench_sampler.py --what bridge --bridge-widths 16 "
            f"--compile --plain --repeats {reps}`): the same model with its blocks off and on, alternating, best of "
            f"{reps} each. The Bridge and P-Match rows measure \"off\" separately, the same model twice: how far "
            "those two differ is this measurement's own noise.", "",
            "| width | decode | blocks off tok/s | Bridge on tok/s | Bridge on / off | P-Match off tok/s | P-Match on / off "
            "| Bridge peak MB |", "|---|---|---|---|---|---|---|---|"]
    label = {"ours": "packed", "plain": "F.linear", "compiled": "--compile"}
    for r in sorted((r for r in b if r["block"] == "bridge"), key=lambda r: (r["width"], list(label).index(r["engine"]))):
        pm = find(b, block="pmatch", width=r["width"], engine=r["engine"])
        out.append(f"| {r['width']} | {label[r['engine']]} | {r['tok_s_off']:.1f} | "
                   f"{r['tok_s']:.1f} | {r['tok_s'] / r['tok_s_off']:.2f} | {pm['tok_s_off']:.1f} | "
                   f"{pm['tok_s'] / pm['tok_s_off']:.2f} | {r['peak_mb']:.0f} |")
    out += block_stages(d["block"]) + end_to_end(d) + bf16_eval(d["eval"]) + grpo_steps(d) + machines(d) + [END]
    return "\n".join(out)


def block_stages(r):
    """One Bridge block's stages, alone and inside decode steps (experiments/bench/block_cost.py)."""
    import block_cost
    a, b = r["alone_us"], r["in_step_us"]
    off, on = statistics.median(r["ms_off"]), statistics.median(r["ms_on"])
    out = ["", f"**One block, stage by stage** (`python experiments/bench/block_cost.py`): a Bridge block at width {r['width']}, "
           f"fp32, each stage timed by the clock inside {r['steps']} decode steps (x {r['layers']} blocks) and alone "
           f"({r['repeats']} calls in a row on one step's input); microseconds per call.", "",
           "| stage | alone | in a step |", "|---|---|---|"]
    out += [f"| {s} | {a[s]:.1f} | {b[s]:.1f} |" for s in block_cost.STAGES]
    out += [f"| **block** | **{sum(a.values()):.1f}** | **{sum(b.values()):.1f}** |", "",
            f"In the same run, whole decode steps with the blocks off and on, in turn ({r['rounds']} rounds): "
            f"{off:.1f} and {on:.1f} ms a step, on/off {r['on_off']:.3f} (the median of the rounds' ratios); the "
            f"stage clocks account for {r['layers'] * sum(b.values()) / 1e3:.1f} ms of the {on - off:.1f} ms the "
            "blocks add."]
    out += ["", f"**The floor of these blocks here**: in the same rounds, with every block cut down to its two "
            f"products and nothing else (`W_O (W_QKV x)` on the same packed weights: not Bridge, a bound), a "
            f"step takes {statistics.median(r['ms_products']):.1f} ms, products-only/off "
            f"{r['products_off']:.3f}. While the products run as they do, no rewrite of the norm, the attention or "
            "the reshapes can take on/off above that.", "", block_cost.probe_line(r)]
    return out


def end_to_end(d):
    """One evaluation stage and GRPO steps: at the earlier commits, now, and with --compile (GRPO's: 57c38b0)."""
    e, g = d["eval"], d["grpo"]
    proto = e["plain"]["protocol"]
    t = {m: e[m]["timing"]["total_seconds"] for m in e}
    late = {m: sum(e[m]["timing"]["widths"][w]["seconds"] for w in ("4", "8")) for m in e}
    t0 = d["eval_before"]["timing"]["total_seconds"]
    late0 = sum(d["eval_before"]["timing"]["widths"][w]["seconds"] for w in ("4", "8"))
    step = {m: statistics.fmean(r["step_s"] for r in g[m][1:]) for m in g}
    roll = {m: statistics.fmean(r["rollout_s"] for r in g[m][1:]) for m in g}
    same, total = same_answers(e["plain"], e["compile"])
    same0, _ = same_answers(d["eval_before"], e["plain"])
    same1, _ = same_answers(d["eval_rows"], e["plain"])
    t1 = d["eval_rows"]["timing"]["total_seconds"]
    late1 = sum(d["eval_rows"]["timing"]["widths"][w]["seconds"] for w in ("4", "8"))
    out = ["", "**End to end.** One evaluation stage (`evaluate.py`, the default Bridge, "
           f"{proto['problems']} held-out problems, n = {proto['n']}, widths {' '.join(map(str, proto['widths']))}; "
           "sampling time, the model load not counted, the compilation counted; `--compile` freezes the weights) "
           "and GRPO steps (`train_grpo.py --arch "
           f"bridge --train all`, steps 2-{len(g['plain'])}, 8 prompts x 4 answers; the first step, which compiles, not "
           "counted). The earlier columns are the same parts run at those commits (`experiments/results/speed/before`): 9a9068b "
           "before the fused AdamW kernel and the cut micro-batches, 57c38b0 before the packed weights, 3225dc8 "
           "(GRPO) and 7b27b40 (evaluation) before the answers ran in pieces (since deleted) and "
           "finished rows left their groups (`fast.drop_finished_rows`). GRPO's "
           "`--compile` was measured at 57c38b0: its rollouts read weights that change every step, so they compile "
           "without freezing, which the packed weights do not reach.", "",
           "| seconds | 9a9068b | 57c38b0 | 3225dc8 / 7b27b40 | now | --compile (GRPO: 57c38b0) | 57c38b0 / now |",
           "|---|---|---|---|---|---|---|",
           f"| evaluation, all widths | | {t0:.0f} | {t1:.0f} | {t['plain']:.0f} | {t['compile']:.0f} | "
           f"{t0 / t['plain']:.2f} |",
           f"| evaluation, widths 4 and 8 | | {late0:.0f} | {late1:.0f} | {late['plain']:.0f} | {late['compile']:.0f} | "
           f"{late0 / late['plain']:.2f} |"]
    for v, name in ((step, "GRPO step"), (roll, "of which rollout")):
        out.append(f"| {name} | {v['grpo 9a9068b']:.1f} | {v['grpo 57c38b0']:.1f} | {v['grpo 3225dc8']:.1f} | "
                   f"{v['plain']:.1f} | {v['grpo compile']:.1f} | {v['grpo 57c38b0'] / v['plain']:.2f} |")
    out += ["", f"The evaluation now extracted the same answer as at 57c38b0 for {same0} of {total} answers, as at "
            f"7b27b40 for {same1}, and the "
            f"`--compile` one the same as the plain one for {same} of {total}: they differ only where float rounding "
            "moves a draw across a token boundary, after which the answer goes its own way. The GRPO steps sample "
            "the same prompts, but the answers, hence the groups with a reward signal, differ once the weights do."]
    return out


def bf16_eval(e):
    """The evaluation stage in bf16 weights: its time, its accuracy next to fp32's, the answers that moved."""
    same, total = same_answers(e["plain"], e["bf16"])
    acc = lambda m, r: 100 * e[m]["results"][r]["summary"]["accuracy"]["mean"]
    widths = [r["width"] for r in e["plain"]["results"]]
    t32, t16 = e["plain"]["timing"]["total_seconds"], e["bf16"]["timing"]["total_seconds"]
    out = ["", f"The same evaluation in bf16 weights (`evaluate.py --dtype bf16`) took {t16:.0f} s against {t32:.0f} s "
           f"in fp32 (a speed-up of {t32 / t16:.2f}). Rounding the weights to bf16 changes the distribution a little, "
           f"so the draws go their own way: {same} of {total} extracted answers are the fp32 ones. Accuracy, % of "
           "answers:", "",
           "| width | " + " | ".join(map(str, widths)) + " |", "|---|" + "---|" * len(widths)]
    for m, label in (("plain", "fp32"), ("bf16", "bf16")):
        out.append(f"| {label} | " + " | ".join(f"{acc(m, i):.1f}" for i in range(len(widths))) + " |")
    return out


def listed(items):
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def grpo_steps(d):
    """One GRPO step against TRL's GRPOTrainer, run by run: every step, the mean, the step with every group updated."""
    out = [""]
    runs = [d["trl"]] + d.get("trl_more", [])
    pairs = [tuple(next(r for r in rows if r["engine"] == e) for e in ("ours", "trl")) for rows in runs]
    ours, trl = pairs[0]
    out += ["**One GRPO step against TRL's `GRPOTrainer`** (`python experiments/bench/bench_grpo.py --grpo-steps 3 "
            f"--trl-micro-batch {trl['micro_batch']}`): the RLVR-only step (every weight trained) of the default model on "
            f"the default task, {ours['prompts']} prompts x {ours['width']} answers, at most {ours['max_new_tokens']} new "
            "tokens, fp32, the same prompts at each step; the comment at the top of `experiments/bench/bench_grpo.py` lists what "
            "the two share and where they differ. Ours skips the forward and backward of groups whose rewards "
            "are all equal (their gradient is exactly 0), so its time depends on how many groups have a signal; "
            f"TRL runs all {ours['prompts']} every step. Seconds per step, after one untimed warm-up step"
            + (f", in {len(pairs)} runs of the same code (the step time of either engine moves from run to run):"
               if len(pairs) > 1 else ":"), "",
            "| run | step | ours | groups ours updated | TRL | TRL / ours |", "|---|---|---|---|---|---|"]
    worst = []
    for run_no, (o, t) in enumerate(pairs, 1):
        for k, (a, b) in enumerate(zip(o["step_s"][1:], t["step_s"][1:]), 2):
            out.append(f"| {run_no} | {k} | {a:.1f} | {o['groups_per_step'][k - 1]} of {o['prompts']} | {b:.1f} | "
                       f"{b / a:.2f} |")
        out.append(f"| {run_no} | mean | {o['s_per_step']:.1f} | {o['groups_updated']:.1f} | {t['s_per_step']:.1f} | "
                   f"**{t['s_per_step'] / o['s_per_step']:.2f}** |")
        per_group = o["update_s"] / max(o["groups_updated"], 1e-9)
        worst.append((o["gen_s"] + per_group * o["prompts"], o["gen_s"], per_group, t["s_per_step"]))
    w, gen, per_group, t_mean = worst[0]
    out += ["", f"Peak memory: ours {ours['peak_rss_mb'] / 1024:.1f} GB, TRL {trl['peak_rss_mb'] / 1024:.1f} GB (in "
            f"micro-batches of {trl['micro_batch']} rows; at its default of 32 rows TRL's peak nears this machine's 24 GB). "
            f"With all {ours['prompts']} groups updated, our step would take about {w:.0f} s (the mean rollout, "
            f"{gen:.1f} s, plus the measured update cost per group, {per_group:.1f} s, times "
            f"{ours['prompts']}), {t_mean / w:.1f}x faster than TRL's mean step"
            + (" (" + "; ".join(f"run {i}: {tm / x:.1f}x" for i, (x, _, _, tm) in enumerate(worst[1:], 2)) + ")"
               if len(worst) > 1 else "")
            + ": the least this engine gains at this shape."]
    if d.get("trl_padded"):
        old = [tuple(next(r for r in rows if r["engine"] == e) for e in ("ours", "trl")) for rows in d["trl_padded"]]
        per = lambda o: o["update_s"] / max(o["groups_updated"], 1e-9)
        out += ["", "Before the answers ran in pieces and finished rows left their groups (3225dc8 and b45ea49, "
                "`experiments/results/speed/before`), two runs "
                "of the same benchmark gave " + listed(f"{t['s_per_step'] / o['s_per_step']:.2f}x" for o, t in old)
                + " on average, the update costing "
                + listed(f"{per(o):.2f} s" for o, _ in old) + " per group updated and the rollout "
                + listed(f"{o['gen_s']:.1f} s" for o, _ in old) + " a step; now "
                + listed(f"{per(o):.2f} s" for o, _ in pairs) + ", and "
                + listed(f"{o['gen_s']:.1f} s" for o, _ in pairs) + "."]
    if "trl_before" in d:
        o0, t0 = (next(r for r in d["trl_before"] if r["engine"] == e) for e in ("ours", "trl"))
        out += ["", f"At 57c38b0, before the packed weights, the same benchmark gave ours {o0['s_per_step']:.1f} s and "
                f"TRL {t0['s_per_step']:.1f} s a step ({t0['s_per_step'] / o0['s_per_step']:.2f}x), with "
                f"{o0['groups_updated']:.1f} groups of {o0['prompts']} updated a step."]
    return out


def machines(d):
    """The same core measurements on each machine: this section's, then those of experiments/bench/speed_machine.sh."""
    if not d.get("machines"):
        return []
    here = dict(machine=d["machine"], profile=d["profile"], profile_plain=d["profile_plain"], sampler=d["sampler"],
                compiled=d["sampler"], bridge=d["bridge"], block=d["block"], trl=[d["trl"]] + d.get("trl_more", []))
    rows = [here] + d["machines"]
    out = ["", "**The same measurements on other machines** (`bash experiments/bench/speed_machine.sh experiments/results/speed/machines/NAME`, "
           "each part alone on the machine; the first row is the machine of this section). The decode step at width "
           "16 in fp32 is the profiler's mean (`experiments/bench/profile_step.py`, with `--plain` for `F.linear`); tok/s and "
           "the ratios to `generate` come from the sampler table's command without `--compile` and `--plain`; "
           "the `--compile` column is its frozen decode step against `generate` of the same run (for the other "
           "machines a run of its own, at width 16 only).", "",
           "| machine | last-level cache MB | step ms, F.linear | step ms, packed | ours fp32 w16 tok/s "
           "| ours / generate: fp32 w4 | fp32 w16 | bf16 w4 | bf16 w16 | ours bf16 / fp32, w16 | --compile / generate, fp32 w16 |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in rows:
        s = m["sampler"]
        tok = lambda e, t, w: find(s, engine=e, dtype=t, width=w)["tok_s"]
        ratio = lambda t, w: tok("ours", t, w) / tok("hf", t, w)
        l3 = f"{m['block']['l3_mb']:.0f}" if m["block"].get("l3_mb") else "?"
        out.append(f"| {m['machine']} | {l3} | {m['profile_plain']['step_ms']:.1f} | {m['profile']['step_ms']:.1f} | "
                   f"{tok('ours', 'fp32', 16):.0f} | {ratio('fp32', 4):.2f} | {ratio('fp32', 16):.2f} | "
                   f"{ratio('bf16', 4):.2f} | {ratio('bf16', 16):.2f} | {tok('ours', 'bf16', 16) / tok('ours', 'fp32', 16):.2f} | "
                   f"{compiled_ratio(m['compiled'])} |")
    out += ["", "The blocks at width 16 in fp32 on the same machines: Bridge on/off from the blocks' command (packed, "
            "best of 5), and from `experiments/bench/block_cost.py` (the median of its rounds) with its products-only floor; "
            "one GRPO step against TRL's from `experiments/bench/bench_grpo.py` (each run's mean ratio).", "",
            "| machine | Bridge on/off | block_cost on/off | products-only floor | GRPO: TRL / ours |", "|---|---|---|---|---|"]
    for m in rows:
        br, blk = find(m["bridge"], block="bridge", engine="ours", width=16), m["block"]
        out.append(f"| {m['machine']} | {br['tok_s'] / br['tok_s_off']:.2f} | {blk['on_off']:.3f} | "
                   f"{blk['products_off']:.3f} | {', '.join(f'{x:.2f}' for x in trl_ratios(m['trl']))} |")
    out += ["", "Against the goals set for this work (fp32, CPU), machine by machine: the least of the measurements "
            "above that bear on each goal, and whether it is met.", "",
            "| machine | ours / generate, w16 (goal 1.6) | w4 (goal 1.3) | Bridge on/off, w16 (goal 0.95) | "
            "GRPO: TRL / ours, every run (goal 4) |", "|---|---|---|---|---|"]
    for m in rows:
        g = goals(m)
        out.append(f"| {m['machine']} | " + " | ".join(f"{v:.{3 if goal < 1 else 2}f} ({'met' if v >= goal else 'not met'})"
                                                    for v, goal in g) + " |")
    return out


def trl_ratios(runs):
    """TRL's mean step time over ours, one per run of experiments/bench/bench_grpo.py."""
    pairs = [tuple(next(r for r in rows if r["engine"] == e) for e in ("ours", "trl")) for rows in runs]
    return [t["s_per_step"] / o["s_per_step"] for o, t in pairs]


def compiled_ratio(rows):
    """--compile over generate, fp32, width 16, from one run of the sampler table ("-": not measured)."""
    if rows is None or not any(r.get("engine") == "compiled" for r in rows):
        return "-"
    tok = lambda e: find(rows, engine=e, dtype="fp32", width=16)["tok_s"]
    return f"{tok('compiled') / tok('hf'):.2f}"


GOALS = {"w16": 1.6, "w4": 1.3, "on_off": 0.95, "grpo": 4.0}


def goals(m):
    """(value, goal) for each goal of the speed work: ours over generate in fp32 at widths 16 and 4,
    Bridge on/off at width 16 (the lower of the blocks' command and block_cost.py), and the GRPO
    ratio of the worst run."""
    tok = lambda e, w: find(m["sampler"], engine=e, dtype="fp32", width=w)["tok_s"]
    br = find(m["bridge"], block="bridge", engine="ours", width=16)
    grpo = trl_ratios(m["trl"])
    return [(tok("ours", 16) / tok("hf", 16), GOALS["w16"]), (tok("ours", 4) / tok("hf", 4), GOALS["w4"]),
            (min(br["tok_s"] / br["tok_s_off"], m["block"]["on_off"]), GOALS["on_off"]), (min(grpo), GOALS["grpo"])]


def main(argv=None):
    p = Parser(prog="speed_report.py", description="The measured speed section of docs/speed.md, from experiments/results/speed.")
    readme_section.add_arguments(p, DOC)
    args = p.parse_args(argv)
    return readme_section.write_or_check(args, lambda: section(load(RES)), BEGIN, END, what="speed section",
                                         command="python experiments/bench/speed_report.py")


if __name__ == "__main__":
    sys.exit(run(main))
