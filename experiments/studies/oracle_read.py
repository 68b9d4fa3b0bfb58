"""What the oracle check's blocks read, teacher-forced, and what its sampled runs could have scored.

    python experiments/studies/oracle_read.py heldout --out DIR        # the base model's answers to the held-out
                                                           # questions, in constructed sets (DIR/sets.jsonl)
    python experiments/studies/oracle_read.py read --bridge BLOCKS --sets DIR/sets.jsonl --out READ.json
    python experiments/studies/oracle_read.py bounds EVAL.json         # the policy bounds on a run's own timing

`read` scores each held-out row's number teacher-forced, on the siblings path and on the self path
(each row reads only itself; the same weights), by row type (oracle.row_types): does the most likely
number 1..K equal the constructed target, the target's cross-entropy, and the taken mass (the share
of the row's probability over 1..K on numbers its earlier siblings wrote: (numbers taken) / K for a
row that does not read, 0 for one that avoids them all; the measure for --targets free). A row whose earlier writer
is still readable can know its target only by reading that sibling; first and simultaneous rows
cannot know theirs (chance is 1 / the numbers left).

`bounds`: on the sets an evaluation sampled (evaluate.py's per-answer numbers and lengths; an
answer's number is written at step length - 2, its last token before EOS), the per-answer score of
three policies that keep every row's validity and timing and choose only the number: independent
(uniform over 1..K), avoid the siblings readable at the decision (uniform over the rest), and avoid
every earlier number. Monte Carlo with a fixed seed.
"""
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the method's files, at the root
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bridgekit import cli  # noqa: E402
import oracle  # noqa: E402
from bridgekit.metrics import mean_se  # noqa: E402
from bridgekit.tasks import stable_seed  # noqa: E402

PATHS = ("siblings", "self")
POLICIES = ("independent", "readable", "earlier")

# -----------------------------------------------------------------------------
# the held-out sets


def heldout(args):
    """DIR/data.jsonl (the base model's finished answers that end in a number) and DIR/sets.jsonl."""
    import torch

    import sample
    from bridgekit import tasks
    from model import load_model
    out = Path(args.out)
    sets_path = out / "sets.jsonl"
    if sets_path.is_file():
        print(f"== {sets_path}: done", file=sys.stderr)
        return
    model, tokenizer = load_model(args.model)
    problems = tasks.make_problems("distinct", tasks.question_count("distinct", "test"), seed=0, split="test")
    K = problems[0].answer
    digits, eos = oracle.digit_tokens(tokenizer, K), set(tokenizer.eos_ids)
    records = []
    progress = cli.progress(len(problems), "held-out questions")
    for i, problem in enumerate(problems):
        prompt = tasks.prompt_ids(tokenizer, problem, shots=2, system=tasks.SYSTEM)  # as training asks it
        gen = torch.Generator().manual_seed(stable_seed("oracle-heldout", args.seed, i))
        with torch.no_grad():
            rollout = sample.sample(model, [prompt], tokenizer.eos_ids, width=args.samples, max_new_tokens=32,
                                    generator=[gen])
        answers = [a for a in rollout.completions() if oracle.digit_position(a, digits, eos) is not None]
        records.append(dict(index=i, question=problem.question, answer=K, prompt=prompt, right=answers,
                            tried=args.samples))
        progress(1)
    sets = oracle.build_sets(records, 4, args.sets_per_question, args.seed, digits, eos, K, "successor")
    out.mkdir(parents=True, exist_ok=True)
    cli.write_text(out / "data.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    cli.write_text(sets_path, "".join(json.dumps(s) + "\n" for s in sets))
    print(f"{len(sets)} held-out sets of 4 from {len({s['question'] for s in sets})} questions: {sets_path}",
          file=sys.stderr)

# -----------------------------------------------------------------------------
# the teacher-forced read


def number_logits(model, sets, path, digits, eos_id):
    """Per row of every set: the logits (K,) of the numbers 1..K at the step the row writes its number."""
    import torch

    import train_sft
    from sample import answer_hidden
    out = []
    with torch.no_grad():
        for s in sets:
            (prompt, prompt_alive, answer, answer_alive), width = train_sft.pad_groups(
                [(s["prompt"], s["answers"])], eos_id, "cpu")
            h = answer_hidden(model, prompt, prompt_alive, answer, answer_alive, width, path=path)
            at = torch.tensor(s["positions"])
            logits = model.lm_head(h[torch.arange(width), at]).float()              # (W, vocab)
            out += list(torch.log_softmax(logits, -1)[:, digits])                  # W x (K,)
    return out


def taken_mass(logp, positions, numbers):
    """Per row: the probability of the numbers written before its step, its distribution over 1..K
    renormalised (logp: per row, K log-probabilities)."""
    import math
    out = []
    for i, p in enumerate(positions):
        taken = {numbers[j] for j, q in enumerate(positions) if q < p}
        probs = [math.exp(float(x)) for x in logp[i]]
        out.append(sum(probs[v - 1] for v in taken) / sum(probs))
    return out


def read(args):
    """READ.json: per path and row type, how often the most likely number is the target, and the
    target's mean cross-entropy (nats, over the whole vocabulary)."""
    from model import load_model
    sets = [json.loads(line) for line in Path(args.sets).read_text().splitlines()]
    model, tokenizer = load_model(args.model, bridge=args.bridge)
    K = max(v for s in sets for v in s["numbers"])
    digits = oracle.digit_tokens(tokenizer, K)
    types = [t for s in sets for t in oracle.row_types(s["positions"])]
    targets = [v for s in sets for v in s["numbers"]]
    starts = [0]
    for s in sets:
        starts.append(starts[-1] + len(s["numbers"]))
    result = dict(bridge=args.bridge, sets=args.sets, n_sets=len(sets), K=K, paths={})
    for path in PATHS:
        logp = number_logits(model, sets, path, digits, tokenizer.eos_id)
        taken = [m for s, a in zip(sets, starts) for m in taken_mass(logp[a:a + len(s["numbers"])], s["positions"],
                                                                        s["numbers"])]
        by_type = {}
        for kind in oracle.ROW_TYPES:
            rows = [i for i, t in enumerate(types) if t == kind]
            hits = [float(int(logp[i].argmax()) + 1 == targets[i]) for i in rows]
            nll = [-float(logp[i][targets[i] - 1]) for i in rows]
            empty = dict(mean=None, se=None)
            by_type[kind] = dict(rows=len(rows), hit=mean_se(hits) if rows else empty, nll=mean_se(nll) if rows else empty,
                                 taken=mean_se([taken[i] for i in rows]) if rows else empty)
        result["paths"][path] = by_type
        print(f"{path}: " + ", ".join(f"{k} hit {v['hit']['mean']:.3f} taken {v['taken']['mean']:.3f} ({v['rows']})"
                                      for k, v in by_type.items()),
              file=sys.stderr)
    cli.write_text(args.out, json.dumps(result, indent=1) + "\n")


# -----------------------------------------------------------------------------
# the policy bounds on a sampled run's own timing


def policy_scores(positions, K, rng, draws):
    """Mean per-answer score of each policy (POLICIES) on one set: positions[i] is the step row i
    writes its number at, None for a row with no valid number (it scores 0 and takes nothing)."""
    order = sorted((p, i) for i, p in enumerate(positions) if p is not None)
    totals = dict.fromkeys(POLICIES, 0.0)
    for policy in POLICIES:
        for _ in range(draws):
            pick = {}
            for p, i in order:
                if policy == "independent":
                    seen = set()
                elif policy == "readable":
                    seen = {pick[j] for j in pick if p - positions[j] in oracle.READ_GAPS}
                else:
                    seen = {pick[j] for j in pick if positions[j] < p}
                pick[i] = rng.choice([v for v in range(1, K + 1) if v not in seen] or list(range(1, K + 1)))
            values = list(pick.values())
            totals[policy] += sum(values.count(v) == 1 for v in values) / len(positions)
    return {k: v / draws for k, v in totals.items()}


def bounds(result, width, draws=200, path="siblings"):
    """{policy: per-answer score} on the sets a run sampled at `width` on `path` (its own timing)."""
    run = next(r for r in result["results"] if r["width"] == width and r.get("path", "siblings") == path)
    K = run["per_problem"][0]["gold"]  # a distinct Problem's answer holds K
    rng = random.Random(stable_seed("oracle-bounds", width, path))
    scores, sets = dict.fromkeys(POLICIES, 0.0), 0
    for problem in run["per_problem"]:
        rows = [(None if c is None else n - 2) for c, n in zip(problem["choices"], problem["lengths"])]
        for g in range(0, len(rows), width):
            for k, v in policy_scores(rows[g:g + width], K, rng, draws).items():
                scores[k] += v
            sets += 1
    return {k: v / sets for k, v in scores.items()}


def main(argv=None):
    p = cli.Parser(prog="experiments/studies/oracle_read.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="stage", required=True)
    h = sub.add_parser("heldout", help="the base model's answers to the held-out questions, in constructed sets")
    h.add_argument("--out", required=True, help="directory: data.jsonl, sets.jsonl")
    cli.add_model(h)
    h.add_argument("--samples", type=int, default=16, help="answers sampled per held-out question (default 16)")
    h.add_argument("--sets-per-question", type=int, default=8, help="sets of 4 drawn per question (default 8)")
    h.add_argument("--seed", type=int, default=0, help="seed of the answers and the sets (default 0)")
    r = sub.add_parser("read", help="the teacher-forced read of a blocks file on held-out sets")
    r.add_argument("--bridge", required=True, help="the blocks (experiments/studies/oracle.py's checkpoint/bridge.safetensors)")
    r.add_argument("--sets", required=True, help="held-out sets.jsonl (the heldout stage)")
    r.add_argument("--out", required=True, help="the JSON to write")
    cli.add_model(r)
    b = sub.add_parser("bounds", help="print the policy bounds of an evaluation's sampled sets")
    b.add_argument("eval", help="an evaluate.py JSON of the distinct task")
    args = p.parse_args(argv)
    if args.stage == "heldout":
        heldout(args)
    elif args.stage == "read":
        for flag, path in (("--bridge", args.bridge), ("--sets", args.sets)):
            if not Path(path).is_file():
                raise ValueError(f"{flag} {path}: no such file (run the stage that makes it first)")
        read(args)
    else:
        result = json.loads(Path(args.eval).read_text())
        for w in sorted({r["width"] for r in result["results"] if r["width"] > 1}):
            print(f"W = {w}: " + ", ".join(f"{k} {v:.3f}" for k, v in bounds(result, w).items()))


if __name__ == "__main__":
    cli.run(main)
