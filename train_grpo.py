"""
RL with verifiable rewards (GRPO) for the three arms of the paper's comparison, from one script:

    python train_grpo.py --arch none   --train all --out runs/rlvr      # RLVR only (no new block)
    python train_grpo.py --arch pmatch --train all --init runs/sft_pmatch/checkpoint/bridge.safetensors --out runs/pmatch
    python train_grpo.py --arch bridge --train all --init runs/sft_bridge/checkpoint/bridge.safetensors --out runs/bridge
    python train_grpo.py ... --resume                                  # continue a stopped run
    torchrun --nproc_per_node 4 train_grpo.py --device cuda ...       # 4 GPUs, the same algorithm

One step (the paper's RLVR stage; the numbers are the steps of main()):
  1. rollout:   --sets M independent width-W sets per prompt (default 1), sampled with the blocks
                on (sample.py), so the W answers of a set are interdependent through Bridge;
  2. reward:    tasks.group_reward per set, 1 if the extracted answer is right, else 0 (for the
                set-level task `distinct`: 1 if the answer's number is valid and no sibling picked
                it, or the set's outcome credited to its rows: --credit team / difference);
  3. advantage: group_advantages, (r - mean) / (std + eps) over the M x W answers of each prompt;
  4. loss:      policy_loss, the PPO-clipped surrogate, averaged over every answer token of the step;
  5. step:      gradients accumulated over micro-batches of whole groups, clipped, one AdamW step.

The choices (the paper gives GRPO, std-normalised group advantages, DAPO-style token-level
aggregation and "a KL term"; everything else is ours):
- # paper: the GRPO group is the Bridge width group (one prompt, W rows). Its rows are coupled, so
  a group is never split: micro-batches hold whole groups (asserted in training.split_rollout).
- # choice: --sets M > 1 samples M independent Bridge sets of W rows per prompt and normalises the
  advantage over all M x W answers of the prompt, while Bridge still connects only the rows of
  one set (as multi-agent GRPO normalises over several joint rollouts of one prompt). With one set
  per prompt the baseline is the very set Bridge connects, so on a set-level task a set whose
  answers are all distinct gets advantage 0; against other sets of its prompt it earns a positive
  one. The paper ("trained at w = 4") is consistent with either. M = 1 is the default and is
  bit for bit the one-set algorithm.
- # paper: advantage (r - mean) / std per group. # choice: Bessel std (ddof 1, like TRL and verl),
  eps 1e-4 added to it; a group whose rewards are all equal gets exactly 0 (never NaN).
  `--adv-scale none` gives Dr. GRPO's mean-only advantage.
- # paper: token-level aggregation (DAPO): the loss is the mean over every answer token of the
  step, so with micro-batches each one is weighted by its share of the step's tokens.
  `--aggregate sequence` gives the per-answer mean, then the mean over answers.
- # choice: one update per rollout, so old_logp is the sampler's own log-prob of each sampled token
  and the ratio is 1 up to rounding; the clip (0.2 low, 0.28 high as in DAPO) only matters if the
  forward differs from the sampler's (bf16). Both log-probs are of the distribution the tokens were
  drawn from: at --temperature T, log softmax(logits / T) (sample.token_logprobs, one rule for the
  sampler and the training forward), so the gradient is the policy gradient of what was sampled.
- # choice: KL (k3 estimator, added to the loss) to a frozen copy of the starting policy, coefficient
  --kl-coef, default 0 (as TRL and verl now default), which needs no reference copy at all.
- # choice: EOS is an answer token (it gets gradient; the mask is `alive`, never token values).
  A truncated answer (no EOS within --max-new-tokens) is scored like any other.
- # choice: groups whose advantages are all 0 are not run through the update forward when
  --kl-coef is 0: their gradient is exactly 0. Their tokens still count in the token mean.
- # choice: randomness. The prompts of step k are positions k*P .. k*P+P-1 of a stream of training
  problems shuffled per epoch with seed (seed, epoch); set s of prompt i of the stream samples with
  its own generator seeded by (seed, i, s) (rollout_seed). A step therefore depends only on (seed, step, weights): resuming
  needs no RNG state, and a group's answers do not depend on which other groups share its batch.

Several processes (torchrun; parallel.py has the plumbing), the same algorithm:
- # choice: sharding. --prompts-per-step P must be a multiple of the N processes (a one-line error
  otherwise, before the model loads). Rank r samples and trains the contiguous block of global
  prompt indices k*P + r*P/N .. k*P + (r+1)*P/N - 1 of step k, whole groups only (asserted per
  process in update(), per micro-batch in training.split_rollout).
- # choice: the seed rule. A group's randomness comes from (seed, step, global prompt index),
  never from the rank: prompt i = k*P + j of step k samples with its own generator seeded by
  stable_seed("rollout", seed, i). So the prompts of a step, and up to floating point (the rows a
  batch is padded to) its answers, do not depend on how many processes share it.
- # choice: token-level (DAPO) normalisation over the whole step. Before the backward passes the
  processes sum their answer-token counts (answer counts with --aggregate sequence); each divides
  its micro-batch losses by that global count, and the gradients are then summed over the
  processes (parallel.all_reduce_grads). The summed gradient is the one-process gradient of the
  same rollouts; clipping and the AdamW step then run identically on every replica. Whether the
  step is taken is decided on the global number of updated groups, so a process whose groups all
  have zero advantage still joins the sum (with zeros) and the step.
- The log's numbers (reward, accuracy, zero_var, lengths, prompts) are those of the whole step,
  gathered to every process; only rank 0 prints, writes log.jsonl and checkpoints; --resume loads
  the checkpoint on every process.
"""
import math
import sys
import time

import torch

import cli
import parallel
import training
from checkpoint import load_checkpoint
from model import load_model
from fast import sample  # the speed-ups of fast.py; the same tokens as sample.sample
from metrics import CREDITS
from tasks import SET_TASKS, file_problems, group_reward, make_problems, question_count, stable_seed

# -----------------------------------------------------------------------------
# the GRPO math: pure functions of tensors


def group_advantages(rewards, width, *, scale="std", eps=1e-4):
    """rewards (N,) -> advantages (N,) within each group of `width` contiguous rows (with --sets M,
    the M x W answers of one prompt are one group here).

    scale="std": (r - mean) / (std + eps), std with Bessel's correction; scale="none": r - mean.
    A group whose rewards are all equal gets exactly 0 (also for rewards like 0.35, whose mean is
    not exact in floating point), and nothing is ever NaN (width 1 included).
    """
    if scale not in ("std", "none"):
        raise ValueError(f"scale must be 'std' or 'none', got {scale!r}")
    N = rewards.shape[0]
    if width < 1 or N % width:
        raise ValueError(f"{N} rewards is not a whole number of groups of width {width}")
    r = rewards.double().view(N // width, width)                          # (B, W)
    adv = r - r.mean(dim=1, keepdim=True)
    if scale == "std" and width > 1:
        adv = adv / (r.std(dim=1, keepdim=True) + eps)
    equal = (r == r[:, :1]).all(dim=1, keepdim=True)                      # (B, 1)
    adv = torch.where(equal, torch.zeros_like(adv), adv)
    return adv.view(N).to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def policy_loss(logp, old_logp, advantages, mask, *, clip_low=0.2, clip_high=0.28, ref_logp=None,
                kl_coef=0.0, aggregate="token"):
    """The clipped policy-gradient loss of one batch: (N, S) tensors -> (loss, stats).

    logp: log-probs of the answer tokens under the policy being trained (with gradient);
    old_logp: the same under the policy that sampled them; advantages (N,); mask (N, S) bool,
    True on answer tokens (EOS included). Per token (PPO, with DAPO's separate clip bounds):
        ratio = exp(logp - old_logp)
        loss  = -min(ratio * A, clip(ratio, 1 - clip_low, 1 + clip_high) * A) + kl_coef * k3
        k3    = exp(ref - logp) - (ref - logp) - 1   (>= 0, 0 where logp == ref)
    aggregate="token": mean over every True token of the batch (DAPO); "sequence": mean over each
    row's tokens, then over rows (rows without tokens are left out).
    stats: clip_frac (share of tokens whose clipped branch is taken, i.e. get no gradient),
    kl (token mean of k3), ratio_max (largest |ratio - 1|), tokens.
    """
    if aggregate not in ("token", "sequence"):
        raise ValueError(f"aggregate must be 'token' or 'sequence', got {aggregate!r}")
    mask = mask.bool()
    adv = advantages[:, None].to(logp.dtype)                              # (N, 1)
    ratio = torch.exp(logp - old_logp)                                    # (N, S)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_low, 1 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)                        # (N, S)
    kl = torch.zeros_like(logp)
    if ref_logp is not None:
        delta = ref_logp - logp
        kl = torch.exp(delta) - delta - 1
        per_token = per_token + kl_coef * kl
    m = mask.to(logp.dtype)
    if aggregate == "token":
        loss = (per_token * m).sum() / m.sum().clamp(min=1)
    else:
        has = m.sum(1) > 0
        loss = ((per_token * m).sum(1)[has] / m.sum(1)[has]).mean() if has.any() else per_token.sum() * 0
    with torch.no_grad():
        n = m.sum().clamp(min=1)
        stats = dict(clip_frac=((clipped < unclipped).to(logp.dtype) * m).sum().item() / n.item(),
                     kl=(kl * m).sum().item() / n.item(),
                     ratio_max=((ratio - 1).abs() * m).max().item() if mask.any() else 0.0,
                     tokens=int(mask.sum()))
    return loss, stats

# -----------------------------------------------------------------------------
# rollout and update


def step_problems(pool, step, per_step, seed):
    """The prompts of `step`, with their positions in the per-epoch shuffled stream of the pool."""
    return training.epoch_stream(pool, step, per_step, seed, "epoch")


def training_pool(args):
    """The training problems cycled through: --pool of them, or all of the train split up to 2000
    (with --data: the file's first --pool problems, or all of them)."""
    if getattr(args, "data", None) is not None:
        pool = file_problems(args.data, args.pool)
        if len(pool) < args.prompts_per_step:
            raise ValueError(f"--data {args.data}: {len(pool)} problems, fewer than --prompts-per-step")
        return pool
    knobs = training.task_knobs(args)
    n = args.pool or min(2000, question_count(args.task, "train", **knobs))
    if n < args.prompts_per_step:
        raise ValueError(f"task {args.task!r} has only {n} training questions, fewer than --prompts-per-step")
    return make_problems(args.task, n, seed=args.seed, split="train", **knobs)


def rollout_seed(seed, i, s):
    """The seed of set s of prompt i of the stream. # choice: set 0 keeps the one-set rule's seed,
    so --sets 1 samples exactly what it always did."""
    return stable_seed("rollout", seed, i) if s == 0 else stable_seed("rollout", seed, i, s)


def rollout(model, tokenizer, indexed_problems, args):
    """Sample --sets width-W sets per problem and score each set on its own.

    Returns (Rollout, rewards (N,), scores (N,), texts), N = problems * sets * W; set s of problem b
    is rows [(b*M + s)*W, (b*M + s + 1)*W). rewards: what the advantage reads (--credit); scores:
    each answer's own score (the same unless --credit team / difference), for the log."""
    device = model.lm_head.weight.device
    problems = [p for _, p in indexed_problems]
    M, W = args.sets, args.width
    gens = [torch.Generator(device).manual_seed(rollout_seed(args.seed, i, s))
            for i, _ in indexed_problems for s in range(M)]
    with training.autocast(args), parallel.gathered(model):  # --shard: the whole model, gathered once
        r = sample(model, training.encode_problems(tokenizer, problems, args), tokenizer.eos_ids,
                   width=W, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                   generator=gens, groups_per_prompt=M, compile=args.compile)
    completions, eos = r.completions(), set(tokenizer.eos_ids)
    texts = [tokenizer.decode(c) for c in completions]
    finished = [bool(c) and c[-1] in eos for c in completions]
    sets = [(slice(g * W, (g + 1) * W), problems[g // M]) for g in range(len(problems) * M)]
    rewards = [x for rows, p in sets for x in group_reward(texts[rows], p, finished[rows], args.credit)]
    scores = rewards if args.credit == "answer" else [x for rows, p in sets for x in group_reward(texts[rows], p, finished[rows])]
    return r, torch.tensor(rewards), torch.tensor(scores), texts


def answer_stats(r, eos_ids):
    """Per row: answer length (tokens, EOS included) and whether it was cut at max_new_tokens."""
    alive = r.alive[:, r.prompt_len:]
    lengths = alive.sum(1)
    last = r.tokens[:, r.prompt_len:].gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1)
    truncated = ~torch.isin(last, torch.tensor(eos_ids, device=last.device))
    return lengths.float(), truncated.float()


def update(model, optimizer, r, advantages, args, ref_model=None):
    """One optimizer step on one rollout (gradient accumulation over micro-batches of whole groups)."""
    W = args.width
    assert r.tokens.shape[0] == advantages.shape[0] and r.tokens.shape[0] % W == 0, \
        "a process must hold whole groups"
    mask = r.alive[:, r.prompt_len:]                                      # (N, S) answer tokens
    total = mask.sum().item() if args.aggregate == "token" else (mask.sum(1) > 0).sum().item()
    total = parallel.all_sum(total)              # the step's count, over all processes
    groups = advantages.view(-1, W).ne(0).any(1)                          # (B,) groups with signal
    todo = [g for g in range(len(groups)) if groups[g] or args.kl_coef > 0]
    updated = parallel.all_sum(len(todo))        # step or no step: the same on every process
    stats = dict(loss=0.0, clip_frac=0.0, kl=0.0, ratio_max=0.0, tokens=0)
    optimizer.zero_grad(set_to_none=True)
    sharded = parallel.is_sharded(model)
    # --shard: a process with fewer micro-batches repeats its first group with weight 0
    batches = parallel.equal_passes(training.micro_batches(todo, args.micro_groups, W), slice(0, W), sharded)
    # FSDP2 averages the gradients over the processes where all_reduce_grads sums them
    scale = parallel.dist_env()[1] if sharded else 1
    for rows, keep in batches:
        prompt, prompt_alive, answer, answer_alive = training.split_rollout(r, rows)
        with training.autocast(args):
            logp = training.answer_logprobs(model, prompt, prompt_alive, answer, answer_alive, W,
                                            temperature=args.temperature)
            ref = None
            if ref_model is not None:
                with torch.no_grad():
                    ref = training.answer_logprobs(ref_model, prompt, prompt_alive, answer, answer_alive, W,
                                                   temperature=args.temperature)
        loss, s = policy_loss(logp, r.logprobs[rows, :logp.shape[1]], advantages[rows].to(logp.device), answer_alive,
                              clip_low=args.clip_low, clip_high=args.clip_high, ref_logp=ref,
                              kl_coef=args.kl_coef, aggregate=args.aggregate)
        # weight: this micro-batch's share of the step's tokens (or answers), so that the sum of
        # the micro-batch losses is the loss over the whole step
        weight = keep * (s["tokens"] if args.aggregate == "token" else (answer_alive.sum(1) > 0).sum().item()) / total
        (loss * weight * scale).backward()
        if not keep:
            continue
        stats["loss"] += loss.item() * weight
        stats["clip_frac"] += s["clip_frac"] * s["tokens"]
        stats["kl"] += s["kl"] * s["tokens"]
        stats["ratio_max"] = max(stats["ratio_max"], s["ratio_max"])
        stats["tokens"] += s["tokens"]
    params = [p for p in model.parameters() if p.requires_grad]
    if updated and not sharded:
        parallel.all_reduce_grads(params)        # the sum over processes = the one-process gradient
    grad_norm = parallel.full_value(torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)) if updated else 0.0
    if updated:
        optimizer.step()
    if parallel.distributed():  # the step's numbers: sums over the processes, and the largest ratio
        parts = parallel.all_gather(stats)
        stats = {k: sum(p[k] for p in parts) for k in stats} | {"ratio_max": max(p["ratio_max"] for p in parts)}
    n = max(stats.pop("tokens"), 1)
    return dict(stats, clip_frac=stats["clip_frac"] / n, kl=stats["kl"] / n, grad_norm=grad_norm,
                groups_updated=updated)


def step_record(step, mine, r, rewards, scores, stats, eos_ids, args, t0, t_rollout):
    """The log record of a step: the numbers of all its groups, gathered from every process.
    acc: the share of answers whose own score is 1; zero_var: the share of prompts whose M x W
    rewards are all equal (no signal)."""
    lengths, truncated = answer_stats(r, eos_ids)
    rewards, scores, lengths, truncated = (parallel.gather_rows(x) for x in (rewards, scores, lengths, truncated))
    per_prompt = rewards.view(-1, args.sets * args.width)
    zero_var = per_prompt.eq(per_prompt[:, :1]).all(1)
    step_s = time.time() - t0
    return dict(step=step, loss=stats["loss"], reward=rewards.mean().item(),
                acc=(scores == 1).float().mean().item(), zero_var=zero_var.float().mean().item(),
                len=lengths.mean().item(), trunc=truncated.mean().item(), kl=stats["kl"],
                clip=stats["clip_frac"], ratio_max=stats["ratio_max"], grad_norm=stats["grad_norm"],
                groups_updated=stats["groups_updated"], tok_s=lengths.sum().item() / step_s,
                step_s=step_s, rollout_s=t_rollout, update_s=step_s - t_rollout,
                prompt_tokens=parallel.all_sum(r.alive[::args.sets * args.width, :r.prompt_len].sum().item()),
                prompts=[i for part in parallel.all_gather([i for i, _ in mine]) for i in part])


def show_group(step, problem, texts, scores, width):
    print(f"--- step {step + 1}, group 0: {problem.question} (answer {problem.answer})")
    for i in range(width):
        mark = "right" if scores[i] == 1 else "wrong"
        print(f"  [{i + 1} {mark}] " + texts[i].strip().replace("\n", " | "))

# -----------------------------------------------------------------------------
# command line


FIELDS = [("loss", ".4f"), ("reward", ".3f"), ("acc", ".3f"), ("zero_var", ".2f"), ("len", ".1f"),
          ("trunc", ".2f"), ("kl", ".4f"), ("clip", ".3f"), ("grad_norm", ".3f"), ("tok_s", ".0f"),
          ("step_s", ".1f")]


def parse_args(argv=None):
    p = cli.Parser(prog="train_grpo.py", description="GRPO on verifiable tasks for RLVR-only, P-Match and Bridge.")
    training.common_args(p, width=4, lr_new=1e-4)
    p.add_argument("--train", default="all", choices=["all", "new"], help="what trains: all parameters, or only the new blocks (default all)")
    p.add_argument("--lr", type=float, default=5e-6, help="learning rate of the base model's parameters with --train all (default 5e-6)")
    p.add_argument("--init", default=None, help="start the blocks from this checkpoint (e.g. the SFT warm-up's bridge.safetensors)")
    p.add_argument("--prompts-per-step", type=int, default=8, help="prompts per step (default 8)")
    p.add_argument("--sets", type=int, default=1, help="independent width-W sets sampled per prompt; the advantage's "
                   "baseline is taken over all sets x width answers of the prompt, Bridge connects one set (default 1)")
    p.add_argument("--credit", default="answer", choices=list(CREDITS), help="set-level tasks: reward each answer by its "
                   "own score (answer), by its set's per-answer score (team) or by what its set loses without it "
                   "(difference; metrics.set_credit) (default answer)")
    p.add_argument("--pool", type=int, default=None, help="distinct training problems cycled through (default: all of the split, at most 2000)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of the rollouts (default 1.0)")
    p.add_argument("--adv-scale", default="std", choices=["std", "none"], help="advantage (r-mean)/(std+eps), or r-mean (default std)")
    p.add_argument("--aggregate", default="token", choices=["token", "sequence"], help="loss mean over all tokens (DAPO) or per answer (default token)")
    p.add_argument("--clip-low", type=float, default=0.2, help="PPO clip: ratio >= 1 - clip_low (default 0.2)")
    p.add_argument("--clip-high", type=float, default=0.28, help="PPO clip: ratio <= 1 + clip_high (default 0.28, DAPO)")
    p.add_argument("--kl-coef", type=float, default=0.0, help="weight of the k3 KL to the starting policy (default 0: no reference copy)")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="gradient norm clip (default 1.0)")
    p.add_argument("--rollout-only", action="store_true", help="sample and score, never update: how much signal a task gives (no checkpoint)")
    args = training.parse_problem_source(p, argv)
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


def check_args(args):
    training.check_common(args)
    if args.width < 2 and not args.rollout_only:
        raise ValueError(f"--width must be >= 2 for GRPO (advantages compare answers within a group), got {args.width}")
    if args.arch == "none" and (args.train == "new" or args.init):
        raise ValueError("--arch none has no new blocks: use --train all and no --init")
    if args.prompts_per_step < 1 or (args.pool is not None and args.pool < args.prompts_per_step):
        raise ValueError(f"need 1 <= --prompts-per-step <= --pool, got {args.prompts_per_step} and {args.pool}")
    if args.data is not None:
        training_pool(args)  # enough problems in the file: one line here, not after the model loads
    elif args.pool is not None:
        have = question_count(args.task, "train", **training.task_knobs(args))
        if args.pool > have:
            raise ValueError(f"--pool {args.pool}: task {args.task!r} has only {have} training questions")
    cli.check_in_file(args.init, "--init", "Bridge checkpoint")
    if not (args.temperature > 0 and math.isfinite(args.temperature)):
        raise ValueError(f"--temperature must be > 0 for RL, got {args.temperature}")
    training.check_positive(args, "lr")
    for name in ("clip_high", "kl_coef"):
        training.check_positive(args, name, zero_ok=True)
    if not 0 <= args.clip_low < 1:
        raise ValueError(f"--clip-low must be in [0, 1) (the ratio's floor is 1 - clip_low), got {args.clip_low}")
    parallel.check_shares(args.prompts_per_step, "--prompts-per-step")


def setup(args):
    """Model, tokenizer, optimizer, reference model and first step (fresh, or from --resume)."""
    model, tokenizer = training.build_model(args, init=args.init)
    ref_model = None
    if args.kl_coef > 0:  # the starting policy, frozen (built before a resume replaces the weights)
        import copy
        ref_model = copy.deepcopy(model).requires_grad_(False)
    first = 0
    if args.resume:
        def builder(model_dir, bridge):
            return load_model(model_dir or args.model, device=args.device, bridge=bridge)
        model, tokenizer, state = load_checkpoint(args.out, builder)
        first = state["step"] + 1
    if args.shard:  # FSDP2: the optimizer is built over the sharded parameters
        parallel.shard(model)
        if ref_model is not None:
            parallel.shard(ref_model)
    optimizer = training.make_optimizer(model, args.train, args.lr, args.lr_new)
    if args.resume:
        training.restore_optimizer(model, optimizer, state)
    return model, tokenizer, optimizer, ref_model, first


def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    parallel.dist_init(args)  # under torchrun: join the process group; else nothing
    training.start_run(args)
    model, tokenizer, optimizer, ref_model, first = setup(args)
    if parallel.is_main():
        print(training.parameter_counts(model) + f" | train {args.train} | arch {args.arch}", file=sys.stderr)
    pool = training_pool(args)
    log = cli.StepLog(args.out, FIELDS, args.steps, first, main=parallel.is_main())
    with cli.GracefulStop() as stop:
        for step in range(first, args.steps):
            t0 = time.time()
            batch = step_problems(pool, step, args.prompts_per_step, args.seed)      # 0. prompts
            mine = parallel.my_share(batch)                    # this process's groups (torchrun), else all
            r, rewards, scores, texts = rollout(model, tokenizer, mine, args)         # 1-2. sample, score
            t_rollout = time.time() - t0
            adv = group_advantages(rewards, args.sets * args.width, scale=args.adv_scale)  # 3. advantages
            if args.rollout_only:
                stats = dict(loss=0.0, clip_frac=0.0, kl=0.0, ratio_max=0.0, grad_norm=0.0, groups_updated=0)
            else:
                stats = update(model, optimizer, r, adv, args, ref_model)          # 4-5. loss, step
            log.write(step_record(step, mine, r, rewards, scores, stats, tokenizer.eos_ids, args, t0, t_rollout))
            if args.show_every and step % args.show_every == 0 and parallel.is_main():
                show_group(step, batch[0][1], texts, scores, args.width)
            stopping = parallel.any_process(stop.requested)  # every process stops after the same step
            last = step + 1 == args.steps or stopping
            if not args.rollout_only and ((step + 1) % args.save_every == 0 or last):
                training.save_checkpoint(args.out, model, optimizer, step, args, args.train)
            if stopping:
                parallel.dist_exit(130)
    if not args.rollout_only and parallel.is_main():
        print(f"done: {args.out}/checkpoint", file=sys.stderr)
    parallel.dist_exit()


if __name__ == "__main__":
    cli.run(main)
