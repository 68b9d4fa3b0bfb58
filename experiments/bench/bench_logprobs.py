"""
Training's forward+backward over one GRPO step's rollout: the prompt computed once per group
(sample.answer_logprobs, what the scripts run) against the plain forward over N full rows, in
fp32 and bf16 autocast.

    python experiments/bench/bench_logprobs.py --repeats 2 --out experiments/results/bench_logprobs.json > experiments/results/bench_logprobs.md
    python experiments/bench/bench_logprobs.py --eos --repeats 2 --out experiments/results/bench_logprobs_eos.json > experiments/results/bench_logprobs_eos.md
    python experiments/bench/bench_logprobs.py --model path/to/model --repeats 1

The default GRPO shape (train_grpo's defaults: its task and prompts, 8 prompts x 4 answers, 64
answer tokens, every answer run to 64 tokens), micro-batches of train_grpo's --micro-groups, every
parameter trained. Alternating, best of --repeats. Also how far bf16 autocast moves the log-probs
from fp32 (on the same tokens). With --eos the answers end at their EOS, as in training.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the method's files, at the repository root

import benchkit  # noqa: E402  (next to this file)
from bridgekit import cli, checks  # noqa: E402
from bridgekit.cli import Parser, add_overwrite, check_new_file, check_out_file, run  # noqa: E402


def bf16_instructions():
    """The CPU's instructions for bf16 products that /proc/cpuinfo lists (empty: none, or not Linux).
    With them a bf16 product runs at about twice fp32's rate; without them, autocast only adds casts."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted(set(flags) & {"avx512_bf16", "amx_bf16"})


def plain_logprobs(model, prompt, prompt_alive, answer, answer_alive, width):
    """The plain forward over N full rows: each group's prompt repeated in front of each of its answers."""
    import torch
    import sample
    P = prompt.shape[1]
    tokens = torch.cat((prompt.repeat_interleave(width, 0), answer), dim=1)              # (N, P+S)
    alive = torch.cat((prompt_alive.repeat_interleave(width, 0), answer_alive), dim=1)
    h = model.hidden(tokens, width=width, alive=alive)[:, P - 1:-1]                        # (N, S, D)
    picked = sample.token_logprobs(model.lm_head(h[answer_alive]), answer[answer_alive], 1.0)
    return picked.new_zeros(answer.shape).index_put((answer_alive,), picked)


def bench_logprobs(args):
    """(result dict, table): seconds of one step's forward+backward both ways, and the bf16 drift."""
    import torch
    from bridgekit import tasks
    import train_grpo
    from bridgekit import training
    from bridgekit.result_files import machine
    from model import load_model
    from sample import answer_logprobs, sample
    d = train_grpo.parse_args(["--out", "x"])  # the defaults of a GRPO run
    model, tok = load_model(args.model)
    problems = [p for _, p in train_grpo.step_problems(training.training_pool(d), 0, 8, d.seed)]
    prompts = [tasks.prompt_ids(tok, p, shots=d.shots, system=d.system or None) for p in problems]
    r = sample(model, prompts, tok.eos_ids, width=4, max_new_tokens=64,
               generator=torch.Generator().manual_seed(0), ignore_eos=not args.eos)
    batches = training.micro_batches(list(range(8)), d.micro_groups, 4)
    forwards = {"shared": answer_logprobs, "plain": plain_logprobs}

    def run(way, dtype):
        model.zero_grad(set_to_none=True)
        out = []
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            for rows in batches:
                prompt, prompt_alive, answer, answer_alive = training.split_rollout(r, rows)
                lp = forwards[way](model, prompt, prompt_alive, answer, answer_alive, 4)
                lp.sum().backward()
                out.append(lp.detach()[answer_alive])  # the answer tokens
        return torch.cat(out)

    ways = ("shared", "plain")
    times, logps = {}, {}
    for _ in range(args.repeats):
        for dtype in ("fp32", "bf16"):
            for way in ways:
                t0 = time.perf_counter()
                logps[dtype, way] = run(way, dtype)
                times.setdefault((dtype, way), []).append(time.perf_counter() - t0)
    rows = [dict(dtype=dt, shared_s=min(times[dt, "shared"]), plain_s=min(times[dt, "plain"])) for dt in ("fp32", "bf16")]
    diff = (logps["bf16", "shared"] - logps["fp32", "shared"]).abs()
    drift = dict(mean_abs=diff.mean().item(), max_abs=diff.max().item(),
                 share_over_0_2=(diff > 0.2).float().mean().item())  # 0.2: outside the PPO clip range
    P, cpu, bf16 = r.prompt_len, machine("cpu"), bf16_instructions()
    n = int(r.alive[:, P:].sum())
    cells = dict(shared=0, plain=0)  # positions each way computes (prompt positions included)
    longest = []                                  # each micro-batch's longest answer
    for mb in batches:
        prompt, _, answer, answer_alive = training.split_rollout(r, mb)
        (B, P_), (N, S) = prompt.shape, answer.shape
        longest.append(str(S))
        cells["plain"] += N * (P_ + S - 1)
        cells["shared"] += B * P_ + N * (S - 1)
    longest = " ".join(longest)
    answers = (f"answers ending at their EOS (at most 64 tokens; {n} answer tokens; the longest of each "
               f"micro-batch: {longest})" if args.eos else "64-token answers")
    lines = [f"# one GRPO step's forward+backward: 8 prompts ({P} tokens, padded) x 4 {answers}, "
             f"micro-batches of {d.micro_groups} groups, all parameters, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, best of {args.repeats}",
             f"# {cpu}; bf16 product instructions: {', '.join(bf16) or 'none'}\n"]
    lines += ["| dtype | prompt once per group (s) | plain N rows (s) | speed-up |", "|---|---|---|---|"]
    lines += [f"| {row['dtype']} | {row['shared_s']:.1f} | {row['plain_s']:.1f} | {row['plain_s'] / row['shared_s']:.2f} |"
              for row in rows]
    lines.append(f"\nrows x columns computed, prompts included: prompt once {cells['shared']}, plain {cells['plain']}")
    lines.append(f"\nbf16 autocast vs fp32 log-probs of the same {n} answer tokens: mean |diff| "
                 f"{drift['mean_abs']:.4f}, max {drift['max_abs']:.3f}, share above 0.2: {drift['share_over_0_2']:.4f}")
    return (dict(rows=rows, drift=drift, prompt_len=P, answer_tokens=n, eos=args.eos, cells=cells, machine=cpu,
                 bf16_instructions=bf16), "\n".join(lines))


def main(argv=None):
    p = Parser(prog="bench_logprobs.py", description="Training's forward+backward: prompt once per group vs the plain N-row forward, fp32 and bf16.")
    cli.add_model(p)
    p.add_argument("--repeats", type=int, default=3, help="the four runs alternated this many times, best kept (default 3)")
    p.add_argument("--eos", action="store_true", help="answers end at their EOS, as in training (default: "
                   "every answer runs to 64 tokens)")
    p.add_argument("--out", default=None, help="also write all results as JSON to this file")
    add_overwrite(p)
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")
    checks.check_model(args.model)
    check_out_file(args.out)
    check_new_file(args.out, args.overwrite)  # a results file is replaced only when asked
    benchkit.emit(*bench_logprobs(args), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
