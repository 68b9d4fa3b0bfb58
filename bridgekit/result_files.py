"""A result file of evaluate.py: its summaries, reading one back (checked), and the plot.

    {"format", "protocol": {...}, "problems": [{"question", "answer"}], "timing": {...},
     "results": [{"width", "groups", "n", "summary": {metric: {"mean", "se"}},
                  "per_problem": [{"gold", "correct", "answers", "lengths", "truncated", "answer_line"}]}]}

Per problem and width the file keeps the number right and the extracted answers (a set-level task:
each answer's number, "choices"); every summary is a metric of metrics.py computed from those
records (summary_of), and read_result refuses a file whose stored summaries its records do not
give. The report writers (experiments/studies/, experiments/bench/, tools/) read result files through this module.
"""
import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

from bridgekit import cli
from bridgekit.metrics import mean_se, set_summary, summarize

FORMAT = "bridge-ref-eval/1"  # marks a result file, so --plot and the reports can refuse anything else


def summary_of(per_problem, width, args, n=None):
    """{metric: {"mean", "se"}} of one width. A set-level task (records with "choices") is scored by
    groups: at width W > 1 its own groups of W; at width 1 the n independent answers pooled into
    pseudo-groups of --set-sizes (default: every other width of the sweep), the rows the
    independent ceiling is about."""
    n = n or args.n  # (the crossed path scores half of the n answers)
    if "choices" not in per_problem[0]:
        return summarize(per_problem, n, [k for k in args.ks if k <= n], args.taus)
    pooled = getattr(args, "set_sizes", None) or [w for w in args.widths if w > 1] or [n]
    sizes = [width] if width > 1 else pooled
    out = {}
    for size in sizes:
        for name, v in set_summary(per_problem, n, size).items():
            out[name if name == "valid" else f"{name}@{size}"] = v
    for name in ("answer_line", "truncated"):
        out[name] = mean_se([p[name] / n for p in per_problem])
    out["length"] = mean_se([sum(p["lengths"]) / n for p in per_problem])
    return out


# -----------------------------------------------------------------------------
# reading a result file back

def read_result(path):
    """A result file written by evaluate.py, its summaries checked; anything else is a one-line ValueError."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError):
        raise ValueError(f"{path}: not an evaluate.py result (not a JSON file)") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not an evaluate.py result (no format {FORMAT!r})")
    check_summaries(data, path)
    return data


def method_results(result):
    """The entries of a result file sampled as the method samples (the siblings path): the width
    sweep. Entries of --paths self / crossed are comparisons, not points of the sweep."""
    return [r for r in result["results"] if r.get("path", "siblings") == "siblings"]


def check_summaries(data, path):
    """Every stored summary must be the one its per-problem records give (summary_of, the protocol's
    n, ks and taus): what a report shows from either then agrees. Else a ValueError naming the file,
    the width and the field."""
    for r in data["results"]:
        stored = r.get("summary")
        if stored is None:
            continue
        proto = data["protocol"]
        # a set-level task's width-1 summary is pooled into the group sizes its keys name (--set-sizes)
        sizes = sorted({int(k.split("@")[1]) for k in stored if k.startswith("set_score@")})
        args = SimpleNamespace(n=r["n"], ks=proto["ks"], taus=[Fraction(t) for t in proto["taus"]],
                               widths=proto["widths"], set_sizes=sizes or None)
        where = f"{path}: width {r['width']}: summary"
        try:
            again = summary_of(r["per_problem"], r["width"], args)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            raise ValueError(f"{where} cannot be recomputed from its per-problem records ({e!r})") from None
        for name in sorted(set(stored) | set(again)):
            if name not in again or name not in stored:
                raise ValueError(f"{where} {'has' if name in stored else 'lacks'} {name!r}, which its "
                                 "per-problem records " + ("do not give" if name in stored else "give"))
            for field in ("mean", "se"):
                x, y = stored[name].get(field), again[name][field]
                same = x == y or (None not in (x, y) and math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-15))
                if not same:
                    raise ValueError(f"{where}.{name}.{field} is {x}, but its per-problem records give {y}")


def label_of(protocol):
    """The checkpoint's name ('+ off' when loaded but switched off), else the model's, else 'base'."""
    if protocol["bridge"]:
        return Path(protocol["bridge"]).stem + ("" if protocol["bridge_on"] else " off")
    return Path(protocol["model"]).name if protocol["model"] else "base"


# -----------------------------------------------------------------------------
# the plot (evaluate.py --plot)

def plot(paths, out, labels=None, overwrite=False):
    """Two panels: mean accuracy against width, and G-Pass@n_tau against tau (at the widest width)."""
    cli.check_figure_out(out, overwrite)
    runs = [read_result(p) for p in paths]
    labels = labels or [label_of(run["protocol"]) for run in runs]
    if len(labels) != len(runs):
        raise ValueError(f"--labels: {len(labels)} labels for {len(runs)} files")
    for path, run in zip(paths, runs):
        if any("accuracy" not in r["summary"] for r in run["results"]):
            raise ValueError(f"--plot {path}: a set-level task's results (no accuracy to draw); "
                             "experiments/studies/siblings_report.py draws those")
    try:
        import matplotlib
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for run, label in zip(runs, labels):
        res, n = method_results(run), run["protocol"]["n"]
        acc = [r["summary"]["accuracy"] for r in res]
        left.errorbar([r["width"] for r in res], [a["mean"] for a in acc],
                      yerr=[a["se"] or 0 for a in acc], marker="o", capsize=3, label=label)
        # choice: G-Pass at the widest width, where k = n reads as "one Bridge set per problem"
        wide = max(res, key=lambda r: r["width"])
        taus = run["protocol"]["taus"]
        g = [wide["summary"][f"G-Pass@{n}_{t}"] for t in taus]
        right.errorbar([float(Fraction(t)) for t in taus], [x["mean"] for x in g],
                       yerr=[x["se"] or 0 for x in g], marker="o", capsize=3,
                       label=f"{label} (width {wide['width']}, n={n})")
    widths = sorted({r["width"] for run in runs for r in method_results(run)})
    left.set_xscale("log", base=2)
    left.set_xticks(widths, [str(w) for w in widths])
    left.set(xlabel="width", ylabel="mean accuracy", title="accuracy against width")
    right.set(xlabel="tau", ylabel="G-Pass@n_tau", title="G-Pass@n_tau (± se over problems)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    cli.save_figure(fig, out, dpi=120)
    print(f"wrote {out}", file=sys.stderr)

# -----------------------------------------------------------------------------
# what evaluate.py prints and records beside the numbers: a width's table, the machine, the commit

LABELS = {"accuracy": "mean accuracy", "all_correct": "all correct", "answer_line": "has answer line",
          "length": "answer length (tokens)", "truncated": "truncated"}


def format_table(result, timing, path="siblings"):
    """One width's summary as a markdown table (mean and standard error over problems)."""
    width, n, summary = result["width"], result["n"], result["summary"]
    lines = [f"\nwidth {width}" + ("" if path == "siblings" else f", path {path}") + f": n = {n} answers per "
             f"problem ({n // width} x {width}), {len(result['per_problem'])} problems",
             "| metric | mean | ± se |", "|---|---|---|"]
    for name, v in summary.items():
        digits = 1 if name == "length" else 3
        se = "" if v["se"] is None else f"{v['se']:.{digits}f}"
        lines.append(f"| {LABELS.get(name, name)} | {v['mean']:.{digits}f} | {se} |")
    lines.append(f"| tokens/s | {timing['tokens_per_s']:.1f} | |")
    return "\n".join(lines)


def machine(device):
    """The hardware in words: the GPU's name, or the CPU model and its core count."""
    import os
    import platform
    import torch
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def git_commit():
    """HEAD of the repository this file is in, with '-dirty' if a tracked file changed; None outside git."""
    here = Path(__file__).resolve().parent  # inside the repository
    try:
        git = lambda *a: subprocess.run(["git", *a], cwd=here, capture_output=True, text=True,
                                        check=True).stdout.strip()
        head = git("rev-parse", "HEAD")
        # Untracked files (result JSONs, figures) do not make the tree dirty
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")
