"""The oracle check: can Bridge represent coordination in the real sampling loop, before any RL?

On the set-level task `distinct` the warm-up's sets carry almost no sibling information (the base
model's kept numbers are near uniform, whoever wrote first). Here the targets are CONSTRUCTED, not
self-generated: the warm-up answers of the training questions are drawn into sets of --width, and
each answer's number is relabelled by when it is written (the position of its digit):

- rows with no earlier sibling, or writing at the same timestep as another row, take distinct
  random numbers among those not taken earlier (they cannot see each other's choice);
- a row that writes its number alone at its timestep, after some sibling wrote one, takes the
  number after the most recent writer's (--targets successor, the default: uniform over 1..K for
  every row, and exactly knowable by reading that sibling), or the smallest number not yet taken
  (--targets smallest, the first oracle's rule, which a row could nearly meet without reading), or
  a number uniform over those no earlier sibling took (--targets free: what a row that reads its
  siblings should sample to score well; a lone later row's target is never an earlier number).

Only the new blocks train (the base model frozen), teacher-forced: the token mean of cross-entropy
over the answers plus --number-weight times that of the number tokens (number_step). Bridge can
score above the independent ceiling on such sets only by reading what its siblings wrote; P-Match,
trained on the same sets, sees no sibling and is the control. experiments/studies/oracle_read.py measures the
read teacher-forced on held-out questions; evaluate.py SAMPLES the blocks there:

    python experiments/studies/oracle.py --arch bridge --warmup experiments/runs/.../sft_bridge/data.jsonl --out DIR
    python experiments/studies/oracle_read.py read --bridge DIR/checkpoint/bridge.safetensors --sets HELDOUT/sets.jsonl ...
    python evaluate.py --bridge DIR/checkpoint/bridge.safetensors --task distinct --split test ...

DIR/args.json keeps the arguments, DIR/sets.jsonl the constructed sets, DIR/log.jsonl the training steps,
DIR/checkpoint/bridge.safetensors the blocks. A finished DIR is left alone.
"""
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the method's files, at the root

from bridgekit import cli  # noqa: E402
from bridgekit import train_args  # noqa: E402
from bridgekit import training  # noqa: E402
from bridgekit import checkpoint  # noqa: E402
from bridgekit.checkpoint import save_bridge  # noqa: E402
from bridgekit.run_dir import write_args  # noqa: E402
from bridgekit.tasks import stable_seed  # noqa: E402

import torch  # noqa: E402
import train_sft  # noqa: E402
from sample import answer_hidden, token_logprobs  # noqa: E402


RULES = ("successor", "smallest", "free")


def oracle_numbers(positions, K, rng, rule="successor"):
    """The constructed number of each row of one set, from the timestep its number is written at.

    positions: per row, the index of its digit in its answer. Rows are taken in order of position.
    Rows writing first, or at the same step as another row, take distinct random numbers among
    those not taken before their step (they cannot see each other's choice). A row alone at its
    step with earlier siblings takes, by `rule`:
    - "successor": the number after the most recent earlier writer's, counting on cyclically
      (9 -> 1) past numbers already taken; if several wrote at that step, after one of them at
      random. The rule commutes with the shift v -> v + 1 (mod K), so every row's number is uniform
      over 1..K, and a row that reads its sibling knows its own number exactly (log K nats).
    - "smallest": the smallest number not yet taken (the first oracle: heavy on 1 and 2, so a row
      could do well knowing only THAT a sibling wrote, not what).
    - "free": a number uniform over those not yet taken. Every row's number is uniform over 1..K
      (the rule commutes with any relabelling of 1..K); reading tells a row which numbers to avoid,
      which is what sampling needs, and the best prediction stays spread over the rest.
    Returns one int per row.
    """
    if len(positions) > K:
        raise ValueError(f"{len(positions)} rows cannot take distinct numbers from 1..{K}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    out = [0] * len(positions)
    taken = set()
    last = []  # the numbers written at the most recent earlier step
    for t in sorted(set(positions)):
        rows = [i for i, p in enumerate(positions) if p == t]
        free = [v for v in range(1, K + 1) if v not in taken]
        if len(rows) == 1 and taken and rule == "smallest":
            picks = [free[0]]
        elif len(rows) == 1 and taken and rule == "free":
            picks = [rng.choice(free)]
        elif len(rows) == 1 and taken:
            v = rng.choice(last)
            while v in taken:
                v = v % K + 1
            picks = [v]
        else:
            picks = rng.sample(free, len(rows))
        for i, v in zip(rows, picks):
            out[i] = v
        taken.update(picks)
        last = picks
    return out


# what the mask lets a row read of an earlier writer j when it decides its own number at step p_i:
# j's number is its current token when p_i - p_j == 1, its EOS (which attended to the number) when
# p_i - p_j == 2; from p_j + 2 on j is dead and never a key, so only two hops remain (Bridge wrote
# j's number into i's residual earlier, i's self-attention fetches it back)
READ_GAPS = (1, 2)
ROW_TYPES = ("readable", "two-hop", "simultaneous", "first")


def row_types(positions):
    """Per row: "simultaneous" (another row writes at its step), "first" (no earlier writer),
    "readable" (the most recent earlier writer is still readable at its decision), "two-hop"."""
    out = []
    for i, p in enumerate(positions):
        earlier = [p - q for j, q in enumerate(positions) if j != i and q < p]
        if positions.count(p) > 1:
            out.append("simultaneous")
        elif not earlier:
            out.append("first")
        else:
            out.append("readable" if min(earlier) in READ_GAPS else "two-hop")
    return out


def digit_position(answer, digit_ids, eos_ids):
    """Where an answer writes its number: the index of its last token before the end token, if that
    token is a digit 1..9 ("...Answer: 7<end>"); else None (the answer is not used)."""
    if len(answer) < 2 or answer[-1] not in eos_ids or answer[-2] not in digit_ids:
        return None
    return len(answer) - 2


def build_sets(records, width, sets_per_question, seed, digit_ids, eos_ids, K, rule="successor"):
    """(prompt, [answers]) sets of `width` relabelled answers, `sets_per_question` per question.

    records: warm-up data.jsonl records (one or more files' worth; the same question's answers are
    pooled). digit_ids[v - 1] is the token of the number v.
    """
    by_question = {}
    for rec in records:
        entry = by_question.setdefault(rec["question"], (rec["prompt"], []))
        entry[1].extend(a for a in rec["right"] if digit_position(a, digit_ids, eos_ids) is not None)
    out = []
    for question, (prompt, answers) in sorted(by_question.items()):
        if len(answers) < width:
            continue
        rng = random.Random(stable_seed("oracle", seed, question))
        for _ in range(sets_per_question):
            rows = rng.sample(answers, width)
            positions = [digit_position(a, digit_ids, eos_ids) for a in rows]
            numbers = oracle_numbers(positions, K, rng, rule)
            rows = [a[:p] + [digit_ids[v - 1]] + a[p + 1:] for a, p, v in zip(rows, positions, numbers)]
            out.append(dict(question=question, prompt=prompt, answers=rows, positions=positions, numbers=numbers))
    return out


def soft_targets(positions, numbers, K):
    """Per row, the numbers 1..K no row wrote before its step: under --targets free a row's number is
    uniform over these, whatever it can read (its simultaneous siblings' draws it cannot know)."""
    return [[v for v in range(1, K + 1) if v not in {numbers[j] for j, q in enumerate(positions) if q < p}]
            for p in positions]


def number_step(model, optimizer, batch, eos_id, number_weight, micro_groups, max_grad_norm, soft=None):
    """One optimizer step on sets (prompt, answers, positions[, numbers]): returns (loss, text loss,
    number loss, grad norm, tokens).

    # choice: the loss is train_sft.py's (the token mean of cross-entropy over every answer token)
    plus number_weight times the mean cross-entropy of the number tokens. In the token mean the
    number is ~1 token in 10, so reading a sibling is worth a few hundredths of a nat there, under
    the loss's step-to-step noise; the added term makes it worth the same as the rest of the answer
    (at weight 1), while the text term keeps the answer's format when it is sampled.
    soft: the digit token of each number 1..K, for --targets free: the number's cross-entropy is then
    against the whole target distribution (uniform over soft_targets), the expectation of the drawn
    target's with the same minimum and none of the draw's noise; it needs each set's numbers.
    """
    total = sum(len(a) for _, answers, *_ in batch for a in answers)
    numbers = sum(len(answers) for _, answers, *_ in batch)
    optimizer.zero_grad(set_to_none=True)
    text_sum = number_sum = 0.0
    for i in range(0, len(batch), micro_groups):
        part = batch[i:i + micro_groups]
        (prompt, prompt_alive, answer, answer_alive), width = train_sft.pad_groups(
            [(g[0], g[1]) for g in part], eos_id, "cpu")
        h = answer_hidden(model, prompt, prompt_alive, answer, answer_alive, width)               # (N, S, D)
        picked = token_logprobs(model.lm_head(h[answer_alive]), answer[answer_alive])          # (alive,)
        text = -picked.sum() / total
        at = torch.tensor([q for g in part for q in g[2]])                                          # (N,)
        rows = torch.arange(len(at))
        logp = torch.log_softmax(model.lm_head(h[rows, at]).float(), -1)                           # (N, vocab)
        if soft is None:
            number = -logp.gather(1, answer[rows, at][:, None]).sum() / numbers
        else:
            q = torch.zeros_like(logp)                                                              # (N, vocab)
            allowed = [a for g in part for a in soft_targets(g[2], g[3], len(soft))]
            for r, vs in enumerate(allowed):
                q[r, [soft[v - 1] for v in vs]] = 1.0 / len(vs)
            number = -(q * logp).sum() / numbers
        (text + number_weight * number).backward()
        text_sum, number_sum = text_sum + text.item(), number_sum + number.item()
    params = [p for p in model.parameters() if p.requires_grad]
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_grad_norm))
    optimizer.step()
    return text_sum + number_weight * number_sum, text_sum, number_sum, grad_norm, total


FIELDS = [("loss", ".4f"), ("text_loss", ".4f"), ("number_loss", ".4f"), ("grad_norm", ".3f"),
          ("epoch", ".2f"), ("step_s", ".1f")]


def parse_args(argv=None):
    p = cli.Parser(prog="experiments/studies/oracle.py", description="Train new blocks alone on constructed sets whose "
                   "numbers depend on the siblings (the oracle check on `distinct`).")
    p.add_argument("--arch", required=True, choices=["bridge", "pmatch"], help="the blocks to train")
    p.add_argument("--warmup", nargs="+", required=True, metavar="DATA_JSONL",
                   help="warm-up data.jsonl files of train_sft.py --task distinct (their answers are pooled per question)")
    p.add_argument("--out", required=True, help="directory: sets.jsonl, log.jsonl, checkpoint/bridge.safetensors")
    cli.add_model(p)
    p.add_argument("--targets", choices=RULES, default="successor",
                   help="how a row writing after its siblings gets its number (oracle_numbers; default successor)")
    p.add_argument("--number-weight", type=float, default=1.0,
                   help="weight of the number tokens' mean cross-entropy added to the token mean (default 1; 0 = "
                        "train_sft.py's loss, the first oracle's)")
    p.add_argument("--width", type=int, default=4, help="rows per constructed set (default 4, the study's width)")
    p.add_argument("--sets-per-question", type=int, default=32, help="sets drawn per training question (default 32)")
    p.add_argument("--steps", type=int, default=None,
                   help="optimizer steps (default: --epochs passes over the sets)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the sets when --steps is not given (default 1)")
    p.add_argument("--groups-per-step", type=int, default=8, help="sets per step (default 8)")
    p.add_argument("--micro-groups", type=int, default=4, help="sets per forward/backward (default 4)")
    p.add_argument("--lr-new", type=float, default=2e-3, help="AdamW learning rate of the blocks (default 2e-3)")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient norm clip (default 1.0)")
    cli.add_block_shape(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the sets, their order and the blocks (default 0)")
    p.add_argument("--init", default=None, help="start from these blocks (an earlier run's checkpoint/bridge.safetensors, "
                   "of --arch) instead of fresh ones: a later stage of the same training, with a fresh optimizer")
    args = p.parse_args(argv)
    for name in ("width", "sets_per_question", "groups_per_step", "micro_groups", "heads", "head_dim"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.steps is not None and args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")
    if not (args.epochs > 0 and math.isfinite(args.epochs)):
        p.error(f"--epochs must be a positive number, got {args.epochs}")
    if not (args.number_weight >= 0 and math.isfinite(args.number_weight)):
        p.error(f"--number-weight must be a finite number >= 0, got {args.number_weight}")
    if args.width < 2:
        p.error("--width must be >= 2: a set of one row has no sibling")
    for path in args.warmup:
        if not Path(path).is_file():
            p.error(f"--warmup {path}: no such file")
    checkpoint.check_bridge_file(args.init, "--init")
    train_args.check_positive(args, "lr_new")
    train_args.check_positive(args, "max_grad_norm")
    cli.check_out_dir(args.out)
    return args


def read_records(paths):
    """The warm-up records of one task's files, and its K (a Problem's answer holds K)."""
    records = [json.loads(line) for path in paths for line in Path(path).read_text().splitlines()]
    tasks_seen = {rec["answer"] for rec in records}
    if len(tasks_seen) != 1:
        raise ValueError(f"--warmup: the files mix numbers ranges {sorted(tasks_seen)}; give one task's files")
    return records, tasks_seen.pop()


def digit_tokens(tokenizer, K):
    """digit_ids[v - 1] is the one token of the number v."""
    return [tokenizer.encode(str(v))[0] for v in range(1, K + 1)]


def main(argv=None):
    from model import load_model
    args = parse_args(argv)
    out = Path(args.out)
    blocks = out / "checkpoint" / "bridge.safetensors"
    if blocks.is_file():
        print(f"== {blocks}: done", file=sys.stderr)
        return
    records, K = read_records(args.warmup)
    model, tokenizer = load_model(args.model, bridge=args.init)
    if args.init is not None and model.bridge_config["kind"] != args.arch:
        raise ValueError(f"--init {args.init} holds {model.bridge_config['kind']} blocks but --arch is {args.arch}")
    sets = build_sets(records, args.width, args.sets_per_question, args.seed, digit_tokens(tokenizer, K),
                      set(tokenizer.eos_ids), K, args.targets)
    if not sets:
        raise ValueError(f"--warmup: no question has {args.width} usable answers")
    out.mkdir(parents=True, exist_ok=True)
    write_args(out, args)
    with open(out / "sets.jsonl", "w") as f:
        for s in sets:
            f.write(json.dumps(s) + "\n")
    if args.init is None:
        model.add_bridge(args.arch, n_heads=args.heads, head_dim=args.head_dim, seed=args.seed)
    optimizer = training.make_optimizer(model, "new", 0.0, args.lr_new)
    groups = [(s["prompt"], s["answers"], s["positions"], s["numbers"]) for s in sets]
    digits = digit_tokens(tokenizer, K)
    steps = args.steps or math.ceil(args.epochs * len(groups) / args.groups_per_step)
    print(f"{len(sets)} constructed sets of {args.width} from {len({s['question'] for s in sets})} questions "
          f"({args.targets} targets), {steps} steps = {steps * args.groups_per_step / len(groups):.2f} epochs; "
          + training.parameter_counts(model), file=sys.stderr)
    log = cli.StepLog(out, FIELDS, steps, 0)
    for step in range(steps):
        t0 = time.time()
        batch = [g for _, g in training.epoch_stream(groups, step, args.groups_per_step, args.seed, "sft-epoch")]
        loss, text, number, grad_norm, tokens = number_step(model, optimizer, batch, tokenizer.eos_id,
                                                            args.number_weight, args.micro_groups, args.max_grad_norm,
                                                            digits if args.targets == "free" else None)
        training.check_finite(step, dict(loss=loss, grad_norm=grad_norm), model, out)
        log.write(dict(step=step, loss=loss, text_loss=text, number_loss=number, grad_norm=grad_norm,
                       epoch=(step + 1) * args.groups_per_step / len(groups), tokens=tokens,
                       step_s=time.time() - t0))
    blocks.parent.mkdir(exist_ok=True)
    tmp = blocks.with_name("bridge.safetensors.tmp")
    save_bridge(model, tmp)
    tmp.replace(blocks)  # the blocks appear whole or not at all: a stopped run is redone, never half-read
    print(f"done: {blocks}", file=sys.stderr)


if __name__ == "__main__":
    cli.run(main)
