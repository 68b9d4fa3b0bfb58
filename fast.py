"""
The speed-ups, beside the naive method files: each switched by a keyword and tested to give the
naive path's result (tests/test_fast.py).

Sampling: fast.sample(model, prompts_ids, eos_ids, **sample.sample's keywords) returns sample.sample's
Rollout (the same tokens, alive and log-probs), faster; with every speed-up off, exactly its result.
- packed=True: on CPU every nn.Linear multiplies by its weight packed once per call for oneDNN
  (packed_linears); F.linear's few-row products re-pack the weight every call. Equal up to rounding.
- drop_rows=True: rows no later step needs leave the batch (drop_finished_rows); every step still
  draws the numbers of all N rows, so nothing a kept row computes or draws changes.

Training: fast.answer_logprobs takes training.answer_logprobs's arguments and gives its log-probs and
gradients (tests/test_fast_training.py), the answers run in pieces that leave out the padding after
each row's EOS (answers_in_pieces). The training scripts run it unless --reference.
"""
import contextlib
import functools
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

import cli
import parallel
import training
from sample import Rollout, check_sampling, prefill, sample_next, uniforms

# sampling

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
    has no order along the batch axis, so a group may sit in any slots. The sampler's batch
    (drop_finished_rows) and training's answers (answers_in_pieces) are laid out by it."""
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
    # choice: wait until a quarter of the slots would go: each drop copies the cache, which costs
    # about one decode step's attention
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
    check_sampling(temperature, top_k, top_p)
    generator = cli.check_sample_call(model, prompts_ids, width, max_new_tokens, groups_per_prompt, generator,
                                      path, keep_logits)
    with packed_linears(model) if packed else contextlib.nullcontext():
        device, pad = model.lm_head.weight.device, eos_ids[0]
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
            is_alive = ~finished
            nxt, logp = nxt.where(is_alive, pad), logp.where(is_alive, 0.0)
            steps.append((nxt, is_alive, logp))
            if keep_logits:
                seen.append(logits if logits.dtype == torch.float64 else logits.float())
            if not ignore_eos:
                finished = finished | torch.isin(nxt, eos)
            if finished.all() or i == max_new_tokens - 1:
                break
            if drop_rows:
                batch = drop_finished_rows(batch, is_alive, finished, width)
            logits = model(nxt[batch.rows, None], width=batch.slots, alive=(is_alive[batch.rows] & batch.real)[:, None],
                          cache=batch.cache, path=path)[:, -1]
        return Rollout.from_steps(tokens, alive, steps, width, seen)


# -----------------------------------------------------------------------------
# answers in pieces (training)
#
# fast.answer_logprobs takes training.answer_logprobs's arguments and gives its log-probs and
# gradients (tests/test_fast_training.py), with the answers run in pieces that leave out the padding
# after each row's EOS: with one answer cut at --max-new-tokens and its siblings ending at half of it,
# a group of 4 is over a third padding. The training scripts run it unless --reference.


def answer_logprobs(model, prompt, prompt_alive, answer, answer_alive, width, *, temperature=1.0):
    """training.answer_logprobs, the answers run in pieces (answers_in_pieces): the same log-probs
    and gradients. A sharded model (--shard) runs training's: every process must make the same
    passes (FSDP2 gathers a layer's weights for each), and the pieces depend on the answers."""
    if parallel.is_sharded(model):
        return training.answer_logprobs(model, prompt, prompt_alive, answer, answer_alive, width,
                                        temperature=temperature)
    S = answer.shape[1]
    cache, first = training.prompt_once(model, prompt, prompt_alive, answer, width)
    cols = training.answer_columns(S)
    rest = answers_in_pieces(model, cache, answer[:, cols], answer_alive[:, cols], width)  # (N, S-1, D)
    h = torch.cat((first, rest), dim=1)[:, :S]                                              # (N, S, D)
    return training.scored(model, h, answer, answer_alive, temperature)


def plan_pieces(alive, width, overhead=64):
    """How the answer columns are cut into pieces: [(start, end, w, rows, real), ...].

    A row is needed up to its last alive column (its EOS, a key for its siblings at that step);
    after it, its positions are padding that nothing reads. The piece [start, end) computes only
    the rows still needed at `start`, laid out by group_slots as w slots per group: rows (G * w,)
    says which answer row fills each slot, real (G * w,) whether it is one of them or a group's
    padding (alive False for the whole piece, never read). The cuts minimise rows x columns computed
    plus `overhead` per piece, exactly (a dynamic programme over the columns where some row ends).
    # choice: overhead 64 rows x columns, about what one more piece (a forward and a backward
    through every layer, the cache copied to the rows it keeps) costs the default model on a CPU.
    """
    N, T = alive.shape
    B, W = N // width, width
    ends = (alive.cpu().flip(1).cumsum(1) > 0).sum(1).tolist()        # (N,) row n is needed at 0 .. end-1
    cuts = sorted({0, T} | {e for e in ends if 0 < e < T})
    live = {a: [[n for n in range(g * W, (g + 1) * W) if ends[n] > a] for g in range(B)] for a in cuts}
    slots = {a: len(group_slots(live[a])[0]) for a in cuts}     # rows computed from cut a on
    best = {0: (0, None)}                                        # cut -> (least cost up to it, the cut before)
    for j, b in enumerate(cuts[1:], 1):
        best[b] = min((best[a][0] + slots[a] * (b - a) + overhead, a) for a in cuts[:j])
    bounds, b = [], T
    while b:
        bounds.insert(0, (best[b][1], b))
        b = best[b][1]
    pieces = []
    for start, end in bounds:
        rows, real, w = group_slots(live[start])
        if w == 0:  # no row is needed from here on
            break
        pieces.append((start, end, w, torch.tensor(rows, dtype=torch.long), torch.tensor(real)))
    return pieces


def answers_in_pieces(model, cache, tokens, alive, width):
    """Hidden states (N, T, D) of answer tokens (N, T) on top of `cache` (the prompts, N rows), in the
    pieces plan_pieces makes; a row's columns after its last alive one are 0 (never computed). The
    same numbers as one model.hidden over all N rows (training.answer_hidden), without the padding."""
    N, T = tokens.shape
    out = None
    in_cache = list(range(N))  # in_cache[i]: the answer row whose keys and values are cache row i
    for start, end, w, rows, real in plan_pieces(alive, width):
        place = {row: i for i, row in enumerate(in_cache) if row is not None}
        slots = rows.tolist()
        if start > 0 or slots != in_cache:  # a fresh copy (the last piece's backward still reads the old one)
            cache = cache.select_rows(torch.tensor([place[row] for row in slots], device=tokens.device))
        rows_d, real_d = rows.to(tokens.device), real.to(tokens.device)
        h = model.hidden(tokens[rows_d, start:end], width=w, alive=alive[rows_d, start:end] & real_d[:, None],
                         cache=cache)                                                # (G * w, piece, D)
        if out is None:
            out = h.new_zeros(N, T, h.shape[-1])
        kept = real.nonzero().squeeze(1)
        out[rows[kept].to(tokens.device), start:end] = h[kept.to(tokens.device)]
        in_cache = [row if r else None for row, r in zip(slots, real.tolist())]
    if out is None:  # no row alive anywhere
        out = torch.zeros(N, T, model.config.hidden_size, dtype=cache.k[0].dtype, device=tokens.device)
    return out
