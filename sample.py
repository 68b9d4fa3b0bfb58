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
   torch.Generator for the whole batch), then one forward over the new column of tokens. A row
   that emits EOS keeps that EOS alive and is dead from the next step on; dead rows are fed a
   padding token that nothing ever attends to. Stop when every row has finished, or at
   max_new_tokens.
"""
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

# -----------------------------------------------------------------------------
# sampling functions: logits (N, V) -> token ids (N,)


def check_sampling(temperature, top_k, top_p):
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top-p must be in (0, 1], got {top_p}")
    if top_k < 0:
        raise ValueError(f"top-k must be >= 0 (0 = off), got {top_k}")


def sample_next(logits, generator, temperature=1.0, top_k=0, top_p=1.0):
    """One token per row. temperature 0 = greedy; top_k 0 = off; top_p 1.0 = off."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k > 0:  # keep the k largest logits of each row
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:  # keep the smallest set of tokens whose probability reaches top_p
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs          # probability mass strictly above each token
        sorted_logits = sorted_logits.masked_fill(before >= top_p, float("-inf"))  # keeps the top 1
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    return sample_from(logits.softmax(dim=-1), generator)


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

def uniforms(n, generator, device):
    """n uniform numbers in [0, 1) as an (n, 1) fp64 column.

    generator: one torch.Generator for all rows, or a list of them, one per group of rows: the
    rows are split into len(list) equal contiguous shares (the prompt groups) and share i draws
    from generator i, so a group's samples do not depend on which other groups share its batch.
    """
    if isinstance(generator, torch.Generator):
        return torch.rand(n, 1, generator=generator, device=device, dtype=torch.float64)
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
    logprobs: torch.Tensor  # (N, S) log-prob of each sampled token under the model (temperature 1)
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


@torch.no_grad()
def sample(model, prompts_ids, eos_ids, *, width=4, max_new_tokens=256, temperature=1.0, top_k=0,
           top_p=1.0, generator=None, ignore_eos=False, keep_logits=False, groups_per_prompt=1):
    """Token-level sampler: prompts as id lists -> Rollout. See the module docstring.

    groups_per_prompt: R independent groups of `width` rows for every prompt, all from one prefill
        (rows [(b*R + r)*width, (b*R + r + 1)*width) are group r of prompt b).
    generator: one seeded torch.Generator for the batch, or a list with one per group
        (len(prompts_ids) * groups_per_prompt). With a list, a group whose rows have all finished
        leaves the batch (its generator would only draw numbers nobody uses), so late steps run on
        the rows still writing; the tokens are those of the full batch (tests/test_sample.py).
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
    config, device = model.config, model.lm_head.weight.device
    P = max(len(ids) for ids in prompts_ids)
    context = config.max_position_embeddings
    if P + max_new_tokens > context:
        raise ValueError(f"prompt of {P} tokens + {max_new_tokens} new tokens exceeds the model's "
                         f"context of {context} (lower --max-new-tokens or shorten the prompt)")
    if generator is None:
        generator = torch.Generator(device).manual_seed(0)
    n_groups = len(prompts_ids) * groups_per_prompt
    if not isinstance(generator, torch.Generator) and len(generator) != n_groups:
        raise ValueError(f"got {len(generator)} generators for {n_groups} groups (one each)")
    eos = torch.tensor(eos_ids, device=device)
    dtype = model.lm_head.weight.dtype

    # 1. prefill once per prompt (B rows), 2. copy into R * width rows per prompt (N = B * R * width)
    copies = width * groups_per_prompt
    tokens, alive = left_pad(prompts_ids, eos_ids[0], device)                     # (B, P)
    cache = KVCache(config, len(prompts_ids), P + max_new_tokens, device, dtype)
    h = model.hidden(tokens, width=1, alive=alive, cache=cache)                   # (B, P, D)
    logits = model.lm_head(h[:, -1]).repeat_interleave(copies, dim=0)              # (N, V)
    cache = cache.repeat_rows(copies)
    tokens, alive = tokens.repeat_interleave(copies, 0), alive.repeat_interleave(copies, 0)
    N = tokens.shape[0]

    # 3. decode in lock-step; `finished` rows have emitted EOS and are dead from then on.
    # `rows` are the rows still in the batch (whole groups); the outputs always cover all N rows.
    # choice: only with one generator per group can finished groups leave (a single generator's
    # stream is shared by all rows, so dropping rows would change the others' draws)
    compact = not isinstance(generator, torch.Generator) and not keep_logits
    rows = torch.arange(N, device=device)
    finished = torch.zeros(N, dtype=torch.bool, device=device)
    new_tokens, new_alive, logprobs, seen = [], [], [], []
    for step in range(max_new_tokens):
        part = sample_next(logits, generator, temperature, top_k, top_p)          # (len(rows),)
        nxt = torch.full((N,), eos_ids[0], dtype=torch.long, device=device)
        nxt[rows] = part
        nxt = torch.where(finished, eos[0], nxt)     # dead rows get a pad that nobody attends to
        is_alive = ~finished
        full = logits if logits.dtype == torch.float64 else logits.float()  # bf16 -> fp32 for logp
        logp = torch.zeros(N, dtype=full.dtype, device=device)
        logp[rows] = full.log_softmax(-1).gather(-1, nxt[rows, None]).squeeze(-1)
        logprobs.append(logp)
        if keep_logits:
            seen.append(full)
        new_tokens.append(nxt)
        new_alive.append(is_alive)
        if not ignore_eos:
            finished = finished | torch.isin(nxt, eos)
        if finished.all() or step == max_new_tokens - 1:
            break
        if compact:
            # choice: drop finished groups once they are a quarter of the batch or more: each drop
            # copies the cache, about the cost of one decode step's attention
            done = finished[rows].view(-1, width).all(dim=1)                       # per group in batch
            if done.sum() * 4 >= done.numel():
                keep = (~done).repeat_interleave(width).nonzero().squeeze(1)
                rows, cache = rows[keep], cache.select_rows(keep)
                generator = [g for g, d in zip(generator, done.tolist()) if not d]
        logits = model(nxt[rows, None], width=width, alive=is_alive[rows, None], cache=cache)[:, -1]
    return Rollout(tokens=torch.cat((tokens, torch.stack(new_tokens, 1)), 1),
                   alive=torch.cat((alive, torch.stack(new_alive, 1)), 1),
                   prompt_len=P, width=width, logprobs=torch.stack(logprobs, 1),
                   logits=torch.stack(seen, 1) if keep_logits else None)


def encode_prompts(tokenizer, prompts, chat=True):
    """Texts -> id lists; with chat=True each prompt is one user turn of the chat template."""
    if chat:
        return [tokenizer.encode(tokenizer.chat([{"role": "user", "content": p}]),
                                 add_special_tokens=False) for p in prompts]
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
# command line


def parse_args(argv=None):
    from tasks import Parser
    p = Parser(description="Sample `width` interdependent answers per prompt.")
    p.add_argument("--width", type=int, default=4, help="answers per prompt, sampled together (default 4)")
    p.add_argument("--prompt", action="append",
                   help="a prompt (repeat for several); default: a held-out problem of the default task, "
                        "asked as in training (worked examples first)")
    p.add_argument("--model", default=None, help="local HF-style directory or HF repo id (default: SmolLM2-135M-Instruct)")
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
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="weights and activations (default fp32)")
    p.add_argument("--no-chat", action="store_true", help="feed the prompt as raw text, without the chat template")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--attention-map", default=None, metavar="FILE.png",
                   help="draw the Bridge attention over the siblings, per layer and step, for the first prompt "
                        "(needs matplotlib and a Bridge)")
    p.add_argument("--layers", type=int, nargs="+", default=None,
                   help="layers drawn by --attention-map (default: four, evenly spaced)")
    return p.parse_args(argv)


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
DEFAULT_BRIDGE = Path(__file__).resolve().parent / "bridges" / "default.safetensors"


def default_problem():
    """The first held-out problem of the default task: the built-in prompt."""
    import tasks
    knobs = tasks.DEFAULT_KNOBS.get(tasks.DEFAULT_TASK, {})
    return tasks.make_problems(tasks.DEFAULT_TASK, 1, seed=0, split="test", **knobs)[0]


def problem_ids(tokenizer, problem):
    """A task problem's prompt exactly as training and evaluate.py render it."""
    import tasks
    chat = tokenizer.chat(tasks.messages(problem, shots=2, seed=0, system=tasks.SYSTEM))
    return tokenizer.encode(chat, add_special_tokens=False)


def record_bridge(model):
    """Forward hooks on every Bridge block that keep, at each decode step of a single prompt, the
    attention over the W siblings (heads averaged, (W, W)) and |update| / |residual| per row (W,).
    Returns (records {layer: [(weights, ratios)]}, remove)."""
    records = {i: [] for i in range(len(model.model.layers))}

    def hook(i):
        def keep(block, inputs, update):
            x, width, alive = inputs
            if x.shape[1] != 1 or width < 2:  # the prefill runs once per prompt, at width 1
                return
            weights = block.attention_weights(x, width, alive)[0, 0].mean(dim=0)   # (W, W)
            ratio = update[:, 0].norm(dim=-1) / x[:, 0].norm(dim=-1)                # (W,)
            records[i].append((weights.float().cpu(), ratio.float().cpu()))
        return keep
    handles = [layer.bridge.register_forward_hook(hook(i)) for i, layer in enumerate(model.model.layers)]
    return records, lambda: [h.remove() for h in handles]


def draw_attention(records, lengths, layers, out, title):
    """One panel per chosen layer (rows: query answer i, sub-rows: sibling j; x: step), and the
    per-layer norm ratio of the Bridge update to the residual stream below them."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    W = len(lengths)
    fig = plt.figure(figsize=(3.2 * len(layers) + 1, 7))
    grid = fig.add_gridspec(2, len(layers), height_ratios=[3, 1.3], hspace=0.45, wspace=0.08)
    image = None
    for p, layer in enumerate(layers):
        ax = fig.add_subplot(grid[0, p])
        steps = len(records[layer])
        a = np.full((W * W, steps), np.nan)
        for k, (weights, _) in enumerate(records[layer]):
            for i in range(W):
                if k < lengths[i]:  # the forward of step k reads answer i's token k
                    a[i * W:(i + 1) * W, k] = weights[i].numpy()
        image = ax.imshow(a, aspect="auto", interpolation="nearest", vmin=0, vmax=1, cmap="viridis")
        for i in range(W):
            if i:
                ax.axhline(i * W - 0.5, color="white", lw=1)
            ax.plot([lengths[i] - 1] * 2, [i * W - 0.5, (i + 1) * W - 0.5], color="red", lw=2)
        ax.set_yticks([i * W + (W - 1) / 2 for i in range(W)],
                      [f"answer {i + 1}" if p == 0 else "" for i in range(W)])
        ax.set(xlabel="generated token", title=f"layer {layer}")
    fig.colorbar(image, ax=fig.axes, shrink=0.6, label=f"attention of answer i on answers 1..{W} (sub-rows)")
    ax = fig.add_subplot(grid[1, :])
    ratios = []
    for layer in sorted(records):
        vals = [r[i].item() for k, (_, r) in enumerate(records[layer]) for i in range(W) if k < lengths[i]]
        ratios.append(sum(vals) / len(vals) if vals else float("nan"))
    ax.bar(range(len(ratios)), ratios, color=["C3" if i in layers else "C0" for i in range(len(ratios))])
    ax.set(xlabel="layer", ylabel="|update| / |residual|", yscale="log",
           title="Bridge update norm relative to the residual stream (mean over answers and steps)")
    fig.suptitle(title + "  (red bar: the answer's last token)", fontsize=9)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return ratios


def main(argv=None):
    args = parse_args(argv)
    from model import load_model
    import tasks
    if args.width < 1:  # checked before the (slow) model load
        raise ValueError(f"--width must be >= 1, got {args.width}")
    check_sampling(args.temperature, args.top_k, args.top_p)
    if args.attention_map is not None:
        if args.width < 2:
            raise ValueError("--attention-map needs --width 2 or more (a single answer has no siblings)")
        if args.no_bridge:
            raise ValueError("--attention-map draws the Bridge blocks: drop --no-bridge")
        if not Path(args.attention_map).resolve().parent.is_dir():
            raise FileNotFoundError(f"--attention-map {args.attention_map}: no such directory")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ValueError("--attention-map needs matplotlib: pip install matplotlib") from None
    bridge = args.bridge
    if bridge is None and args.model is None and DEFAULT_BRIDGE.is_file():
        bridge = DEFAULT_BRIDGE
        state = "switched off by --no-bridge" if args.no_bridge else "--no-bridge to switch it off"
        print(f"using the default Bridge {DEFAULT_BRIDGE.relative_to(DEFAULT_BRIDGE.parent.parent)} "
              f"({state})", file=sys.stderr)
    model, tokenizer = load_model(args.model, device=args.device, dtype=DTYPES[args.dtype], bridge=bridge)
    model.use_bridge = not args.no_bridge
    if args.attention_map is not None and (model.bridge_config or {}).get("kind") != "bridge":
        raise ValueError("--attention-map needs a Bridge checkpoint (--bridge FILE)")
    problem = None
    if args.prompt:
        prompts, ids = args.prompt, encode_prompts(tokenizer, args.prompt, chat=not args.no_chat)
    else:  # a held-out problem of the task the default Bridge was trained on, asked as in training
        problem = default_problem()
        prompts, ids = [problem.question], [problem_ids(tokenizer, problem)]
    if args.attention_map is not None:
        n_layers = len(model.model.layers)
        layers = args.layers or sorted({round(i * (n_layers - 1) / 3) for i in range(4)})
        bad = [i for i in layers if not 0 <= i < n_layers]
        if bad:
            raise ValueError(f"--layers: {bad} not in 0..{n_layers - 1}")
        prompts, ids = prompts[:1], ids[:1]
        records, remove = record_bridge(model)
    device = model.lm_head.weight.device
    t0 = time.time()
    rollout = sample(model, ids, tokenizer.eos_ids, width=args.width, max_new_tokens=args.max_new_tokens,
                     temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                     generator=torch.Generator(device).manual_seed(args.seed))
    dt = time.time() - t0
    texts = [tokenizer.decode(c) for c in rollout.completions()]
    out = [texts[g * args.width:(g + 1) * args.width] for g in range(len(prompts))]
    if args.attention_map is not None:
        remove()
        lengths = rollout.alive[:, rollout.prompt_len:].sum(dim=1).tolist()
        ratios = draw_attention(records, lengths, layers, args.attention_map,
                                f"{Path(str(bridge)).name}, width {args.width}: {prompts[0][:70]}")
        print(f"wrote {args.attention_map}; |update| / |residual| per layer: "
              + " ".join(f"{r:.2g}" for r in ratios), file=sys.stderr)
    settings = {k: getattr(args, k) for k in ("max_new_tokens", "temperature", "top_k", "top_p",
                                              "seed", "device", "dtype")}
    settings["chat"] = not args.no_chat
    rewards = [[tasks.reward(a, problem) for a in answers] for answers in out] if problem else None
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
        print(f"=== prompt: {prompt}" + (f"  (answer: {problem.answer})" if problem else ""))
        for i, answer in enumerate(answers):
            verdict = f" ({'right' if rewards[g][i] else 'wrong'})" if problem else ""
            print(f"--- answer {i + 1}/{args.width}{verdict}")
            print(answer.strip())
        print()
    print(f"({sum(len(a) for a in out)} answers in {dt:.1f}s)", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
