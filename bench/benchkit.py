"""What the benchmarks of bench/ share: where the repository is, the checks of their arguments made
before any configuration runs, timing on a device, peak memory, one configuration run in a fresh
interpreter, and writing a table plus the JSON it came from; and the flags every script beside the
method defines alike (--model; --heads and --head-dim of blocks trained alone).

Not a command: the scripts of bench/ import it (`import benchkit`, found next to them when they run
as `python bench/NAME.py`); studies/survey_tasks.py, studies/oracle.py and tools/positive_control.py
add bench/ to their path.
"""
import json
import re
import resource
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository root: the method's files, train_grpo.py
MODEL_HELP = "local HF-style directory or HF repo id (default: SmolLM2-135M-Instruct from PyPI, converted once)"


def add_model(parser):
    """--model: the base model, named as every command of the repository names it."""
    parser.add_argument("--model", default=None, help=MODEL_HELP)


def add_block_shape(parser):
    """--heads and --head-dim of new blocks trained alone on the frozen base (the positive control,
    the oracle check), the default Bridge's shape unless given."""
    parser.add_argument("--heads", type=int, default=4, help="heads of a new block (default 4, as the default Bridge)")
    parser.add_argument("--head-dim", type=int, default=16, help="head size of a new block (default 16)")


def check_model(name, flag="--model"):
    """Raise ValueError (one line) if `name` is a local path that is not a model directory; a hub repo
    id (owner/name) or None (the default model) is left to the load. The jobs run in subprocesses that
    report a failure one by one: a model that cannot be there must fail once, before them."""
    if name is None:
        return
    sys.path.insert(0, str(ROOT))
    import weights
    path = Path(name).expanduser()
    if path.is_dir():
        try:
            weights.check_model_dir(path)
        except FileNotFoundError as e:
            raise ValueError(f"{flag} {e}") from None
    elif path.exists():
        raise ValueError(f"{flag} {name} is a file; give the model's directory")
    elif weights.looks_like_path(name):
        raise ValueError(f"{flag} {name}: no such model directory")


def check_devices(devices, flag="--devices"):
    """Raise ValueError (one line) unless every device is cpu or cuda[:i], and CUDA is there for cuda."""
    sys.path.insert(0, str(ROOT))
    from cli import check_device
    for device in devices:
        try:
            check_device(device)
        except ValueError as e:
            raise ValueError(f"{flag}: {e}") from None


def check_counts(parser, args, *names, zero_ok=()):
    """A usage error (parser.error: one line, exit code 2) unless each args.NAME (an int, or a list of
    ints) is >= 1 (>= 0 for the names in zero_ok); None, an option left to its default, passes."""
    for name in names:
        value = getattr(args, name)
        least = 0 if name in zero_ok else 1
        for v in value if isinstance(value, list) else [value]:
            if v is not None and v < least:
                parser.error(f"--{name.replace('_', '-')} must be >= {least}, got {v}")


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
    the last line of its stderr, without the "error: " of cli.run).
    """
    out = subprocess.run([sys.executable, str(Path(script).resolve()), "--job", json.dumps(job)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return dict(job, error=failure(out.returncode, out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])


def failure(returncode, stderr):
    """One line for a command that failed: its "error: ..." line (cli.run's), else the exception a
    traceback ends with, else how it ended: a process killed by a signal (the kernel's out-of-memory
    killer sends SIGKILL) may leave only a library's warning as its last line."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    errors = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    if errors:
        return errors[-1]
    raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", line)]
    if raised:
        return raised[-1]
    if returncode < 0:
        return f"killed by signal {-returncode} ({signal.Signals(-returncode).name}" + ("; out of memory?)" if -returncode == signal.SIGKILL else ")")
    return f"exit code {returncode}" + (f"; its last line: {lines[-1]}" if lines else "")


def emit(result, table, out):
    """Print a table; with --out, also write the results it came from as JSON."""
    print(table)
    if out:
        from cli import write_text
        write_text(out, json.dumps(result, indent=2))  # whole, or any earlier file untouched
