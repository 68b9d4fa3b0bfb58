"""
Seconds per GRPO optimizer step: ours (train_grpo.py) against TRL's GRPOTrainer, on the same work.

    python experiments/bench/bench_grpo.py --grpo-steps 3 --trl-micro-batch 8 --out grpo.json   # as experiments/bench/speed.sh
    python experiments/bench/bench_grpo.py --grpo-engines ours --grpo-steps 2      # ours only (no TRL needed)
    python experiments/bench/bench_grpo.py --grpo-engines ours naive trl ...       # also train_grpo.py without --fast

"ours" is train_grpo.py --fast; "naive" the same command without it (the naive sampler every
command runs by default).

TRL is optional: pip install -e ".[bench]" (trl, datasets). Each engine runs in a fresh process
(ours: train_grpo.py; TRL: this file with --job) and times its optimizer steps after the first.
The comment below says what the two engines share and where they differ. An engine that fails is
a row marked "error", the others still run and are written; the command then exits 1.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the method's files, at the repository root

import benchkit  # noqa: E402  (next to this file)
from bridgekit import cli, checks  # noqa: E402
from bridgekit.cli import Parser, add_overwrite, check_new_file, check_out_file, run  # noqa: E402

# -----------------------------------------------------------------------------
# one GRPO step: ours (train_grpo.py) vs TRL's GRPOTrainer, on the same work
#
# "The same work": the base model in fp32 on the CPU, every parameter trained (the "RLVR only" arm:
# no new blocks), train_grpo's default task and prompts (its --task, --hi, --shots, --system, --seed,
# --pool; the prompts of step k are train_grpo.step_problems(pool, k, 8, seed), the chat messages
# tasks.messages, the same for both engines), 8 prompts x 4 answers per step sampled at temperature 1 over the full vocabulary
# (top-k off, top-p 1), at most 64 new tokens, reward tasks.reward, advantages (r - mean) / (std + 1e-4)
# per group (Bessel std, in both), DAPO token-level loss, clip 0.2 low / 0.28 high, no KL (beta 0, no
# reference model), one update per rollout (ratio 1, no extra "old log-prob" forward in either),
# AdamW at train_grpo's --lr, constant, no weight decay, gradient norm clipped to 1. Each engine runs in
# a fresh process and times its optimizer steps after the first (the first includes warm-up); model
# loading and our end-of-run checkpoint are not timed.
# Differences left in (each engine's own way of doing the same step):
# - generation: ours samples a group from one prefill of its prompt (sample.py); TRL calls HF
#   generate on 32 rows (each prompt repeated 4 times, so 4 prefills), left-padded, dynamic KV cache;
# - the update: ours skips the forward/backward of groups whose 4 rewards are equal (their advantages,
#   hence their gradient, are exactly 0: `groups_updated` says how many went through) and runs the
#   prompt once per group (sample.answer_logprobs); TRL runs all 32 full rows (prompt + answer) and
#   also computes the token entropy for its logs;
# - micro-batches: ours --micro-groups (train_grpo's default 2 groups = 8 rows per forward/backward);
#   TRL --trl-micro-batch rows (default 32: the whole step at once), one generation of 32 per step;
# - the two runs sample different answers (different random streams), so answer lengths and rewards
#   differ: the rows report both (`len`, `acc`) and the mean prompt length each engine saw;
# - "generation s": ours is train_grpo's rollout_s (sampling, decoding and rewards); TRL's is the time
#   inside model.generate only. "update s" is the rest of the step in both (for TRL it also holds the
#   chat templating, decoding and rewards, a few milliseconds).


def grpo_work(args):
    """The job shared by both engines: train_grpo's defaults, the steps, the shape of a step."""
    import train_grpo
    d = train_grpo.parse_args(["--out", "x"])  # the defaults of a GRPO run
    return dict(table="grpo", model=args.model, task=d.task, hi=d.hi,
                shots=d.shots if args.grpo_shots is None else args.grpo_shots, system=d.system, seed=d.seed,
                pool=d.pool, lr=d.lr, clip_low=d.clip_low, clip_high=d.clip_high, max_grad_norm=d.max_grad_norm,
                prompts=8, width=4, max_new_tokens=64, steps=1 + args.grpo_steps)


def grpo_ours(work, micro_groups=None, engine="ours"):
    """train_grpo.py in a subprocess (RLVR only, fp32, cpu; --fast unless engine is "naive");
    seconds per step from its log.jsonl."""
    import shutil
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix="bench-grpo-"))
    cmd = [sys.executable, str(benchkit.ROOT / "train_grpo.py")] + (["--fast"] if engine == "ours" else []) + [
           "--arch", "none", "--train", "all",
           "--task", work["task"], "--shots", str(work["shots"]), "--system", work["system"],
           "--prompts-per-step", str(work["prompts"]), "--width", str(work["width"]),
           "--max-new-tokens", str(work["max_new_tokens"]), "--temperature", "1", "--adv-scale", "std",
           "--aggregate", "token", "--clip-low", str(work["clip_low"]), "--clip-high", str(work["clip_high"]),
           "--kl-coef", "0", "--max-grad-norm", str(work["max_grad_norm"]), "--lr", str(work["lr"]),
           "--dtype", "fp32", "--device", "cpu", "--steps", str(work["steps"]),
           "--seed", str(work["seed"]), "--show-every", "0", "--save-every", "1000", "--out", str(tmp / "run")]
    cmd += ["--pool", str(work["pool"])] if work["pool"] is not None else []
    cmd += (["--hi", str(work["hi"])] if work["hi"] is not None else []) + (["--model", work["model"]] if work["model"] else [])
    cmd += ["--micro-groups", str(micro_groups)] if micro_groups else []
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=benchkit.ROOT)
        if out.returncode != 0:
            return dict(work, engine=engine, error=benchkit.failure(out.returncode, out.stderr))
        log = [json.loads(line) for line in (tmp / "run" / "log.jsonl").read_text().splitlines() if line.strip()]
        args_used = json.loads((tmp / "run" / "args.json").read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    import torch
    timed = log[1:]
    mean = lambda k: sum(r[k] for r in timed) / len(timed)
    return dict(work, engine=engine, s_per_step=mean("step_s"), gen_s=mean("rollout_s"), update_s=mean("update_s"),
                peak_rss_mb=log[-1]["peak_rss_mb"], steps_timed=len(timed), step_s=[r["step_s"] for r in log],
                groups_updated=mean("groups_updated"), groups_per_step=[r["groups_updated"] for r in log],
                len=mean("len"), acc=mean("acc"), prompt_tokens=mean("prompt_tokens") / work["prompts"],
                micro_batch=args_used["micro_groups"] * work["width"], grad_accum=None,
                versions=dict(torch=torch.__version__))


def grpo_trl(job):
    """In a fresh process (experiments/bench/bench_grpo.py --job): TRL's GRPOTrainer on the same work; seconds per step.

    A step is timed from the TrainerCallback's on_step_begin to its on_step_end. In transformers'
    Trainer loop on_step_begin comes before the first micro-batch's training_step and on_step_end
    after optimizer.step(); GRPOTrainer generates in training_step -> _prepare_inputs (once every
    steps_per_generation micro-batches, here once per optimizer step), so the interval holds the
    generation, the rewards, every micro-batch's forward/backward, the clip and the AdamW step. Only
    the dataloader's fetch of the 32 prompt rows comes before on_step_begin. Generation seconds: the
    model's generate, wrapped with a timer (TRL calls it on the unwrapped model, the same object here).
    """
    import datasets
    import torch
    import transformers
    import trl
    from trl import GRPOConfig, GRPOTrainer
    import train_grpo
    from bridgekit import training
    from bridgekit.tasks import Problem, messages, reward
    from bridgekit.weights import resolve_model_dir
    model_dir = str(resolve_model_dir(job["model"]))
    pool = training.training_pool(argparse.Namespace(task=job["task"], hi=job["hi"], pool=job["pool"], data=None,
                                                       prompts_per_step=job["prompts"], seed=job["seed"]))
    # the prompt of train_grpo.py (tasks.prompt_ids renders these messages); '' = the template's default
    rows = [dict(prompt=messages(p, shots=job["shots"], system=job["system"] or None),
                 answer=p.answer, question=p.question)
            for step in range(job["steps"]) for _, p in train_grpo.step_problems(pool, step, job["prompts"], job["seed"])]
    dataset = datasets.Dataset.from_list(rows)  # in step order; shuffle_dataset=False keeps it

    def correct(completions, answer, **kwargs):  # conversational: a completion is [{"role": "assistant", ...}]
        text = lambda c: c[-1]["content"] if isinstance(c, list) else c
        return [reward(text(c), Problem("", int(a))) for c, a in zip(completions, answer)]

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    gen = dict(s=0.0, prompt_tokens=[])
    generate = model.generate

    def timed_generate(*a, **kw):
        t0 = time.perf_counter()
        out = generate(*a, **kw)
        gen["s"] += time.perf_counter() - t0
        if kw.get("attention_mask") is not None:
            gen["prompt_tokens"].append(kw["attention_mask"].sum(1).float().mean().item())
        return out
    model.generate = timed_generate

    class StepTimer(transformers.TrainerCallback):
        def __init__(self):
            self.steps, self.logs = [], []

        def on_step_begin(self, args, state, control, **kwargs):
            self.t0, self.g0, self.calls = time.perf_counter(), gen["s"], len(gen["prompt_tokens"])

        def on_step_end(self, args, state, control, **kwargs):
            calls = gen["prompt_tokens"][self.calls:]  # mean prompt length of each generate call in the step
            self.steps.append(dict(step_s=time.perf_counter() - self.t0, gen_s=gen["s"] - self.g0,
                                   generate_calls=len(calls), prompt_tokens=sum(calls) / max(len(calls), 1),
                                   peak_rss_mb=benchkit.peak_memory_mb("cpu")))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "completions/mean_length" in logs:
                self.logs.append(dict(logs))

    n = job["prompts"] * job["width"]  # completions per step
    micro = job["trl_micro_batch"]
    if micro < 1 or n % micro or micro % job["width"]:
        raise ValueError(f"--trl-micro-batch must divide {n} and be a multiple of {job['width']}, got {micro}")
    import shutil
    import tempfile
    scratch = tempfile.mkdtemp(prefix="bench-trl-")  # TRL's output_dir; nothing is saved (save_strategy "no")
    config = GRPOConfig(
        output_dir=scratch, num_generations=job["width"],
        per_device_train_batch_size=micro, gradient_accumulation_steps=n // micro, generation_batch_size=n,
        max_completion_length=job["max_new_tokens"], temperature=1.0, top_p=1.0, top_k=0, min_p=None,
        repetition_penalty=1.0, beta=0.0, num_iterations=1, loss_type="dapo", scale_rewards="group",
        epsilon=job["clip_low"], epsilon_high=job["clip_high"], mask_truncated_completions=False,
        learning_rate=job["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        optim="adamw_torch", adam_beta1=0.9, adam_beta2=0.999, adam_epsilon=1e-8,
        max_grad_norm=job["max_grad_norm"], gradient_checkpointing=False, use_cpu=True, bf16=False, fp16=False,
        use_vllm=False, report_to="none", save_strategy="no", logging_steps=1, max_steps=job["steps"],
        seed=job["seed"], shuffle_dataset=False, dataloader_num_workers=0, dataloader_pin_memory=False,
        disable_tqdm=True, log_completions=False)
    assert config.steps_per_generation * micro == n, "one generation of the whole step per optimizer step"
    timer = StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=correct, args=config, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[timer])
    try:
        trainer.train()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if len(timer.steps) != job["steps"]:
        raise RuntimeError(f"TRL made {len(timer.steps)} optimizer steps, expected {job['steps']}")
    timed, logs = timer.steps[1:], timer.logs[1:]
    mean = lambda xs: sum(xs) / len(xs) if xs else None
    s = mean([t["step_s"] for t in timed])
    g = mean([t["gen_s"] for t in timed])
    return dict(job, engine="trl", s_per_step=s, gen_s=g, update_s=s - g, peak_rss_mb=timer.steps[-1]["peak_rss_mb"],
                steps_timed=len(timed), step_s=[t["step_s"] for t in timer.steps],
                groups_updated=job["prompts"], len=mean([r["completions/mean_length"] for r in logs]),
                acc=mean([r["reward"] for r in logs if "reward" in r]), prompt_tokens=mean([t["prompt_tokens"] for t in timed]),
                generate_calls=[t["generate_calls"] for t in timer.steps],
                micro_batch=micro, grad_accum=n // micro, threads=torch.get_num_threads(),
                versions=dict(torch=torch.__version__, transformers=transformers.__version__, trl=trl.__version__,
                              datasets=datasets.__version__))


def bench_grpo(args):
    import importlib.util
    work = grpo_work(args)
    rows = []
    for engine in args.grpo_engines:
        t0 = time.time()
        if engine in ("ours", "naive"):
            r = grpo_ours(work, args.ours_micro_groups, engine)
        elif importlib.util.find_spec("trl") is None:  # main checks first; kept for callers of this function
            r = dict(work, engine="trl", error='trl not installed (pip install -e ".[bench]")')
        else:
            r = benchkit.run_job(__file__, dict(work, trl_micro_batch=args.trl_micro_batch))
            r["engine"] = "trl"
        r.setdefault("s_per_step", None)  # an error row still has the key
        rows.append(r)
        what = f"error: {r['error']}" if "error" in r else f"{r['s_per_step']:.2f} s/step"
        print(f"[{engine}] {what} ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    return work, rows


def grpo_table(work, rows):
    from importlib.metadata import PackageNotFoundError, version
    import torch

    def ver(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"
    ours = next((r for r in rows if r["engine"] == "ours" and "error" not in r), None)
    naive = next((r for r in rows if r["engine"] == "naive" and "error" not in r), None)
    from bridgekit import training
    difficulty = training.task_difficulty(argparse.Namespace(task=work["task"], hi=work["hi"]))
    lines = [f"# one GRPO step, RLVR only (all parameters), fp32, cpu: model {work['model'] or 'default'}, "
             f"task {work['task']} {difficulty}, {work['shots']} shots, system {work['system']!r}, {work['prompts']} prompts x "
             f"{work['width']} answers, <= {work['max_new_tokens']} new tokens, lr {work['lr']}; mean of steps "
             f"2..{work['steps']}; torch {torch.__version__}, transformers {ver('transformers')}, trl {ver('trl')}, "
             f"{torch.get_num_threads()} threads\n",
             "| engine | s/step | generation s | update s | peak RSS MB | ours speed-up | rows per micro-batch | "
             "groups updated | answer tokens | prompt tokens | accuracy |" + (" naive speed-up |" if naive else ""),
             "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if naive else "")]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['engine']} | error: {r['error']} |" + " - |" * 9)
            continue
        speedup = f"{r['s_per_step'] / ours['s_per_step']:.2f}" if ours is not None and r is not ours else "-"
        micro = f"{r['micro_batch']}" + (f" x {r['grad_accum']}" if r.get("grad_accum") else "")
        lines.append(f"| {r['engine']} | {r['s_per_step']:.2f} | {r['gen_s']:.2f} | {r['update_s']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | {speedup} | {micro} | {r['groups_updated']:.1f} / {work['prompts']} | "
                     f"{r['len']:.1f} | {r['prompt_tokens']:.1f} | {100 * r['acc']:.1f}% |"
                     + (f" {r['s_per_step'] / naive['s_per_step']:.2f} |" if naive else ""))
    return "\n".join(lines)




def main(argv=None):
    p = Parser(prog="bench_grpo.py", description="Seconds per GRPO step: train_grpo.py vs TRL's GRPOTrainer on the same work.")
    p.add_argument("--grpo-steps", type=int, default=2, help="optimizer steps timed, after one untimed warm-up step (default 2)")
    p.add_argument("--grpo-engines", nargs="+", default=["ours", "trl"], choices=["ours", "naive", "trl"],
                   help="which engines: ours (train_grpo.py --fast), naive (without --fast), trl (default ours trl)")
    p.add_argument("--grpo-shots", type=int, default=None, help="worked examples per prompt (default: train_grpo's --shots)")
    p.add_argument("--trl-micro-batch", type=int, default=32, help="TRL rows per forward/backward; 32 / this = gradient accumulation (default 32)")
    p.add_argument("--ours-micro-groups", type=int, default=None, help="our groups per forward/backward (default: train_grpo's --micro-groups)")
    cli.add_model(p)
    p.add_argument("--out", default=None, help="also write all results as JSON to this file")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)  # internal: TRL's run, in a fresh process
    add_overwrite(p)
    args = p.parse_args(argv)
    if args.job:
        print(json.dumps(grpo_trl(json.loads(args.job))))
        return 0
    # --ours-micro-groups 0 would drop the flag and silently run train_grpo's default
    benchkit.check_counts(p, args, "grpo_steps", "ours_micro_groups", "grpo_shots", zero_ok=("grpo_shots",))
    if args.trl_micro_batch < 1 or 32 % args.trl_micro_batch or args.trl_micro_batch % 4:
        p.error(f"--trl-micro-batch must divide 32 and be a multiple of 4 (whole groups), got {args.trl_micro_batch}")
    import importlib.util
    if "trl" in args.grpo_engines and importlib.util.find_spec("trl") is None:
        raise ValueError('--grpo-engines trl: trl is not installed (pip install -e ".[bench]"), or give --grpo-engines ours')
    checks.check_model(args.model)
    check_out_file(args.out)
    check_new_file(args.out, args.overwrite)  # a results file is replaced only when asked
    work, rows = bench_grpo(args)
    benchkit.emit(rows, grpo_table(work, rows), args.out)
    failed = [r for r in rows if "error" in r]
    if failed:
        print(f"error: {', '.join(r['engine'] for r in failed)} failed: {failed[0]['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
