"""
What every command line here shares: argparse whose errors are one line, the way a command turns
a bad input into one line and a non-zero exit, progress lines with an ETA, the per-step training
log, and Ctrl-C that finishes the current step.

    from cli import Parser, run
    p = Parser(prog="x.py", description="...")
    ...
    if __name__ == "__main__":
        run(main)            # ValueError / OSError -> "error: ..." and exit code 1
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit code 2, without the usage block."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def run(main):
    """Call main(); a ValueError or an OSError (bad input: a missing file, a directory where a file
    goes, no permission) ends as one line, exit code 1."""
    try:
        return main()
    except (ValueError, OSError) as e:
        sys.exit(f"error: {e}")


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


def check_figure_out(path, flag="--out"):
    """check_out_file for a figure, and matplotlib installed: the name must end in a suffix matplotlib
    writes as named (it would append .png to any other and write a file the command did not name)."""
    import importlib.util
    if Path(path).suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"{flag} {path}: a figure's name ends in {', '.join(FIGURE_SUFFIXES)}")
    check_out_file(path, flag)
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
            keep = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] < first_step]
            self.path.write_text("".join(line + "\n" for line in keep))

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
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step and saving (Ctrl-C again to stop now)",
              file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        import signal
        signal.signal(signal.SIGINT, self.previous)
