"""
The command lines of the two training scripts (train_sft.py, train_grpo.py): their flags, those both
take first, and every check of their arguments, all made before any model loads. A bad flag is a
usage error while parsing (one line, exit 2); a bad value found after it a one-line ValueError
(cli.run: exit 1). What a resumed run may change is checked in run_dir.py (check_run_dir).
"""
import math

from bridgekit import cli
from bridgekit import parallel
from bridgekit.checkpoint import check_bridge_file
from bridgekit.checks import MAX_TEMPERATURE, check_device, check_sampling
from bridgekit.metrics import CREDITS
from bridgekit.run_dir import check_run_dir
from bridgekit.tasks import DATA_TASK, SET_TASKS, SYSTEM, TASKS, check_shots, file_problems, question_count
from bridgekit.training import task_difficulty, training_pool

# -----------------------------------------------------------------------------
# the flags


def common_args(p, *, width, lr_new):
    """The flags both training scripts take (each adds its own)."""
    p.set_defaults(script=p.prog)  # recorded in OUT/args.json: the run directory is this script's
    a = p.add_argument
    a("--model", default=None, help="local HF-style directory or HF repo id (default: SmolLM2-135M-Instruct from PyPI, "
      "converted once: the base of the committed Bridges)")
    a("--task", default=None, choices=list(TASKS), help="task family of tasks.py (default word)")
    a("--data", default=None, metavar="FILE.jsonl", help="train on your own problems instead of a --task: a GSM8K-style "
      "JSONL file, one {\"question\": ..., \"answer\": \"... #### N\"} per line, taken in file order (default: none)")
    a("--hi", type=int, default=None, help="largest number in the problems (the task's difficulty; default: 9 for word, else the task's own)")
    a("--shots", type=int, default=2, help="worked examples before each question (default 2)")
    a("--system", default=SYSTEM, help=f"system message; '' = the chat template's default (default {SYSTEM!r})")
    a("--width", type=int, default=width, help=f"answers per group, sampled/trained together (default {width})")
    a("--steps", type=int, default=None, help="optimizer steps (default: see the script)")
    a("--arch", default="bridge", choices=["none", "pmatch", "bridge"], help="new blocks: none (RLVR only), pmatch, bridge (default bridge)")
    a("--heads", type=int, default=4, help="heads of a new block (default 4)")
    a("--head-dim", type=int, default=16, help="head dimension of a new block (default 16)")
    a("--lr-new", type=float, default=lr_new, help=f"learning rate of the new blocks, in (0, 1] (default {lr_new})")
    a("--max-new-tokens", type=int, default=64, help="answer tokens at most (default 64)")
    a("--micro-groups", type=int, default=2, help="groups per forward/backward (gradient accumulation over the rest; default 2)")
    a("--max-grad-norm", type=float, default=1.0, help="gradient norm clip (default 1.0)")
    a("--seed", type=int, default=0, help="seed of the problems, their order, the sampling and the new blocks (default 0)")
    a("--out", required=True, help="output directory: log.jsonl, checkpoint/")
    a("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    a("--save-every", type=int, default=10, help="write a checkpoint every k steps (and at the end; default 10)")
    a("--show-every", type=int, default=10, help="print one group's answers every k steps (default 10; 0 = never)")
    a("--device", default="cpu", help="cpu or cuda (default cpu)")
    a("--dtype", default="fp32", choices=["fp32", "bf16"], help="fp32, or bf16 autocast with fp32 master weights (default fp32)")
    a("--shard", action="store_true", help="under torchrun: split parameters, gradients and AdamW state over the "
      "processes (FSDP2) instead of a full replica each")
    a("--fast", action="store_true", help="sample the rollouts with the speed-ups (bridgekit/fast.py: the same "
      "tokens, faster) instead of the naive sample.sample (default off)")


def parse_grpo(argv=None):
    """train_grpo.py's arguments: the common flags and GRPO's own, with their usage errors."""
    p = cli.Parser(prog="train_grpo.py", description="GRPO on verifiable tasks for RLVR-only, P-Match and Bridge.")
    common_args(p, width=4, lr_new=1e-4)
    a = p.add_argument
    a("--train", default="all", choices=["all", "new"], help="what trains: all parameters, or only the new blocks (default all)")
    a("--lr", type=float, default=5e-6, help="learning rate of the base model's parameters with --train all, in (0, 1] (default 5e-6)")
    a("--init", default=None, help="start the blocks from this checkpoint (e.g. the SFT warm-up's bridge.safetensors)")
    a("--prompts-per-step", type=int, default=8, help="prompts per step (default 8)")
    a("--sets", type=int, default=1, help="independent width-W sets sampled per prompt; the advantage's baseline is "
      "taken over all sets x width answers of the prompt, Bridge connects one set (default 1)")
    a("--credit", default="answer", choices=list(CREDITS), help="set-level tasks: reward each answer by its own score "
      "(answer), by its set's per-answer score (team) or by what its set loses without it (difference; "
      "metrics.set_credit) (default answer)")
    a("--pool", type=int, default=None, help="distinct training problems cycled through (default: all of the split, at most 2000)")
    a("--temperature", type=float, default=1.0, help="sampling temperature of the rollouts, in (0, 10] (default 1.0)")
    a("--adv-scale", default="std", choices=["std", "none"], help="advantage (r-mean)/(std+eps), or r-mean (default std)")
    a("--aggregate", default="token", choices=["token", "sequence"], help="loss mean over all tokens (DAPO) or per answer (default token)")
    a("--clip-low", type=float, default=0.2, help="PPO clip: ratio >= 1 - clip_low (default 0.2)")
    a("--clip-high", type=float, default=0.28, help="PPO clip: ratio <= 1 + clip_high (default 0.28, DAPO)")
    a("--kl-coef", type=float, default=0.0, help="weight of the k3 KL to the starting policy (default 0: no reference copy)")
    args = parse_problem_source(p, argv)
    if args.steps is None:  # (not `or`: --steps 0 must reach the check, not become 100)
        args.steps = 100
    if args.sets < 1:
        p.error(f"--sets must be >= 1, got {args.sets}")
    if args.task in SET_TASKS and args.width < 2:
        p.error(f"task {args.task!r} is scored as a set: at --width 1 there is nothing to coordinate")
    if args.credit != "answer" and args.task not in SET_TASKS:
        p.error(f"--credit {args.credit} pays a set for its outcome: task {args.task!r} scores answer by answer")
    if args.credit == "team" and args.sets == 1:
        p.error("--credit team gives every row of a set the same reward, so with --sets 1 every advantage is 0: use --sets >= 2")
    return args


def parse_sft(argv=None):
    """train_sft.py's arguments: the common flags and the warm-up's own."""
    p = cli.Parser(prog="train_sft.py", description="SFT warm-up of new Bridge / P-Match blocks on the base model's right answers.")
    common_args(p, width=4, lr_new=5e-4)
    a = p.add_argument
    a("--problems", type=int, default=256, help="training problems to sample answers for (default 256)")
    a("--samples-per-problem", type=int, default=8, help="answers sampled per problem (default 8, the paper's)")
    a("--sample-batch", type=int, default=8, help="problems per sampling forward (default 8)")
    a("--temperature", type=float, default=1.0, help="sampling temperature of the data, in [0, 10] (default 1.0)")
    a("--groups-per-step", type=int, default=8, help="groups per optimizer step (default 8)")
    a("--epochs", type=float, default=2.0, help="passes over the groups when --steps is not given (default 2)")
    return parse_problem_source(p, argv)


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

# -----------------------------------------------------------------------------
# the checks


def check_common(args):
    """The errors of the common flags (ValueError, one line), found before anything slow happens."""
    check_device(args.device)
    if args.data is not None:
        file_problems(args.data)  # a missing or malformed file: one line here, not after the model loads
    else:
        try:  # an impossible difficulty (e.g. --hi -1) is a one-line error here, not after the model loads
            TASKS[args.task][0](**task_difficulty(args))
        except TypeError:
            raise ValueError(f"task {args.task!r} takes no --hi") from None
    for name in ("width", "steps", "heads", "head_dim", "max_new_tokens", "micro_groups", "save_every"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    check_shots(args.shots)
    if args.show_every < 0:
        raise ValueError(f"--show-every must be >= 0 (0 = never), got {args.show_every}")
    cli.check_seed(args.seed)
    check_lr(args, "lr_new")
    check_positive(args, "max_grad_norm")  # a negative clip norm would turn descent into ascent
    cli.check_out_dir(args.out)
    parallel.check_shard(args.shard)
    check_run_dir(args)


def check_grpo(args):
    """check_common, then GRPO's own flags."""
    check_common(args)
    if args.width < 2:
        raise ValueError(f"--width must be >= 2 for GRPO (advantages compare answers within a group), got {args.width}")
    if args.arch == "none" and (args.train == "new" or args.init):
        raise ValueError("--arch none has no new blocks: use --train all and no --init")
    if args.prompts_per_step < 1 or (args.pool is not None and args.pool < args.prompts_per_step):
        raise ValueError(f"need 1 <= --prompts-per-step <= --pool, got {args.prompts_per_step} and {args.pool}")
    if args.data is not None:
        training_pool(args)  # enough problems in the file: one line here, not after the model loads
    elif args.pool is not None:
        have = question_count(args.task, "train", **task_difficulty(args))
        if args.pool > have:
            raise ValueError(f"--pool {args.pool}: task {args.task!r} has only {have} training questions")
    check_bridge_file(args.init, "--init")
    if not 0 < args.temperature <= MAX_TEMPERATURE:
        raise ValueError(f"--temperature must be > 0 for RL, at most {MAX_TEMPERATURE:g}, got {args.temperature}")
    check_lr(args, "lr")
    for name in ("clip_high", "kl_coef"):
        check_positive(args, name, zero_ok=True)
    if not 0 <= args.clip_low < 1:
        raise ValueError(f"--clip-low must be in [0, 1) (the ratio's floor is 1 - clip_low), got {args.clip_low}")
    parallel.check_shares(args.prompts_per_step, "--prompts-per-step")


def check_sft(args):
    """check_common, then the warm-up's own flags."""
    check_common(args)
    if args.arch == "none":
        raise ValueError("--arch none has nothing to warm up: the SFT warm-up trains new blocks only")
    if args.width < 2:
        raise ValueError(f"--width must be >= 2 (a group of one answer has no sibling), got {args.width}")
    for name in ("problems", "samples_per_problem", "sample_batch", "groups_per_step"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    check_positive(args, "epochs")
    check_sampling(args.temperature, 0, 1.0)
    if args.samples_per_problem < 2:
        raise ValueError("--samples-per-problem must be >= 2 (problems need two right answers)")
    parallel.check_shares(args.groups_per_step, "--groups-per-step")


# The largest learning rate taken: AdamW moves every weight by about the learning rate per step, so
# above 1 one step moves a weight by more than its own typical size (a blow-up, not training)
MAX_LR = 1.0


def check_lr(args, name):
    """--name, a learning rate, must be in (0, MAX_LR]: a negative one would climb the loss, and a huge
    one blow the weights up in one step. Else a one-line ValueError."""
    value = getattr(args, name)
    if not 0 < value <= MAX_LR:
        raise ValueError(f"--{name.replace('_', '-')} must be > 0 and at most {MAX_LR:g}, got {value}")


def check_positive(args, name, zero_ok=False):
    """--name must be a finite number > 0 (>= 0 with zero_ok), else a one-line ValueError."""
    value = getattr(args, name)
    if not (math.isfinite(value) and (value >= 0 if zero_ok else value > 0)):
        raise ValueError(f"--{name.replace('_', '-')} must be {'>= 0' if zero_ok else '> 0'}, got {value}")
