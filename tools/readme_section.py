"""A generated section of README.md: the text between two marker lines, written or checked.

Not a command: report.py, siblings_report.py, agreement.py and speed_report.py import it (found
next to them). Each generator computes its section from committed files; this puts it between its
markers, or with check=True only says whether the README already holds exactly that.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # cli, at the repository root

from cli import check_out_file, write_text  # noqa: E402


def check_readme(path, *, write, flag="--readme"):
    """Raise ValueError (one line) unless the README at `path` is a file to read (and, with `write`, to
    write back), before the section is computed."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give the README file")
    if not path.is_file():
        raise ValueError(f"{flag} {path}: no such file")
    if write:
        check_out_file(path, flag)


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
    write_text(path, new)  # whole, or the README as it was
    print(f"wrote the {what} of {path}", file=sys.stderr)
    return 0
