"""Where the time of one decode step goes (docs/speed.md): torch.profiler over decode steps of the
sampler, each op's own time summed into a few kinds, per step.

    python experiments/bench/profile_step.py                       # the default model, width 16, fp32, cpu
    python experiments/bench/profile_step.py --width 4 --steps 32 --out experiments/results/profile_step.json

One decode step is what fast.sample() does per new token: draw a token per row from the last
logits (sample_next), then one forward of the model over the new column
with the KV cache, its products on packed weights (fast.packed_linears; F.linear with --plain). The
rows are prefilled with one chat prompt, then `--warmup` steps run unprofiled, then `--steps`
profiled. "Python and dispatch" is the wall time no op accounts for: the interpreter, module calls,
and the dispatcher between ops. Absolute times are noisy on a shared machine; run it alone.
"""
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bridgekit import cli  # noqa: E402
from bridgekit.cli import Parser, add_overwrite, check_new_file, check_out_file, run, write_text  # noqa: E402

PROMPT = "What is the capital of France? Answer in one sentence."
# op name -> kind; the first pattern that is a substring of the op's name wins
KINDS = [
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "mkldnn", "onednn")),
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention", "softmax_backward")),
    ("sampling (vocabulary)", ("cumsum", "searchsorted", "aten::exp", "aten::max", "log_softmax", "aten::sort",
                               "aten::topk", "aten::rand", "aten::sum", "aten::gather", "aten::pad", "constant_pad")),
    ("copies and indexing", ("copy_", "aten::cat", "aten::index", "aten::clone", "contiguous", "aten::stack",
                             "aten::where", "aten::full", "aten::zeros", "aten::empty", "aten::fill_",
                             "aten::slice", "aten::select", "aten::masked", "aten::repeat", "aten::to",
                             "aten::_to_copy", "aten::embedding")),
    ("elementwise", ("aten::mul", "aten::add", "aten::sub", "aten::div", "aten::neg", "aten::rsqrt",
                     "aten::pow", "aten::mean", "aten::silu", "aten::cos", "aten::sin", "aten::eq",
                     "aten::le", "aten::bitwise", "aten::__or__", "aten::__and__", "aten::logical",
                     "aten::arange", "aten::clamp", "aten::isin", "aten::all")),
]


def kind_of(name):
    for kind, patterns in KINDS:
        if any(p in name for p in patterns):
            return kind
    return "other ops"


def profile(args):
    import contextlib

    import torch

    from bridgekit import fast
    from model import KVCache, load_model
    from sample import DTYPES, sample_next, uniforms
    torch.manual_seed(0)
    model, tok = load_model(args.model, device=args.device, dtype=DTYPES[args.dtype])
    if args.bridge:
        model.add_bridge("bridge", verbose=False)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():  # random non-zero blocks: a zero W_O must not make them look cheap
            for p in model.bridge_parameters():
                p.add_(0.02 * torch.randn(p.shape, generator=g).to(p.device, p.dtype))
    ids = tok.encode_chat([{"role": "user", "content": PROMPT}])
    W, total = args.width, args.warmup + args.steps
    device = model.lm_head.weight.device
    gen = torch.Generator(device).manual_seed(0)
    packed = not args.plain and device.type == "cpu" and fast.packs(model.lm_head.weight.dtype)
    with torch.no_grad(), fast.packed_linears(model) if packed else contextlib.nullcontext():  # as fast.sample()
        tokens = torch.tensor([ids], device=device)
        cache = KVCache(model.config, 1, len(ids) + total + 1, device, model.lm_head.weight.dtype)
        logits = model.lm_head(model.hidden(tokens, cache=cache)[:, -1]).repeat_interleave(W, 0)
        cache = cache.repeat_rows(W)
        alive = torch.ones(W, 1, dtype=torch.bool, device=device)

        def step(logits):
            nxt, _ = sample_next(logits, uniforms(W, gen, device))
            return model(nxt[:, None], width=W, alive=alive, cache=cache)[:, -1]

        for _ in range(args.warmup):
            logits = step(logits)
        from torch.profiler import ProfilerActivity, profile as torch_profile
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                logits = step(logits)
            wall = time.perf_counter() - t0
    # the floor: every weight is read once per decode step, whatever the width. Summing each weight
    # tensor once reads exactly those bytes from memory and does little else; the fastest of 10
    # passes is the least a step can spend reading its weights here
    params = list({id(p): p for p in model.parameters()}.values())
    weight_bytes = sum(p.numel() * p.element_size() for p in params)
    with torch.no_grad():
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            for p in params:
                p.sum()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    read_ms = 1e3 * min(times)
    kinds = {}
    for e in prof.key_averages():
        kinds[kind_of(e.key)] = kinds.get(kind_of(e.key), 0.0) + e.self_cpu_time_total / 1e3  # ms
    per_step = {k: v / args.steps for k, v in kinds.items()}
    wall_ms = 1e3 * wall / args.steps
    per_step["Python and dispatch"] = max(0.0, wall_ms - sum(per_step.values()))
    return dict(model=model.source, width=W, dtype=args.dtype, device=args.device, bridge=args.bridge,
                steps=args.steps, threads=torch.get_num_threads(), torch=torch.__version__,
                step_ms=wall_ms, kinds_ms=dict(sorted(per_step.items(), key=lambda kv: -kv[1])),
                weights_mb=weight_bytes / 2**20, read_ms=read_ms, read_gb_s=weight_bytes / read_ms / 1e6,
                packed=packed)


def table(r):
    lines = [f"One decode step at width {r['width']}, {r['dtype']}, {r['device']}, "
             f"{'random Bridge blocks on' if r['bridge'] else 'no blocks'}: {r['step_ms']:.1f} ms "
             f"(mean of {r['steps']} profiled steps; the profiler adds a little to each op).", "",
             "| kind | ms per step | share |", "|---|---|---|"]
    for kind, ms in r["kinds_ms"].items():
        lines.append(f"| {kind} | {ms:.2f} | {100 * ms / r['step_ms']:.0f}% |")
    lines += ["", f"Products: {'packed weights (fast.packed_linears)' if r['packed'] else 'F.linear'}. The floor: the weights "
              f"({r['weights_mb']:.0f} MB) are read once per step; reading each once (a sum) took {r['read_ms']:.1f} ms "
              f"at best, {r['read_gb_s']:.1f} GB/s."]
    return "\n".join(lines)


def main(argv=None):
    p = Parser(prog="profile_step.py", description="Where the time of one decode step goes.")
    cli.add_model(p)
    p.add_argument("--width", type=int, default=16, help="rows decoded together (default 16)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="(default fp32)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--bridge", action="store_true", help="add random Bridge blocks (default: none)")
    p.add_argument("--plain", action="store_true", help="multiply with F.linear, not the packed weights of "
                   "fast.packed_linears (fast.sample(packed=False); default: packed where available)")
    p.add_argument("--warmup", type=int, default=8, help="decode steps run before profiling (default 8)")
    p.add_argument("--steps", type=int, default=32, help="decode steps profiled (default 32)")
    p.add_argument("--out", default=None, help="also write the result as JSON to this file")
    add_overwrite(p)
    args = p.parse_args(argv)
    for flag in ("width", "steps"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    check_out_file(args.out)
    check_new_file(args.out, args.overwrite)  # a results file is replaced only when asked
    from bridgekit.checks import check_device
    check_device(args.device)
    r = profile(args)
    print(table(r))
    if args.out:
        write_text(args.out, json.dumps(r, indent=1) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
