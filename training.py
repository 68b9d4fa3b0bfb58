"""
What the two training scripts (train_sft.py, train_grpo.py) share: the log-prob forward with the
prompt computed once per group, micro-batches of whole groups, the command-line flags both take,
the model set-up (blocks, what trains, the optimizer) and the order of the training data. Files on
disk (checkpoints) are in checkpoint.py, the step log and Ctrl-C in cli.py, the plumbing for
several processes (torchrun) in parallel.py.

The prompt-once forward (answer_logprobs) is the training twin of the sampler's "prefill once per
prompt": the `width` rows of a group share their prompt, and Bridge over identical rows equals its
width-1 result, so the prompt runs at B rows, its keys and values are copied into the B * width
rows, and the answers run on top of them. Gradients flow back through the copy into the shared
prompt (the copy's backward sums the rows). tests/test_training.py shows it equals the plain
N-row forward, log-probs and gradients, with non-zero Bridge blocks, ragged prompts and early EOS.
The answers then run in pieces that leave out the padding after each row's EOS (answer_chunks).
"""
import json
import math
import random
from contextlib import nullcontext
from pathlib import Path

import torch

import cli
import parallel
from checkpoint import check_run_owner, check_state, checkpoint_dir, load_bridge, write_args, write_checkpoint
from model import KVCache, load_model
from fast import group_slots
from sample import token_logprobs
from tasks import DATA_TASK, DEFAULT_KNOBS, SYSTEM, TASKS, file_problems, prompt_ids, stable_seed

# -----------------------------------------------------------------------------
# log-probs of answers


def answer_logprobs(model, prompt, prompt_alive, answer, answer_alive, width, *, temperature=1.0,
                    shared_prompt=True, pieces=True):
    """log p(answer[n, s] | prompt, answer[n, :s], the siblings' answers up to s): (N, S) fp32.

    prompt (B, P) and prompt_alive: one left-padded prompt per group. answer (N, S) and
    answer_alive: N = B * width rows, grouped prompt-major, alive up to and including EOS.
    temperature: the log-probs are those of the distribution the sampler drew from at this
    temperature (sample.token_logprobs, the sampler's own rule); 1 for the model's own.
    Positions where answer_alive is False get 0 (as the sampler records them) and no gradient.
    shared_prompt=False runs the plain forward over N full rows (the reference it must equal);
    pieces=False runs the answers on the shared prompt in one piece, every row to the end
    (answers_on_cache: what the pieces save).
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
        device = prompt.device.type  # ("meta": tools/memory.py counts this function's activations)
        autocast = device in ("cpu", "cuda") and torch.is_autocast_enabled(device)
        dtype = torch.get_autocast_dtype(device) if autocast else model.lm_head.weight.dtype
        cache = KVCache(model.config, B, P + S, prompt.device, dtype)
        h_prompt = model.hidden(prompt, width=1, alive=prompt_alive, cache=cache)       # (B, P, D)
        cache = cache.repeat_rows(width)                                                 # N rows
        # the last prompt position predicts answer token 0; answer token s predicts token s + 1
        h = h_prompt[:, -1:].repeat_interleave(width, 0)                                 # (N, 1, D)
        if S > 1 or parallel.is_sharded(model):
            # --shard: every process must make the same passes, forward and backward (FSDP2 gathers a
            # layer's weights for each), so a micro-batch of one-token answers still runs the answers'
            # pass: over its one column, which predicts nothing; sliced off, it stays in the graph
            cols = slice(0, max(S - 1, 1))
            rest = answers_on_cache(model, cache, answer[:, cols], answer_alive[:, cols], width, pieces)
            h = torch.cat((h, rest), dim=1)[:, :S]                                       # (N, S, D)
    # the vocabulary product only where a token is scored: for the default model it costs about a
    # fifth of a position's forward and backward, and the padding after EOS is often half the answers
    if answer.device.type == "meta":  # shapes only (tools/memory.py): every position scored
        return token_logprobs(model.lm_head(h), answer, temperature)
    picked = token_logprobs(model.lm_head(h[answer_alive]), answer[answer_alive], temperature)
    return picked.new_zeros(N, S).index_put((answer_alive,), picked)                    # (N, S)


def answer_chunks(alive, width, overhead=64):
    """How answers_on_cache cuts the answer columns into pieces: [(start, end, w, rows, real), ...].

    A row is needed up to its last alive column (its EOS, a key for its siblings at that step);
    after it, its positions are padding that nothing reads. The piece [start, end) computes only
    the rows still needed at `start`, laid out by sample.group_slots as w slots per group: rows
    (G * w,) says which answer row fills each slot, real (G * w,) whether it is one of them or a
    group's padding (alive False for the whole piece, never read).
    The cuts minimise rows x columns computed plus `overhead` per piece, exactly (a dynamic
    programme over the columns where some row ends). # choice: overhead 64: on this CPU one more
    piece of the default model (a forward and a backward through every layer, the cache copied to
    the kept rows) cost about 0.25 s, what 45-50 rows x columns cost (a 224-token prompt, answers of 64).
    """
    N, T = alive.shape
    B, W = N // width, width
    if alive.device.type == "meta":  # shapes only (tools/memory.py): every row to the end, one piece
        return one_piece(N, T, width)
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
    chunks = []
    for start, end in bounds:
        rows, real, w = group_slots(live[start])
        if w == 0:  # no row is needed from here on
            break
        chunks.append((start, end, w, torch.tensor(rows, dtype=torch.long), torch.tensor(real)))
    return chunks


def one_piece(N, T, width):
    """The plan of one piece, every row to the end (the work of one model.hidden over all N rows)."""
    return [(0, T, width, torch.arange(N), torch.ones(N, dtype=torch.bool))]


def answers_on_cache(model, cache, tokens, alive, width, pieces=True):
    """Hidden states (N, T, D) of answer tokens (N, T) on top of `cache` (the prompts, N rows), in the
    pieces answer_chunks plans; a row's columns after its last alive one are 0 (never computed).

    The same numbers as one model.hidden over all N rows (tests/test_training.py) without the
    padding: with one answer cut at --max-new-tokens and its siblings ending at half of it, a
    group of 4 is over a third padding. pieces=False: one piece, every row to the end.
    """
    N, T = tokens.shape
    # --shard: every process must run the same passes (FSDP2 gathers a layer's weights for each), and
    # the pieces depend on the answers, so a sharded model runs every row to the end in one piece
    plan = answer_chunks(alive, width) if pieces and not parallel.is_sharded(model) else one_piece(N, T, width)
    out, held = None, list(range(N))   # held[i]: the answer row whose keys and values are cache row i
    for start, end, w, rows, real in plan:
        place = {row: i for i, row in enumerate(held) if row is not None}
        slots = rows.tolist()
        if start > 0 or slots != held:  # a fresh copy (the last piece's backward still reads the old one)
            cache = cache.select_rows(torch.tensor([place[row] for row in slots], device=tokens.device))
        rows_d, real_d = rows.to(tokens.device), real.to(tokens.device)
        h = model.hidden(tokens[rows_d, start:end], width=w, alive=alive[rows_d, start:end] & real_d[:, None],
                         cache=cache)                                                # (G * w, piece, D)
        if out is None:
            out = h.new_zeros(N, T, h.shape[-1])
        kept = real.nonzero().squeeze(1)
        out[rows[kept].to(tokens.device), start:end] = h[kept.to(tokens.device)]
        held = [row if r else None for row, r in zip(slots, real.tolist())]
    if out is None:  # no row alive anywhere
        out = torch.zeros(N, T, model.config.hidden_size, dtype=cache.k[0].dtype, device=tokens.device)
    return out


def split_rollout(rollout, rows):
    """The prompt (one row per group) and the answers of rows `rows` (a slice of whole groups).

    The answers end at the last position any of these rows is alive: the columns after it hold only
    padding (the batch ran on for longer rows elsewhere), and leaving them out changes no log-prob."""
    W, P = rollout.width, rollout.prompt_len
    assert rows.start % W == 0 and rows.stop % W == 0, "a micro-batch must hold whole groups"
    alive = rollout.alive[rows, P:]
    S = int(alive.any(0).nonzero().max()) + 1 if alive.any() else 1
    return (rollout.tokens[rows.start:rows.stop:W, :P], rollout.alive[rows.start:rows.stop:W, :P],
            rollout.tokens[rows, P:P + S], alive[:, :S])


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
    """The flags both training scripts take (each adds its own)."""
    p.set_defaults(script=p.prog)  # recorded in OUT/args.json: the run directory is this script's
    p.add_argument("--model", default=None, help="local HF-style directory or HF repo id (default: SmolLM2-135M-Instruct from PyPI, "
                   "converted once: the base of the committed Bridges)")
    p.add_argument("--task", default=None, choices=list(TASKS), help="task family of tasks.py (default word)")
    p.add_argument("--data", default=None, metavar="FILE.jsonl",
                   help="train on your own problems instead of a --task: a GSM8K-style JSONL file, one "
                        "{\"question\": ..., \"answer\": \"... #### N\"} per line, taken in file order (default: none)")
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
    p.add_argument("--seed", type=int, default=0, help="seed of the problems, their order, the sampling and the new blocks (default 0)")
    p.add_argument("--out", required=True, help="output directory: log.jsonl, checkpoint/")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--save-every", type=int, default=10, help="write a checkpoint every k steps (and at the end; default 10)")
    p.add_argument("--show-every", type=int, default=10, help="print one group's answers every k steps (default 10; 0 = never)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="fp32, or bf16 autocast with fp32 master weights (default fp32)")
    p.add_argument("--compile", action="store_true", help="sample (rollouts, warm-up data) with torch.compile of the "
                   "model (sample.decoder: the same tokens up to float rounding; compiles once; default off)")
    p.add_argument("--shard", action="store_true", help="under torchrun: split parameters, gradients and AdamW state "
                   "over the processes (FSDP2) instead of a full replica each")


def parse_problem_source(p, argv):
    """p.parse_args(argv) with --task or --data resolved: --task defaults to word; --data FILE makes the
    task "gsm8k" (the family tasks.load_jsonl gives its problems) and takes no --task or --hi."""
    args = p.parse_args(argv)
    if args.data is None:
        args.task = args.task or "word"
    elif args.task is not None or args.hi is not None:
        p.error("--data FILE gives the problems: drop --task and --hi")
    else:
        args.task = DATA_TASK
    return args


def check_common(args):
    """Argument errors found before anything slow happens (ValueError, one line)."""
    from model import check_device
    check_device(args.device)
    if getattr(args, "data", None) is not None:
        file_problems(args.data)  # a missing or malformed file: one line here, not after the model loads
    else:
        knobs = task_knobs(args)
        try:  # an impossible knob (e.g. --hi -1) is a one-line error here, not after the model loads
            TASKS[args.task][0](**knobs)
        except TypeError:
            raise ValueError(f"task {args.task!r} takes no knob --hi") from None
    for name in ("width", "steps", "heads", "head_dim", "max_new_tokens", "micro_groups", "save_every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.shots < 0:
        raise ValueError(f"--shots must be >= 0, got {args.shots}")
    # a negative learning rate or clip norm would turn descent into ascent without a word
    for name in ("lr_new", "max_grad_norm"):
        check_positive(args, name)
    cli.check_out_dir(args.out)
    if args.compile and args.shard:
        raise ValueError("--compile samples with the whole model; with --shard it is gathered per rollout: "
                         "use one or the other")
    parallel.check_shard(args.shard)
    out = Path(args.out)
    check_run_owner(out, args.script)  # before anything in OUT is written
    if args.resume and not checkpoint_dir(out):
        raise ValueError(f"--resume: {out} holds no checkpoint to resume from")
    if not args.resume and checkpoint_dir(out):
        raise ValueError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    if args.resume:
        check_same_run(args, out)
        check_state(out)  # a truncated state.pt: one line here, not a traceback after the model loads


# what a resumed run may change: how long it runs, how often it saves and shows, and how it computes
# (device, compiled sampling, sharding, micro-batches), none of which changes what it computes
RESUME_MAY_CHANGE = {"steps", "resume", "save_every", "show_every", "device", "compile", "shard", "micro_groups", "out"}


def check_same_run(args, out):
    """--resume continues the run as it started: any other changed argument is a one-line error. (The
    optimizer state it loads holds the learning rates it started with; a new --lr would be silently
    ignored, and OUT/args.json would say otherwise.)"""
    path = Path(out) / "args.json"
    if not path.is_file():
        return
    started = json.loads(path.read_text())
    changed = [f"--{k.replace('_', '-')} {v} (the run has {started[k]})" for k, v in vars(args).items()
               if k in started and k not in RESUME_MAY_CHANGE and started[k] != v]
    if changed:
        raise ValueError(f"--resume continues {out} as it started; these differ: {', '.join(changed)}. "
                         "Start a new --out to change them")


def check_positive(args, name, zero_ok=False):
    """--name must be a finite number > 0 (>= 0 with zero_ok), else a one-line ValueError."""
    value = getattr(args, name)
    if not (math.isfinite(value) and (value >= 0 if zero_ok else value > 0)):
        raise ValueError(f"--{name.replace('_', '-')} must be {'>= 0' if zero_ok else '> 0'}, got {value}")


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
    """Each problem's prompt as training asks it (tasks.prompt_ids, with --shots and --system)."""
    return [prompt_ids(tokenizer, p, shots=args.shots, system=args.system) for p in problems]

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
    return torch.optim.AdamW(groups, betas=(0.9, 0.999), weight_decay=0.0, fused=fused_adamw(model))


def fused_adamw(model):
    """Whether AdamW uses PyTorch's fused kernel: the same update in one pass over each tensor instead
    of the default's loop of small ops per tensor. For the default model with --train all on the
    2-core CPU, a one-off timing gave 0.05 s a step against 0.46 s. It also runs on FSDP2's shards."""
    devices = {p.device.type for p in model.parameters()}
    return True if devices <= {"cpu", "cuda"} else None


def parameter_counts(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"training {trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%)"

# -----------------------------------------------------------------------------
# checkpoints (the format is checkpoint.py's) and the run directory


class Gathered:
    """What a checkpoint reads of a sharded model: its config, its blocks and its whole state."""

    def __init__(self, model, state):
        self.config, self.bridge_config, self.source, self._state = model.config, model.bridge_config, model.source, state

    def state_dict(self):
        return self._state


def save_checkpoint(out, model, optimizer, step, args, train):
    """The main process writes the checkpoint (the replicas are equal); the others wait until it
    is complete, so that none moves on or exits (e.g. after Ctrl-C) while it is being written.
    A sharded model is first gathered whole (every process takes part), and its optimizer state
    is written by parameter name, a layout that resumes with or without --shard."""
    if parallel.is_sharded(model):
        state, optimizer_state = parallel.full_states(model, optimizer)
        if parallel.is_main():
            write_checkpoint(out, Gathered(model, state), None, step, args, train, optimizer_state=optimizer_state)
    elif parallel.is_main():
        write_checkpoint(out, model, optimizer, step, args, train)
    parallel.barrier()


def restore_optimizer(model, optimizer, state):
    """Load the optimizer state of a checkpoint, in the layout it was written in (save_checkpoint)."""
    kernels = [(g["fused"], g["foreach"]) for g in optimizer.param_groups]  # this run's, not the writer's
    if state.get("optimizer_layout") == "by name":
        parallel.load_optimizer_state(model, optimizer, state["optimizer"])
    elif parallel.is_sharded(model):
        raise ValueError("this checkpoint was written without --shard: resume it without --shard")
    else:
        optimizer.load_state_dict(state["optimizer"])
    for g, (fused, foreach) in zip(optimizer.param_groups, kernels):
        g["fused"], g["foreach"] = fused, foreach
        for p in g["params"] if fused else ():  # the fused kernel keeps its step count beside the weights
            if "step" in optimizer.state.get(p, {}):
                optimizer.state[p]["step"] = optimizer.state[p]["step"].to(p.device, torch.float32)


def start_run(args):
    """OUT/args.json, written by the main process."""
    if parallel.is_main():
        write_args(args.out, args)

# -----------------------------------------------------------------------------
# the order of the training data


def epoch_stream(items, step, per_step, seed, name):
    """The items of `step`: positions step*per_step .. (step+1)*per_step - 1 of a stream that goes
    through `items` once per epoch, in an order shuffled with seed (name, seed, epoch).
    Returns [(position in the stream, item)]: a step depends only on (seed, step), never on state."""
    out = []
    for i in range(step * per_step, (step + 1) * per_step):
        epoch, pos = divmod(i, len(items))
        order = list(range(len(items)))
        random.Random(stable_seed(name, seed, epoch)).shuffle(order)
        out.append((i, items[order[pos]]))
    return out
