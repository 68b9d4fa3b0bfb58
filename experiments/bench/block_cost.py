"""What one Bridge block costs, stage by stage: alone (the same call repeated) and inside decode steps.

    python experiments/bench/block_cost.py                        # the default model, width 16, fp32, cpu
    python experiments/bench/block_cost.py --width 4 --out experiments/results/speed/block_cost.json

The model gets random non-zero Bridge blocks (so that W_O = 0 cannot make them look cheap) and
one chat prompt prefilled at `--width` rows. Every block then runs an instrumented copy of
Bridge.forward (the same ops, checked equal to it) that reads the clock between its stages:
- "in a step": during `--steps` decode steps with the weights packed as fast.sample packs them;
- "alone": one block called `--repeats` times in a row on one decode step's input.
It also times one small op (an add on a (width, D) tensor) right after another one, and right after reading
as many other bytes as one decoder layer's weights and as all the weights one decode step reads: the
weights a step streams push the code and data of the ops between the products out of the caches.
It also times whole decode steps, `--rounds` times in turn: blocks off, blocks on, and blocks cut down
to their two products ("products only": W_O (W_QKV x) on the same packed weights, no norm, no
attention, no reshapes). That last arm is not Bridge; it is a floor: no rewrite of the block's other
ops can make on/off better than what its two products, as they run, cost inside a step.
Run it alone: 2 cores are easily shared.
"""
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bridgekit import cli  # noqa: E402
from bridgekit.cli import Parser, add_overwrite, check_new_file, check_out_file, run, write_text  # noqa: E402

PROMPT = "What is the capital of France? Answer in one sentence."
STAGES = ("norm", "q, k, v product", "split into heads", "attention over siblings", "W_O product", "back to rows")


def timed_forward(block, x, width, mask, clock):
    """Bridge.forward(x, width, alive, mask) with the clock read between stages (clock: stage -> seconds)."""
    import torch.nn.functional as F
    N, T, D = x.shape
    B, W, H, hd = N // width, width, block.n_heads, block.head_dim
    t = [time.perf_counter()]
    h = block.norm(x)
    t.append(time.perf_counter())
    qkv = block.qkv_proj(h.view(B, W, T, D).transpose(1, 2))
    t.append(time.perf_counter())
    q, k, v = qkv.view(B * T, W, 3 * H, hd).transpose(1, 2).split(H, dim=1)
    t.append(time.perf_counter())
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    t.append(time.perf_counter())
    y = block.o_proj(y.transpose(1, 2).reshape(B, T, W, -1))
    t.append(time.perf_counter())
    y = y.transpose(1, 2).reshape(N, T, D)
    t.append(time.perf_counter())
    for stage, a, b in zip(STAGES, t, t[1:]):
        clock[stage] = clock.get(stage, 0.0) + b - a
    return y


def l3_mb():
    """This CPU's last-level cache in MiB as Linux reports it (None where it does not)."""
    try:
        size = Path("/sys/devices/system/cpu/cpu0/cache/index3/size").read_text().strip()
    except OSError:
        return None
    scale = {"K": 1 / 1024, "M": 1, "G": 1024}.get(size[-1:].upper())
    return int(size[:-1]) * scale if scale and size[:-1].isdigit() else None


def cache_probe(width, dim, product, layer_bytes, step_bytes, repeats=100):
    """Microseconds (median of `repeats`) for one add on a (width, dim) fp32 tensor: right after another
    add ("warm"), right after `product()` (one of the block's products, "product"), and after summing a
    buffer of `layer_bytes` ("layer") and one of `step_bytes` ("step")."""
    import torch
    x, y = torch.zeros(width, dim), torch.zeros(width, dim)
    before = {"warm": lambda: y.add(1.0), "product": product}
    for name, size in (("layer", layer_bytes), ("step", step_bytes)):
        before[name] = torch.ones(max(1, size // 4)).sum
    out = {}
    for name, first in before.items():
        times = []
        for _ in range(repeats + 3):
            first()
            t0 = time.perf_counter()
            x.add(1.0)
            times.append(time.perf_counter() - t0)
        out[name] = 1e6 * statistics.median(times[3:])
    return out


def measure(args):
    import torch

    import bridge
    from bridgekit import fast
    from model import KVCache, load_model
    torch.manual_seed(0)
    model, tok = load_model(args.model, device="cpu")
    model.add_bridge("bridge", verbose=False)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.bridge_parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    W, ids = args.width, tok.encode_chat([{"role": "user", "content": PROMPT}])
    P = len(ids)
    cache = KVCache(model.config, W, P + args.steps * (args.rounds * 2 + 2) + 8)
    alive = torch.ones(W, 1, dtype=torch.bool)
    clock, seen = {}, {}
    original = bridge.Bridge.forward

    def instrumented(block, x, width, alive_, mask=None):
        mask = bridge.sibling_mask(alive_, width, x.dtype) if mask is None else mask
        if "input" not in seen:  # the first block's first input, for the timing alone
            seen["input"] = (block, x.clone(), width, mask)
        return timed_forward(block, x, width, mask, clock)

    def products_only(block, x, width, alive_, mask=None):  # the floor arm: the block's two products, nothing else
        return block.o_proj(block.qkv_proj(x)[..., :block.o_proj.in_features])

    def steps(n):  # n decode steps (greedy: the token does not change the cost); ms per step each
        tokens, out = torch.zeros(W, 1, dtype=torch.long), []
        for _ in range(n):
            t0 = time.perf_counter()
            logits = model.lm_head(model.hidden(tokens, width=W, alive=alive, cache=cache)[:, -1])
            tokens = logits.argmax(-1, keepdim=True)
            out.append(1e3 * (time.perf_counter() - t0))
        return out

    with torch.no_grad(), fast.packed_linears(model):  # as fast.sample multiplies
        model.hidden(torch.tensor([ids] * W), width=1, cache=cache)
        start = cache.length
        steps(4)                                                            # warm-up
        ms = {"off": [], "on": [], "products": []}
        try:
            for _ in range(args.rounds):                          # whole steps: off, on, products only
                for arm in ms:
                    model.use_bridge = arm != "off"
                    bridge.Bridge.forward = products_only if arm == "products" else original
                    cache.length, cache.n_real[:] = start, P
                    ms[arm].append(statistics.median(steps(args.steps)))
            model.use_bridge = True
            bridge.Bridge.forward = instrumented
            cache.length, cache.n_real[:] = start, P
            steps(args.steps)
        finally:
            bridge.Bridge.forward = original
        calls = args.steps * model.config.num_hidden_layers
        in_step = {s: 1e6 * clock[s] / calls for s in STAGES}
        block, x, width, mask = seen["input"]
        assert torch.equal(timed_forward(block, x, width, mask, {}), original(block, x, width, None, mask))
        clock.clear()
        for _ in range(args.repeats):
            timed_forward(block, x, width, mask, clock)
        alone = {s: 1e6 * clock[s] / args.repeats for s in STAGES}
        layer_bytes = sum(p.numel() * p.element_size() for p in model.model.layers[0].parameters())  # its block included
        step_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        h = block.norm(x)
        probe = cache_probe(W, model.config.hidden_size, lambda: block.qkv_proj(h), layer_bytes, step_bytes)

    def ratio(arm):  # the median over rounds of off / arm, each round's pair timed back to back
        return statistics.median(off / t for off, t in zip(ms["off"], ms[arm]))
    return dict(width=W, layers=model.config.num_hidden_layers, steps=args.steps, rounds=args.rounds, repeats=args.repeats, prompt_tokens=P,
                ms_off=ms["off"], ms_on=ms["on"], ms_products=ms["products"], on_off=ratio("on"),
                products_off=ratio("products"),
                in_step_us=in_step, alone_us=alone, probe_us=probe, layer_mb=layer_bytes / 2**20,
                step_mb=step_bytes / 2**20, l3_mb=l3_mb(), torch=torch.__version__, threads=torch.get_num_threads())


def markdown(r):
    lines = [f"One Bridge block at width {r['width']}, fp32, cpu ({r['threads']} threads, torch {r['torch']}): "
             f"microseconds per call, each stage timed inside {r['steps']} decode steps (x {r['layers']} blocks) and alone "
             f"({r['repeats']} calls in a row on one step's input).", "",
             "| stage | alone, µs | in a step, µs | in a step / alone |", "|---|---|---|---|"]
    for s in STAGES:
        a, b = r["alone_us"][s], r["in_step_us"][s]
        lines.append(f"| {s} | {a:.1f} | {b:.1f} | {b / a:.1f} |")
    a, b = sum(r["alone_us"].values()), sum(r["in_step_us"].values())
    off, on, prods = (statistics.median(r[k]) for k in ("ms_off", "ms_on", "ms_products"))
    lines += [f"| **block** | **{a:.1f}** | **{b:.1f}** | **{b / a:.1f}** |", "",
              f"Whole decode steps, blocks off, on and products-only in turn ({r['rounds']} rounds, median of each round's "
              f"{r['steps']} steps): off {off:.1f} ms, on {on:.1f} ms; on/off, the median of the rounds' ratios: "
              f"{r['on_off']:.3f}. The blocks' share of the step by the stage clocks: "
              f"{r['layers'] * b / 1e3:.1f} ms.", "",
              f"The floor: with every block cut down to its two products (the same packed weights, nothing else), "
              f"a step takes {prods:.1f} ms, products-only/off {r['products_off']:.3f}. While the products run as they do, no "
              f"rewrite of the norm, the attention or the reshapes can take on/off above that.", "",
              probe_line(r)]
    return "\n".join(lines) + "\n"


def probe_line(r):
    """The cache probe in one sentence (docs/speed.md's speed section prints the same)."""
    u = r["probe_us"]
    l3 = f"; this CPU's last-level cache holds {r['l3_mb']:.0f} MB" if r.get("l3_mb") else ""
    return (f"What runs before a small op sets its cost: one add on a {r['width']} x D tensor takes {u['warm']:.1f} µs "
            f"right after another add, {u['product']:.1f} µs right after one of the block's q, k, v products, "
            f"{u['layer']:.1f} µs right after reading one layer's weights' worth of other memory "
            f"({r['layer_mb']:.1f} MB) and {u['step']:.1f} µs after one step's ({r['step_mb']:.0f} MB{l3}). "
            "An op whose code and data were pushed out of the caches pays memory latency on top of its work: "
            f"right after the block's own product, the add costs {u['product'] / u['warm']:.1f} times what it costs "
            "back to back.")


def main(argv=None):
    p = Parser(prog="block_cost.py", description=__doc__.split("\n\n")[0])
    cli.add_model(p)
    p.add_argument("--width", type=int, default=16, help="rows, one group (default 16)")
    p.add_argument("--steps", type=int, default=16, help="decode steps per measurement (default 16)")
    p.add_argument("--rounds", type=int, default=8, help="off/on rounds of whole steps (default 8)")
    p.add_argument("--repeats", type=int, default=2000, help="calls of the block alone (default 2000)")
    p.add_argument("--out", default=None, help="also write the numbers as JSON here")
    add_overwrite(p)
    args = p.parse_args(argv)
    for name in ("width", "steps", "rounds", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    check_out_file(args.out)
    check_new_file(args.out, args.overwrite)  # a results file is replaced only when asked
    r = measure(args)
    if args.out:
        write_text(args.out, json.dumps(r, indent=1) + "\n")
    print(markdown(r), end="")
    return 0


if __name__ == "__main__":
    run(main)
