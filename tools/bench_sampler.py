"""
Throughput of the sampler, side by side with transformers' generate, and the cost of Bridge.

    python bench.py                        # sampler vs HF: widths 1 4 16, fp32 and bf16, cpu (+cuda)
    python bench.py --what bridge          # Bridge and P-Match, off vs on, at widths 1 4 16 64, fp32
    python bench.py --what all --new-tokens 128 --out bench.json
    python bench.py --what tasks           # which task gives GRPO the most signal (train_grpo.py --rollout-only)
    python bench.py --what logprobs        # prompt once per group vs the plain forward, fp32 / bf16 (training's forward+backward)
    python bench.py --what grpo            # s per GRPO step: train_grpo.py vs TRL's GRPOTrainer (pip install -e ".[bench]")

Every number is tokens generated per second of wall-clock time (prefill included), with no early
stop in either engine (ours: ignore_eos; HF: min_new_tokens = max_new_tokens), one chat prompt,
sampling at temperature 1 with top-k and top-p off. Each configuration runs in a fresh subprocess,
after a short warm-up, so that "peak memory" (peak resident set on CPU, peak allocated on CUDA) is
that configuration's alone. Absolute figures are noisy on a shared machine: compare the ratios.
`--what grpo` reports seconds per GRPO optimizer step instead (ours vs TRL; see the comment above
grpo_work for what the two engines share and where they differ).
For the cost of Bridge, one process times the same model with its blocks off (model.use_bridge =
False, which is the base model) and on, alternating `--repeats` times, and keeps the best of each.
"""
import argparse
import json
import resource
import subprocess
import sys
import time

PROMPT = "What is the capital of France? Answer in one sentence."
DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def sync(device):
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory_mb(device):
    import torch
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure(job):
    """One configuration, in this process: returns tokens/s and peak memory."""
    import torch
    from model import load_model
    from sample import sample
    dtype, device, width, n = getattr(torch, DTYPES[job["dtype"]]), job["device"], job["width"], job["new_tokens"]
    model, tok = load_model(job["model"], device=device, dtype=dtype)
    ids = tok.encode(tok.chat([{"role": "user", "content": PROMPT}]), add_special_tokens=False)
    if job["engine"] == "hf":
        import transformers
        hf = transformers.AutoModelForCausalLM.from_pretrained(model.source, dtype=dtype).to(device).eval()
        del model
        x = torch.tensor([ids], device=device)
        settings = dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=width,
                        pad_token_id=tok.eos_id)

        def run(k):
            with torch.no_grad():
                hf.generate(x, max_new_tokens=k, min_new_tokens=k, **settings)
    else:
        if job["block"] != "none":  # random non-zero blocks: the cost must not depend on W_O == 0
            model.add_bridge(job["block"], n_heads=4, head_dim=16, verbose=False)
            g = torch.Generator().manual_seed(0)
            with torch.no_grad():
                for p in model.bridge_parameters():
                    p.add_(0.02 * torch.randn(p.shape, generator=g).to(p.device, p.dtype))
        gen = torch.Generator(device).manual_seed(0)

        def run(k):
            sample(model, [ids], tok.eos_ids, width=width, max_new_tokens=k, generator=gen, ignore_eos=True)

    def timed():
        sync(device)
        t0 = time.perf_counter()
        run(n)
        sync(device)
        return width * n / (time.perf_counter() - t0)
    run(8)  # warm-up: first-call allocations and kernel selection
    if job["table"] == "bridge":  # the same model with its blocks off and on, alternating; best of each
        speeds = {False: [], True: []}
        for _ in range(job["repeats"]):
            for on in (False, True):
                model.use_bridge = on
                speeds[on].append(timed())
        return dict(job, tok_s_off=max(speeds[False]), tok_s=max(speeds[True]), peak_mb=peak_memory_mb(device))
    return dict(job, tok_s=timed(), peak_mb=peak_memory_mb(device))


def run_job(job):
    """Run one configuration in a fresh interpreter and return its result dict."""
    out = subprocess.run([sys.executable, __file__, "--job", json.dumps(job)], capture_output=True, text=True)
    if out.returncode != 0:
        return dict(job, error=out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def jobs_for(args, devices):
    jobs = []
    base = dict(model=args.model, new_tokens=args.new_tokens)
    if args.what in ("sampler", "all"):
        for device in devices:
            for dtype in args.dtypes:
                for width in args.widths:
                    for engine in ("ours", "hf"):
                        jobs.append(dict(base, table="sampler", engine=engine, block="none",
                                         device=device, dtype=dtype, width=width))
    if args.what in ("bridge", "all"):
        for device in devices:
            for width in args.bridge_widths:
                for block in ("bridge", "pmatch"):
                    jobs.append(dict(base, table="bridge", engine="ours", block=block, device=device,
                                     dtype="fp32", width=width, repeats=args.repeats))
    return jobs


def fmt(r):
    return "error" if r is None or "error" in r else f"{r['tok_s']:.1f}"


def ratio(a, b):
    if a is None or b is None or "error" in a or "error" in b:
        return "-"
    return f"{a['tok_s'] / b['tok_s']:.2f}"


def tables(results):
    def find(**kw):
        return next((r for r in results if all(r.get(k) == v for k, v in kw.items())), None)
    lines = []
    keys = sorted({(r["device"], r["dtype"], r["width"]) for r in results if r["table"] == "sampler"},
                  key=lambda k: (k[0], k[1] != "fp32", k[2]))
    if keys:
        lines += ["| device | dtype | width | ours tok/s | HF generate tok/s | ours / HF | ours peak MB | HF peak MB |",
                  "|---|---|---|---|---|---|---|---|"]
        for device, dtype, width in keys:
            o = find(table="sampler", engine="ours", device=device, dtype=dtype, width=width)
            h = find(table="sampler", engine="hf", device=device, dtype=dtype, width=width)
            mem = lambda r: "-" if r is None or "error" in r else f"{r['peak_mb']:.0f}"
            lines.append(f"| {device} | {dtype} | {width} | {fmt(o)} | {fmt(h)} | {ratio(o, h)} | {mem(o)} | {mem(h)} |")
        lines.append("")
    keys = sorted({(r["device"], r["width"]) for r in results if r["table"] == "bridge"})
    if keys:
        lines += ["| device | width | blocks off tok/s | Bridge on tok/s | Bridge on / off | "
                  "P-Match off tok/s | P-Match on tok/s | P-Match on / off | Bridge peak MB |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for device, width in keys:
            cells = []
            for kind in ("bridge", "pmatch"):
                r = find(table="bridge", block=kind, device=device, width=width)
                if r is None or "error" in r:
                    cells += ["error", "error", "-"]
                else:
                    cells += [f"{r['tok_s_off']:.1f}", f"{r['tok_s']:.1f}", f"{r['tok_s'] / r['tok_s_off']:.2f}"]
            b = find(table="bridge", block="bridge", device=device, width=width)
            mem = "-" if b is None or "error" in b else f"{b['peak_mb']:.0f}"
            lines.append(f"| {device} | {width} | " + " | ".join(cells) + f" | {mem} |")
    return "\n".join(lines)


# which task should GRPO train on: each configuration is train_grpo.py --rollout-only, i.e. the
# rollouts of GRPO exactly (width 4, temperature 1, the worked examples, 64 new tokens), never updated
TASK_CONFIGS = [  # (task, --hi, --shots, --system); system None = the chat template's default
    ("word", 20, 2, None), ("word", 20, 2, "short"), ("word", 9, 2, "short"), ("word", 20, 1, "short"),
    ("add2", None, 2, "short"), ("add2", None, 1, "short"), ("abc", 20, 2, "short"), ("abc", 9, 2, "short"),
]


def survey_tasks(args):
    import tempfile
    from pathlib import Path
    from tasks import SYSTEM
    rows = []
    for i, (task, hi, shots, system) in enumerate(TASK_CONFIGS, 1):
        out = Path(tempfile.mkdtemp(prefix="survey-"))
        cmd = [sys.executable, "train_grpo.py", "--rollout-only", "--task", task, "--shots", str(shots),
               "--system", SYSTEM if system == "short" else "", "--steps", str(args.survey_steps),
               "--prompts-per-step", "8", "--width", "4", "--max-new-tokens", "64", "--seed", "1",
               "--show-every", "0", "--out", str(out)] + (["--hi", str(hi)] if hi else [])
        if args.model:
            cmd += ["--model", args.model]
        t0 = time.time()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        mean = lambda k: sum(r[k] for r in log) / len(log)
        rows.append(dict(task=task, hi=hi, shots=shots, system="one line" if system else "template default",
                         acc=mean("acc"), mixed=1 - mean("zero_var"), len=mean("len"), trunc=mean("trunc"),
                         prompt_tokens=mean("prompt_tokens") / 8, s_group=sum(r["rollout_s"] for r in log) / (8 * len(log)),
                         problems=8 * len(log)))
        print(f"[{i}/{len(TASK_CONFIGS)}] {task} hi={hi} shots={shots}: acc {rows[-1]['acc']:.3f} "
              f"mixed {rows[-1]['mixed']:.2f} ({time.time() - t0:.0f}s)", file=sys.stderr, flush=True)
    lines = ["| task | numbers up to | shots | system message | prompt tokens | accuracy | mixed groups | "
             "mean answer tokens | truncated | s / group |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['hi'] or 99} | {r['shots']} | {r['system']} | {r['prompt_tokens']:.0f} | "
                     f"{100 * r['acc']:.1f}% | {100 * r['mixed']:.0f}% | {r['len']:.1f} | {100 * r['trunc']:.0f}% | "
                     f"{r['s_group']:.2f} |")
    return rows, "\n".join(lines)


def bench_logprobs(args):
    """Training's forward+backward over one GRPO step's rollout: prompt once per group vs plain rows.

    The default GRPO shape (train_grpo's defaults: its task and prompts, 8 prompts x 4 answers, 64
    answer tokens, every answer run to 64 tokens), micro-batches of train_grpo's --micro-groups,
    every parameter trained. Alternating, best of --repeats. Also how far bf16 autocast moves the
    log-probs from fp32 (on the same tokens).
    """
    import torch
    import train_grpo
    import training as T
    from model import load_model
    from sample import sample
    d = train_grpo.parse_args(["--out", "x"])
    model, tok = load_model(args.model)
    problems = [p for _, p in train_grpo.step_problems(train_grpo.training_pool(d), 0, 8, d.seed)]
    r = sample(model, T.encode_problems(tok, problems, d), tok.eos_ids, width=4, max_new_tokens=64,
               generator=torch.Generator().manual_seed(0), ignore_eos=True)
    batches = T.micro_batches(list(range(8)), d.micro_groups, 4)

    def run(shared, dtype):
        model.zero_grad(set_to_none=True)
        out = []
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            for rows in batches:
                lp = T.answer_logprobs(model, *T.split_rollout(r, rows), 4, shared_prompt=shared)
                lp.sum().backward()
                out.append(lp.detach())
        return torch.cat(out)

    times, logps = {}, {}
    for _ in range(args.repeats):
        for dtype in ("fp32", "bf16"):
            for shared in (True, False):
                t0 = time.perf_counter()
                logps[dtype, shared] = run(shared, dtype)
                times.setdefault((dtype, shared), []).append(time.perf_counter() - t0)
    rows = [dict(dtype=dt, shared_s=min(times[dt, True]), plain_s=min(times[dt, False])) for dt in ("fp32", "bf16")]
    diff = (logps["bf16", True] - logps["fp32", True]).abs()
    drift = dict(mean_abs=diff.mean().item(), max_abs=diff.max().item(),
                 share_over_0_2=(diff > 0.2).float().mean().item())  # 0.2: outside the PPO clip range
    P = r.prompt_len
    lines = [f"# one GRPO step's forward+backward: 8 prompts ({P} tokens, padded) x 4 answers x 64 tokens, "
             f"micro-batches of {d.micro_groups} groups, all parameters, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads, best of {args.repeats}\n",
             "| dtype | prompt once per group (s) | plain N rows (s) | speed-up |", "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['dtype']} | {row['shared_s']:.1f} | {row['plain_s']:.1f} | {row['plain_s'] / row['shared_s']:.2f} |")
    lines.append(f"\nbf16 autocast vs fp32 log-probs of the same 2048 answer tokens: mean |diff| "
                 f"{drift['mean_abs']:.4f}, max {drift['max_abs']:.3f}, share above 0.2: {drift['share_over_0_2']:.4f}")
    return dict(rows=rows, drift=drift, prompt_len=P), "\n".join(lines)


# -----------------------------------------------------------------------------
# one GRPO step: ours (train_grpo.py) vs TRL's GRPOTrainer, on the same work
#
# "The same work": the base model in fp32 on the CPU, every parameter trained (the "RLVR only" arm:
# no new blocks), train_grpo's default task and prompts (its --task, --hi, --shots, --system, --seed,
# --pool; the prompts of step k are train_grpo.step_problems(pool, k, 8, seed), the chat messages
# tasks.messages), 8 prompts x 4 answers per step sampled at temperature 1 over the full vocabulary
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
#   prompt once per group (training.answer_logprobs); TRL runs all 32 full rows (prompt + answer) and
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


def grpo_ours(work, micro_groups=None):
    """train_grpo.py in a subprocess (RLVR only, fp32, cpu); seconds per step from its log.jsonl."""
    import shutil
    import tempfile
    from pathlib import Path
    here = Path(__file__).resolve().parent
    tmp = Path(tempfile.mkdtemp(prefix="bench-grpo-"))
    cmd = [sys.executable, str(here / "train_grpo.py"), "--arch", "none", "--train", "all",
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
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=here)
        if out.returncode != 0:
            lines = out.stderr.strip().splitlines()
            return dict(work, engine="ours", error=lines[-1] if lines else f"exit code {out.returncode}")
        log = [json.loads(line) for line in (tmp / "run" / "log.jsonl").read_text().splitlines() if line.strip()]
        args_used = json.loads((tmp / "run" / "args.json").read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    import torch
    timed = log[1:]
    mean = lambda k: sum(r[k] for r in timed) / len(timed)
    return dict(work, engine="ours", s_per_step=mean("step_s"), gen_s=mean("rollout_s"), update_s=mean("update_s"),
                peak_rss_mb=log[-1]["peak_rss_mb"], steps_timed=len(timed), step_s=[r["step_s"] for r in log],
                groups_updated=mean("groups_updated"), len=mean("len"), acc=mean("acc"),
                prompt_tokens=mean("prompt_tokens") / work["prompts"],
                micro_batch=args_used["micro_groups"] * work["width"], grad_accum=None,
                versions=dict(torch=torch.__version__))


def grpo_trl(job):
    """In a fresh process (bench.py --job): TRL's GRPOTrainer on the same work; seconds per step.

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
    from tasks import Problem, messages, reward
    from weights import resolve_model_dir
    model_dir = str(resolve_model_dir(job["model"]))
    pool = train_grpo.training_pool(argparse.Namespace(task=job["task"], hi=job["hi"], pool=job["pool"],
                                                       prompts_per_step=job["prompts"], seed=job["seed"]))
    rows = [dict(prompt=messages(p, shots=job["shots"], seed=job["seed"], system=job["system"] or None),
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
                                   peak_rss_mb=peak_memory_mb("cpu")))

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
        if engine == "ours":
            r = grpo_ours(work, args.ours_micro_groups)
        elif importlib.util.find_spec("trl") is None:
            r = dict(work, engine="trl", error='trl not installed (pip install -e ".[bench]")')
        else:
            r = run_job(dict(work, trl_micro_batch=args.trl_micro_batch))
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
    import training
    knobs = training.task_knobs(argparse.Namespace(task=work["task"], hi=work["hi"]))
    lines = [f"# one GRPO step, RLVR only (all parameters), fp32, cpu: model {work['model'] or 'default'}, "
             f"task {work['task']} {knobs}, {work['shots']} shots, system {work['system']!r}, {work['prompts']} prompts x "
             f"{work['width']} answers, <= {work['max_new_tokens']} new tokens, lr {work['lr']}; mean of steps "
             f"2..{work['steps']}; torch {torch.__version__}, transformers {ver('transformers')}, trl {ver('trl')}, "
             f"{torch.get_num_threads()} threads\n",
             "| engine | s/step | generation s | update s | peak RSS MB | ours speed-up | rows per micro-batch | "
             "groups updated | answer tokens | prompt tokens | accuracy |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['engine']} | error: {r['error']} |" + " - |" * 9)
            continue
        speedup = f"{r['s_per_step'] / ours['s_per_step']:.2f}" if ours is not None and r is not ours else "-"
        micro = f"{r['micro_batch']}" + (f" x {r['grad_accum']}" if r.get("grad_accum") else "")
        lines.append(f"| {r['engine']} | {r['s_per_step']:.2f} | {r['gen_s']:.2f} | {r['update_s']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | {speedup} | {micro} | {r['groups_updated']:.1f} / {work['prompts']} | "
                     f"{r['len']:.1f} | {r['prompt_tokens']:.1f} | {100 * r['acc']:.1f}% |")
    return "\n".join(lines)


def emit(result, table, out):
    """Print a table; with --out, also write the results it came from as JSON."""
    print(table)
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=2)


def main():
    p = argparse.ArgumentParser(description="Tokens/s of our sampler vs transformers.generate, and of Bridge on vs off.")
    p.add_argument("--what", default="sampler", choices=["sampler", "bridge", "all", "tasks", "logprobs", "grpo"], help="which table(s) (default sampler)")
    p.add_argument("--survey-steps", type=int, default=6, help="tasks: rollout steps of 8 prompts x 4 answers per configuration (default 6)")
    p.add_argument("--grpo-steps", type=int, default=2, help="grpo: optimizer steps timed, after one untimed warm-up step (default 2)")
    p.add_argument("--grpo-engines", nargs="+", default=["ours", "trl"], choices=["ours", "trl"], help="grpo: which engines (default ours trl)")
    p.add_argument("--grpo-shots", type=int, default=None, help="grpo: worked examples per prompt (default: train_grpo's --shots)")
    p.add_argument("--trl-micro-batch", type=int, default=32, help="grpo: TRL rows per forward/backward; 32 / this = gradient accumulation (default 32)")
    p.add_argument("--ours-micro-groups", type=int, default=None, help="grpo: our groups per forward/backward (default: train_grpo's --micro-groups)")
    p.add_argument("--model", default=None, help="model directory or repo id (default: the default model)")
    p.add_argument("--widths", type=int, nargs="+", default=[1, 4, 16], help="widths for the sampler table (default 1 4 16)")
    p.add_argument("--bridge-widths", type=int, nargs="+", default=[1, 4, 16, 64], help="widths for the Bridge table (default 1 4 16 64)")
    p.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES), help="dtypes for the sampler table (default fp32 bf16)")
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    p.add_argument("--new-tokens", type=int, default=128, help="new tokens per row, no early stop (default 128)")
    p.add_argument("--repeats", type=int, default=3, help="Bridge table: off/on runs alternated this many times, best kept (default 3)")
    p.add_argument("--out", default=None, help="also write all results as JSON to this file")
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)  # internal: run one configuration
    args = p.parse_args()
    if args.job:
        job = json.loads(args.job)
        print(json.dumps(grpo_trl(job) if job.get("table") == "grpo" else measure(job)))
        return
    if args.what == "grpo":
        if args.grpo_steps < 1:
            p.error(f"--grpo-steps must be >= 1, got {args.grpo_steps}")
        if args.trl_micro_batch < 1 or 32 % args.trl_micro_batch or args.trl_micro_batch % 4:
            p.error(f"--trl-micro-batch must divide 32 and be a multiple of 4 (whole groups), got {args.trl_micro_batch}")
        work, rows = bench_grpo(args)
        return emit(rows, grpo_table(work, rows), args.out)
    if args.what == "logprobs":
        return emit(*bench_logprobs(args), args.out)
    if args.what == "tasks":
        rows, table = survey_tasks(args)
        header = f"# {8 * args.survey_steps} train problems x 4 answers per row, temperature 1, 64 new tokens, seed 1\n\n"
        return emit(rows, header + table, args.out)
    import torch
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    jobs = jobs_for(args, devices)
    results, t0 = [], time.time()
    for i, job in enumerate(jobs, 1):
        r = run_job(job)
        results.append(r)
        elapsed = time.time() - t0
        eta = elapsed / i * (len(jobs) - i)
        what = f"{r['engine']}/{r['block']}" if r["engine"] == "ours" else "hf"
        off = f" (off: {r['tok_s_off']:.1f})" if "tok_s_off" in r else ""
        print(f"[{i}/{len(jobs)}] {job['device']} {job['dtype']} w={job['width']} {what}: "
              f"{fmt(r)} tok/s{off}{' ' + r['error'] if 'error' in r else ''}  (elapsed {elapsed:.0f}s, eta {eta:.0f}s)",
              file=sys.stderr, flush=True)
    print(f"# {args.new_tokens} new tokens per row, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads\n")
    print(tables(results))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
