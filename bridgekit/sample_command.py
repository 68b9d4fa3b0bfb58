"""
What sample.py's command needs beside the sampler: which Bridge file it loads, the built-in problem
it asks, the check of --compare, and how it prints the answers (text, or one JSON object with --json).
Its flags are cli.add_sample_arguments, checked by checks.check_sample_args; tools/attention_map.py
shares them and the set-up.
"""
import json
import sys
from pathlib import Path

from bridgekit import tasks

DEFAULT_BRIDGE = Path(__file__).resolve().parents[1] / "bridges" / "default.safetensors"


def bridge_path(args):
    """The Bridge file to load: --bridge; with the default model and no --bridge, the committed blocks
    trained for --task (bridges/TASK.safetensors) where there are some, else bridges/default.safetensors."""
    if args.bridge is not None or args.model is not None:
        return args.bridge
    for_task = DEFAULT_BRIDGE.with_name(f"{args.task}.safetensors") if getattr(args, "task", None) else None
    default = for_task if for_task is not None and for_task.is_file() else DEFAULT_BRIDGE
    return default if default.is_file() else None


def check_compare(args):
    """--compare self needs Bridge blocks that are switched on, and siblings to read: one line each."""
    from bridgekit.checkpoint import bridge_metadata
    if args.width < 2:
        raise ValueError("--compare self compares reading the siblings with reading only itself: it needs --width >= 2")
    if args.no_bridge:
        raise ValueError("--compare self compares two ways of running the Bridge blocks: drop --no-bridge")
    bridge = bridge_path(args)
    kind = None if bridge is None else bridge_metadata(bridge).get("kind")
    if kind != "bridge":
        what = "no Bridge blocks (give --bridge)" if bridge is None else f"{bridge} holds {kind} blocks, not Bridge"
        raise ValueError(f"--compare self compares whom the Bridge blocks let a row read: {what}")


def default_problem(task=None):
    """The built-in prompt: the first held-out problem of `task` (default: the default task)."""
    task = task or tasks.DEFAULT_TASK
    return tasks.make_problems(task, 1, seed=0, split="test", **tasks.DEFAULT_DIFFICULTY.get(task, {}))[0]


def print_json(args, model, bridge, prompts, problem, out, rewards):
    """One JSON object: the settings, and per prompt its answers (out[path][g]), with the rewards of
    the built-in problem, and those of the --compare path beside them."""
    settings = {k: getattr(args, k) for k in ("max_new_tokens", "temperature", "top_k", "top_p",
                                              "seed", "device", "dtype", "fast")}
    results = [dict(prompt=p, responses=r) for p, r in zip(prompts, out["siblings"])]
    if problem:
        results[0].update(gold=problem.answer, rewards=rewards["siblings"][0])
    if args.compare:
        for g, r in enumerate(results):
            r[args.compare] = dict(responses=out[args.compare][g])
            if problem:
                r[args.compare]["rewards"] = rewards[args.compare][g]
    print(json.dumps(dict(model=model.source, bridge=None if bridge is None else str(bridge),
                          bridge_config=model.bridge_config, bridge_on=model.use_bridge, width=args.width,
                          settings=dict(settings, chat=not args.no_chat), results=results),
                     indent=2, ensure_ascii=False))


def print_text(args, prompts, problem, out, rewards, seconds):
    """Every answer of every prompt's group, marked right or wrong on the built-in problem; with
    --compare, whether reading only itself changed it, and each set scored both ways."""
    W, paths = args.width, list(out)
    sets = problem is not None and problem.task in tasks.SET_TASKS

    def verdict(path, g, i):
        if not problem:
            return ""
        r = rewards[path][g][i]
        return f" ({f'scores {r:g}' if sets else 'right' if r else 'wrong'})"

    for g, prompt in enumerate(prompts):
        gold = "" if not problem else f"  (an answer scores 1 if its number is 1..{problem.answer} and no " \
            "other answer's)" if sets else f"  (answer: {problem.answer})"
        print(f"=== prompt: {prompt}{gold}")
        for i, answer in enumerate(out["siblings"][g]):
            if not args.compare:
                print(f"--- answer {i + 1}/{W}{verdict('siblings', g, i)}\n{answer.strip()}")
                continue
            other = out[args.compare][g][i]
            print(f"--- answer {i + 1}/{W}: reading its siblings{verdict('siblings', g, i)} | reading only itself: "
                  f"{'the same' if other == answer else 'CHANGED'}{verdict(args.compare, g, i)}")
            print(answer.strip())
            if other != answer:
                print("\n".join("  [reading only itself] " + line for line in other.strip().splitlines()))
        if args.compare and problem:
            score = {path: sum(rewards[path][g]) / W for path in paths}
            print(f"set score: {score['siblings']:.2f} reading the siblings, {score[args.compare]:.2f} reading only "
                  f"itself ({sum(a != b for a, b in zip(out['siblings'][g], out[args.compare][g]))} of {W} answers changed)")
        print()
    print(f"({sum(len(a) for a in out['siblings'])} answers"
          f"{f' on {len(paths)} paths' if args.compare else ''} in {seconds:.1f}s)", file=sys.stderr)
