"""
What the two training scripts (train_sft.py, train_grpo.py) share: the log-prob forward with the
prompt computed once per group, the model set-up (blocks, what trains, the optimizer), the prompts,
atomic checkpoints and resuming, and the one-line-per-step log. The plumbing for several
processes (torchrun) is in parallel.py.

The prompt-once forward (answer_logprobs) is the training twin of the sampler's "prefill once per
prompt": the `width` rows of a group share their prompt, and Bridge over identical rows equals its
width-1 result, so the prompt runs at B rows, its keys and values are copied into the B * width
rows, and the answers run on top of them. Gradients flow back through the copy into the shared
prompt (the copy's backward sums the rows). tests/test_training.py shows it equals the plain
N-row forward, log-probs and gradients, with non-zero Bridge blocks, ragged prompts and early EOS.
"""
import json
import os
import resource
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from model import KVCache, load_bridge, load_model, save_bridge
from parallel import barrier, is_main
from tasks import DEFAULT_KNOBS, SYSTEM, TASKS, Parser, _stable_seed, messages

# -----------------------------------------------------------------------------
# log-probs of answers


def answer_logprobs(model, prompt, prompt_alive, answer, answer_alive, width, *, shared_prompt=True):
    """log p(answer[n, s] | prompt, answer[n, :s], the siblings' answers up to s): (N, S) fp32.

    prompt (B, P) and prompt_alive: one left-padded prompt per group. answer (N, S) and
    answer_alive: N = B * width rows, grouped prompt-major, alive up to and including EOS.
    shared_prompt=False runs the plain forward over N full rows (the reference it must equal).
    """
    B, P = prompt.shape
    N, S = answer.shape
    if N != B * width:
        raise ValueError(f"{N} answer rows is not {B} prompts x width {width}")
    if not shared_prompt:
        tokens = torch.cat((prompt.repeat_interleave(width, 0), answer), dim=1)        # (N, P+S)
        alive = torch.cat((prompt_alive.repeat_interleave(width, 0), answer_alive), dim=1)
        h = model.hidden(tokens, width=width, alive=alive)[:, P - 1:P + S - 1]          # (N, S, D)
    else:
        dtype = torch.get_autocast_dtype(prompt.device.type) if torch.is_autocast_enabled(
            prompt.device.type) else model.lm_head.weight.dtype
        cache = KVCache(model.config, B, P + S, prompt.device, dtype)
        h_prompt = model.hidden(prompt, width=1, alive=prompt_alive, cache=cache)       # (B, P, D)
        cache = cache.repeat_rows(width)                                                 # N rows
        # the last prompt position predicts answer token 0; answer token s predicts token s + 1
        h = h_prompt[:, -1:].repeat_interleave(width, 0)                                 # (N, 1, D)
        if S > 1:
            rest = model.hidden(answer[:, :-1], width=width, alive=answer_alive[:, :-1], cache=cache)
            h = torch.cat((h, rest), dim=1)                                              # (N, S, D)
    logits = model.lm_head(h)                                                            # (N, S, V)
    logits = logits if logits.dtype == torch.float64 else logits.float()  # fp32 at least, as the sampler
    return logits.log_softmax(-1).gather(-1, answer[..., None]).squeeze(-1)              # (N, S)


def split_rollout(rollout, rows):
    """The prompt (one row per group) and the answers of rows `rows` (a slice of whole groups)."""
    W, P = rollout.width, rollout.prompt_len
    assert rows.start % W == 0 and rows.stop % W == 0, "a micro-batch must hold whole groups"
    return (rollout.tokens[rows.start:rows.stop:W, :P], rollout.alive[rows.start:rows.stop:W, :P],
            rollout.tokens[rows, P:], rollout.alive[rows, P:])


def micro_batches(group_ids, groups_per_batch, width):
    """Row slices of whole groups: [(rows of groups g0..g1), ...] for consecutive groups in group_ids.

    group_ids must be sorted; consecutive runs are cut into chunks of at most groups_per_batch.
    # choice: groups are never split (Bridge couples a group's rows), never sorted by length.
    """
    out, chunk = [], []
    for g in group_ids:
        if chunk and (g != chunk[-1] + 1 or len(chunk) == groups_per_batch):
            out.append(slice(chunk[0] * width, (chunk[-1] + 1) * width))
            chunk = []
        chunk.append(g)
    if chunk:
        out.append(slice(chunk[0] * width, (chunk[-1] + 1) * width))
    return out

# -----------------------------------------------------------------------------
# command line shared by both scripts


def common_args(p, *, width, lr_new):
    p.add_argument("--model", default=None, help="local HF-style directory or HF repo id (default: SmolLM2-135M-Instruct)")
    p.add_argument("--task", default="word", choices=list(TASKS), help="task family of tasks.py (default word)")
    p.add_argument("--hi", type=int, default=None, help="largest number in the problems (task knob; default: 9 for word, else the task's own)")
    p.add_argument("--shots", type=int, default=2, help="worked examples before each question (default 2)")
    p.add_argument("--system", default=SYSTEM, help=f"system message; '' = the chat template's default (default {SYSTEM!r})")
    p.add_argument("--width", type=int, default=width, help=f"answers per group, sampled/trained together (default {width})")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default: see the script)")
    p.add_argument("--arch", default="bridge", choices=["none", "pmatch", "bridge"], help="new blocks: none (RLVR only), pmatch, bridge (default bridge)")
    p.add_argument("--heads", type=int, default=4, help="heads of a new block (default 4)")
    p.add_argument("--head-dim", type=int, default=16, help="head dimension of a new block (default 16)")
    p.add_argument("--lr-new", type=float, default=lr_new, help=f"learning rate of the new blocks (default {lr_new})")
    p.add_argument("--max-new-tokens", type=int, default=64, help="answer tokens at most (default 64)")
    p.add_argument("--micro-groups", type=int, default=2, help="groups per forward/backward (gradient accumulation over the rest; default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the problems, the sampling and the new blocks (default 0)")
    p.add_argument("--out", required=True, help="output directory: log.jsonl, checkpoint/")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--save-every", type=int, default=10, help="write a checkpoint every k steps (and at the end; default 10)")
    p.add_argument("--show-every", type=int, default=10, help="print one group's answers every k steps (default 10; 0 = never)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="fp32, or bf16 autocast with fp32 master weights (default fp32)")


def check_common(args):
    """Argument errors found before anything slow happens (ValueError, one line)."""
    from model import check_device
    check_device(args.device)
    for name in ("width", "steps", "heads", "head_dim", "max_new_tokens", "micro_groups", "save_every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.shots < 0:
        raise ValueError(f"--shots must be >= 0, got {args.shots}")
    out = Path(args.out)
    if args.resume and not checkpoint_dir(out):
        raise ValueError(f"--resume: {out} holds no checkpoint to resume from")
    if not args.resume and checkpoint_dir(out):
        raise ValueError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")


def autocast(args):
    """bf16 autocast (matrix products in bf16, master weights and the loss in fp32), or nothing."""
    if args.dtype == "bf16":
        return torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16)
    return nullcontext()


def task_knobs(args):
    """The task's difficulty knobs: DEFAULT_KNOBS for the task, with --hi on top."""
    knobs = dict(DEFAULT_KNOBS.get(args.task, {}))
    if args.hi is not None:
        knobs["hi"] = args.hi
    return knobs


def encode_problems(tokenizer, problems, args):
    """Each problem as the ids of its chat prompt: `shots` worked examples, then the question."""
    system = args.system or None
    return [tokenizer.encode(tokenizer.chat(messages(p, shots=args.shots, seed=args.seed, system=system)),
                             add_special_tokens=False) for p in problems]

# -----------------------------------------------------------------------------
# the model: blocks, what trains, the optimizer


def build_model(args, *, init=None):
    """(model, tokenizer): the base model with fresh blocks of --arch, or the blocks of `init`."""
    model, tokenizer = load_model(args.model, device=args.device)
    if init is not None:
        load_bridge(model, init)  # checks that it was made for this base model
        kind = model.bridge_config["kind"]
        if kind != args.arch:
            raise ValueError(f"--init {init} holds {kind} blocks but --arch is {args.arch}")
    elif args.arch != "none":
        model.add_bridge(args.arch, n_heads=args.heads, head_dim=args.head_dim, seed=args.seed)
    return model, tokenizer


def make_optimizer(model, train, lr, lr_new):
    """AdamW over what trains: 'new' = the blocks only (the rest frozen), 'all' = everything."""
    new = list(model.bridge_parameters())
    new_ids = {id(p) for p in new}
    base = [p for p in model.parameters() if id(p) not in new_ids]
    for p in base:
        p.requires_grad_(train == "all")
    groups = [dict(params=new, lr=lr_new)] if new else []
    if train == "all":
        groups.insert(0, dict(params=base, lr=lr))
    # choice: no weight decay (the blocks start at zero and should stay small unless useful)
    return torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=0.0)


def parameter_counts(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"training {trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%)"

# -----------------------------------------------------------------------------
# checkpoints: OUT/checkpoint/ is replaced atomically, so a stopped run never leaves half of one


def checkpoint_dir(out):
    """The complete checkpoint in out, or None. checkpoint.old is the previous one during a swap."""
    for name in ("checkpoint", "checkpoint.old"):
        if (Path(out) / name / "state.pt").exists():
            return Path(out) / name
    return None


def save_checkpoint(out, model, optimizer, step, args, train):
    """The main process writes the checkpoint (the replicas are equal); the others wait until it
    is complete, so that none moves on or exits (e.g. after Ctrl-C) while it is being written."""
    if is_main():
        write_checkpoint(out, model, optimizer, step, args, train)
    barrier()


def write_checkpoint(out, model, optimizer, step, args, train):
    """Write OUT/checkpoint/: state.pt (step, optimizer, RNG states, arguments), the new blocks
    (bridge.safetensors, loadable by sample.py --bridge) and, with --train all, the whole model as
    an HF-style directory that load_model loads. Written to checkpoint.tmp, then swapped in."""
    from safetensors.torch import save_file
    out = Path(out)
    tmp, final, old = out / "checkpoint.tmp", out / "checkpoint", out / "checkpoint.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if model.bridge_config is not None:
        save_bridge(model, tmp / "bridge.safetensors")
    if train == "all":
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()
                 if ".bridge." not in k and not (k == "lm_head.weight" and model.config.tie_word_embeddings)}
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
            if (Path(model.source) / name).exists():
                shutil.copy(Path(model.source) / name, tmp / name)
    torch.save(dict(step=step, optimizer=optimizer.state_dict(), args=vars(args), train=train,
                    torch_rng=torch.get_rng_state()), tmp / "state.pt")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(out, model_builder):
    """(model, tokenizer, state) from OUT's checkpoint; model_builder(model_dir, bridge) loads it."""
    ckpt = checkpoint_dir(out)
    state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=False)
    bridge = ckpt / "bridge.safetensors"
    model_dir = ckpt if (ckpt / "model.safetensors").exists() else None
    model, tokenizer = model_builder(model_dir, bridge if bridge.exists() else None)
    torch.set_rng_state(state["torch_rng"])
    return model, tokenizer, state


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB

# -----------------------------------------------------------------------------
# the step log: one line per step on stdout, the same record in OUT/log.jsonl


def hms(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class StepLog:
    """Prints `fields` of every step's record in a fixed order and appends the record to log.jsonl.

    On resume, log lines of steps after the checkpoint (written before the run stopped) are dropped.
    Only the main process prints and writes; the records it gets hold the whole step's numbers.
    """

    def __init__(self, out, fields, total_steps, first_step):
        self.path = Path(out) / "log.jsonl"
        self.fields, self.total, self.first = fields, total_steps, first_step
        self.t0 = time.time()
        self.main = is_main()
        if self.main and self.path.exists():
            keep = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] < first_step]
            self.path.write_text("".join(line + "\n" for line in keep))

    def write(self, record):
        if not self.main:
            return
        step = record["step"]
        elapsed = time.time() - self.t0
        done = step - self.first + 1
        record.update(elapsed_s=elapsed, eta_s=elapsed / done * (self.total - step - 1),
                      peak_rss_mb=peak_rss_mb())
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        cells = [f"step {step + 1}/{self.total}"]
        for name, fmt in self.fields:
            cells.append(f"{name} {format(record[name], fmt)}")
        cells += [f"elapsed {hms(elapsed)}", f"eta {hms(record['eta_s'])}"]
        print(" | ".join(cells), flush=True)


class GracefulStop:
    """Ctrl-C during training: finish the current step, save a checkpoint, then exit (code 130).

    A checkpoint must be a state the run really passed through, so the first Ctrl-C only raises a
    flag that the loop reads between steps; a second Ctrl-C stops at once (losing that step).
    """

    def __enter__(self):
        import signal
        self.requested = False
        self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step and saving (Ctrl-C again to stop now)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        import signal
        signal.signal(signal.SIGINT, self.previous)


def epoch_stream(items, step, per_step, seed, name):
    """The items of `step`: positions step*per_step .. (step+1)*per_step - 1 of a stream that goes
    through `items` once per epoch, in an order shuffled with seed (name, seed, epoch).
    Returns [(position in the stream, item)]: a step depends only on (seed, step), never on state."""
    import random
    out = []
    for i in range(step * per_step, (step + 1) * per_step):
        epoch, pos = divmod(i, len(items))
        order = list(range(len(items)))
        random.Random(stable_seed(name, seed, epoch)).shuffle(order)
        out.append((i, items[order[pos]]))
    return out


def stable_seed(*parts):
    """A 63-bit seed from any parts (ints, strings), the same in every process: tasks.py's stable
    hash, halved so that it is a non-negative int64 (a torch seed)."""
    return _stable_seed(*parts) >> 1


def write_args(out, args):
    if not is_main():
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    tmp = Path(out) / "args.json.tmp"
    tmp.write_text(json.dumps(vars(args), indent=2) + "\n")
    os.replace(tmp, Path(out) / "args.json")

# -----------------------------------------------------------------------------
# the reward curves of several runs in one picture (matplotlib, an optional extra)


def read_log(run, steps=None):
    """The step records of a run directory's log.jsonl (the first `steps` of them, if given)."""
    path = Path(run) / "log.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no training log")
    log = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return log[:steps] if steps else log


def plot_runs(run_dirs, out, *, smooth=10, labels=None, steps=None):
    """Train reward per step (and its running mean over `smooth` steps), one line per run directory."""
    try:
        import matplotlib
    except ImportError:
        raise ValueError("plotting needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, run in enumerate(run_dirs):
        log = read_log(run, steps)
        args = json.loads((Path(run) / "args.json").read_text())
        label = labels[i] if labels else f"{args.get('arch')} ({Path(run).name})"
        xs = [r["step"] + 1 for r in log]
        rewards = [r["reward"] for r in log]
        mean = [sum(rewards[max(0, j - smooth + 1):j + 1]) / len(rewards[max(0, j - smooth + 1):j + 1])
                for j in range(len(rewards))]
        line, = ax.plot(xs, mean, label=f"{label}, mean of {smooth} steps")
        ax.plot(xs, rewards, color=line.get_color(), alpha=0.25, linewidth=0.8)
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("train reward (share of right answers)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"wrote {out}", file=sys.stderr)


def summarize_runs(run_dirs, labels=None, first=10, steps=None):
    """A markdown table of runs: steps, mean train reward over the first and the last `first` steps,
    mean seconds per step (rollout, update) and peak resident memory."""
    lines = [f"| run | steps | reward, steps 1-{first} | reward, last {first} steps | s / step | rollout s | "
             "update s | peak RSS MB |", "|---|---|---|---|---|---|---|---|"]
    for i, run in enumerate(run_dirs):
        log = read_log(run, steps)
        mean = lambda rows, k: sum(r[k] for r in rows) / len(rows)
        label = labels[i] if labels else Path(run).name
        lines.append(f"| {label} | {len(log)} | {mean(log[:first], 'reward'):.3f} | {mean(log[-first:], 'reward'):.3f} | "
                     f"{mean(log, 'step_s'):.1f} | {mean(log, 'rollout_s'):.1f} | {mean(log, 'update_s'):.1f} | "
                     f"{max(r['peak_rss_mb'] for r in log):.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    p = Parser(prog="training.py", description="Summarize and plot the train reward per step of train_grpo.py runs.")
    p.add_argument("runs", nargs="+", help="run directories (each with log.jsonl and args.json)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--smooth", type=int, default=10, help="running mean over this many steps (default 10)")
    p.add_argument("--labels", nargs="+", default=None, help="one label per run (default: arch and directory)")
    p.add_argument("--steps", type=int, default=None, help="only the first N steps of each run (runs still going: compare equal steps)")
    a = p.parse_args()
    try:
        print(summarize_runs(a.runs, labels=a.labels, steps=a.steps))
        plot_runs(a.runs, a.out, smooth=a.smooth, labels=a.labels, steps=a.steps)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
