"""The credit study's evaluate.py files read, and the cells of its tables: one width and path's entry,
its scores in sets of W, and the numbers as the section prints them. credit_report.py imports these,
and talk_report.py and headline.py reach them through it (credit_report.read, .entry, .scores, ...).
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the package bridgekit/, wherever this is run from

from bridgekit.metrics import answer_scores, set_summary  # noqa: E402


def read(path):
    return json.loads(Path(path).read_text()) if Path(path).is_file() else None


def entry(result, width, path="siblings"):
    """The results entry of one width and path (None if the file has none)."""
    return next((r for r in result["results"] if r["width"] == width and r.get("path", "siblings") == path), None)


def scores(result, width, size, path="siblings"):
    """(per-answer score, all-distinct share) {"mean", "se"} of the width-`width` run in sets of `size`."""
    e = entry(result, width, path)
    s = set_summary(e["per_problem"], e["n"], size)
    return s["set_score"], s["all_distinct"]


def fmt(v, se=True):
    return f"{v['mean']:.3f} ± {v['se']:.3f}" if se and v["se"] is not None else f"{v['mean']:.3f}"


def signed(v):
    return f"{v['mean']:+.3f} ± {v['se']:.3f}"


def rates(within, across):
    """Collision shares (None: no pair of valid answers) as 'within / across'."""
    return " / ".join("–" if x is None else f"{x:.3f}" for x in (within, across))


def set_values(result, width, path="siblings", groups=None):
    """Per question, the mean score of the answers of the sets `groups` (default all) of one entry."""
    e = entry(result, width, path)
    if e is None:
        return None
    out = []
    for p in e["per_problem"]:
        s = answer_scores(p, width)
        sets = [s[i:i + width] for i in range(0, len(s), width)]
        sets = sets if groups is None else [sets[g] for g in groups]
        out.append(sum(map(sum, sets)) / (len(sets) * width))
    return out


def crossed_cell(result, width, crossed_score):
    """The crossed path's score, and Bridge's own on the same sets: the crossed run keeps every other
    set (the one it reads is the set in between), so the paired difference compares those sets."""
    own = set_values(result, width, groups=list(range(0, entry(result, width)["groups"], 2)))
    return f"{crossed_score} (Bridge {sum(own) / len(own):.3f} on those sets)"
