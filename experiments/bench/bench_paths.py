"""
Wall time of one real evaluation on the two paths: every command's default (the naive sample.sample)
and --fast (bridgekit/fast.py: packed weights, finished rows leaving the batch; the same tokens).

    python experiments/bench/bench_paths.py --out experiments/results/speed/eval_paths.json

The evaluation is evaluate.py with the committed default Bridge on --problems held-out problems,
--n answers each, at widths 4 and 8 (answers stop at their end token, so rows leave the batch at
different steps: the work --fast is for). Each path runs `--repeats` times in a fresh process,
alternating, and keeps its best wall time. The two paths give the same tokens but for rounding
(packed weights sum in another order, so a token flips where a draw lies within ~1e-7 of a CDF
edge): the file counts the answers whose extracted answer or length differ.
experiments/bench/paths_report.py puts this beside the sampler's and GRPO's ratios of both paths.
"""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the method's files, at the repository root

from bridgekit.cli import Parser, add_overwrite, check_new_file, check_out_file, run, write_text  # noqa: E402
from bridgekit.result_files import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def evaluation(flags, out, args):
    """Seconds of one evaluate.py run (a fresh process), and its per-problem results."""
    cmd = [sys.executable, str(ROOT / "evaluate.py"), *flags, "--bridge", str(ROOT / "bridges" / "default.safetensors"),
           "--problems", str(args.problems), "--n", str(args.n), "--widths", "4", "8", "--seed", "0",
           "--out", str(out), "--overwrite"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise ValueError(f"evaluate.py {' '.join(flags)} failed: {done.stderr.strip().splitlines()[-1]}")
    rows = [(r["width"], i, k, a, n) for r in json.loads(Path(out).read_text())["results"]
            for i, p in enumerate(r["per_problem"]) for k, (a, n) in enumerate(zip(p["answers"], p["lengths"]))]
    return seconds, rows


def main(argv=None):
    p = Parser(prog="experiments/bench/bench_paths.py", description="One evaluation's wall time, naive and --fast.")
    p.add_argument("--problems", type=int, default=20, help="held-out problems (default 20)")
    p.add_argument("--n", type=int, default=8, help="answers per problem and width (default 8)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each path, alternating; best kept (default 2)")
    p.add_argument("--out", required=True, help="the JSON to write")
    add_overwrite(p)
    args = p.parse_args(argv)
    for name in ("problems", "n", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    check_out_file(args.out)
    check_new_file(args.out, args.overwrite)
    seconds, answers = {"naive": [], "fast": []}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for path, flags in (("naive", []), ("fast", ["--fast"])):
                s, answers[path] = evaluation(flags, Path(tmp) / f"{path}.json", args)
                seconds[path].append(s)
                print(f"[{i + 1}/{args.repeats}] {path}: {s:.1f} s", file=sys.stderr, flush=True)
    import torch
    result = dict(problems=args.problems, n=args.n, widths=[4, 8], seconds=seconds, rows=len(answers["naive"]),
                  differing_rows=sum(a != b for a, b in zip(answers["naive"], answers["fast"])),
                  machine=machine("cpu"), threads=torch.get_num_threads(), torch=torch.__version__)
    write_text(args.out, json.dumps(result, indent=1) + "\n")
    print(f"best: naive {min(seconds['naive']):.1f} s, --fast {min(seconds['fast']):.1f} s "
          f"(--fast / naive speed-up {min(seconds['naive']) / min(seconds['fast']):.2f}); answers that differ: "
          f"{result['differing_rows']} of {result['rows']}")


if __name__ == "__main__":
    sys.exit(run(main))
