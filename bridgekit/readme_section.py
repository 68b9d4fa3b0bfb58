"""A generated section of a Markdown file: the text between two marker lines, written or checked.

Not a command: the report writers of experiments/studies/, experiments/bench/speed_report.py and
tools/agreement.py import it. Each generator computes its section from
committed files; this puts it between its markers in its document (docs/results.md, docs/speed.md,
or README.md for the headline table), or with check=True only says whether the document already
holds exactly that. `--doc` names another document (`--readme`, its earlier name, still works).
The command line the generators share (--check, --print, --doc), their last step (write_or_check)
and the redrawing of a section's figure are here too.
"""
import os
import sys
from pathlib import Path

from bridgekit.cli import check_out_file, write_text

ROOT = Path(__file__).resolve().parents[1]

DOCS = ROOT / "docs"


def add_doc_argument(parser, default):
    """`--doc PATH` (alias `--readme`): the document that holds the section, `default` unless named."""
    shown = Path(default).relative_to(ROOT) if Path(default).is_relative_to(ROOT) else default
    parser.add_argument("--doc", "--readme", dest="doc", default=str(default),
                        help=f"the Markdown file that holds the section (default {shown})")


def add_arguments(parser, default, what="section"):
    """--check, --print and --doc (default `default`): the flags every generated section shares."""
    parser.add_argument("--check", action="store_true", help="exit 1 if the document differs from the files")
    parser.add_argument("--print", action="store_true", help=f"print the {what} instead of writing the document")
    add_doc_argument(parser, default)


def check_readme(path, *, write, flag="--doc"):
    """Raise ValueError (one line) unless the document at `path` is a file to read (and, with
    `write`, to write back), before the section is computed."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give the Markdown file")
    if not path.is_file():
        raise ValueError(f"{flag} {path}: no such file")
    if write:
        check_out_file(path, flag)


def link(target, doc):
    """`target` (a file) as a Markdown link from the document `doc`: relative to the document's folder
    when both are inside the repository, else the absolute path."""
    target, doc = Path(target).resolve(), Path(doc).resolve()
    if target.is_relative_to(ROOT) and doc.is_relative_to(ROOT):
        return Path(os.path.relpath(target, doc.parent)).as_posix()
    return str(target)


def splice(readme, text, begin, end):
    """Document text with the part from `begin` to `end` (markers included) replaced by `text`."""
    if begin not in readme or end not in readme:
        raise ValueError(f"the document has no markers {begin!r} ... {end!r}")
    head, rest = readme.split(begin, 1)
    return head + text + rest.split(end, 1)[1]


def update(path, text, begin, end, *, check, what, command):
    """Write `text` into the document at `path` between the markers, or (check) compare; exit code."""
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


def write_or_check(args, compute, begin, end, *, what, command):
    """A generator's last step, from its --check, --print and --doc: the document checked first (unless
    --print), then the section compute() returns printed, compared with the document or written
    between its markers; the exit code."""
    if not args.print:
        check_readme(args.doc, write=not args.check)
    text = compute()
    if args.print:
        print(text)
        return 0
    return update(args.doc, text, begin, end, check=args.check, what=what, command=command)


def redraw(draw, out):
    """Redraw a section's figure, draw(out), or say in one line that matplotlib is not installed."""
    try:
        draw(out)
    except ImportError:
        print("matplotlib is not installed: the figure was not redrawn (pip install matplotlib)", file=sys.stderr)
        return
    print(f"wrote {out}", file=sys.stderr)
