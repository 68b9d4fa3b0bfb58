"""The GPU check: everything this project does on CUDA, in one command that needs no download.

    python experiments/bench/gpu_check.py                 # on a CUDA machine (under 8 minutes on one GPU)
    python experiments/bench/gpu_check.py --dry-run       # on CPU with tiny sizes: the test suite runs this

It writes one JSON and one markdown table (default experiments/results/gpu_check.json and .md):
1. the CUDA tests of the suite (`pytest -k cuda`: logits on CUDA against CPU, sampling, fp32 and bf16);
2. our sampler against `transformers.generate`, fp32 and bf16, at widths 1, 4, 16 and 64;
3. the cost of Bridge blocks: the same model with its blocks off and on, at width 16;
4. two GRPO steps (train_grpo.py's rollout, reward, advantages and update).
The model is the default model's architecture (SmolLM2-135M: 30 layers, 576 wide, 49,152 tokens)
with random weights and a byte-level tokenizer, written to a temporary directory: with no early
stop (both engines generate every token), speed does not depend on what the weights are.
# choice: the GRPO steps swap in a reward that gives mixed groups (even answer length = right),
since random weights never solve a problem and groups without signal skip the update.
"""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments" / "bench"))

import torch  # noqa: E402

from bridgekit import cli  # noqa: E402

DEFAULT_SHAPE = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                     rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True)
TINY_SHAPE = dict(vocab_size=272, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False)


def random_model_dir(path, shape, seed=0):
    """A llama-layout model directory (config.json, model.safetensors, tokenizer) with random weights."""
    from safetensors.torch import save_file
    from model import Config, Transformer
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny import write_tokenizer  # the byte-level tokenizer + ChatML template of the tests
    path.mkdir(parents=True, exist_ok=True)
    config = dict(shape, model_type="llama", architectures=["LlamaForCausalLM"], bos_token_id=1,
                  eos_token_id=2, pad_token_id=0, hidden_act="silu", torch_dtype="float32")
    torch.manual_seed(seed)
    model = Transformer(Config.from_dict(config))
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1 + 0.1 * torch.randn_like(p) if name.endswith("norm.weight") else 0.02 * torch.randn_like(p))
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if not (shape["tie_word_embeddings"] and k == "lm_head.weight")}
    save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(config))
    write_tokenizer(path)
    return path


def cuda_tests(dry_run):
    """`pytest -k cuda` on the suite: passed/skipped/failed counts and the last line."""
    if dry_run:
        return dict(skipped="dry run: the CUDA tests are skipped without a GPU (the suite reports them)")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-k", "cuda", "tests/scripts/test_02_sample.py"],
                          cwd=ROOT, capture_output=True, text=True)
    return dict(returncode=done.returncode, summary=done.stdout.strip().splitlines()[-1] if done.stdout else "",
                tail=done.stdout[-2000:] + done.stderr[-1000:])


def sampler_rows(model_dir, device, widths, dtypes, new_tokens, peer):
    import bench_sampler
    rows = []
    for dtype in dtypes:
        for width in widths:
            job = dict(model=str(model_dir), new_tokens=new_tokens, table="sampler", block="none",
                       device=device, dtype=dtype, width=width)
            ours = bench_sampler.measure(dict(job, engine="ours"))["tok_s"]
            hf = bench_sampler.measure(dict(job, engine="hf"))["tok_s"] if peer else None
            rows.append(dict(dtype=dtype, width=width, ours_tok_s=ours, hf_tok_s=hf,
                             ratio=None if hf is None else ours / hf))
            print(f"sampler {dtype} width {width}: ours {ours:.0f} tok/s" +
                  ("" if hf is None else f", generate {hf:.0f} tok/s ({ours / hf:.2f}x)"), file=sys.stderr, flush=True)
    return rows


def bridge_row(model_dir, device, width, new_tokens, repeats):
    import bench_sampler
    r = bench_sampler.measure(dict(model=str(model_dir), new_tokens=new_tokens, table="bridge", engine="ours",
                                   block="bridge", device=device, dtype="fp32", width=width, repeats=repeats))
    row = dict(width=width, off_tok_s=r["tok_s_off"], on_tok_s=r["tok_s"], on_off=r["tok_s"] / r["tok_s_off"])
    print(f"bridge width {width}: on/off {row['on_off']:.2f}", file=sys.stderr, flush=True)
    return row


def grpo_steps(model_dir, device, out, steps, sizes):
    """`steps` GRPO steps of train_grpo.py (Bridge arm, --train all) in this process; the log's numbers."""
    import train_grpo
    from tiny import even_length_group_reward
    real = train_grpo.group_reward
    train_grpo.group_reward = even_length_group_reward
    try:
        t0 = time.time()
        train_grpo.main(["--model", str(model_dir), "--out", str(out), "--steps", str(steps), "--device", device,
                         "--arch", "bridge", "--train", "all", "--show-every", "0", "--save-every", "1000", *sizes])
        seconds = time.time() - t0
    finally:
        train_grpo.group_reward = real
    log = [json.loads(line) for line in (Path(out) / "log.jsonl").read_text().splitlines()]
    keys = ("step", "step_s", "rollout_s", "update_s", "groups_updated", "peak_rss_mb", "loss", "grad_norm")
    return dict(seconds=seconds, steps=[{k: r.get(k) for k in keys} for r in log],
                peak_cuda_mb=torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None)


def markdown(result):
    lines = [f"GPU check on **{result['machine']}**, torch {result['torch']}, transformers {result['transformers']}"
             f"{' (dry run on CPU, tiny sizes)' if result['dry_run'] else ''}; {result['seconds']:.0f} s in all.", "",
             f"CUDA tests: {result['cuda_tests'].get('summary') or result['cuda_tests'].get('skipped')}", "",
             "| dtype | width | ours tok/s | generate tok/s | ours / generate |", "|---|---|---|---|---|"]
    for r in result["sampler"]:
        hf = "—" if r["hf_tok_s"] is None else f"{r['hf_tok_s']:.0f}"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['dtype']} | {r['width']} | {r['ours_tok_s']:.0f} | {hf} | {ratio} |")
    b = result["bridge"]
    lines += ["", f"Bridge blocks at width {b['width']} (fp32): {b['off_tok_s']:.0f} tok/s off, {b['on_tok_s']:.0f} on "
              f"(on/off {b['on_off']:.2f}).", ""]
    g = result["grpo"]
    lines.append("GRPO steps (Bridge, --train all): " + ", ".join(
        f"step {s['step']}: {s['step_s']:.1f} s (rollout {s['rollout_s']:.1f}, update {s['update_s']:.1f}, "
        f"{s['groups_updated']} groups updated)" for s in g["steps"])
        + ("" if g["peak_cuda_mb"] is None else f"; peak CUDA memory {g['peak_cuda_mb']:.0f} MB") + ".")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = cli.Parser(prog="gpu_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny model and sizes (what the test suite runs)")
    p.add_argument("--device", default=None, help="default: cuda (cpu with --dry-run)")
    p.add_argument("--out", default=str(ROOT / "experiments" / "results" / "gpu_check.json"), help="the JSON; the table goes beside it as .md")
    cli.add_overwrite(p)
    args = p.parse_args(argv)
    device = args.device or ("cpu" if args.dry_run else "cuda")
    from bridgekit.checks import check_device
    check_device(device)  # no CUDA: the project's one-line error
    from memory import check_outputs
    out = check_outputs(args.out, args.overwrite)  # before the check's minutes, not after
    try:
        import transformers
        peer = transformers.__version__
    except ImportError:
        peer = None  # the comparison rows then say "—"
    dry = args.dry_run
    shape = TINY_SHAPE if dry else DEFAULT_SHAPE
    widths, new_tokens = ([1, 4] if dry else [1, 4, 16, 64]), (4 if dry else 128)
    sizes = (["--shots", "0", "--max-new-tokens", "6", "--heads", "2", "--head-dim", "4", "--prompts-per-step", "2"]
             if dry else ["--max-new-tokens", "64"])
    from bridgekit.result_files import machine
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = random_model_dir(Path(tmp) / "model", shape)
        result = dict(machine=machine(device), device=device, dry_run=dry, torch=torch.__version__,
                      transformers=peer, shape=shape, new_tokens=new_tokens, cuda_tests=cuda_tests(dry))
        result["sampler"] = sampler_rows(model_dir, device, widths, ["fp32", "bf16"], new_tokens, peer is not None)
        result["bridge"] = bridge_row(model_dir, device, 4 if dry else 16, new_tokens, 1 if dry else 3)
        result["grpo"] = grpo_steps(model_dir, device, Path(tmp) / "grpo", 2, sizes)
    result["seconds"] = time.time() - t0
    cli.write_text(out, json.dumps(result, indent=1) + "\n")
    cli.write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result))
    return 1 if result["cuda_tests"].get("returncode") else 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
