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
protocol and prints the tables. Its flags and their checks: eval_args.py.
"""
import json
import sys
import time

from bridgekit import checks, cli, eval_args, tasks
from bridge import PATHS
from bridgekit.cli import progress
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
    difficulty, problems = eval_args.check_args(args)  # before the slow model load
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


def parse_args(argv=None):
    """The command line (eval_args.parse_args: the flags, their defaults and usage errors)."""
    return eval_args.parse_args(argv, paths=PATHS)


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
