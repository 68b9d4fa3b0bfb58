"""
Throughput of our sampler, side by side with transformers' generate, and the cost of Bridge.

    python experiments/bench/bench_sampler.py                     # sampler vs HF: widths 1 4 16, fp32 and bf16, cpu (+cuda)
    python experiments/bench/bench_sampler.py --what bridge       # Bridge and P-Match, off vs on, at widths 1 4 16 64, fp32
    python experiments/bench/bench_sampler.py --what all --new-tokens 128 --out bench.json
    python experiments/bench/bench_sampler.py --widths 4 16 --plain   # also ours with F.linear instead of packed weights
    python experiments/bench/bench_sampler.py --widths 4 16 --naive   # also the naive sample.sample

"Ours" is fast.sample, what the commands run with --fast; --naive adds sample.sample, what every
command runs by default (the same tokens: tests/scripts/test_03_fast.py). Every number is tokens generated per
second of wall-clock time (prefill included), with no early stop in either engine (ours:
ignore_eos; HF: min_new_tokens = max_new_tokens), one chat prompt, sampling at temperature 1
with top-k and top-p off. Each configuration runs in a fresh subprocess
(this file with --job), after a short warm-up, so that "peak memory" (peak resident set on CPU,
peak allocated on CUDA) is that configuration's alone. Absolute figures are noisy on a shared
machine: compare the ratios. A configuration that fails is a row marked "error" and the others
still run and are written; the command then exits 1.
For the cost of Bridge, one process times the same model with its blocks off (model.use_bridge =
False, which is the base model) and on, alternating `--repeats` times, and keeps the best of each.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the method's files, at the repository root

import benchkit  # noqa: E402  (next to this file)
from bridgekit import cli, checks  # noqa: E402
from bridgekit.cli import Parser, add_overwrite, check_new_file, check_out_file, run  # noqa: E402

PROMPT = "What is the capital of France? Answer in one sentence."
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def measure(job):
    """One configuration, in this process: returns tokens/s and peak memory."""
    import torch
    from bridgekit import fast
    from model import load_model
    dtype, device, width, n = getattr(torch, DTYPES[job["dtype"]]), job["device"], job["width"], job["new_tokens"]
    model, tok = load_model(job["model"], device=device, dtype=dtype)
    ids = tok.encode_chat([{"role": "user", "content": PROMPT}])
    if job["engine"] == "hf":
        import transformers
        hf = transformers.AutoModelForCausalLM.from_pretrained(model.source, dtype=dtype).to(device).eval()
        del model
        x = torch.tensor([ids], device=device)
        settings = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=width,
                        pad_token_id=tok.eos_id)

        def run(k):
            with torch.no_grad():
                hf.generate(x, max_new_tokens=k, min_new_tokens=k, **settings)
    else:
        if job["block"] != "none":  # random non-zero blocks: the cost must not depend on W_O == 0
            model.add_bridge(job["block"], n_heads=4, head_dim=16, verbose=False)
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for p in model.bridge_parameters():
                    p.add_(0.02 * torch.randn(p.shape, generator=g).to(p.device, p.dtype))
        gen = torch.Generator(device).manual_seed(0)
        # "plain": every product through F.linear, fast.sample(packed=False); "naive": sample.sample
        def run(k):
            if job["engine"] == "naive":
                import sample
                return sample.sample(model, [ids], tok.eos_ids, width=width, max_new_tokens=k, generator=gen,
                                     ignore_eos=True)
            fast.sample(model, [ids], tok.eos_ids, width=width, max_new_tokens=k, generator=gen, ignore_eos=True,
                        packed=job["engine"] != "plain")

    def timed():
        benchkit.sync(device)
        t0 = time.perf_counter()
        run(n)
        benchkit.sync(device)
        return width * n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    # warm-up: first-call allocations and kernel selection
    for on in ((False, True) if job["table"] == "bridge" else (None,)):
        if on is not None:
            model.use_bridge = on
        run(8)
    warmup_s = time.perf_counter() - t0
    if job["table"] == "bridge":  # the same model with its blocks off and on, alternating; best of each
        speeds = {False: [], True: []}
        for _ in range(job["repeats"]):
            for on in (False, True):
                model.use_bridge = on
                speeds[on].append(timed())
        return dict(job, tok_s_off=max(speeds[False]), tok_s=max(speeds[True]),
                    peak_mb=benchkit.peak_memory_mb(device))
    return dict(job, tok_s=timed(), warmup_s=warmup_s, peak_mb=benchkit.peak_memory_mb(device))


def jobs_for(args, devices):
    jobs = []
    base = dict(model=args.model, new_tokens=args.new_tokens)
    if args.what in ("sampler", "all"):
        for device in devices:
            for dtype in args.dtypes:
                for width in args.widths:
                    for engine in ("ours", "hf") + (("plain",) if args.plain else ()) + (("naive",) if args.naive else ()):
                        jobs.append(dict(base, table="sampler", engine=engine, block="none",
                                         device=device, dtype=dtype, width=width))
    if args.what in ("bridge", "all"):
        for device in devices:
            for width in args.bridge_widths:
                for engine in ("ours",) + (("plain",) if args.plain else ()):
                    for block in ("bridge", "pmatch"):
                        jobs.append(dict(base, table="bridge", engine=engine, block=block, device=device,
                                         dtype="fp32", width=width, repeats=args.repeats))
    return jobs


def fmt(r):
    return "error" if r is None or "error" in r else f"{r['tok_s']:.1f}"


def ratio(a, b):
    if a is None or b is None or "error" in a or "error" in b:
        return "-"
    return f"{a['tok_s'] / b['tok_s']:.2f}"


def tables(results):
    def find(**kw):
        return next((r for r in results if all(r.get(k) == v for k, v in kw.items())), None)
    lines = []
    keys = sorted({(r["device"], r["dtype"], r["width"]) for r in results if r["table"] == "sampler"},
                  key=lambda k: (k[0], k[1] != "fp32", k[2]))
    if keys:
        more = ("", "")
        plain = any(r.get("engine") == "plain" for r in results)
        if plain:
            more = (more[0] + " ours F.linear tok/s | F.linear / HF |", more[1] + "---|---|")
        naive = any(r.get("engine") == "naive" for r in results)
        if naive:
            more = (more[0] + " naive tok/s | naive / HF | --fast / naive |", more[1] + "---|---|---|")
        lines += ["| device | dtype | width | ours tok/s | HF generate tok/s | ours / HF |" + more[0] +
                  " ours peak MB | HF peak MB |", "|---|---|---|---|---|---|" + more[1] + "---|---|"]
        for device, dtype, width in keys:
            o = find(table="sampler", engine="ours", device=device, dtype=dtype, width=width)
            h = find(table="sampler", engine="hf", device=device, dtype=dtype, width=width)
            mem = lambda r: "-" if r is None or "error" in r else f"{r['peak_mb']:.0f}"
            cells = ""
            if plain:
                f = find(table="sampler", engine="plain", device=device, dtype=dtype, width=width)
                cells += f" {fmt(f)} | {ratio(f, h)} |"
            if naive:
                f = find(table="sampler", engine="naive", device=device, dtype=dtype, width=width)
                cells += f" {fmt(f)} | {ratio(f, h)} | {ratio(o, f)} |"
            lines.append(f"| {device} | {dtype} | {width} | {fmt(o)} | {fmt(h)} | {ratio(o, h)} |{cells} {mem(o)} | {mem(h)} |")
        lines.append("")
    keys = sorted({(r["device"], r["width"], r["engine"]) for r in results if r["table"] == "bridge"})
    if keys:
        lines += ["| device | width | blocks off tok/s | Bridge on tok/s | Bridge on / off | "
                  "P-Match off tok/s | P-Match on tok/s | P-Match on / off | Bridge peak MB |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for device, width, engine in keys:
            cells = []
            for kind in ("bridge", "pmatch"):
                r = find(table="bridge", block=kind, device=device, width=width, engine=engine)
                if r is None or "error" in r:
                    cells += ["error", "error", "-"]
                else:
                    cells += [f"{r['tok_s_off']:.1f}", f"{r['tok_s']:.1f}", f"{r['tok_s'] / r['tok_s_off']:.2f}"]
            b = find(table="bridge", block="bridge", device=device, width=width, engine=engine)
            mem = "-" if b is None or "error" in b else f"{b['peak_mb']:.0f}"
            label = f"{width} (F.linear)" if engine == "plain" else str(width)
            lines.append(f"| {device} | {label} | " + " | ".join(cells) + f" | {mem} |")
    return "\n".join(lines)


def main(argv=None):
    p = Parser(prog="bench_sampler.py", description="Tokens/s of our sampler vs transformers.generate, and of Bridge on vs off.")
    p.add_argument("--what", default="sampler", choices=["sampler", "bridge", "all"], help="which table(s) (default sampler)")
    cli.add_model(p)
    p.add_argument("--widths", type=int, nargs="+", default=[1, 4, 16], help="widths for the sampler table (default 1 4 16)")
    p.add_argument("--bridge-widths", type=int, nargs="+", default=[1, 4, 16, 64], help="widths for the Bridge table (default 1 4 16 64)")
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES), help="dtypes for the sampler table (default fp32 bf16)")
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    p.add_argument("--new-tokens", type=int, default=128, help="new tokens per row, no early stop (default 128)")
    p.add_argument("--plain", action="store_true", help="also our sampler with every product through F.linear "
                   "(fast.sample(packed=False)), not the packed weights of fast.packed_linears (default off)")
    p.add_argument("--naive", action="store_true", help="also the naive sample.sample, what every command runs "
                   "without --fast (default off)")
    p.add_argument("--repeats", type=int, default=3, help="Bridge table: off/on runs alternated this many times, best kept (default 3)")
    p.add_argument("--out", default=None, help="also write all results as JSON to this file")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)  # internal: run one configuration
    add_overwrite(p)
    args = p.parse_args(argv)
    if args.job:
        print(json.dumps(measure(json.loads(args.job))))
        return 0
    benchkit.check_counts(p, args, "widths", "bridge_widths", "new_tokens", "repeats")
    checks.check_model(args.model)
    import torch
    if args.devices:
        benchkit.check_devices(args.devices)
    check_out_file(args.out)
    check_new_file(args.out, args.overwrite)  # a results file is replaced only when asked
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    jobs = jobs_for(args, devices)
    results, t0 = [], time.time()
    for i, job in enumerate(jobs, 1):
        r = benchkit.run_job(__file__, job)
        results.append(r)
        elapsed = time.time() - t0
        eta = elapsed / i * (len(jobs) - i)
        what = f"{r['engine']}/{r['block']}" if r["engine"] != "hf" else "hf"
        off = f" (off: {r['tok_s_off']:.1f})" if "tok_s_off" in r else ""
        print(f"[{i}/{len(jobs)}] {job['device']} {job['dtype']} w={job['width']} {what}: "
              f"{fmt(r)} tok/s{off}{' ' + r['error'] if 'error' in r else ''}  (elapsed {elapsed:.0f}s, eta {eta:.0f}s)",
              file=sys.stderr, flush=True)
    header = f"# {args.new_tokens} new tokens per row, torch {torch.__version__}, {torch.get_num_threads()} CPU threads\n\n"
    benchkit.emit(results, header + tables(results), args.out)
    failed = [r for r in results if "error" in r]
    if failed:
        print(f"error: {len(failed)} of {len(results)} configurations failed (first: {failed[0]['error']})",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
