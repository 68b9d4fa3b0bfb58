"""
What Bridge attends to: the attention of each answer over its siblings, per layer and generated
token, and how large the blocks' update is next to the residual stream (the paper's Fig. 7).

    python tools/attention_map.py --width 4 --out experiments/results/attention.png
    python tools/attention_map.py --width 4 --max-new-tokens 64 --prompt "Write one sentence about the sea." \
        --out experiments/results/attention.png --layers 0 10 20 29

The arguments are sample.py's (model, Bridge, prompt, sampling), plus --out and --layers; one
--prompt at most (the figure is one group's). Forward hooks on every Bridge block record, at each
decode step of that prompt, the softmax the block applies (Bridge.attention_weights, heads
averaged) and |update| / |residual| per answer; the sampling itself is sample.py's (sample.sample, or
with --fast bridgekit/fast.py's), unchanged.
Needs matplotlib (pip install -e ".[plot]").
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the method's files, at the repository root

import sample  # noqa: E402
from bridgekit import checks, cli  # noqa: E402
from bridgekit.cli import Parser, run  # noqa: E402


def record_bridge(model):
    """Forward hooks on every Bridge block that keep, at each decode step of a single prompt, the
    attention over the W siblings (heads averaged, (W, W)) and |update| / |residual| per row (W,).
    Returns (records {layer: [(weights, ratios)]}, remove)."""
    records = {i: [] for i in range(len(model.model.layers))}

    def hook(i):
        def keep(block, inputs, update):
            x, width, alive = inputs[:3]  # (the fourth, the sibling mask the model built, is not needed)
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
    cli.save_figure(fig, out, dpi=110, bbox_inches="tight")
    return ratios


def parse_args(argv=None):
    p = cli.add_sample_arguments(Parser(prog="attention_map.py", description="Draw what Bridge attends to."))
    p.add_argument("--out", required=True, metavar="FILE.png", help="the figure to write (.png, .pdf or .svg)")
    p.add_argument("--layers", type=int, nargs="+", default=None,
                   help="layers to draw (default: four, evenly spaced)")
    cli.add_overwrite(p)
    return p.parse_args(argv)


def check_args(args):
    """Every error that needs no model, before the model loads."""
    checks.check_sample_args(args)
    if args.width < 2:
        raise ValueError("--width must be 2 or more: a single answer has no siblings to attend to")
    if args.no_bridge:
        raise ValueError("the map draws the Bridge blocks: drop --no-bridge")
    # choice: refuse, not one figure per prompt: the map is one group's, and several prompts would
    # need as many --out names
    if args.prompt and len(args.prompt) > 1:
        raise ValueError(f"--prompt: the map draws one prompt's group, got {len(args.prompt)} prompts; give one")
    cli.check_figure_out(args.out, args.overwrite)


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    model, tokenizer, bridge = sample.setup(args)
    if (model.bridge_config or {}).get("kind") != "bridge":
        raise ValueError("the attention map needs a Bridge checkpoint (--bridge FILE)")
    n_layers = len(model.model.layers)
    layers = args.layers or sorted({round(i * (n_layers - 1) / 3) for i in range(4)})
    bad = [i for i in layers if not 0 <= i < n_layers]
    if bad:
        raise ValueError(f"--layers: {bad} not in 0..{n_layers - 1}")
    prompts, ids, _ = sample.prompts_of(args, tokenizer)
    records, remove = record_bridge(model)
    import torch

    run_kw = dict(width=args.width, max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                  top_p=args.top_p, generator=torch.Generator(model.lm_head.weight.device).manual_seed(args.seed))
    checks.check_sample_call(model, ids[:1], **run_kw)
    if args.fast:  # every row stays in the batch, so that each step records the whole group
        from bridgekit import fast
        rollout = fast.sample(model, ids[:1], tokenizer.eos_ids, drop_rows=False, **run_kw)
    else:
        rollout = sample.sample(model, ids[:1], tokenizer.eos_ids, **run_kw)
    remove()
    lengths = rollout.alive[:, rollout.prompt_len:].sum(dim=1).tolist()
    ratios = draw_attention(records, lengths, layers, args.out,
                            f"{Path(str(bridge)).name}, width {args.width}: {prompts[0][:70]}")
    print(f"wrote {args.out}; |update| / |residual| per layer: " + " ".join(f"{r:.2g}" for r in ratios),
          file=sys.stderr)
    return ratios


if __name__ == "__main__":
    run(main)
