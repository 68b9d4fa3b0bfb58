"""
The SFT warm-up of the new blocks (the paper's optional warm-up before RLVR): teach a fresh Bridge
(or P-Match) block, on answers the base model already gives, to read its siblings before RL starts.

    python train_sft.py --arch bridge --out experiments/runs/sft_bridge
    python sample.py --width 4 --bridge experiments/runs/sft_bridge/checkpoint/bridge.safetensors
    torchrun --nproc_per_node 4 train_sft.py --device cuda --arch bridge --out experiments/runs/sft_bridge

1. Data (# paper): the base model samples --samples-per-problem answers (default 8, the paper's) to
   each of --problems training problems; wrong answers are dropped, and so are problems with at
   most one right answer. The right answers of one problem form one group (sample_answers).
2. Training (# paper): only the new parameters train (the base model is frozen, bit for bit), with
   cross-entropy on the answer tokens, EOS included, the prompt computed once per group (train_step).

Where the paper is silent the code says `# choice:`; docs/training.md has the long form, and how
several processes (torchrun, --shard; parallel.py) keep the one-process algorithm. Flags and their
checks: train_args.py.
"""
import collections
import itertools
import json
import math
import sys
import time
from pathlib import Path

import torch

from bridgekit import cli
from bridgekit import parallel
from bridgekit import train_args
from bridgekit import training
from bridgekit.checkpoint import load_checkpoint
from bridgekit.tasks import SET_TASKS, reward, set_choice, stable_seed
from model import load_model
from sample import answer_logprobs, sample

# -----------------------------------------------------------------------------
# the model of a run (train_grpo.py's too): the base model and its blocks, fresh or resumed


def model_for_run(args, *, init=None):
    """(model, tokenizer): the base model with fresh blocks of --arch, or the blocks of `init`."""
    model, tokenizer = load_model(args.model, device=args.device, bridge=init)  # checks init's base model
    if init is not None:
        kind = model.bridge_config["kind"]
        if kind != args.arch:
            raise ValueError(f"--init {init} holds {kind} blocks but --arch is {args.arch}")
    elif args.arch != "none":
        model.add_bridge(args.arch, n_heads=args.heads, head_dim=args.head_dim, seed=args.seed)
    return model, tokenizer


def resume(args):
    """(model, tokenizer, state) of the checkpoint in --out: its whole model, or --model with its blocks."""
    return load_checkpoint(args.out, lambda model_dir, bridge: load_model(model_dir or args.model, device=args.device,
                                                                          bridge=bridge))

def sampler(args):
    """The rollouts' sampler: the naive sample.sample, or with --fast bridgekit/fast.py's (the same tokens)."""
    if not args.fast:
        return sample
    from bridgekit import fast
    return fast.sample

# -----------------------------------------------------------------------------
# 1. data: sample with the base model, keep the right answers, group them


def sample_answers(model, tokenizer, problems, args):
    """OUT/data.jsonl: per problem, the ids of its prompt and of its right, finished answers.

    # Sampled once and stored, one line per problem tried, so a stopped run resumes its
    sampling where it stopped and --resume never samples again. Under torchrun the processes split
    each round of problems, and rank 0 writes every process's records in problem order.
    """
    path = Path(args.out) / "data.jsonl"
    done = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    for i, rec in enumerate(done):
        if rec["index"] != i or rec["question"] != problems[i].question:
            raise ValueError(f"{path} was sampled with other arguments (problem {i} differs); use another --out")
    model.use_bridge = False  # paper: the original model samples (fresh blocks are zero anyway)
    rank, world, _ = parallel.dist_env()
    progress = cli.progress(len(problems) - len(done), "sampling: problems")
    for start in range(len(done), len(problems), args.sample_batch * world):
        first = start + rank * args.sample_batch  # this process's block of the round
        records = sample_records(model, tokenizer, problems[first:first + args.sample_batch], first, args)
        records = [rec for part in parallel.all_gather(records) for rec in part]  # all blocks, in order
        if parallel.is_main():
            with open(path, "a") as f:
                f.writelines(json.dumps(rec) + "\n" for rec in records)
            progress(len(records))
    parallel.barrier()  # rank 0 has written them all
    model.use_bridge = True
    return [json.loads(line) for line in path.read_text().splitlines()]


def sample_records(model, tokenizer, batch, first, args):
    """The data.jsonl records of problems first, first + 1, ... (batch): their right answers.
    # choice: an answer counts only if it is right AND ended with EOS within --max-new-tokens (a cut
    answer would teach the blocks not to stop); identical right answers are all kept."""
    if not batch:
        return []
    ids = training.encode_problems(tokenizer, batch, args)
    gens = [torch.Generator(args.device).manual_seed(stable_seed("sft", args.seed, first + j))
            for j in range(len(batch))]
    with training.autocast(args):
        r = sampler(args)(model, ids, tokenizer.eos_ids, width=args.samples_per_problem,
                          max_new_tokens=args.max_new_tokens, temperature=args.temperature, generator=gens)
    answers, eos, k = r.completions(), set(tokenizer.eos_ids), args.samples_per_problem
    records = []
    for j, problem in enumerate(batch):
        mine = answers[j * k:(j + 1) * k]
        if problem.task in SET_TASKS:
            right = distinct_answers(mine, problem, tokenizer, eos)
        else:
            right = [a for a in mine if a and a[-1] in eos and reward(tokenizer.decode(a), problem) == 1]
        records.append(dict(index=first + j, question=problem.question, answer=problem.answer,
                            prompt=ids[j], right=right, tried=len(mine)))
    return records


def distinct_answers(answers, problem, tokenizer, eos):
    """A set-level problem's warm-up answers: finished, valid, and no two with the same number.

    # choice: the base model's answers are independent, so a group of them teaches a block nothing
    about its siblings; a group whose numbers are all different does (each row's number is one its
    siblings did not take). Each number is kept once, in sampling order, so any slice of the kept
    answers (make_groups) is a set of distinct numbers.
    """
    kept, taken = [], set()
    for a in answers:
        choice = set_choice(tokenizer.decode(a), problem) if a and a[-1] in eos else None
        if choice is not None and choice not in taken:
            taken.add(choice)
            kept.append(a)
    return kept


def make_groups(records, width):
    """(prompt ids, [answer ids, ...]) groups of 2..width right answers of one problem each.

    # choice: k right answers make ceil(k / width) groups of near-equal size (7 give 4 and 3, 5 give
    3 and 2); a leftover group of one answer is dropped (nobody to attend to). Bridge has no
    positional encoding along the group, so one block trains on every width from 2 to width."""
    groups = []
    for rec in records:
        k = len(rec["right"])
        if k < 2:
            continue  # paper: problems with at most one right answer are dropped
        n = math.ceil(k / width)
        sizes = [k // n + (i < k % n) for i in range(n)]  # near-equal, largest first
        start = 0
        for size in sizes:
            if size >= 2:
                groups.append((rec["prompt"], rec["right"][start:start + size]))
            start += size
    return groups


def data_summary(records, groups):
    """One line on the warm-up data: answers right of those tried, problems kept, groups by width."""
    right, tried = sum(len(r["right"]) for r in records), sum(r["tried"] for r in records)
    widths = dict(sorted(collections.Counter(len(answers) for _, answers in groups).items()))
    answers = sum(len(a) for _, a in groups)
    tokens = sum(len(a) for _, answers in groups for a in answers)
    return (f"data: {len(records)} problems tried x {records[0]['tried'] if records else 0} answers: "
            f"{right} right of {tried} ({100 * right / max(tried, 1):.1f}%); "
            f"{sum(len(r['right']) >= 2 for r in records)} problems kept (>= 2 right); {len(groups)} groups, by width "
            f"{widths}; {answers} answers, {tokens} answer tokens (mean {tokens / max(answers, 1):.1f})")

# -----------------------------------------------------------------------------
# 2. training: cross-entropy on the answers, new parameters only


def pad_groups(groups, eos_id, device):
    """Groups of one width -> prompt (B, P), prompt_alive, answer (N, S), answer_alive.
    # A group's answers are right-padded to the longest, the padding dead (`alive`) exactly as
    after EOS in sampling, so a short answer leaves its siblings' attention when it ends."""
    width = len(groups[0][1])
    assert all(len(a) == width for _, a in groups), "a micro-batch holds groups of one width"
    prompts, answers = [p for p, _ in groups], [a for _, group in groups for a in group]
    P, S = max(map(len, prompts)), max(map(len, answers))
    prompt = torch.tensor([[eos_id] * (P - len(p)) + p for p in prompts])               # (B, P), left-padded
    prompt_alive = torch.arange(P)[None, :] >= torch.tensor([P - len(p) for p in prompts])[:, None]
    answer = torch.tensor([a + [eos_id] * (S - len(a)) for a in answers])               # (N, S), right-padded
    answer_alive = torch.arange(S)[None, :] < torch.tensor([len(a) for a in answers])[:, None]
    return [t.to(device) for t in (prompt, prompt_alive, answer, answer_alive)], width


def step_groups(groups, step, per_step, seed):
    """The groups of `step`. # choice: a per-epoch shuffled stream of the groups (training.epoch_stream),
    --epochs passes by default."""
    return [g for _, g in training.epoch_stream(groups, step, per_step, seed, "sft-epoch")]


def train_step(model, optimizer, batch, eos_id, args):
    """One optimizer step on a list of groups; returns (mean token loss, answer tokens, grad norm).

    # choice: the loss is the mean over every answer token of the step (like GRPO's token mean), so
    each micro-batch (whole groups of one width) is divided by the step's count. Under torchrun each
    process runs its own share of the groups, and the gradients are summed over the processes.
    """
    total = sum(len(a) for _, answers in batch for a in answers)
    mine = sorted(parallel.my_share(batch), key=lambda g: len(g[1]))
    runs = [list(run) for _, run in itertools.groupby(mine, key=lambda g: len(g[1]))]  # one width each
    batches = [run[i:i + args.micro_groups] for run in runs for i in range(0, len(run), args.micro_groups)]
    loss_sum = 0.0
    optimizer.zero_grad(set_to_none=True)
    for groups, weight in parallel.step_passes(batches, model, filler=batches[0]):  # weight 0: a --shard filler pass
        (prompt, prompt_alive, answer, answer_alive), width = pad_groups(groups, eos_id, args.device)
        with training.autocast(args):
            logp = answer_logprobs(model, prompt, prompt_alive, answer, answer_alive, width)
        loss = -(logp * answer_alive).sum() / total  # this micro-batch's part of the step's token mean
        (loss * weight).backward()
        loss_sum += loss.item() if weight else 0.0
    params = [p for p in model.parameters() if p.requires_grad]
    grad_norm = parallel.finish_gradients(model, params, args.max_grad_norm)
    optimizer.step()
    return parallel.all_sum(loss_sum), total, grad_norm

# -----------------------------------------------------------------------------
# the run


FIELDS = [("loss", ".4f"), ("groups", "d"), ("tokens", "d"), ("grad_norm", ".3f"), ("tok_s", ".0f"),
          ("step_s", ".1f")]


def parse_args(argv=None):
    """The command line (train_args.parse_sft: the flags, their defaults and usage errors)."""
    return train_args.parse_sft(argv)


def main(argv=None):
    args = parse_args(argv)
    train_args.check_sft(args)
    with training.owned_run(args):  # one run per --out; released before a torchrun worker's immediate exit
        code = train(args)
    parallel.dist_exit(code)


def train(args):
    """The run of checked arguments: the data sampled, then the steps, a checkpoint every --save-every.
    Returns the exit code: 0, or 130 when Ctrl-C stopped it after a step."""
    parallel.dist_init(args)  # under torchrun: join the process group; else nothing
    training.start_run(args)
    first = 0
    if args.resume:
        model, tokenizer, state = resume(args)
        first = state["step"] + 1
    else:
        model, tokenizer = model_for_run(args)
    problems = training.train_problems(args, args.problems)
    training.check_rollouts_fit(model, tokenizer, problems[:args.sample_batch], args, width=args.samples_per_problem)
    records = sample_answers(model, tokenizer, problems, args)
    groups = make_groups(records, args.width)  # 1. data
    if parallel.is_main():
        print(data_summary(records, groups), file=sys.stderr)
    if not groups:
        raise ValueError(f"no problem had two right answers among {len(records)} tried: nothing to "
                         f"train on (try more --problems, an easier task, or more --shots)")
    if args.shard:  # FSDP2, after the sampling (which runs on the whole model)
        parallel.shard(model)
    optimizer = training.make_optimizer(model, "new", 0.0, args.lr_new)
    if args.resume:
        training.restore_optimizer(model, optimizer, state)
    if parallel.is_main():
        print(training.parameter_counts(model) + f" | arch {args.arch}", file=sys.stderr)
    # choice: a step never holds one group twice: with fewer groups than --groups-per-step, a step
    # takes all of them (rounded down to whole shares of the processes under torchrun)
    world = parallel.dist_env()[1]
    per_step = min(args.groups_per_step, len(groups) // world * world)
    if per_step == 0:
        raise ValueError(f"{len(groups)} groups cannot be shared by {world} processes: sample more --problems")
    if per_step < args.groups_per_step and parallel.is_main():
        print(f"only {len(groups)} groups: {per_step} per step instead of {args.groups_per_step}", file=sys.stderr)
    steps = args.steps or max(1, math.ceil(args.epochs * len(groups) / per_step))
    log = cli.StepLog(args.out, FIELDS, steps, first, main=parallel.is_main())
    with cli.GracefulStop() as stop:
        for step in range(first, steps):
            t0 = time.time()
            batch = step_groups(groups, step, per_step, args.seed)
            loss, tokens, grad_norm = train_step(model, optimizer, batch, tokenizer.eos_id, args)  # 2. training
            step_s = time.time() - t0
            log.write(dict(step=step, loss=loss, groups=len(batch), tokens=tokens,
                           len=tokens / sum(len(a) for _, a in batch), grad_norm=grad_norm,
                           tok_s=tokens / step_s, step_s=step_s))
            training.check_finite(step, dict(loss=loss, grad_norm=grad_norm), model, args.out)
            stopping = parallel.any_process(stop.requested)  # every process stops after the same step
            if (step + 1) % args.save_every == 0 or step + 1 == steps or stopping:
                training.save_checkpoint(args.out, model, optimizer, step, args, "new")
            if stopping:
                return 130
    if parallel.is_main():
        print(f"done: python sample.py --width {args.width} --bridge {args.out}/checkpoint/bridge.safetensors",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli.run(main)
