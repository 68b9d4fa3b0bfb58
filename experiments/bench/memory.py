"""Per-device training memory, computed: replicas (one full copy per process) against --shard (FSDP2).

    python experiments/bench/memory.py                      # experiments/results/memory.md and experiments/results/memory.json
    python experiments/bench/memory.py --processes 2 4 8 --prompt-tokens 400

For the default model and the Qwen2 1.5B and 7B shapes, with Bridge blocks (4 heads x 16), GRPO's
defaults (--train all, fp32 weights, AdamW): bytes of weights, gradients and AdamW state per
device, and the activations one micro-batch keeps for its backward pass. Nothing is allocated:
the models are built on PyTorch's "meta" device (shapes without data), and the activations are
the tensors autograd saves during one forward of the micro-batch, counted with
saved_tensors_hooks, each storage once.

# choice: the micro-batch is train_grpo.py's default, 2 groups of width 4, a 200-token prompt (a
word problem with two worked examples is about that long with SmolLM2's tokenizer) and answers of
--max-new-tokens 64. The activations are those of this implementation run eagerly (attention as
the math kernel saves it); fused attention kernels on a GPU save less. Under --shard the rollout gathers the whole model once (fp32 weights,
no gradients): that is the other peak, listed as "rollout".
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bridgekit import cli  # noqa: E402

GiB = 2 ** 30
# the shapes of the public config.json files of these models
SHAPES = {
    "SmolLM2-135M (default)": dict(model_type="llama", vocab_size=49152, hidden_size=576, intermediate_size=1536,
                                   num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                                   tie_word_embeddings=True),
    "Qwen2-1.5B": dict(model_type="qwen2", vocab_size=151936, hidden_size=1536, intermediate_size=8960,
                       num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True),
    "Qwen2-7B": dict(model_type="qwen2", vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                     num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False),
}


def meta_model(shape):
    from model import Config, Transformer
    with torch.device("meta"):
        model = Transformer(Config.from_dict(dict(shape, max_position_embeddings=4096)))
        model.tie_weights()
        model.add_bridge("bridge", n_heads=4, head_dim=16, verbose=False)
    return model


def activation_bytes(model, groups, width, prompt_tokens, answer_tokens):
    """Bytes autograd saves in training's forward of one micro-batch (sample.answer_hidden: the
    prompt once per group, the answers on its cache; then every answer position scored, since the
    positions that are scored depend on the answers, which the meta device does not have), each saved
    storage once, the weights left out."""
    from sample import answer_hidden, token_logprobs
    weights = {p.untyped_storage()._cdata for p in model.parameters()}
    saved = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage._cdata not in weights:
            saved[storage._cdata] = max(saved.get(storage._cdata, 0), storage.nbytes())
        return t
    meta = dict(device="meta")
    prompt, answer = (torch.zeros(groups, prompt_tokens, dtype=torch.long, **meta),
                      torch.zeros(groups * width, answer_tokens, dtype=torch.long, **meta))
    alive = torch.ones_like(answer, dtype=torch.bool)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        h = answer_hidden(model, prompt, torch.ones_like(prompt, dtype=torch.bool), answer, alive, width,
                                   cache_dtype=model.lm_head.weight.dtype)  # (no autocast on the meta device)
        token_logprobs(model.lm_head(h), answer)
    return sum(saved.values())


def rows_for(name, shape, processes, args):
    model = meta_model(shape)
    params = sum(p.numel() for p in model.parameters())
    new = sum(p.numel() for p in model.bridge_parameters())
    act = activation_bytes(model, args.groups, args.width, args.prompt_tokens, args.answer_tokens)
    out = []
    for n in processes:
        for mode in ("replicas", "--shard") if n > 1 else ("replicas",):
            split = n if mode == "--shard" else 1
            weights, grads, adam = 4 * params / split, 4 * params / split, 8 * params / split
            out.append(dict(model=name, parameters=params, new_parameters=new, processes=n, mode=mode,
                            weights_gib=weights / GiB, gradients_gib=grads / GiB, adamw_gib=adam / GiB,
                            activations_gib=act / GiB, total_gib=(weights + grads + adam + act) / GiB,
                            rollout_gib=(4 * params + grads + adam) / GiB))
    return out


def markdown(rows, args):
    lines = [f"Per device, GiB (fp32 weights, --train all, AdamW; activations of one micro-batch: {args.groups} groups "
             f"of width {args.width}, a {args.prompt_tokens}-token prompt and {args.answer_tokens}-token answers; "
             "`python experiments/bench/memory.py`). The rollout under --shard gathers the whole model once: 'rollout' is then the "
             "whole weights plus this device's gradients and AdamW state (the KV cache comes on top).", "",
             "| model | parameters (with Bridge) | processes | training | weights | gradients | AdamW | activations | "
             "total | rollout |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['parameters'] / 1e9:.2f} B | {r['processes']} | {r['mode']} | "
                     f"{r['weights_gib']:.1f} | {r['gradients_gib']:.1f} | {r['adamw_gib']:.1f} | "
                     f"{r['activations_gib']:.1f} | **{r['total_gib']:.1f}** | {r['rollout_gib']:.1f} |")
    return "\n".join(lines) + "\n"


def check_outputs(path, overwrite):
    """--out and the table beside it (.md), checked before the work (an existing JSON only with
    --overwrite; the table is rewritten from it); the JSON path."""
    out = Path(path)
    if out.suffix == ".md":  # the table would overwrite the JSON
        raise ValueError(f"--out {out}: the table goes beside the JSON as .md; give the JSON a .json name")
    cli.check_out_file(out)
    cli.check_new_file(out, overwrite)
    cli.check_out_file(out.with_suffix(".md"), "--out (its table, .md)")
    return out


def main(argv=None):
    p = cli.Parser(prog="memory.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 8], help="process (GPU) counts (default 1 8)")
    p.add_argument("--groups", type=int, default=2, help="groups in one micro-batch (default 2, --micro-groups)")
    p.add_argument("--width", type=int, default=4, help="answers per group (default 4)")
    p.add_argument("--prompt-tokens", type=int, default=200, help="prompt tokens (default 200)")
    p.add_argument("--answer-tokens", type=int, default=64, help="answer tokens (default 64, --max-new-tokens)")
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "memory.json"), help="the JSON; the table goes beside it as .md")
    cli.add_overwrite(p)
    args = p.parse_args(argv)
    if min(args.processes + [args.groups, args.width, args.prompt_tokens, args.answer_tokens]) < 1:
        raise ValueError("--processes, --groups, --width, --prompt-tokens and --answer-tokens must be >= 1")
    out = check_outputs(args.out, args.overwrite)
    rows = [r for name, shape in SHAPES.items() for r in rows_for(name, shape, args.processes, args)]
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "overwrite")}
    cli.write_text(out, json.dumps(dict(rows=rows, settings=settings), indent=1) + "\n")
    cli.write_text(out.with_suffix(".md"), markdown(rows, args))
    print(markdown(rows, args))


if __name__ == "__main__":
    cli.run(main)
