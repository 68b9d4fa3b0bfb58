"""
The speed-ups, beside the naive method files: what every command runs with --fast, each switched by
a keyword and tested to give the naive path's result (tests/scripts/test_03_fast.py).

Sampling: fast.sample(model, prompts_ids, eos_ids, **sample.sample's keywords) returns sample.sample's
Rollout (the same tokens, alive and log-probs), faster; with every speed-up off, exactly its result.
- packed=True: on CPU every nn.Linear multiplies by its weight packed once per call for oneDNN
  (packed_linears); F.linear's few-row products re-pack the weight every call. Equal up to rounding.
- drop_rows=True: rows no later step needs leave the batch (drop_finished_rows); every step still
  draws the numbers of all N rows, so nothing a kept row computes or draws changes.

With --fast, training samples its rollouts with fast.sample (train_sft.sampler); its log-probs have no
speed-up here: sample.answer_logprobs, the prompt once per group, is already the method's own path.
"""
import contextlib
import functools
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from sample import Rollout, prefill, record_step, sample_next, uniforms

# --- packed weights


@functools.cache
def packs(dtype):
    """Whether oneDNN packs linear weights of this dtype here: fp32 where PyTorch has the (internal)
    ops; bf16 only on a CPU with the instructions its bf16 kernel needs (AVX-512 or AVX-NE-CONVERT)."""
    if dtype not in (torch.float32, torch.bfloat16) or not hasattr(torch.ops.mkldnn, "_linear_pointwise") \
            or not torch.backends.mkldnn.is_available():
        return False
    try:
        torch.ops.mkldnn._reorder_linear_weight(torch.zeros(4, 4, dtype=dtype))
        return True
    except RuntimeError:
        return False


def packed_forward(linear):
    """A forward for one nn.Linear: in CPU inference, its product with a copy of its weight packed on
    first use (and again if the weight is replaced by another tensor); else F.linear, as under
    gradients, autocast and torch.compile (which packs weights its own way)."""
    packed = []  # [(the weight it was packed from, its pack)]

    def forward(x):
        w = linear.weight
        if (torch.is_grad_enabled() or torch.is_autocast_enabled("cpu") or torch.compiler.is_compiling()
                or x.device.type != "cpu" or x.dtype != w.dtype):
            return F.linear(x, w, linear.bias)
        if not packed or packed[0][0].data_ptr() != w.data_ptr():
            packed[:] = [(w.detach(), torch.ops.mkldnn._reorder_linear_weight(w.detach()))]
        return torch.ops.mkldnn._linear_pointwise(x, packed[0][1], linear.bias, "none", [], "")
    return forward


@contextlib.contextmanager
def packed_linears(model):
    """Inside this block, every nn.Linear of `model` with its weight on the CPU in a dtype that packs
    here multiplies by a packed copy of its weight (packed_forward, set on the module itself). The
    weights must not change inside: an optimizer step may change one without a sign on the tensor.
    At the end the packs (a second copy of the weights) are dropped and the modules are as before.
    Nested blocks leave the outer block's modules alone."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear) and "forward" not in m.__dict__
               and m.weight.device.type == "cpu" and packs(m.weight.dtype)]
    for m in linears:
        m.forward = packed_forward(m)
    try:
        yield
    finally:
        for m in linears:
            del m.forward

# --- finished rows leave the batch


@dataclass
class Batch:
    """The rows a decode step runs, as `slots` per group: which row each slot holds, and their cache."""
    rows: torch.Tensor   # (n,) the row (among all N) each slot holds, `slots` slots per group
    real: torch.Tensor   # (n,) bool: False for a group's padding slot (a copy of one of its rows)
    slots: int           # slots per group: the width until rows leave (drop_finished_rows)
    cache: object        # model.KVCache of the n slots


def group_slots(groups):
    """Rows kept per group -> (rows, real, w): every group that keeps a row gets w slots, w the most
    any group keeps, the extra ones copies of its first row (real False: dead, never read). Bridge
    has no order along the batch axis, so a group may sit in any slots (drop_finished_rows)."""
    w = max(map(len, groups), default=0)
    rows, real = [], []
    for g in groups:
        if g:
            rows += g + g[:1] * (w - len(g))
            real += [True] * len(g) + [False] * (w - len(g))
    return rows, real, w


def drop_finished_rows(batch, is_alive, finished, width):
    """The batch without the rows no later step needs, once that frees a quarter of its slots.

    A row is needed while the token it just got is alive (an EOS is still a key for its siblings
    at its own step) and its group has a row still writing. The kept rows are laid out by
    group_slots (padding slots are dead for the step: Bridge's mask leaves them out), so nothing a
    needed row computes changes.
    It waits until a quarter of the slots would go: each drop copies the cache, which costs about one
    decode step's attention.
    """
    rows, real, w = batch.rows.tolist(), batch.real.tolist(), batch.slots
    done = finished.view(-1, width).all(dim=1)                                      # (B,)
    needed = (is_alive & ~done.repeat_interleave(width)).tolist()                   # (N,)
    groups = [[r for r, ok in zip(rows[k:k + w], real[k:k + w]) if ok] for k in range(0, len(rows), w)]
    keep = [[r for r in g if needed[r]] for g in groups]
    new_rows, new_real, new_w = group_slots(keep)
    if new_w == 0 or len(new_rows) * 4 > len(rows) * 3:
        return batch
    slot = {r: i for i, (r, ok) in enumerate(zip(rows, real)) if ok}                 # row -> its slot now
    device = batch.rows.device
    take = torch.tensor([slot[r] for r in new_rows], device=device)
    return Batch(rows=torch.tensor(new_rows, device=device), real=torch.tensor(new_real, device=device),
                 slots=new_w, cache=batch.cache.select_rows(take))

# --- the sampler


@torch.no_grad()
def sample(model, prompts_ids, eos_ids, *, width=4, max_new_tokens=256, temperature=1.0, top_k=0,
           top_p=1.0, generator=None, ignore_eos=False, keep_logits=False, groups_per_prompt=1,
           path="siblings", packed=True, drop_rows=True):
    """sample.sample with the speed-ups of this file (see its docstring): the same Rollout.

    drop_rows: not with keep_logits (which records every row) nor on the crossed path (whose pairs
        of groups keep their slots).
    """
    with packed_linears(model) if packed else contextlib.nullcontext():
        device, pad = model.lm_head.weight.device, eos_ids[0]
        generator = torch.Generator(device).manual_seed(0) if generator is None else generator
        eos = torch.tensor(eos_ids, device=device)
        tokens, alive, logits, cache = prefill(model, prompts_ids, width * groups_per_prompt, max_new_tokens, pad)
        N = tokens.shape[0]
        batch = Batch(rows=torch.arange(N, device=device), real=torch.ones(N, dtype=torch.bool, device=device),
                      slots=width, cache=cache)
        drop_rows = drop_rows and not keep_logits and path != "crossed"
        finished = torch.zeros(N, dtype=torch.bool, device=device)
        steps, seen = [], []
        for i in range(max_new_tokens):
            # every step draws the numbers of all N rows; each slot takes its row's
            u = uniforms(N, generator, device)[batch.rows] if temperature > 0 else None      # (n, 1)
            picked, picked_logp = sample_next(logits, u, temperature, top_k, top_p)
            nxt = torch.full((N,), pad, dtype=torch.long, device=device)      # rows not in the batch: pad
            logp = torch.zeros(N, dtype=picked_logp.dtype, device=device)
            rows = batch.rows[batch.real]                                     # the real slots' rows
            nxt[rows], logp[rows] = picked[batch.real], picked_logp[batch.real]
            nxt, is_alive, finished = record_step(steps, seen, logits, nxt, logp, finished, pad,
                                                  None if ignore_eos else eos, keep_logits)
            if finished.all() or i == max_new_tokens - 1:
                break
            if drop_rows:
                batch = drop_finished_rows(batch, is_alive, finished, width)
            logits = model(nxt[batch.rows, None], width=batch.slots, alive=(is_alive[batch.rows] & batch.real)[:, None],
                          cache=batch.cache, path=path)[:, -1]
        return Rollout.from_steps(tokens, alive, steps, width, seen)

