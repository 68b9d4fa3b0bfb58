"""
Several processes (`torchrun --nproc_per_node N train_grpo.py ...`, the same for train_sft.py):
every process holds a full replica of the model and takes a contiguous share of the step's prompts
(or SFT groups), whole groups only; after its backward passes the gradients are summed over the
processes (all_reduce_grads), so every replica takes the same optimizer step. Without torchrun
none of this runs: no process group, no wrapper, and the helpers return their input.

With --shard (FSDP2, `shard`) no process holds a whole replica: parameters, gradients and AdamW
state are split over the processes, a decoder layer's weights gathered only while it runs.
The groups still stay whole on one process, and the step is the same algorithm (tests/scripts/test_07_shard.py).

What a training step's processes must agree on is here, so that the scripts read as one process:
GRPO's whole step in one call (step: the step's count, equal passes and FSDP2's scale, the summed and
clipped gradient, every micro-batch's numbers), the SFT step's parts (step_passes, finish_gradients,
all_sum) and the checkpoint (whole, load_optimizer).
"""
import os
import sys
from contextlib import contextmanager
from datetime import timedelta

import torch


def dist_env():
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without torchrun."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def dist_init(args):
    """Join torchrun's process group and return (rank, world size); without torchrun, (0, 1) and
    nothing else happens (no process group).

    NCCL on CUDA, one GPU per process (--device cuda becomes cuda:LOCAL_RANK); gloo on
    CPU. The rendezvous (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE) is torchrun's environment.
    The replicas start equal without a broadcast: the weights are read from the same files and
    new blocks are initialised from --seed.
    A collective waits up to an hour (torch's default is 10 minutes for NCCL), since a
    process waits there for the slowest rollout of the step and for rank 0's checkpoint.
    """
    rank, world, local = dist_env()
    if world == 1:
        return 0, 1
    import torch.distributed as dist
    cuda = args.device.startswith("cuda")
    if cuda:
        args.device = f"cuda:{local}"
        torch.cuda.set_device(args.device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(hours=1),
                                device_id=torch.device(args.device) if cuda else None)
    return rank, world


def distributed():
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def dist_exit(code=0):
    """End a torchrun worker: leave the process group all together, then exit with `code` at once.

    Without torchrun it only exits when code is non-zero (a stopped run), and otherwise returns.
    The barrier: a process that finished first would tear gloo down while another still works
    (rank 0 writing files). The immediate exit (os._exit, after flushing): gloo can still abort a
    finished run in the interpreter's own teardown ("terminate called without an active
    exception", exit code -6, seen in about one 2-process test run in a few hundred), so a worker
    whose work is done and written does not go through that teardown.
    """
    if distributed():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code:
        sys.exit(code)


def is_main():
    """The process that prints the step log and writes files: rank 0, or the only process."""
    return dist_env()[0] == 0


def barrier():
    if distributed():
        torch.distributed.barrier()


def check_shares(n, flag):
    """One-line error unless the n prompts (or groups) of a step split evenly over the processes."""
    world = dist_env()[1]
    if n % world:
        raise ValueError(f"{flag} {n} does not split into whole groups over {world} processes: "
                         f"use a multiple of {world}")


def my_share(items):
    """This process's share of a step's prompts or groups: rank r of N takes the contiguous block
    [r * n/N, (r + 1) * n/N), whole items (groups) only. The items keep their global indices."""
    rank, world, _ = dist_env()
    per, rest = divmod(len(items), world)
    assert rest == 0, f"{len(items)} groups do not split evenly over {world} processes"
    return items[rank * per:(rank + 1) * per]


def all_gather(obj):
    """[obj of rank 0, obj of rank 1, ...], the same list on every process; [obj] alone without
    torchrun. For the small per-step numbers (counts, rewards, prompt indices), not for gradients."""
    if not distributed():
        return [obj]
    out = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(out, obj)
    return out


def all_sum(x):
    """A number summed over the processes (in rank order); x itself without torchrun."""
    return sum(all_gather(x)) if distributed() else x


def any_process(flag):
    """True on every process if it is True on any (e.g. Ctrl-C seen by one): all stop together."""
    return bool(all_sum(int(flag))) if distributed() else flag


def gather_rows(t):
    """The rows of t from every process, concatenated in rank order (t itself without torchrun)."""
    if not distributed():
        return t
    return torch.cat([x.to(t.device) for x in all_gather(t.cpu())])


def all_reduce_grads(params):
    """Sum every parameter's gradient over the processes, in place.

    Each process divides its micro-batch losses by the count of the whole step (all processes),
    so the sum is exactly the one-process gradient. A process that ran no micro-batch (all its
    groups without signal) adds zeros; every process must call this, or the others wait forever.
    (A parameter that no process's forward reaches would get zeros where one process leaves None,
    which AdamW treats differently; every trainable parameter of these models is reached.)
    One plain all-reduce per tensor after the backward passes rather than
    DistributedDataParallel: the same sum without a wrapper, and processes may run different
    numbers of micro-batches (DDP expects the same forwards on every process). What it gives up is
    DDP's overlap of the communication with the backward pass.
    """
    if not distributed():
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        torch.distributed.all_reduce(p.grad)  # SUM



# -----------------------------------------------------------------------------
# --shard: FSDP2 (torch.distributed.fsdp.fully_shard)


def check_shard(shard):
    """One-line error for --shard without torchrun (nothing to shard over); before the model loads."""
    if shard and dist_env()[1] < 2:
        raise ValueError("--shard splits the model over the processes of torchrun: "
                         "run it as torchrun --nproc_per_node N (N >= 2) ... --shard")


def shard(model):
    """Shard the model's parameters (and so its gradients and AdamW state) over the processes.

    One FSDP unit per decoder layer, the layer's Bridge/P-Match block inside it (the block
    runs right after that layer's MLP, so its weights arrive with the layer's), then the rest
    (embeddings, final norm, head) as the root unit. Without a process group: returned unchanged.
    """
    if not distributed():
        return model
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method
    for layer in model.model.layers:
        fully_shard(layer, reshard_after_forward=True)
    # the root unit (embeddings, final norm, head) stays gathered from forward to backward: training
    # calls model.hidden() and then lm_head, so the head must still be whole after hidden()
    fully_shard(model, reshard_after_forward=False)
    register_fsdp_forward_method(model, "hidden")  # hook hidden() like forward()
    return model


def is_sharded(model):
    from torch.distributed.fsdp import FSDPModule
    return isinstance(model, FSDPModule)


@contextmanager
def gathered(model):
    """The whole sharded model gathered on every process for the block inside (sampling).

    Sampling runs one forward per generated token, and each process's groups end at
    different steps, so the processes run different numbers of forwards: a forward may not
    all-gather. Gathering every layer once before the rollout (and splitting them again after)
    makes each forward local. The rollout then holds the full weights (no gradients, no optimizer
    state: the parts that dominate training memory stay split). A model that is not sharded: nothing.
    """
    if not is_sharded(model):
        yield model
        return
    from torch.distributed.fsdp import FSDPModule
    layers = [m for m in model.modules() if isinstance(m, FSDPModule) and m is not model]
    for m in layers:
        m.set_reshard_after_forward(False)
    for m in [model, *layers]:
        m.unshard()
    try:
        yield model
    finally:
        for m in [model, *layers]:
            m.reshard()
        for m in layers:
            m.set_reshard_after_forward(True)  # as shard() made them


def step_passes(batches, model, filler):
    """This process's micro-batches of a step as [(batch, weight)]: its loss's backward is multiplied
    by the weight. Alone or with replicas: every batch, weight 1. Under --shard every forward and
    backward all-gathers and reduce-scatters, so every process makes as many passes as the busiest,
    repeating `filler` with weight 0 (which adds exactly nothing), and a real pass weighs the number
    of processes: FSDP2 averages the gradients over the processes where all_reduce_grads sums them."""
    if not is_sharded(model):
        return [(batch, 1) for batch in batches]
    world = dist_env()[1]
    passes = [(batch, world) for batch in batches]
    return passes + [(filler, 0)] * (max(all_gather(len(passes))) - len(passes))


def finish_gradients(model, params, max_norm):
    """The step's gradient: summed over the processes (replicas; FSDP2 has reduced its shards
    already), then clipped to norm max_norm. Returns the whole gradient's norm before the clip."""
    if not is_sharded(model):
        all_reduce_grads(params)  # the sum over processes = the one-process gradient
    return full_value(torch.nn.utils.clip_grad_norm_(params, max_norm))


def step(model, optimizer, batches, loss_of, count, max_norm, filler):
    """One optimizer step from this process's micro-batches (row slices), the same step on every process.

    loss_of(rows) -> (loss, the count it is a mean over, its numbers). Each micro-batch's loss is
    weighted by its count's share of the whole step's (`count`, this process's, summed over the
    processes), so the weighted losses sum to the step's loss; one backward each (under --shard,
    as many passes as the busiest process, step_passes); then the gradient summed over the processes
    and clipped to max_norm, and one optimizer step unless no process had a micro-batch.
    Returns (the gradient's norm before the clip, [(rows, share, numbers with the loss)] of every
    micro-batch of every process, in rank order).
    """
    total = all_sum(count)
    optimizer.zero_grad(set_to_none=True)
    mine = []
    for rows, weight in step_passes(batches, model, filler):
        loss, n, numbers = loss_of(rows)
        share = n / total
        (loss * share * weight).backward()
        if weight:
            mine.append((rows, share, dict(numbers, loss=loss.item())))
    parts = [part for process in all_gather(mine) for part in process]
    if not parts:
        return 0.0, parts
    grad_norm = finish_gradients(model, [p for p in model.parameters() if p.requires_grad], max_norm)
    optimizer.step()
    return grad_norm, parts


def full_states(model, optimizer):
    """(model state, optimizer state) gathered whole, on the CPU; every process must call it.

    The optimizer state is keyed by parameter name (torch.distributed.checkpoint's full layout),
    which loads into a sharded or an unsharded model alike (load_optimizer).
    """
    from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                         get_optimizer_state_dict)
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=options), get_optimizer_state_dict(model, optimizer, options=options)


def full_value(x):
    """A 0-d tensor's number; a sharded one (DTensor, e.g. the gradient norm under --shard) whole first."""
    return (x.full_tensor() if hasattr(x, "full_tensor") else x).item()


class Gathered:
    """What a checkpoint reads of a sharded model: its config, its blocks and its whole state."""

    def __init__(self, model, state):
        self.config, self.bridge_config, self.source, self._state = model.config, model.bridge_config, model.source, state

    def state_dict(self):
        return self._state


def whole(model, optimizer):
    """(model, optimizer, optimizer state) as checkpoint.write_checkpoint takes them; every process
    must call it. A sharded model is gathered whole (Gathered), and its optimizer state is keyed by
    parameter name (full_states), a layout that resumes with or without --shard; any other model
    and its optimizer are returned as they are (the state None: the optimizer's own)."""
    if not is_sharded(model):
        return model, optimizer, None
    state, optimizer_state = full_states(model, optimizer)
    return Gathered(model, state), None, optimizer_state


def load_optimizer(model, optimizer, state):
    """Load a checkpoint's optimizer state in the layout it was written in (whole): by parameter name,
    into a sharded or an unsharded model, or the optimizer's own, which only an unsharded one takes."""
    if state.get("optimizer_layout") == "by name":
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
        set_optimizer_state_dict(model, optimizer, state["optimizer"], options=StateDictOptions(full_state_dict=True))
    elif is_sharded(model):
        raise ValueError("this checkpoint was written without --shard: resume it without --shard")
    else:
        optimizer.load_state_dict(state["optimizer"])
