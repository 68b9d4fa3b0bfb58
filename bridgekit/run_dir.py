"""
A training run's directory OUT (train_sft.py / train_grpo.py --out): who made it, the lock that lets
one training at a time run in it, its arguments, and the checks made before a training writes in it.

OUT/args.json names the script that made the run ("script"); the other training script refuses the
directory (check_run_owner). OUT/run.lock is held while a training runs in it (run_lock). --resume
continues a run only as it started (check_same_run); its checkpoint is checkpoint.py's.
"""
import fcntl
import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from bridgekit.checkpoint import bridge_metadata, check_state, checkpoint_dir


SCRIPTS = {"train_sft.py": "samples_per_problem", "train_grpo.py": "prompts_per_step"}  # a flag only it has


def run_owner(out):
    """The training script that made the run in OUT (args.json's "script"; for a run written before
    that was recorded, the script whose own flag it holds), or None where there is no run."""
    path = Path(out) / "args.json"
    if not path.is_file():
        return None
    try:
        started = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"{path} is not a JSON file: it does not hold a run's arguments") from None
    if "script" in started:
        return started["script"]
    return next((script for script, flag in SCRIPTS.items() if flag in started), None)


def check_run_owner(out, script):
    """A ValueError (one line) when OUT holds a run another script made: an SFT warm-up and a GRPO run
    keep different logs and arguments, and a resume would mix them. Called before anything is written."""
    owner = run_owner(out)
    if owner is not None and owner != script:
        raise ValueError(f"{out} holds a {owner} run, not a {script} one: give {script} another --out"
                         + (" (a GRPO run starts from a warm-up with --init "
                            f"{Path(out) / 'checkpoint' / 'bridge.safetensors'})" if owner == "train_sft.py" else ""))


LOCK = "run.lock"


@contextmanager
def run_lock(out):
    """Hold OUT/run.lock for the body's whole life: an exclusive flock on a file holding this pid, so
    that a second training on OUT is refused in one line before it loads or writes anything (two at
    once would interleave their logs and overwrite each other's checkpoints). The kernel drops the
    flock when its holder dies, so a file left by a killed run is taken over, with a note."""
    path = Path(out) / LOCK
    Path(out).mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ValueError(f"{out} is in use by another training (pid {holder}, holding {path}): wait for it "
                             "to end, or choose another --out") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)  # its holder removed the file between our open and flock: take the new one
    left = os.pread(fd, 32, 0).decode(errors="replace").strip()
    if left:
        print(f"note: taking over {path}, left by pid {left}, which holds it no more (its run was killed)",
              file=sys.stderr)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # before the unlock: whoever opened it meanwhile retries (above)
        os.close(fd)


def write_args(out, args):
    """OUT/args.json: the run's arguments, written atomically."""
    Path(out).mkdir(parents=True, exist_ok=True)
    tmp = Path(out) / "args.json.tmp"
    tmp.write_text(json.dumps(vars(args), indent=2) + "\n")
    os.replace(tmp, Path(out) / "args.json")

# -----------------------------------------------------------------------------
# resuming a run: the checks made before the model loads


def check_run_dir(args):
    """OUT before a training script writes in it, one-line ValueErrors: no other script's run; with
    --resume, a checkpoint whose state.pt is whole plain data and whose blocks have a Bridge header, of
    a run started with the same arguments, and a log whose lines are step records; without it, no run
    there to overwrite."""
    out = Path(args.out)
    check_run_owner(out, args.script)  # before anything in OUT is written
    if args.resume and not checkpoint_dir(out):
        raise ValueError(f"--resume: {out} holds no checkpoint to resume from")
    if not args.resume and checkpoint_dir(out):
        raise ValueError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    if args.resume:
        check_same_run(args, out)
        check_state(out)  # a truncated state.pt: one line here, not a traceback after the model loads
        blocks = checkpoint_dir(out) / "bridge.safetensors"
        if blocks.exists():
            bridge_metadata(blocks)  # its header: no model needed
        if (out / "log.jsonl").is_file():
            from bridgekit.cli import read_log
            read_log(out / "log.jsonl")  # a line that is no record (but a torn last one): one line here


# what a resumed run may change: how long it runs, how often it saves and shows, and how it computes
# (device, sharding, micro-batches, the --fast sampler), none of which changes what it computes
RESUME_MAY_CHANGE = {"steps", "resume", "save_every", "show_every", "device", "shard", "micro_groups", "fast",
                     "out"}


def check_same_run(args, out):
    """--resume continues the run as it started: any other changed argument is a one-line error. (The
    optimizer state it loads holds the learning rates it started with; a new --lr would be silently
    ignored, and OUT/args.json would say otherwise.)"""
    path = Path(out) / "args.json"
    if not path.is_file():
        return
    started = json.loads(path.read_text())
    changed = [f"--{k.replace('_', '-')} {v} (the run has {started[k]})" for k, v in vars(args).items()
               if k in started and k not in RESUME_MAY_CHANGE and started[k] != v]
    if changed:
        raise ValueError(f"--resume continues {out} as it started; these differ: {', '.join(changed)}. "
                         "Start a new --out to change them")
