"""The speed-ups, each beside the naive code it speeds up and tested to give its result; --reference
runs the naive code instead."""
import torch

import parallel
import training

# -----------------------------------------------------------------------------
# answers in pieces (training)
#
# fast.answer_logprobs takes training.answer_logprobs's arguments and gives its log-probs and
# gradients (tests/test_fast_training.py), with the answers run in pieces that leave out the padding
# after each row's EOS: with one answer cut at --max-new-tokens and its siblings ending at half of it,
# a group of 4 is over a third padding. The training scripts run it unless --reference.


def group_slots(groups):
    """Rows kept per group -> (rows, real, w): every group that keeps a row gets w slots, w the most
    any group keeps, the extra ones copies of its first row (real False: dead, never read). Bridge
    has no order along the batch axis, so a group may sit in any slots."""
    w = max(map(len, groups), default=0)
    rows, real = [], []
    for g in groups:
        if g:
            rows += g + g[:1] * (w - len(g))
            real += [True] * len(g) + [False] * (w - len(g))
    return rows, real, w


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
