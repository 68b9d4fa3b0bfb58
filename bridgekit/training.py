"""
What the two training scripts (train_sft.py, train_grpo.py) share beside the model: micro-batches of
whole groups, the training problems, what trains and the optimizer, a run's checkpoints and the
order of the training data. Their flags and argument checks are in train_args.py, the checkpoint
format in checkpoint.py, the run directory's lock and checks in run_dir.py, the step log and Ctrl-C
in cli.py, what several processes (torchrun) must agree on in parallel.py. The log-prob forward is
sample.py's (answer_logprobs), the model set-up train_sft.py's (model_for_run).
"""
import math
import random
from contextlib import contextmanager, nullcontext

import torch

from bridgekit import checks, parallel
from bridgekit.checkpoint import checkpoint_dir, write_checkpoint
from bridgekit.run_dir import check_run_dir, run_lock, write_args
from bridgekit.tasks import DEFAULT_DIFFICULTY, file_problems, make_problems, prompt_ids, question_count, stable_seed


# -----------------------------------------------------------------------------
# micro-batches of whole groups


def split_rollout(rollout, rows):
    """The prompt (one row per group) and the answers of rows `rows` (a slice of whole groups).

    The answers end at the last position any of these rows is alive: the columns after it hold only
    padding (the batch ran on for longer rows elsewhere), and leaving them out changes no log-prob."""
    W, P = rollout.width, rollout.prompt_len
    assert rows.start % W == 0 and rows.stop % W == 0, "a micro-batch must hold whole groups"
    alive = rollout.alive[rows, P:]
    S = int(alive.any(0).nonzero().max()) + 1 if alive.any() else 1
    return (rollout.tokens[rows.start:rows.stop:W, :P], rollout.alive[rows.start:rows.stop:W, :P],
            rollout.tokens[rows, P:P + S], alive[:, :S])


def micro_batches(group_ids, groups_per_batch, width):
    """Row slices of whole groups: [(rows of groups g0..g1), ...] for consecutive groups in group_ids.

    group_ids must be sorted; consecutive runs are cut into batches of at most groups_per_batch.
    # choice: groups are never split (Bridge couples a group's rows), never sorted by length.
    """
    out, batch = [], []
    for g in group_ids:
        if batch and (g != batch[-1] + 1 or len(batch) == groups_per_batch):
            out.append(slice(batch[0] * width, (batch[-1] + 1) * width))
            batch = []
        batch.append(g)
    if batch:
        out.append(slice(batch[0] * width, (batch[-1] + 1) * width))
    return out


def autocast(args):
    """bf16 autocast (matrix products in bf16, master weights and the loss in fp32), or nothing."""
    if args.dtype == "bf16":
        return torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16)
    return nullcontext()


def task_difficulty(args):
    """The task's difficulty (make_problems' keywords): DEFAULT_DIFFICULTY for the task, with --hi on top."""
    difficulty = dict(DEFAULT_DIFFICULTY.get(args.task, {}))
    if args.hi is not None:
        difficulty["hi"] = args.hi
    return difficulty


def train_problems(args, n):
    """The first n problems of --data (all with None), or n problems of --task's train split."""
    if args.data is not None:
        return file_problems(args.data, n)
    return make_problems(args.task, n, seed=args.seed, split="train", **task_difficulty(args))


def training_pool(args):
    """The training problems cycled through: --pool of them, or all of the train split up to 2000
    (with --data: the file's first --pool problems, or all of them)."""
    n = args.pool or (None if args.data else min(2000, question_count(args.task, "train", **task_difficulty(args))))
    pool = train_problems(args, n)
    if len(pool) < args.prompts_per_step:
        what = f"--data {args.data}: {len(pool)} problems" if args.data else f"task {args.task!r} has only {len(pool)} training questions"
        raise ValueError(f"{what}, fewer than --prompts-per-step")
    return pool


def encode_problems(tokenizer, problems, args):
    """Each problem's prompt as training asks it (tasks.prompt_ids, with --shots and --system)."""
    return [prompt_ids(tokenizer, p, shots=args.shots, system=args.system) for p in problems]

def check_rollouts_fit(model, tokenizer, problems, args, *, width, groups=1):
    """Before the first rollout: a sample() call on these problems (a step's) can run and fits in
    memory (checks.check_sample_call), a one-line error otherwise."""
    checks.check_sample_call(model, encode_problems(tokenizer, problems, args), width=width, groups_per_prompt=groups,
                             max_new_tokens=args.max_new_tokens, temperature=args.temperature)

# -----------------------------------------------------------------------------
# what trains, the optimizer


def make_optimizer(model, train, lr, lr_new):
    """AdamW over what trains: 'new' = the blocks only (the rest frozen), 'all' = everything."""
    new = list(model.bridge_parameters())
    new_ids = {id(p) for p in new}
    base = [p for p in model.parameters() if id(p) not in new_ids]
    for p in base:
        p.requires_grad_(train == "all")
    groups = [dict(params=new, lr=lr_new)] if new else []
    if train == "all":
        groups.insert(0, dict(params=base, lr=lr))
    # choice: no weight decay (the blocks start at zero and should stay small unless useful).
    # PyTorch's fused AdamW kernel where it runs (the same update in one pass over each
    # tensor instead of a loop of small ops per tensor; it also runs on FSDP2's shards)
    fused = True if {p.device.type for p in model.parameters()} <= {"cpu", "cuda"} else None
    return torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=0.0, fused=fused)


def parameter_counts(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"training {trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%)"

# -----------------------------------------------------------------------------
# the run directory: OUT/args.json and OUT/checkpoint/ (run_dir.py's and checkpoint.py's)


@contextmanager
def owned_run(args):
    """OUT held by this run while the body runs (run_dir.run_lock, by the main process), the run
    directory checked again under the lock: a run that ended between the first check and the lock
    is not overwritten."""
    if not parallel.is_main():
        yield
        return
    with run_lock(args.out):
        check_run_dir(args)
        yield


def check_finite(step, numbers, model, out):
    """Stop the run with a one-line ValueError when a step left a non-finite loss, gradient norm or
    trainable weight: a blown-up run would otherwise go on, and save, as if it were training. Called
    before the step's checkpoint is written, so the last one on disk is the last good state."""
    bad = [f"{name} {value}" for name, value in numbers.items() if not math.isfinite(value)]
    local = next((name for name, p in model.named_parameters() if p.requires_grad
                  and not torch.isfinite(p.to_local() if hasattr(p, "to_local") else p).all()), None)
    if parallel.any_process(local is not None):  # (a --shard process checks its own shard)
        bad.append(f"weight {local or '(on another process)'}")
    if bad:
        ckpt = checkpoint_dir(out)
        kept = f"the last good checkpoint, {ckpt}, is kept" if ckpt else "no checkpoint was written"
        raise ValueError(f"step {step + 1}: non-finite {', '.join(bad)}; training stopped, {kept} "
                         "(a lower learning rate may help)")


def start_run(args):
    """OUT/args.json, written by the main process."""
    if parallel.is_main():
        write_args(args.out, args)


def save_checkpoint(out, model, optimizer, step, args, train):
    """OUT/checkpoint/, written by the main process; the others wait until it is complete, so that
    none moves on or exits (e.g. after Ctrl-C) while it is being written."""
    model, optimizer, optimizer_state = parallel.whole(model, optimizer)  # every process takes part
    if parallel.is_main():
        write_checkpoint(out, model, optimizer, step, args, train, optimizer_state=optimizer_state)
    parallel.barrier()


def restore_optimizer(model, optimizer, state):
    """Load a checkpoint's optimizer state (either layout, parallel.load_optimizer) and keep this
    run's AdamW kernel, whichever kernel wrote it."""
    kernels = [(g["fused"], g["foreach"]) for g in optimizer.param_groups]
    parallel.load_optimizer(model, optimizer, state)
    for g, (fused, foreach) in zip(optimizer.param_groups, kernels):
        g["fused"], g["foreach"] = fused, foreach
        for p in g["params"] if fused else ():  # the fused kernel keeps its step count beside the weights
            if "step" in optimizer.state.get(p, {}):
                optimizer.state[p]["step"] = optimizer.state[p]["step"].to(p.device, torch.float32)

# -----------------------------------------------------------------------------
# the order of the training data


def epoch_stream(items, step, per_step, seed, name):
    """The items of `step`: positions step*per_step .. (step+1)*per_step - 1 of a stream that goes
    through `items` once per epoch, in an order shuffled with seed (name, seed, epoch).
    Returns [(position in the stream, item)]: a step depends only on (seed, step), never on state."""
    out = []
    for i in range(step * per_step, (step + 1) * per_step):
        epoch, pos = divmod(i, len(items))
        order = list(range(len(items)))
        random.Random(stable_seed(name, seed, epoch)).shuffle(order)
        out.append((i, items[order[pos]]))
    return out
