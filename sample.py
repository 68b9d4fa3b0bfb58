"""
Sample `width` interdependent answers per prompt with a KV cache: the naive reference sampler.

    python sample.py --width 4
    python sample.py --width 4 --prompt "What is 47 + 38?" --temperature 0.7 --json
    python sample.py --width 4 --bridge bridge.safetensors [--no-bridge] [--fast]

Every step is a plain forward of the model in model.py (shapes as in its legend):
1. The prompts are tokenized and left-padded to the longest; `alive` marks the real tokens.
2. Prefill once per prompt, then copy its cache into its groups_per_prompt * width rows (the same
   as prefilling all N rows: a group's rows are identical over the prompt, tests/spec/test_1_bridge.py).
3. Decode all N rows in lock-step: each row draws its next token from its own logits (one uniform
   number per row and step, from one seeded torch.Generator or one per group), then one forward
   over the new column. A row that emits EOS keeps that EOS alive and is dead from the next step
   on (fed a padding token nothing attends to). Stop when all have finished, or at max_new_tokens.
A token's log-prob is that of the distribution it was drawn from (sampling_logits), the rule
training recomputes (token_logprobs, inside answer_logprobs: the log-prob forward of training).
The commands check a call's arguments and memory before it (bridgekit/checks.py); with --fast they
run bridgekit/fast.py's sampler instead, which gives this one's tokens, faster.
"""
import sys
import time
from dataclasses import dataclass

import torch

from bridgekit import checks, cli, sample_command


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
    """log p(token) under the sampling distribution: logits (..., V), tokens (...) -> (...). The one
    log-prob rule: the sampler records it for every token it draws, and training recomputes it."""
    flat = sampling_logits(logits.reshape(-1, logits.shape[-1]), temperature, top_k, top_p)
    return flat.log_softmax(-1).gather(-1, tokens.reshape(-1, 1)).view(tokens.shape)


def uniforms(n, generator, device):
    """n uniform numbers in [0, 1) as an (n, 1) fp64 column, one per row, from one torch.Generator
    or from a list of them: the rows split into len(list) equal contiguous shares (the groups),
    share i drawn from generator i (a group's draws do not depend on the other groups)."""
    if isinstance(generator, torch.Generator):
        return torch.rand(n, 1, generator=generator, device=device, dtype=torch.float64)
    per = n // len(generator)
    return torch.cat([torch.rand(per, 1, generator=g, device=device, dtype=torch.float64) for g in generator])


def sample_from(probs, u):
    """One index per row with probability probs (N, V), torch.multinomial's distribution: the inverse
    CDF at u (N, 1), uniform in [0, 1). The CDF is summed in fp64 and u * total < total, so a
    zero-probability token is never picked (the clamp guards the 2^-53 chance of rounding up)."""
    cdf = probs.double().cumsum(dim=-1)                                        # (N, V)
    idx = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)                 # first cdf > u * total
    return idx.squeeze(-1).clamp(max=probs.shape[-1] - 1)


def sample_next(logits, u, temperature=1.0, top_k=0, top_p=1.0):
    """One token per row and its log-prob, from logits (N, V) and each row's uniform number u (N, 1).
    temperature 0 = greedy (u unread: None will do); top_k 0 = off; top_p 1.0 = off."""
    z = sampling_logits(logits, temperature, top_k, top_p)
    if temperature == 0:
        tokens = z.argmax(dim=-1)
    else:
        tokens = sample_from(z.softmax(dim=-1), u)
    # the log-prob exactly as token_logprobs computes it (training recomputes it that way)
    return tokens, z.log_softmax(dim=-1).gather(-1, tokens[:, None]).squeeze(-1)


@dataclass
class Rollout:
    """What one call of `sample` produced: N = len(prompts) * groups_per_prompt * width rows."""
    tokens: torch.Tensor    # (N, P + S) left-padded prompts followed by the S generated columns
    alive: torch.Tensor     # (N, P + S) bool: real tokens (prompt, and generated up to the 1st EOS)
    prompt_len: int         # P, the padded prompt length: generated tokens start at column P
    width: int
    logprobs: torch.Tensor  # (N, S) log-prob of each sampled token under the distribution it was
                            # drawn from (token_logprobs: temperature, top-k, top-p); 0 where dead
    logits: torch.Tensor | None = None  # (N, S, V) raw logits seen at each step, if asked for

    @classmethod
    def from_steps(cls, tokens, alive, steps, width, seen=None):
        """The prompts' tokens and alive (N, P), then per step the (N,) tokens, alive and log-probs."""
        new_tokens, new_alive, logprobs = (torch.stack(c, dim=1) for c in zip(*steps))
        return cls(tokens=torch.cat((tokens, new_tokens), 1), alive=torch.cat((alive, new_alive), 1),
                   prompt_len=tokens.shape[1], width=width, logprobs=logprobs,
                   logits=torch.stack(seen, 1) if seen else None)

    def completions(self):
        """For each row, the generated ids up to and including its EOS (if any)."""
        P = self.prompt_len
        return [row[P:][alive[P:]].tolist() for row, alive in zip(self.tokens, self.alive)]


def left_pad(prompts_ids, pad_id, device):
    """List of id lists -> tokens (len, P) and alive (len, P), padding on the left."""
    P = max(len(ids) for ids in prompts_ids)
    tokens = torch.full((len(prompts_ids), P), pad_id, dtype=torch.long)
    alive = torch.zeros(len(prompts_ids), P, dtype=torch.bool)
    for i, ids in enumerate(prompts_ids):
        tokens[i, P - len(ids):] = torch.tensor(ids, dtype=torch.long)
        alive[i, P - len(ids):] = True
    return tokens.to(device), alive.to(device)


def prefill(model, prompts_ids, copies, new_tokens, pad):
    """Steps 1 and 2: tokens and alive (N, P) of the left-padded prompts, each repeated `copies`
    times, the logits (N, V) of their last position, and the KV cache of the N rows, with room
    for `new_tokens` more columns. The prompts run once each; their rows are copies."""
    from model import KVCache
    weight = model.lm_head.weight
    tokens, alive = left_pad(prompts_ids, pad, weight.device)                     # (prompts, P)
    cache = KVCache(model.config, len(prompts_ids), tokens.shape[1] + new_tokens, weight.device, weight.dtype)
    logits = model.lm_head(model.hidden(tokens, width=1, alive=alive, cache=cache)[:, -1])  # (prompts, V)
    repeat = lambda t: t.repeat_interleave(copies, dim=0)  # noqa: E731  (prompt p -> rows p*copies ..)
    return repeat(tokens), repeat(alive), repeat(logits), cache.repeat_rows(copies)


@torch.no_grad()
def sample(model, prompts_ids, eos_ids, *, width=4, max_new_tokens=256, temperature=1.0, top_k=0,
           top_p=1.0, generator=None, ignore_eos=False, keep_logits=False, groups_per_prompt=1,
           path="siblings"):
    """Token-level sampler: prompts as id lists -> Rollout. See the module docstring.

    groups_per_prompt: R independent groups of `width` rows for every prompt, all from one prefill
        (rows [(b*R + r)*width, (b*R + r + 1)*width) are group r of prompt b).
    generator: one seeded torch.Generator for the batch, or a list with one per group
        (len(prompts_ids) * groups_per_prompt); None = torch.Generator seeded 0.
    path: whom Bridge lets a row read (bridge.sibling_mask): "siblings" (the method), "self", or "crossed"
        (group r of a prompt, r even, reads group r + 1 instead of its own rows, and r + 1 only itself;
        needs an even groups_per_prompt). Every path draws the same random numbers for every row.
    """
    device, pad = model.lm_head.weight.device, eos_ids[0]
    generator = torch.Generator(device).manual_seed(0) if generator is None else generator
    eos = torch.tensor(eos_ids, device=device)
    tokens, alive, logits, cache = prefill(model, prompts_ids, width * groups_per_prompt, max_new_tokens, pad)
    N = tokens.shape[0]
    finished = torch.zeros(N, dtype=torch.bool, device=device)   # emitted EOS: dead from the next step
    steps, seen = [], []                                          # per step: (tokens, alive, logp); logits
    for step in range(max_new_tokens):
        u = uniforms(N, generator, device) if temperature > 0 else None          # (N, 1)
        nxt, logp = sample_next(logits, u, temperature, top_k, top_p)            # (N,), (N,)
        nxt, is_alive, finished = record_step(steps, seen, logits, nxt, logp, finished, pad,
                                              None if ignore_eos else eos, keep_logits)
        if finished.all() or step == max_new_tokens - 1:
            break
        logits = model(nxt[:, None], width=width, alive=is_alive[:, None], cache=cache, path=path)[:, -1]
    return Rollout.from_steps(tokens, alive, steps, width, seen)


def record_step(steps, seen, logits, nxt, logp, finished, pad, eos, keep_logits):
    """Append a step's (tokens, alive, log-probs) to `steps` (and its logits to `seen`) and return
    (tokens, alive, finished after it). Rows already finished get a pad nobody reads, log-prob 0;
    a row that draws one of `eos` (None: ignore EOS) is finished from the next step."""
    is_alive = ~finished
    nxt, logp = nxt.where(is_alive, pad), logp.where(is_alive, 0.0)
    steps.append((nxt, is_alive, logp))
    if keep_logits:
        seen.append(logits if logits.dtype == torch.float64 else logits.float())
    return nxt, is_alive, finished if eos is None else finished | torch.isin(nxt, eos)


# -----------------------------------------------------------------------------
# the log-prob forward of training: the answers' log-probs, each group's prompt run once


def answer_logprobs(model, prompt, prompt_alive, answer, answer_alive, width, *, temperature=1.0):
    """log p(answer[n, s] | prompt, answer[n, :s], the siblings' answers up to s): (N, S) fp32.

    The training twin of prefill: a group's W rows share their prompt, and Bridge over identical
    rows equals its width-1 result, so the prompt runs at B rows, its keys and values are copied into
    the N = B * W rows and the answers run on top of them; the gradients flow back through the copy
    into the shared prompt. tests/scripts/test_04_training.py: equal to the plain N-row forward.

    prompt (B, P) and prompt_alive: one left-padded prompt per group. answer (N, S) and
    answer_alive: N = B * width rows, grouped prompt-major, alive up to and including EOS.
    temperature: the log-probs are those of the distribution the sampler drew from at this
    temperature (token_logprobs, the sampler's own rule); 1 for the model's own.
    Positions where answer_alive is False get 0 (as the sampler records them) and no gradient.
    """
    h = answer_hidden(model, prompt, prompt_alive, answer, answer_alive, width)       # (N, S, D)
    # The vocabulary product only where a token is scored (the padding after EOS is
    # often half the answers, and the product costs the default model about a fifth of a position)
    picked = token_logprobs(model.lm_head(h[answer_alive]), answer[answer_alive], temperature)
    return picked.new_zeros(answer.shape).index_put((answer_alive,), picked)          # (N, S)


def answer_hidden(model, prompt, prompt_alive, answer, answer_alive, width, cache_dtype=None, path="siblings"):
    """The hidden states (N, S, D) that predict the answer tokens (N, S): the B prompts run once,
    their keys and values copied into the N = B * width rows, every answer row on its copy.
    cache_dtype: the keys' and values' dtype (default: the autocast dtype, else the weights').
    path: whom Bridge lets a row read (bridge.sibling_mask; "siblings" is the method)."""
    (B, P), (N, S) = prompt.shape, answer.shape
    if N != B * width:
        raise ValueError(f"{N} answer rows is not {B} prompts x width {width}")
    if cache_dtype is None:
        device = prompt.device.type
        cache_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else model.lm_head.weight.dtype
    from model import KVCache
    cache = KVCache(model.config, B, P + S, prompt.device, cache_dtype)
    h = model.hidden(prompt, width=1, alive=prompt_alive, cache=cache)                  # (B, P, D)
    first = h[:, -1:].repeat_interleave(width, 0)           # (N, 1, D): predicts answer token 0
    # token s predicts token s + 1, so all columns but the last run. At least one, so
    # every micro-batch makes the same passes (--shard: FSDP2 gathers a layer's weights per pass)
    cols = slice(0, max(S - 1, 1))
    rest = model.hidden(answer[:, cols], width=width, alive=answer_alive[:, cols],
                        cache=cache.repeat_rows(width), path=path)                      # (N, S-1, D)
    return torch.cat((first, rest), dim=1)[:, :S]


def encode_prompts(tokenizer, prompts, chat=True):
    """Texts -> id lists; with chat=True each prompt is one user turn of the chat template."""
    if chat:
        return [tokenizer.encode_chat([{"role": "user", "content": p}]) for p in prompts]
    return [tokenizer.encode(p) for p in prompts]


def generate(model, tokenizer, prompts, *, width=4, max_new_tokens=256, temperature=1.0, top_k=0,
             top_p=1.0, seed=0, chat=True, ignore_eos=False):
    """Texts in, texts out: result[g][i] is answer i of the width-`width` group of prompt g."""
    prompts = [prompts] if isinstance(prompts, str) else prompts
    rollout = sample(model, encode_prompts(tokenizer, prompts, chat), tokenizer.eos_ids, width=width,
                     max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                     generator=torch.Generator(model.lm_head.weight.device).manual_seed(seed), ignore_eos=ignore_eos)
    texts = [tokenizer.decode(c) for c in rollout.completions()]
    return [texts[g * width:(g + 1) * width] for g in range(len(prompts))]


# the command line (its arguments: cli.add_sample_arguments, checked by checks.check_sample_args;
# the rest of its plumbing: bridgekit/sample_command.py; tools/attention_map.py shares its set-up)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def setup(args):
    """(model, tokenizer, bridge path or None): --model with --bridge, or the committed Bridge."""
    from model import load_model
    bridge = sample_command.bridge_path(args)
    if args.bridge is None and bridge is not None:
        state = "switched off by --no-bridge" if args.no_bridge else "--no-bridge to switch it off"
        print(f"using the committed Bridge {bridge.relative_to(bridge.parent.parent)} ({state})", file=sys.stderr)
    model, tokenizer = load_model(args.model, device=args.device, dtype=DTYPES[args.dtype], bridge=bridge)
    model.use_bridge = not args.no_bridge
    return model, tokenizer, bridge


def prompts_of(args, tokenizer):
    """(prompt texts, their ids, the task problem or None): --prompt, or sample_command.default_problem()
    asked exactly as training asks it (tasks.prompt_ids)."""
    from bridgekit import tasks
    if args.prompt:
        return args.prompt, encode_prompts(tokenizer, args.prompt, chat=not args.no_chat), None
    problem = sample_command.default_problem(args.task)
    return [problem.question], [tasks.prompt_ids(tokenizer, problem)], problem


def main(argv=None):
    """The sampling command: print every answer of every prompt's group (or one JSON object)."""
    from bridgekit import tasks
    p = cli.add_sample_arguments(cli.Parser(prog="sample.py", description="Sample `width` interdependent answers per prompt."))
    p.add_argument("--compare", choices=["self"], default=None,
                   help="also sample the same sets with the same random numbers, each row reading only itself "
                        "(Bridge's self path), and mark the answers that changed")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = p.parse_args(argv)
    checks.check_sample_args(args)
    if args.compare:
        sample_command.check_compare(args)
    model, tokenizer, bridge = setup(args)
    prompts, ids, problem = prompts_of(args, tokenizer)
    W, eos = args.width, set(tokenizer.eos_ids)
    paths = ["siblings"] + ([args.compare] if args.compare else [])
    sampler = sample
    if args.fast:  # the speed-ups, asked for: the same tokens (bridgekit/fast.py)
        from bridgekit import fast
        sampler = fast.sample
    out, rewards, dt = {}, {}, 0.0
    for path in paths:  # every path starts from the same seed: each row draws the same random numbers
        run = dict(width=W, max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                   top_p=args.top_p, generator=torch.Generator(model.lm_head.weight.device).manual_seed(args.seed),
                   path=path)
        checks.check_sample_call(model, ids, **run)
        t0 = time.time()
        rollout = sampler(model, ids, tokenizer.eos_ids, **run)
        dt += time.time() - t0
        completions = rollout.completions()
        out[path] = [[tokenizer.decode(c) for c in completions[g * W:(g + 1) * W]] for g in range(len(prompts))]
        finished = [bool(c) and c[-1] in eos for c in completions]
        rewards[path] = [tasks.group_reward(answers, problem, finished[g * W:(g + 1) * W])
                         for g, answers in enumerate(out[path])] if problem else None
    if args.json:
        sample_command.print_json(args, model, bridge, prompts, problem, out, rewards)
    else:
        sample_command.print_text(args, prompts, problem, out, rewards, dt)


if __name__ == "__main__":
    cli.run(main)
