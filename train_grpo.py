"""
RL with verifiable rewards (GRPO) for the three arms of the paper's comparison, from one script:

    python train_grpo.py --arch none   --train all --out experiments/runs/rlvr      # RLVR only (no new block)
    python train_grpo.py --arch bridge --train all --init experiments/runs/sft_bridge/checkpoint/bridge.safetensors --out experiments/runs/bridge
    python train_grpo.py ... --resume                                  # continue a stopped run
    torchrun --nproc_per_node 4 train_grpo.py --device cuda ...       # 4 GPUs, the same algorithm

One step (the paper's RLVR stage; the numbers are the steps of main()):
  1. sample:    --sets M independent width-W sets per prompt (default 1), with the blocks on, so the
                W answers of a set are interdependent through Bridge (sample_sets);
  2. reward:    tasks.group_reward per set, 1 if the answer is right, else 0 (set-level tasks: --credit);
  3. advantage: (r - mean) / (std + eps) over the M x W answers of each prompt (group_advantages);
  4. loss:      the PPO-clipped surrogate, averaged over every answer token of the step (policy_loss);
  5. step:      gradients accumulated over micro-batches of whole groups, clipped, one AdamW step (update).

The paper gives GRPO, std-normalised group advantages, DAPO-style token-level aggregation and "a
KL term"; the rest is marked `# choice:` where the code decides it. docs/training.md has the long
form, and how several processes (torchrun, --shard; parallel.py) keep the one-process algorithm.
"""
import copy
import sys
import time

import torch

from bridgekit import cli
from bridgekit import parallel
from bridgekit import train_args
from bridgekit import training
from bridgekit.tasks import group_reward, stable_seed
from sample import answer_logprobs
from train_sft import model_for_run, resume, sampler

# -----------------------------------------------------------------------------
# the GRPO math: pure functions of tensors


def group_advantages(rewards, width, *, scale="std", eps=1e-4):
    """rewards (N,) -> advantages (N,) within each group of `width` contiguous rows (with --sets M,
    the M x W answers of one prompt are one group here).

    # paper: (r - mean) / std per group. # choice: scale="std": (r - mean) / (std + eps), std with
    Bessel's correction (ddof 1, like TRL and verl), eps 1e-4; scale="none": r - mean (Dr. GRPO).
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
    # paper: aggregate="token", the mean over every True token of the batch (DAPO); "sequence": the
    mean over each row's tokens, then over rows (rows without tokens are left out).
    # choice: DAPO's clip bounds (0.2 low, 0.28 high); the KL is the k3 estimator, added to the loss.
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
# sample, score, update


def step_problems(pool, step, per_step, seed):
    """The prompts of `step`, with their positions in the per-epoch shuffled stream of the pool."""
    return training.epoch_stream(pool, step, per_step, seed, "epoch")


def rollout_seed(seed, i, s):
    """The seed of set s of prompt i of the stream. A step depends only on (seed, step,
    weights), never on the rank or on which groups share a batch: resuming needs no RNG state. Set 0
    keeps the one-set rule's seed, so --sets 1 samples exactly what it always did."""
    return stable_seed("rollout", seed, i) if s == 0 else stable_seed("rollout", seed, i, s)


def sample_sets(model, tokenizer, indexed_problems, args):
    """(Rollout, rewards (N,), scores (N,), texts): --sets M width-W sets per problem, each scored on its
    own; set s of problem b is rows [(b*M + s)*W, (b*M + s + 1)*W). rewards: what the advantage reads
    (--credit); scores: each answer's own score, for the log. # choice: with M > 1 the advantage's
    baseline is all M x W answers of the prompt, while Bridge connects the rows of one set only."""
    problems, M, W = [p for _, p in indexed_problems], args.sets, args.width
    gens = [torch.Generator(model.lm_head.weight.device).manual_seed(rollout_seed(args.seed, i, s))
            for i, _ in indexed_problems for s in range(M)]
    with training.autocast(args), parallel.gathered(model):  # --shard: the whole model, gathered once
        r = sampler(args)(model, training.encode_problems(tokenizer, problems, args), tokenizer.eos_ids, width=W,
                          max_new_tokens=args.max_new_tokens, temperature=args.temperature, generator=gens,
                          groups_per_prompt=M)
    completions, eos = r.completions(), set(tokenizer.eos_ids)
    texts = [tokenizer.decode(c) for c in completions]
    finished = [bool(c) and c[-1] in eos for c in completions]
    sets = [(slice(g * W, (g + 1) * W), problems[g // M]) for g in range(len(problems) * M)]
    rewards = [x for rows, p in sets for x in group_reward(texts[rows], p, finished[rows], args.credit)]
    scores = rewards if args.credit == "answer" else [x for rows, p in sets for x in group_reward(texts[rows], p, finished[rows])]
    return r, torch.tensor(rewards), torch.tensor(scores), texts


def count(alive, aggregate):
    """What the loss is averaged over: answer tokens (token), or answers with a token (sequence)."""
    return alive.sum().item() if aggregate == "token" else (alive.sum(1) > 0).sum().item()


def update(model, optimizer, r, advantages, args, ref_model=None):
    """One optimizer step on one rollout: each micro-batch's loss, weighted by its share of the step's
    tokens, backward; then the gradient clipped and one AdamW step (parallel.step: with torchrun, the
    same step on every process).
    # paper: the GRPO group is the Bridge width group: a micro-batch holds whole groups.
    # choice: one update per rollout: old_logp is the sampler's own, the ratio 1 up to rounding.
    # choice: without --kl-coef, groups whose advantages are all 0 are not run (their gradient is 0)."""
    W = args.width
    assert r.tokens.shape[0] == advantages.shape[0] and r.tokens.shape[0] % W == 0, "a process must hold whole groups"
    signal = advantages.view(-1, W).ne(0).any(1)                                       # (B,)
    todo = [g for g in range(len(signal)) if signal[g] or args.kl_coef > 0]

    def loss_of(rows):
        """The loss of rows (whole groups), what it is averaged over, and its numbers."""
        prompt, prompt_alive, answer, answer_alive = training.split_rollout(r, rows)
        with training.autocast(args):
            logp = answer_logprobs(model, prompt, prompt_alive, answer, answer_alive, W, temperature=args.temperature)
            with torch.no_grad():  # the starting policy's, for the KL term
                ref = None if ref_model is None else answer_logprobs(
                    ref_model, prompt, prompt_alive, answer, answer_alive, W, temperature=args.temperature)
        # choice: EOS is an answer token: the mask is `alive`, never the token values
        loss, stats = policy_loss(logp, r.logprobs[rows, :logp.shape[1]], advantages[rows].to(logp.device), answer_alive,
                                  clip_low=args.clip_low, clip_high=args.clip_high, ref_logp=ref,
                                  kl_coef=args.kl_coef, aggregate=args.aggregate)
        return loss, count(answer_alive, args.aggregate), stats

    grad_norm, parts = parallel.step(model, optimizer, training.micro_batches(todo, args.micro_groups, W), loss_of,
                                     count(r.alive[:, r.prompt_len:], args.aggregate), args.max_grad_norm,
                                     filler=slice(0, W))
    n = max(sum(s["tokens"] for _, _, s in parts), 1)
    return dict(loss=sum(share * s["loss"] for _, share, s in parts),
                clip_frac=sum(s["clip_frac"] * s["tokens"] for _, _, s in parts) / n,
                kl=sum(s["kl"] * s["tokens"] for _, _, s in parts) / n,
                ratio_max=max((s["ratio_max"] for _, _, s in parts), default=0.0), grad_norm=grad_norm,
                groups_updated=sum((rows.stop - rows.start) // W for rows, _, _ in parts))

# -----------------------------------------------------------------------------
# the run


FIELDS = [("loss", ".4f"), ("reward", ".3f"), ("acc", ".3f"), ("zero_var", ".2f"), ("len", ".1f"),
          ("trunc", ".2f"), ("kl", ".4f"), ("clip", ".3f"), ("grad_norm", ".3f"), ("tok_s", ".0f"),
          ("step_s", ".1f")]


def step_record(step, mine, r, rewards, scores, stats, eos_ids, args, t0, t_rollout):
    """The log record of a step, the numbers of all its groups (gathered from every process).
    acc: the share of answers whose own score is 1; zero_var: the share of prompts whose M x W
    rewards are all equal (no signal); trunc: the share of answers cut at --max-new-tokens."""
    lengths = r.alive[:, r.prompt_len:].sum(1)
    last = r.tokens[:, r.prompt_len:].gather(1, (lengths - 1).clamp(min=0)[:, None]).squeeze(1)
    truncated = ~torch.isin(last, torch.tensor(eos_ids, device=last.device))  # no EOS: cut at --max-new-tokens
    rewards, scores, lengths, truncated = (parallel.gather_rows(x) for x in (rewards, scores, lengths.float(), truncated.float()))
    per_prompt = rewards.view(-1, args.sets * args.width)
    step_s = time.time() - t0
    return dict(step=step, loss=stats["loss"], reward=rewards.mean().item(), acc=(scores == 1).float().mean().item(),
                zero_var=per_prompt.eq(per_prompt[:, :1]).all(1).float().mean().item(), len=lengths.mean().item(),
                trunc=truncated.mean().item(), kl=stats["kl"], clip=stats["clip_frac"], ratio_max=stats["ratio_max"],
                grad_norm=stats["grad_norm"], groups_updated=stats["groups_updated"], tok_s=lengths.sum().item() / step_s,
                step_s=step_s, rollout_s=t_rollout, update_s=step_s - t_rollout,
                prompt_tokens=parallel.all_sum(r.alive[::args.sets * args.width, :r.prompt_len].sum().item()),
                prompts=[i for part in parallel.all_gather([i for i, _ in mine]) for i in part])


def show_group(step, problem, texts, scores, width):
    """Print the first group's answers side by side, marked right or wrong."""
    print(f"--- step {step + 1}, group 0: {problem.question} (answer {problem.answer})")
    for i in range(width):
        print(f"  [{i + 1} {'right' if scores[i] == 1 else 'wrong'}] " + texts[i].strip().replace("\n", " | "))


def parse_args(argv=None):
    """The command line (train_args.parse_grpo: the flags, their defaults and usage errors)."""
    return train_args.parse_grpo(argv)


def setup(args):
    """Model, tokenizer, optimizer, reference model and first step (fresh, or from --resume)."""
    model, tokenizer = model_for_run(args, init=args.init)
    # the starting policy, frozen, for the KL term (copied before a resume replaces the weights)
    ref_model = copy.deepcopy(model).requires_grad_(False) if args.kl_coef > 0 else None
    first = 0
    if args.resume:
        model, tokenizer, state = resume(args)
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
    train_args.check_grpo(args)
    with training.owned_run(args):  # one run per --out; released before a torchrun worker's immediate exit
        code = train(args)
    parallel.dist_exit(code)


def train(args):
    """The run of checked arguments: set-up, then the steps, a checkpoint every --save-every. Returns
    the exit code: 0, or 130 when Ctrl-C stopped it after a step."""
    parallel.dist_init(args)  # under torchrun: join the process group; else nothing
    training.start_run(args)
    model, tokenizer, optimizer, ref_model, first = setup(args)
    if parallel.is_main():
        print(training.parameter_counts(model) + f" | train {args.train} | arch {args.arch}", file=sys.stderr)
    pool = training.training_pool(args)
    first_batch = parallel.my_share(step_problems(pool, first, args.prompts_per_step, args.seed))
    training.check_rollouts_fit(model, tokenizer, [p for _, p in first_batch], args, width=args.width, groups=args.sets)
    log = cli.StepLog(args.out, FIELDS, args.steps, first, main=parallel.is_main())
    with cli.GracefulStop() as stop:
        for step in range(first, args.steps):
            t0 = time.time()
            batch = step_problems(pool, step, args.prompts_per_step, args.seed)      # 0. prompts
            mine = parallel.my_share(batch)                    # this process's groups (torchrun), else all
            r, rewards, scores, texts = sample_sets(model, tokenizer, mine, args)     # 1-2. sample, score
            t_rollout = time.time() - t0
            adv = group_advantages(rewards, args.sets * args.width, scale=args.adv_scale)  # 3. advantages
            stats = update(model, optimizer, r, adv, args, ref_model)                   # 4-5. loss, step
            log.write(step_record(step, mine, r, rewards, scores, stats, tokenizer.eos_ids, args, t0, t_rollout))
            training.check_finite(step, dict(loss=stats["loss"], grad_norm=stats["grad_norm"]), model, args.out)
            if args.show_every and step % args.show_every == 0 and parallel.is_main():
                show_group(step, batch[0][1], texts, scores, args.width)
            stopping = parallel.any_process(stop.requested)  # every process stops after the same step
            if (step + 1) % args.save_every == 0 or step + 1 == args.steps or stopping:
                training.save_checkpoint(args.out, model, optimizer, step, args, args.train)
            if stopping:
                return 130
    if parallel.is_main():
        print(f"done: {args.out}/checkpoint", file=sys.stderr)
    return 0


if __name__ == "__main__":
    cli.run(main)
