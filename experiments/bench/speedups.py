"""Does each speed-up pay? Each one switched off alone, on two real workloads, against all of them on.

    python experiments/bench/speedups.py --out experiments/results/speed/speedups.json    # ~30 min on 2 cores, alone on the machine
    python experiments/bench/speedups.py --root OLD_CHECKOUT --out experiments/results/speed/speedups_before.json   # "before": its commands as they were
    python experiments/bench/speedups.py --doc docs/speed.md                  # the table from those files (--check: exit 1 if stale)

The workloads are what the studies run: an evaluation stage (evaluate.py on the set-level task
with its committed Bridge, widths 1 2 4 8: many short answers) and one on the default task (longer,
ragged answers), and GRPO steps (train_grpo.py, RLVR only on the default task, 8 prompts x 4
answers: the rollout and the update). Each variant runs in a fresh interpreter, in which the
speed-ups of fast.py are switched off one at a time by their keywords (`fast.sample(packed=False)`,
`drop_rows=False`) in a run with `--fast`; "packed only" switches off all but the packed weights;
"reference" is the commands without `--fast` (all of them off, the naive sampler). The results also hold rows of speed-ups measured before
they were deleted for not paying ("one-level draw", "--compile", "answers in one piece": what
switching off the answers in pieces measured). The rule (README, How the code is organised): a
speed-up stays if its workload takes at least 10% longer without it.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bridgekit.cli import Parser, add_overwrite, check_new_file, run, write_text  # noqa: E402

BEGIN = "<!-- speedups:begin (written by `python experiments/bench/speedups.py --doc docs/speed.md` from experiments/results/speed/speedups.json; do not edit by hand) -->"
END = "<!-- speedups:end -->"
DEFAULT_OUT = ROOT / "experiments" / "results" / "speed" / "speedups.json"
DEFAULT_BEFORE = ROOT / "experiments" / "results" / "speed" / "speedups_before.json"

EVAL_DISTINCT = ["evaluate.py", "--bridge", "bridges/distinct.safetensors", "--task", "distinct", "--max-new-tokens",
                 "32", "--split", "test", "--problems", "16", "--n", "8", "--widths", "1", "2", "4", "8", "--seed", "0"]
EVAL_DEFAULT = ["evaluate.py", "--bridge", "bridges/default.safetensors", "--problems", "24", "--n", "8",
                "--widths", "4", "--seed", "0"]
GRPO = ["train_grpo.py", "--arch", "none", "--train", "all", "--steps", "3", "--show-every", "0", "--seed", "0"]
# the patch each variant runs before the command: fast.sample's keywords
PATCHES = {
    "all on": "",
    "packed off": "fast.sample = functools.partial(fast.sample, packed=False)",
    "rows stay": "fast.sample = functools.partial(fast.sample, drop_rows=False)",
    "packed only": "fast.sample = functools.partial(fast.sample, drop_rows=False)",
}
WORKLOADS = {  # name: (command, the variants measured on it)
    "evaluation, distinct (16 questions x 8 answers, widths 1 2 4 8)":
        (EVAL_DISTINCT, ["all on", "packed off", "rows stay", "reference", "packed only"]),
    "evaluation, default task (24 problems x 8 answers, width 4)":
        (EVAL_DEFAULT, ["all on", "packed off", "rows stay", "reference", "packed only"]),
    "GRPO, default task (RLVR only, 8 x 4; seconds per step, steps 2-3)":
        (GRPO, ["all on", "packed off", "rows stay", "reference", "packed only"]),
}


def launcher(patch, argv, root):
    """python -c: apply the patch, then run the script of `root` as __main__ with argv."""
    return [sys.executable, "-c",
            "import functools, runpy, sys\n"
            f"sys.path.insert(0, {str(root)!r})\n"
            + ("from bridgekit import fast\n" if patch else "")
            + f"{patch}\n"
            f"sys.argv = {argv!r}\n"
            f"runpy.run_path({str(Path(root) / argv[0])!r}, run_name='__main__')\n"]


def measure(command, variant, scratch, root=ROOT, timeout=None):
    """Seconds: the whole evaluation command, or the mean GRPO step after the first; None if the
    command ran past `timeout` seconds (it is stopped there)."""
    argv = list(command)
    patch = PATCHES.get(variant, "")
    # the speed-ups are the commands' --fast, and "reference" their naive default (a checkout from
    # before --fast ran the speed-ups by default and the naive sampler with --reference)
    has_fast = "--fast" in (Path(root) / "evaluate.py").read_text()
    if has_fast and variant != "reference":
        argv.append("--fast")
    elif not has_fast and variant == "reference":
        argv.append("--reference")
    out = Path(scratch) / f"run{time.monotonic_ns()}"
    argv += ["--out", str(out) + (".json" if argv[0] == "evaluate.py" else "")]
    t0 = time.perf_counter()
    proc = subprocess.Popen(launcher(patch, argv, root), cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the command and what it started (its workers)
        proc.communicate()
        return None
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{variant} of {argv[0]} failed: {stderr.strip().splitlines()[-1:]}")
    if argv[0] == "train_grpo.py":
        steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        return statistics.fmean(s["step_s"] for s in steps[1:])
    return seconds


def measure_all(root=ROOT, only=None, timeout=None, out=None):
    """Every workload with each of its variants (or only those in `only`), one run each. With `out`,
    the results so far are written after every run, and the runs a file there already holds are
    not run again (a stopped measurement resumes)."""
    import platform
    import torch
    from bridgekit.result_files import machine
    before = Path(root).resolve() != ROOT
    data = dict(machine=machine("cpu"), threads=torch.get_num_threads(), torch=torch.__version__,
                python=platform.python_version(), git_commit=commit(root), timeout=timeout, rows=[])
    if out and Path(out).is_file():
        data["rows"] = json.loads(Path(out).read_text())["rows"]
    done = {(r["workload"], r["variant"]) for r in data["rows"]}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (command, variants) in WORKLOADS.items():
            for variant in variants:
                label = f"before ({commit(root)[:7]}), {variant}" if before else variant
                if (only and variant not in only) or (name, label) in done:
                    continue
                seconds = measure(command, variant, scratch, root, timeout)
                data["rows"].append(dict(workload=name, variant=label, seconds=seconds))
                shown = f"{seconds:.1f} s" if seconds is not None else f"stopped after {timeout} s"
                print(f"{name} | {label}: {shown}", file=sys.stderr, flush=True)
                if out:
                    write_text(out, json.dumps(data, indent=1) + "\n")
    return data


def commit(root):
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    return done.stdout.strip() or None


def table(data, before=None):
    """The Markdown table: each variant's seconds and its ratio to "all on" of the same workload;
    `before` (the same measurement of an older checkout) adds its rows under each workload."""
    if data["machine"] != (before or data)["machine"]:
        raise ValueError(f"before and after were measured on different machines: {before['machine']} / {data['machine']}")
    lines = [f"Measured with `python experiments/bench/speedups.py` on {data['machine']} ({data['threads']} threads, torch "
             f"{data['torch']}, commit {(data['git_commit'] or '?')[:7]}), alone on the machine, one run each: "
             "seconds (the whole command; for GRPO the mean of steps 2 and 3), and the ratio to all speed-ups "
             "on: how much longer the workload takes without the speed-up. A speed-up stays at 1.10 or more.", "",
             "| workload | variant | seconds | ratio to all on |", "|---|---|---|---|"]
    base = {r["workload"]: r["seconds"] for r in data["rows"] if r["variant"] == "all on"}
    rows = data["rows"] + (before["rows"] if before else [])
    order = list(dict.fromkeys(r["workload"] for r in data["rows"]))
    for r in sorted(rows, key=lambda r: order.index(r["workload"])):
        s, b = r["seconds"], base[r["workload"]]
        if s is None:  # stopped at the timeout: at least that long
            seconds, ratio = f"> {data['timeout']}", f"> {data['timeout'] / b:.2f}"
        else:
            seconds, ratio = f"{s:.1f}", "" if r["variant"] == "all on" else f"{s / b:.2f}"
        lines.append(f"| {r['workload']} | {r['variant']} | {seconds} | {ratio} |")
    return lines


def section(path=DEFAULT_OUT, before=None):
    data = json.loads(Path(path).read_text())
    before = json.loads(Path(before).read_text()) if before and Path(before).is_file() else None
    return "\n".join([BEGIN, "", *table(data, before), "", END])


def main(argv=None):
    p = Parser(prog="experiments/bench/speedups.py", description="Each speed-up of fast.py switched off alone, on real workloads.")
    p.add_argument("--out", default=None, help="measure, and write the results JSON here")
    add_overwrite(p)
    p.add_argument("--doc", default=None, help="write the table into this Markdown file, between its markers")
    p.add_argument("--results", default=str(DEFAULT_OUT), help="with --doc: the results JSON (default experiments/results/speed/speedups.json)")
    p.add_argument("--before", default=str(DEFAULT_BEFORE), help="with --doc: the same measured on an older checkout, "
                   "if the file exists (default experiments/results/speed/speedups_before.json)")
    p.add_argument("--root", default=str(ROOT), help="measure the commands of this checkout (default: this one; "
                   "an older checkout measures what the speed was before)")
    p.add_argument("--variants", nargs="+", default=None, help="only these variants (default: all)")
    p.add_argument("--timeout", type=int, default=600, help="stop a run after this many seconds, recorded as "
                   "at least that long (default 600)")
    p.add_argument("--resume", action="store_true", help="keep the runs an existing --out holds, measure the rest")
    p.add_argument("--check", action="store_true", help="with --doc: exit 1 if the table is not what the results give")
    args = p.parse_args(argv)
    if args.out is None and args.doc is None:
        p.error("nothing to do: give --out (measure) or --doc (write the table)")
    if args.out:
        if not args.resume:
            check_new_file(args.out, args.overwrite)
            if Path(args.out).is_file():
                Path(args.out).unlink()
        measure_all(Path(args.root).resolve(), args.variants, args.timeout, args.out)
    if args.doc:
        doc = Path(args.doc)
        text = doc.read_text()
        if BEGIN not in text or END not in text:
            raise ValueError(f"{doc}: no {BEGIN[:22]}... / {END} markers to write between")
        head, rest = text.split(BEGIN, 1)
        new = head + section(args.results, args.before) + rest.split(END, 1)[1]
        if args.check:
            if new != text:
                print(f"{doc}: the speed-ups table is stale; run python experiments/bench/speedups.py --doc {doc}", file=sys.stderr)
                return 1
            return 0
        write_text(doc, new)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
