"""
The SFT warm-up of the new blocks (the paper's optional warm-up before RLVR): teach a fresh Bridge (or P-Match) block,
on answers the base model already gives, to read its siblings before RL starts.

    python train_sft.py --arch bridge --out runs/sft_bridge
    python train_sft.py --arch pmatch --out runs/sft_pmatch
    python sample.py --width 4 --bridge runs/sft_bridge/checkpoint/bridge.safetensors
    torchrun --nproc_per_node 4 train_sft.py --device cuda --arch bridge --out runs/sft_bridge

1. Data (# paper): the base model samples --samples-per-problem answers (default 8, the paper's) to
   each of --problems training problems; wrong answers are dropped, and so are problems with at
   most one right answer. The right answers of one problem form one group.
2. Training (# paper): only the new parameters train (the base model is frozen, bit for bit), with
   cross-entropy on the answer tokens, EOS included, the prompt computed once per group.

Choices where the paper is silent:
- # choice: an answer counts only if it is right AND ended with EOS within --max-new-tokens (a cut
  answer would teach the blocks not to stop). Identical right answers are all kept.
  For the set-level task `distinct` (no right answer alone), "right" means finished, valid, and a
  number no earlier kept answer of the problem has (distinct_answers): each group is a set.
- # choice: groups of unequal size become widths like this: a problem with k right answers makes
  ceil(k / W) groups of near-equal size, W = --width (the GRPO width, default 4), so 7 right
  answers give groups of 4 and 3, and 5 give 3 and 2; a leftover group of one answer is dropped
  (there is nobody to attend to). Bridge has no positional encoding along the group, so one block
  trains on every width from 2 to W; a micro-batch holds groups of one width only.
- # choice: answers in a group are right-padded to the longest; the padding is dead (`alive`),
  exactly as after EOS in sampling, so a short answer leaves its siblings' attention when it ends.
- # choice: the loss is the mean over every answer token of the step (like GRPO's token mean);
  groups are drawn in a per-epoch shuffled order seeded by (seed, epoch); --epochs passes by default.
- # choice: sampling happens once and is stored in OUT/data.jsonl, one line per problem tried, so a
  stopped run resumes its sampling where it stopped and --resume never samples again.

Several processes (torchrun; parallel.py has the plumbing), the same algorithm:
- # choice: sampling is split by problem. Each round of --sample-batch x N problems gives rank r
  the block of --sample-batch problems starting at r x --sample-batch; problem i samples with its
  own generator seeded by stable_seed("sft", seed, i), never by the rank, so the data do not
  depend on N (up to floating point). Rank 0 gathers the records and writes data.jsonl in problem
  order; then every process reads the whole file, so every process knows every group.
- # choice: training is split by group. --groups-per-step must be a multiple of N (a one-line
  error otherwise); every process draws the same groups of the step and takes its contiguous
  share of them, whole groups only. The token mean divides by the answer tokens of the whole
  step (every process knows the whole step, so no count is exchanged), and the gradients are
  summed over the processes (parallel.all_reduce_grads): the one-process gradient.
- Only rank 0 prints, writes log.jsonl and checkpoints; --resume loads on every process.
"""
import json
import math
import sys
import time
from pathlib import Path

import torch

import cli
import parallel
import training
from checkpoint import load_checkpoint
from model import load_model
from fast import sample  # the speed-ups of fast.py; the same tokens as sample.sample
from tasks import SET_TASKS, file_problems, make_problems, reward, set_choice, stable_seed

# -----------------------------------------------------------------------------
# 1. data: sample with the base model, keep the right answers, group them


def sample_answers(model, tokenizer, problems, args):
    """OUT/data.jsonl: per problem, the ids of its prompt and of its right, finished answers.

    Resumable: problems already in the file are not sampled again. Under torchrun the processes
    split each round of problems, and rank 0 writes every process's records in problem order.
    """
    path = Path(args.out) / "data.jsonl"
    done = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    for i, rec in enumerate(done):
        if rec["index"] != i or rec["question"] != problems[i].question:
            raise ValueError(f"{path} was sampled with other arguments (problem {i} differs); use another --out")
    model.use_bridge = False  # paper: the original model samples (fresh blocks are zero anyway)
    t0 = time.time()
    rank, world, _ = parallel.dist_env()
    for start in range(len(done), len(problems), args.sample_batch * world):
        first = start + rank * args.sample_batch  # this process's block of the round
        records = sample_records(model, tokenizer, problems[first:first + args.sample_batch], first, args)
        records = [rec for part in parallel.all_gather(records) for rec in part]  # all blocks, in order
        if not parallel.is_main():
            continue
        with open(path, "a") as f:
            for rec in records:
                f.write(json.dumps(rec) + "\n")
        n = min(start + args.sample_batch * world, len(problems))
        elapsed = time.time() - t0
        eta = elapsed / (n - len(done)) * (len(problems) - n)
        print(f"sampling: {n}/{len(problems)} problems | elapsed {cli.hms(elapsed)} | eta {cli.hms(eta)}",
              file=sys.stderr, flush=True)
    parallel.barrier()  # rank 0 has written them all
    model.use_bridge = True
    return [json.loads(line) for line in path.read_text().splitlines()]


def sample_records(model, tokenizer, batch, first, args):
    """The data.jsonl records of problems first, first + 1, ... (batch): their right answers."""
    if not batch:
        return []
    ids = training.encode_problems(tokenizer, batch, args)
    gens = [torch.Generator(args.device).manual_seed(stable_seed("sft", args.seed, first + j))
            for j in range(len(batch))]
    with training.autocast(args):
        r = sample(model, ids, tokenizer.eos_ids, width=args.samples_per_problem,
                   max_new_tokens=args.max_new_tokens, temperature=args.temperature, generator=gens,
                   compile=args.compile)
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
    """(prompt ids, [answer ids, ...]) groups of 2..width right answers of one problem each."""
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
    right = [len(r["right"]) for r in records]
    kept = sum(k >= 2 for k in right)
    widths = {}
    for _, answers in groups:
        widths[len(answers)] = widths.get(len(answers), 0) + 1
    tokens = sum(len(a) for _, answers in groups for a in answers)
    tried = sum(r["tried"] for r in records)
    return (f"data: {len(records)} problems tried x {records[0]['tried'] if records else 0} answers: "
            f"{sum(right)} right of {tried} ({100 * sum(right) / max(tried, 1):.1f}%); "
            f"{kept} problems kept (>= 2 right); {len(groups)} groups, by width "
            f"{dict(sorted(widths.items()))}; {sum(len(a) for _, a in groups)} answers, {tokens} answer "
            f"tokens (mean {tokens / max(sum(len(a) for _, a in groups), 1):.1f})")

# -----------------------------------------------------------------------------
# 2. training: cross-entropy on the answers, new parameters only


def pad_groups(groups, eos_id, device):
    """Groups of one width -> prompt (B, P), prompt_alive, answer (N, S), answer_alive."""
    width = len(groups[0][1])
    assert all(len(a) == width for _, a in groups), "a micro-batch holds groups of one width"
    P = max(len(p) for p, _ in groups)
    S = max(len(a) for _, answers in groups for a in answers)
    B, N = len(groups), len(groups) * width
    prompt = torch.full((B, P), eos_id, dtype=torch.long)
    prompt_alive = torch.zeros(B, P, dtype=torch.bool)
    answer = torch.full((N, S), eos_id, dtype=torch.long)
    answer_alive = torch.zeros(N, S, dtype=torch.bool)
    for g, (p, answers) in enumerate(groups):
        prompt[g, P - len(p):] = torch.tensor(p)     # left padding, as the sampler
        prompt_alive[g, P - len(p):] = True
        for i, a in enumerate(answers):
            answer[g * width + i, :len(a)] = torch.tensor(a)   # right padding = dead, as after EOS
            answer_alive[g * width + i, :len(a)] = True
    return [t.to(device) for t in (prompt, prompt_alive, answer, answer_alive)], width


def step_groups(groups, step, per_step, seed):
    """The groups of `step`: the per-epoch shuffled stream of groups (training.epoch_stream)."""
    return [g for _, g in training.epoch_stream(groups, step, per_step, seed, "sft-epoch")]


def train_step(model, optimizer, batch, eos_id, args):
    """One optimizer step on a list of groups; returns (mean token loss, answer tokens, grad norm).

    Under torchrun each process runs its own share of the groups; `total` counts the answer tokens
    of the whole batch, and the gradients are summed over the processes before the clip.
    """
    total = sum(len(a) for _, answers in batch for a in answers)
    batch = sorted(parallel.my_share(batch), key=lambda g: len(g[1]))  # micro-batches of whole groups of one width
    optimizer.zero_grad(set_to_none=True)
    loss_sum, chunks, i = 0.0, [], 0
    while i < len(batch):
        j = i
        while j < len(batch) and j - i < args.micro_groups and len(batch[j][1]) == len(batch[i][1]):
            j += 1
        chunks.append(batch[i:j])
        i = j
    sharded = parallel.is_sharded(model)
    chunks = parallel.equal_passes(chunks, chunks[0], sharded)  # --shard: zero-weight repeats
    scale = parallel.dist_env()[1] if sharded else 1  # FSDP2 averages the gradients; we sum them
    for groups, keep in chunks:
        (prompt, prompt_alive, answer, answer_alive), width = pad_groups(groups, eos_id, args.device)
        with training.autocast(args):
            logp = training.answer_logprobs(model, prompt, prompt_alive, answer, answer_alive, width)
        loss = -(logp * answer_alive).sum() / total * keep  # this micro-batch's part of the step's token mean
        (loss * scale).backward()
        loss_sum += loss.item()
    params = [p for p in model.parameters() if p.requires_grad]
    if not sharded:
        parallel.all_reduce_grads(params)  # the sum over processes = the one-process gradient
    grad_norm = parallel.full_value(torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm))
    optimizer.step()
    return parallel.all_sum(loss_sum), total, grad_norm

# -----------------------------------------------------------------------------
# command line


FIELDS = [("loss", ".4f"), ("groups", "d"), ("tokens", "d"), ("grad_norm", ".3f"), ("tok_s", ".0f"),
          ("step_s", ".1f")]


def parse_args(argv=None):
    p = cli.Parser(prog="train_sft.py", description="SFT warm-up of new Bridge / P-Match blocks on the base model's right answers.")
    training.common_args(p, width=4, lr_new=5e-4)
    p.add_argument("--problems", type=int, default=256, help="training problems to sample answers for (default 256)")
    p.add_argument("--samples-per-problem", type=int, default=8, help="answers sampled per problem (default 8, the paper's)")
    p.add_argument("--sample-batch", type=int, default=8, help="problems per sampling forward (default 8)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the data (default 1.0)")
    p.add_argument("--groups-per-step", type=int, default=8, help="groups per optimizer step (default 8)")
    p.add_argument("--epochs", type=float, default=2.0, help="passes over the groups when --steps is not given (default 2)")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient norm clip (default 1.0)")
    return training.parse_problem_source(p, argv)


def check_args(args):
    training.check_common(args)
    if args.arch == "none":
        raise ValueError("--arch none has nothing to warm up: the SFT warm-up trains new blocks only")
    if args.width < 2:
        raise ValueError(f"--width must be >= 2 (a group of one answer has no sibling), got {args.width}")
    for name in ("problems", "samples_per_problem", "sample_batch", "groups_per_step"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    training.check_positive(args, "epochs")
    if args.samples_per_problem < 2:
        raise ValueError("--samples-per-problem must be >= 2 (problems need two right answers)")
    parallel.check_shares(args.groups_per_step, "--groups-per-step")


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    parallel.dist_init(args)  # under torchrun: join the process group; else nothing
    training.start_run(args)
    first = 0
    if args.resume:
        model, tokenizer, state = load_checkpoint(
            args.out, lambda _, bridge: load_model(args.model, device=args.device, bridge=bridge))
        first = state["step"] + 1
    else:
        model, tokenizer = training.build_model(args)
    if args.data is not None:
        problems = file_problems(args.data, args.problems)
    else:
        problems = make_problems(args.task, args.problems, seed=args.seed, split="train", **training.task_knobs(args))
    records = sample_answers(model, tokenizer, problems, args)
    groups = make_groups(records, args.width)
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
            loss, tokens, grad_norm = train_step(model, optimizer, batch, tokenizer.eos_id, args)
            step_s = time.time() - t0
            log.write(dict(step=step, loss=loss, groups=len(batch), tokens=tokens,
                           len=tokens / sum(len(a) for _, a in batch), grad_norm=grad_norm,
                           tok_s=tokens / step_s, step_s=step_s))
            stopping = parallel.any_process(stop.requested)  # every process stops after the same step
            if (step + 1) % args.save_every == 0 or step + 1 == steps or stopping:
                training.save_checkpoint(args.out, model, optimizer, step, args, "new")
            if stopping:
                parallel.dist_exit(130)
    if parallel.is_main():
        print(f"done: python sample.py --width {args.width} --bridge {args.out}/checkpoint/bridge.safetensors",
              file=sys.stderr)
    parallel.dist_exit()


if __name__ == "__main__":
    cli.run(main)
