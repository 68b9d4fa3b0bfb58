"""
Training's forward+backward over one GRPO step's rollout: the prompt computed once per group
(training.answer_logprobs) against the plain forward over N full rows, in fp32 and bf16 autocast.

    python tools/bench_logprobs.py --repeats 2 --out results/bench_logprobs.json > results/bench_logprobs.md
    python tools/bench_logprobs.py --model path/to/model --repeats 1

The default GRPO shape (train_grpo's defaults: its task and prompts, 8 prompts x 4 answers, 64
answer tokens, every answer run to 64 tokens), micro-batches of train_grpo's --micro-groups, every
parameter trained. Alternating, best of --repeats. Also how far bf16 autocast moves the log-probs
from fp32 (on the same tokens).
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the method's files, at the repository root

import benchkit  # noqa: E402  (next to this file)
from cli import Parser  # noqa: E402


def bf16_instructions():
    """The CPU's instructions for bf16 products that /proc/cpuinfo lists (empty: none, or not Linux).
    With them a bf16 product runs at about twice fp32's rate; without them, autocast only adds casts."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted(set(flags) & {"avx512_bf16", "amx_bf16"})


def bench_logprobs(args):
    """(result dict, table): seconds of one step's forward+backward both ways, and the bf16 drift."""
    import torch
    import tasks
    import train_grpo
    import training
    from evaluate import machine
    from model import load_model
    from sample import sample
    d = train_grpo.parse_args(["--out", "x"])  # the defaults of a GRPO run
    model, tok = load_model(args.model)
    problems = [p for _, p in train_grpo.step_problems(train_grpo.training_pool(d), 0, 8, d.seed)]
    prompts = [tasks.prompt_ids(tok, p, shots=d.shots, system=d.system or None) for p in problems]
    r = sample(model, prompts, tok.eos_ids, width=4, max_new_tokens=64,
               generator=torch.Generator().manual_seed(0), ignore_eos=True)
    batches = training.micro_batches(list(range(8)), d.micro_groups, 4)

    def run(shared, dtype):
        model.zero_grad(set_to_none=True)
        out = []
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            for rows in batches:
                lp = training.answer_logprobs(model, *training.split_rollout(r, rows), 4, shared_prompt=shared)
                lp.sum().backward()
                out.append(lp.detach())
        return torch.cat(out)

    times, logps = {}, {}
    for _ in range(args.repeats):
        for dtype in ("fp32", "bf16"):
            for shared in (True, False):
                t0 = time.perf_counter()
                logps[dtype, shared] = run(shared, dtype)
                times.setdefault((dtype, shared), []).append(time.perf_counter() - t0)
    rows = [dict(dtype=dt, shared_s=min(times[dt, True]), plain_s=min(times[dt, False])) for dt in ("fp32", "bf16")]
    diff = (logps["bf16", True] - logps["fp32", True]).abs()
    drift = dict(mean_abs=diff.mean().item(), max_abs=diff.max().item(),
                 share_over_0_2=(diff > 0.2).float().mean().item())  # 0.2: outside the PPO clip range
    P, cpu, bf16 = r.prompt_len, machine("cpu"), bf16_instructions()
    lines = [f"# one GRPO step's forward+backward: 8 prompts ({P} tokens, padded) x 4 answers x 64 tokens, "
             f"micro-batches of {d.micro_groups} groups, all parameters, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, best of {args.repeats}",
             f"# {cpu}; bf16 product instructions: {', '.join(bf16) or 'none'}\n",
             "| dtype | prompt once per group (s) | plain N rows (s) | speed-up |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['dtype']} | {row['shared_s']:.1f} | {row['plain_s']:.1f} | {row['plain_s'] / row['shared_s']:.2f} |")
    lines.append(f"\nbf16 autocast vs fp32 log-probs of the same 2048 answer tokens: mean |diff| "
                 f"{drift['mean_abs']:.4f}, max {drift['max_abs']:.3f}, share above 0.2: {drift['share_over_0_2']:.4f}")
    return dict(rows=rows, drift=drift, prompt_len=P, machine=cpu, bf16_instructions=bf16), "\n".join(lines)


def main(argv=None):
    p = Parser(prog="bench_logprobs.py", description="Training's forward+backward: prompt once per group vs the plain N-row forward, fp32 and bf16.")
    p.add_argument("--model", default=None, help="model directory or repo id (default: the default model)")
    p.add_argument("--repeats", type=int, default=3, help="the four runs alternated this many times, best kept (default 3)")
    p.add_argument("--out", default=None, help="also write all results as JSON to this file")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")
    benchkit.emit(*bench_logprobs(args), args.out)


if __name__ == "__main__":
    main()
