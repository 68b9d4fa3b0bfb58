"""What the benchmarks of tools/ share: where the repository is, timing on a device, peak memory,
one configuration run in a fresh interpreter, and writing a table plus the JSON it came from.

Not a command: bench_sampler.py, bench_logprobs.py, bench_grpo.py and survey_tasks.py import it
(`import benchkit`, found next to them when they run as `python tools/NAME.py`).
"""
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository root: the method's files, train_grpo.py


def sync(device):
    """Wait for the device's queued work, so that a wall-clock interval holds all of it."""
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def peak_memory_mb(device):
    """Peak allocated memory on CUDA, else the process's peak resident set (MB)."""
    import torch
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_job(script, job):
    """Run `python script --job JSON` in a fresh interpreter (its own peak memory) and return its dict.

    The script prints the result as the last line of its stdout; a failure becomes dict(job, error=
    the last line of its stderr).
    """
    out = subprocess.run([sys.executable, str(Path(script).resolve()), "--job", json.dumps(job)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return dict(job, error=out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def emit(result, table, out):
    """Print a table; with --out, also write the results it came from as JSON."""
    print(table)
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=2)
