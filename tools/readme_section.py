"""A generated section of README.md: the text between two marker lines, written or checked.

Not a command: report.py, siblings_report.py, agreement.py and speed_report.py import it (found
next to them). Each generator computes its section from committed files; this puts it between its
markers, or with check=True only says whether the README already holds exactly that.
"""
import sys
from pathlib import Path


def splice(readme, text, begin, end):
    """README text with the part from `begin` to `end` (markers included) replaced by `text`."""
    if begin not in readme or end not in readme:
        raise ValueError(f"README.md has no markers {begin!r} ... {end!r}")
    head, rest = readme.split(begin, 1)
    return head + text + rest.split(end, 1)[1]


def update(path, text, begin, end, *, check, what, command):
    """Write `text` into the README at `path` between the markers, or (check) compare; exit code."""
    readme = Path(path).read_text()
    new = splice(readme, text, begin, end)
    if check:
        if new != readme:
            print(f"{path}: the {what} is stale; run {command}", file=sys.stderr)
            return 1
        print(f"{path}: the {what} matches the files", file=sys.stderr)
        return 0
    Path(path).write_text(new)
    print(f"wrote the {what} of {path}", file=sys.stderr)
    return 0
