"""
What every command line here shares: argparse whose errors are one line, the way a command turns
a bad input into one line and a non-zero exit, progress lines with an ETA, the per-step training
log, and Ctrl-C that finishes the current step.

    from cli import Parser, run
    p = Parser(prog="x.py", description="...")
    ...
    if __name__ == "__main__":
        run(main)            # ValueError / FileNotFoundError -> "error: ..." and exit code 1
"""
import argparse
import json
import sys
import time
from pathlib import Path


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit code 2, without the usage block."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def run(main):
    """Call main(); a ValueError or FileNotFoundError (bad input) ends as one line, exit code 1."""
    try:
        return main()
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


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
