"""The oracle check: can Bridge represent coordination in the real sampling loop, before any RL?

On the set-level task `distinct` the warm-up's sets carry almost no sibling information (the base
model's kept numbers are near uniform, whoever wrote first). Here the targets are CONSTRUCTED, not
self-generated: the warm-up answers of the training questions are drawn into sets of --width, and
each answer's number is relabelled by when it is written (the position of its digit):

- a row that writes its number alone at its timestep, after some sibling wrote one, takes the
  smallest number the earlier siblings did not take;
- rows with no earlier sibling, or writing at the same timestep as another row, take distinct
  random numbers among those not taken earlier (they cannot see each other's choice).

Only the new blocks train (the base model frozen), teacher-forced, with train_sft.py's step (the
token mean of cross-entropy over the answers). Bridge can score above the independent ceiling on
such sets only by reading what its siblings wrote; P-Match, trained on the same sets, sees no
sibling and is the control. Then evaluate.py SAMPLES the blocks on the held-out questions:

    python experiments/studies/oracle.py --arch bridge --warmup experiments/runs/.../sft_bridge/data.jsonl --out DIR
    python evaluate.py --bridge DIR/checkpoint/bridge.safetensors --task distinct --split test ...

DIR/sets.jsonl keeps the constructed sets, DIR/log.jsonl the training steps,
DIR/checkpoint/bridge.safetensors the blocks. A finished DIR is left alone.
"""
import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the method's files, at the root

from bridgekit import cli  # noqa: E402
from bridgekit import train_args  # noqa: E402
from bridgekit import training  # noqa: E402
from bridgekit.checkpoint import save_bridge  # noqa: E402
from bridgekit.tasks import stable_seed  # noqa: E402


def oracle_numbers(positions, K, rng):
    """The constructed number of each row of one set, from the timestep its number is written at.

    positions: per row, the index of its digit in its answer. Rows are taken in order of position;
    a row alone at its position with earlier siblings takes the smallest number 1..K they did not
    take; every other row (first to write, or simultaneous with another) takes a distinct random
    number among those not taken before its position. Returns one int per row.
    """
    if len(positions) > K:
        raise ValueError(f"{len(positions)} rows cannot take distinct numbers from 1..{K}")
    out = [0] * len(positions)
    taken = set()
    for t in sorted(set(positions)):
        rows = [i for i, p in enumerate(positions) if p == t]
        free = [v for v in range(1, K + 1) if v not in taken]
        if len(rows) == 1 and taken:
            picks = [free[0]]
        else:
            picks = rng.sample(free, len(rows))
        for i, v in zip(rows, picks):
            out[i] = v
        taken.update(picks)
    return out


def digit_position(answer, digit_ids, eos_ids):
    """Where an answer writes its number: the index of its last token before the end token, if that
    token is a digit 1..9 ("...Answer: 7<end>"); else None (the answer is not used)."""
    if len(answer) < 2 or answer[-1] not in eos_ids or answer[-2] not in digit_ids:
        return None
    return len(answer) - 2


def build_sets(records, width, sets_per_question, seed, digit_ids, eos_ids, K):
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
            numbers = oracle_numbers(positions, K, rng)
            rows = [a[:p] + [digit_ids[v - 1]] + a[p + 1:] for a, p, v in zip(rows, positions, numbers)]
            out.append(dict(question=question, prompt=prompt, answers=rows, positions=positions, numbers=numbers))
    return out


def parse_args(argv=None):
    p = cli.Parser(prog="experiments/studies/oracle.py", description="Train new blocks alone on constructed sets whose "
                   "numbers depend on the siblings (the oracle check on `distinct`).")
    p.add_argument("--arch", required=True, choices=["bridge", "pmatch"], help="the blocks to train")
    p.add_argument("--warmup", nargs="+", required=True, metavar="DATA_JSONL",
                   help="warm-up data.jsonl files of train_sft.py --task distinct (their answers are pooled per question)")
    p.add_argument("--out", required=True, help="directory: sets.jsonl, log.jsonl, checkpoint/bridge.safetensors")
    cli.add_model(p)
    p.add_argument("--width", type=int, default=4, help="rows per constructed set (default 4, the study's width)")
    p.add_argument("--sets-per-question", type=int, default=32, help="sets drawn per training question (default 32)")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    p.add_argument("--groups-per-step", type=int, default=8, help="sets per step (default 8)")
    p.add_argument("--micro-groups", type=int, default=4, help="sets per forward/backward (default 4)")
    p.add_argument("--lr-new", type=float, default=2e-3, help="AdamW learning rate of the blocks (default 2e-3)")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient norm clip (default 1.0)")
    cli.add_block_shape(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the sets, their order and the blocks (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = p.parse_args(argv)
    for name in ("width", "sets_per_question", "steps", "groups_per_step", "micro_groups", "heads", "head_dim"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.width < 2:
        p.error("--width must be >= 2: a set of one row has no sibling")
    for path in args.warmup:
        if not Path(path).is_file():
            p.error(f"--warmup {path}: no such file")
    train_args.check_positive(args, "lr_new")
    train_args.check_positive(args, "max_grad_norm")
    cli.check_out_dir(args.out)
    return args


def main(argv=None):
    import train_sft
    from model import load_model
    args = parse_args(argv)
    out = Path(args.out)
    blocks = out / "checkpoint" / "bridge.safetensors"
    if blocks.is_file():
        print(f"== {blocks}: done", file=sys.stderr)
        return
    records = [json.loads(line) for path in args.warmup for line in Path(path).read_text().splitlines()]
    tasks_seen = {rec["answer"] for rec in records}
    if len(tasks_seen) != 1:
        raise ValueError(f"--warmup: the files mix numbers ranges {sorted(tasks_seen)}; give one task's files")
    K = tasks_seen.pop()
    model, tokenizer = load_model(args.model, device=args.device)
    digit_ids = [tokenizer.encode(str(v))[0] for v in range(1, K + 1)]
    sets = build_sets(records, args.width, args.sets_per_question, args.seed, digit_ids, set(tokenizer.eos_ids), K)
    if not sets:
        raise ValueError(f"--warmup: no question has {args.width} usable answers")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "sets.jsonl", "w") as f:
        for s in sets:
            f.write(json.dumps(s) + "\n")
    model.add_bridge(args.arch, n_heads=args.heads, head_dim=args.head_dim, seed=args.seed)
    optimizer = training.make_optimizer(model, "new", 0.0, args.lr_new)
    groups = [(s["prompt"], s["answers"]) for s in sets]
    print(f"{len(sets)} constructed sets of {args.width} from {len({s['question'] for s in sets})} questions; "
          + training.parameter_counts(model), file=sys.stderr)
    step_args = argparse.Namespace(micro_groups=args.micro_groups, device=args.device, dtype="fp32",
                                            max_grad_norm=args.max_grad_norm, reference=False)
    log = cli.StepLog(out, train_sft.FIELDS, args.steps, 0)
    for step in range(args.steps):
        t0 = time.time()
        batch = train_sft.step_groups(groups, step, args.groups_per_step, args.seed)
        loss, tokens, grad_norm = train_sft.train_step(model, optimizer, batch, tokenizer.eos_id, step_args)
        step_s = time.time() - t0
        log.write(dict(step=step, loss=loss, groups=len(batch), tokens=tokens, grad_norm=grad_norm,
                       tok_s=tokens / step_s, step_s=step_s))
    blocks.parent.mkdir(exist_ok=True)
    tmp = blocks.with_name("bridge.safetensors.tmp")
    save_bridge(model, tmp)
    tmp.replace(blocks)  # the blocks appear whole or not at all: a stopped run is redone, never half-read
    print(f"done: {blocks}", file=sys.stderr)


if __name__ == "__main__":
    cli.run(main)
