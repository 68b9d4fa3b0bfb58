"""The verdict of a study's section of docs/results.md, in words: each paired comparison read as a sentence.

A helper of experiments/studies/report.py (not a command). A comparison is a dict of experiments/studies/paired.py's `compare`
with the arms' labels: its per-seed differences, mean, t interval over the seeds (None with one
seed), the smallest detectable difference, the standard error over the problems and the counts of
seeds higher / tied / lower. Numbers are percentage points of mean accuracy, one decimal.
"""
import statistics

from paired import POWER
from study import ARMS

TRAIN_WIDTH = 4  # the width every arm was trained at (experiments/studies/reproduce.sh, experiments/studies/headroom.sh)


def pts(values):
    """Shares as percentage points."""
    return [100 * v for v in values]


def signed(x):
    """A signed number of points to one decimal, where a tiny negative rounds to +0.0, not -0.0."""
    text = f"{x:+.1f}"
    return "+0.0" if text == "-0.0" else text


def read_interval(c):
    """A comparison's mean in percentage points, its 95% interval as words, and where the interval
    lies: 1 above 0, -1 below, 0 across it or none (one seed)."""
    d = 100 * c["mean"]
    if c["interval"] is None:
        return d, "no interval (one seed)", 0
    lo, hi = pts(c["interval"])
    return d, f"95% interval over seeds {signed(lo)} to {signed(hi)}", 1 if lo > 0 else -1 if hi < 0 else 0


def seed_count(c):
    """Higher / tied / lower per seed, in words."""
    if len(c["seeds"]) == 1:
        side = "higher" if c["wins"] else "lower" if c["losses"] else "the same"
        return f"in its one seed, {c['arms'][0]} scored {side}"
    return (f"over the {len(c['seeds'])} seeds, {c['arms'][0]} scored higher in {c['wins']}, tied in "
            f"{c['ties']} and lower in {c['losses']}")


def design(c):
    """The smallest difference the comparison could have detected, in words (none with one seed)."""
    if c["detectable"] is None:
        return ""
    return (f"; with {len(c['seeds'])} seeds and this spread of the per-seed differences, only a true difference "
            f"of at least {100 * c['detectable']:.1f} points is detected with {POWER:.0%} power")


def verdict_line(c):
    """Bridge against another arm at one width, in words."""
    bridge, other = c["arms"]
    d, interval, side = read_interval(c)
    sds = ("" if c["sd"] is None else f"; the seed-to-seed std is {100 * statistics.stdev(c['means_a']):.1f} "
           f"({bridge}) and {100 * statistics.stdev(c['means_b']):.1f} ({other}) points")
    head = {1: f"{bridge} beat {other} by {d:.1f} points ({interval})",
            -1: f"{bridge} lost to {other} by {-d:.1f} points ({interval})",
            0: f"{bridge} and {other} are not distinguishable: {signed(d)} points, {interval}"
               + (", which contains 0" if c["interval"] is not None else "")}[side]
    tail = (f"; {seed_count(c)}{design(c)}. The interval holds these problems fixed; over the problems, "
            f"the difference has a standard error of {100 * c['se_problems']:.1f} points.")
    if other == ARMS["rlvr"]:  # the confound the reading guide above explains
        tail += " (RLVR only gets no warm-up: this gap is warm-up plus blocks, not the siblings alone.)"
    return head + sds + tail


def sibling_line(c):
    """The same Bridge weights at width w against width 1, in words."""
    d, interval, side = read_interval(c)
    w = c["width"]
    what = {1: f"the siblings help: width {w} scored {d:.1f} points above width 1 with the same weights",
            -1: f"the siblings hurt: width {w} scored {-d:.1f} points below width 1 with the same weights",
            0: (f"the siblings add nothing measurable: the same Bridge weights score {signed(d)} points at "
                f"width {w} against width 1, where there is no sibling to attend to")}[side]
    return f"Within Bridge, {what} ({interval}; {seed_count(c)}{design(c)})."


def net_sibling_line(c):
    """Bridge's width effect against P-Match's (the shared evaluation seeds' own), in words."""
    d, interval, side = read_interval(c)
    w = c["width"]
    what = {1: "the siblings help", -1: "the siblings hurt", 0: "the siblings add nothing measurable"}[side]
    return (f"Net of what the shared evaluation seeds do to width {w} against width 1 on their own (P-Match's "
            f"width {w} minus width 1, a block with no path between rows), {what}: {signed(d)} points ({interval}; "
            f"{seed_count(c)}{design(c)}).")


def attribution_line(comps):
    """Whether Bridge's lead over P-Match can be credited to the siblings: [] or one sentence.

    Said only when Bridge leads P-Match at the training width while the same Bridge weights score
    no measurably different at that width than at width 1: then the lead is also there, in part or
    whole, where no row has a sibling to read."""
    find = {(tuple(c["arms"]), c["width"]): c for c in comps}
    lead = find.get((("Bridge", ARMS["pmatch"]), TRAIN_WIDTH))
    alone = find.get((("Bridge", ARMS["pmatch"]), 1))
    within = find.get((("Bridge at width " + str(TRAIN_WIDTH), "Bridge at width 1"), TRAIN_WIDTH))
    if not (lead and alone and within) or read_interval(lead)[2] != 1 or read_interval(within)[2] != 0:
        return []
    d, interval, _ = read_interval(alone)
    return [f"So Bridge's lead over P-Match cannot be credited to reading the siblings: at width 1, "
            f"where no row has one, Bridge's weights score {signed(d)} points against P-Match's ({interval})."]
