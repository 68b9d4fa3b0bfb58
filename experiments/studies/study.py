"""The study's result files: which exist, reading them, checking they share one protocol, and the
per-problem numbers every table of experiments/studies/report.py is computed from.

    runs = load()                        # {"base": run, "default": run or None, "arms": {arm: {seed: run}}}
    per_problem(runs["arms"]["bridge"][0], width=4)       # mean accuracy of each held-out problem

A run is one evaluate.py result file. A study's results directory holds base.json (the base
model), seed{S}_{arm}.json for arm in rlvr, pmatch, bridge (one per trained arm and seed) and, in
the first study, default_bridge.json (the committed default Bridge). Two studies (STUDIES):
experiments/results/repro/ (experiments/studies/reproduce.sh, the saturated first study) and experiments/results/headroom/
(experiments/studies/headroom.sh, a task with headroom).
"""
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the top-level modules (metrics, evaluate), wherever this is run from

from bridgekit.result_files import read_result  # noqa: E402
from bridgekit.metrics import g_pass_at_k, mean_accuracy  # noqa: E402



@dataclass(frozen=True)
class Study:
    """Where one study's files are, and the script that makes them."""
    name: str
    res: Path       # evaluate.py files, walltime.jsonl, seed{S}_{arm}.log.jsonl, the runs' records seed{S}/
    script: str     # the stages that write them

    def log(self, seed, arm):
        """The GRPO log of one arm and seed: the copy beside its results, else its run's record."""
        copy = self.res / f"seed{seed}_{arm}.log.jsonl"
        return copy if copy.is_file() else self.res / f"seed{seed}" / f"grpo_{arm}" / "log.jsonl"


STUDIES = {
    "repro": Study("repro", ROOT / "experiments" / "results" / "repro", "experiments/studies/reproduce.sh"),
    "headroom": Study("headroom", ROOT / "experiments" / "results" / "headroom", "experiments/studies/headroom.sh"),
}
RES = STUDIES["repro"].res


def study_of(res):
    """The Study whose results live in `res` (a path); an unknown directory is a study of its own,
    made by the script of the study it is named after (a copy of experiments/results/headroom: experiments/studies/headroom.sh)."""
    for study in STUDIES.values():
        if Path(res).resolve() == study.res.resolve():
            return study
    named = STUDIES.get(Path(res).name)
    return Study(Path(res).name, Path(res), named.script if named else "experiments/studies/reproduce.sh")
ARMS = {"rlvr": "RLVR only", "pmatch": "P-Match", "bridge": "Bridge"}
# protocol fields that must agree between every file compared (what was asked, not who answered)
SAME = ("task", "knobs", "split", "problems", "seeds", "widths", "n", "shots", "system",
        "temperature", "top_p", "max_new_tokens")


def load(res=RES):
    """{"base": run, "default": run or None, "arms": {arm: {seed: run}}}; one-line errors if unusable."""
    base = res / "base.json"
    if not base.is_file():
        raise FileNotFoundError(f"{base}: no base-model result yet (bash {study_of(res).script} base)")
    runs = {"base": read_result(base), "arms": {arm: {} for arm in ARMS}, "default": None}
    for path in sorted(res.glob("seed*_*.json")):
        seed, arm = path.stem[len("seed"):].split("_", 1)
        if arm not in ARMS or not seed.isdigit():
            raise ValueError(f"{path}: expected seed<S>_<{'|'.join(ARMS)}>.json")
        runs["arms"][arm][int(seed)] = read_result(path)
    if (res / "default_bridge.json").is_file():
        runs["default"] = read_result(res / "default_bridge.json")
    ref = runs["base"]
    for run in all_runs(runs):
        for key in SAME:
            if run["protocol"][key] != ref["protocol"][key]:
                raise ValueError(f"result files disagree on {key}: {run['protocol'][key]!r} "
                                 f"vs the base model's {ref['protocol'][key]!r}")
        if run["problems"] != ref["problems"]:
            raise ValueError("result files were made on different problems")
    return runs


def all_runs(runs):
    yield runs["base"]
    for seeds in runs["arms"].values():
        yield from seeds.values()
    if runs["default"] is not None:
        yield runs["default"]


def counts(run, width):
    """(n, [correct answers per problem]) at this width."""
    for r in run["results"]:
        if r["width"] == width:
            return r["n"], [p["correct"] for p in r["per_problem"]]
    raise ValueError(f"no width {width} in a result file")


def per_problem(run, width, metric="accuracy", tau=None):
    """The metric per problem, from the stored counts (metrics.py's functions)."""
    n, c = counts(run, width)
    if metric == "accuracy":
        return [mean_accuracy(n, x) for x in c]
    return [g_pass_at_k(n, x, n, Fraction(tau)) for x in c]


def per_seed(seed_runs, width, metric="accuracy", tau=None):
    """{seed: the metric per problem} of one arm's runs at this width (experiments/studies/paired.py's input)."""
    return {s: per_problem(run, width, metric, tau) for s, run in seed_runs.items()}


def has_result(res, stage):
    """Whether a results file the stage leads to exists (see result_of)."""
    return any((res / f"{name}.json").is_file() for name in result_of(stage))


def result_of(stage):
    """The results files a study's stage leads to ("eval/seed1_rlvr", "seed1/grpo_rlvr",
    "seed1/sft_bridge"); the report lists a stage only once that file exists, so a half-done study
    gives a stable section."""
    if stage.count("/") == 2 and not stage.startswith("eval/"):  # "headroom/seed0/grpo_rlvr": a study's own runs dir
        stage = stage.split("/", 1)[1]
    head, tail = stage.split("/", 1)
    if head == "eval":
        return [tail]
    if tail == "grpo_bridge_new":
        return ["default_bridge"]
    if tail.startswith("grpo_"):
        return [f"{head}_{tail[len('grpo_'):]}"]
    # a warm-up serves its own arm (and seed 0's Bridge warm-up the default Bridge too)
    arm = tail[len("sft_"):]
    return [f"{head}_{arm}"] + (["default_bridge"] if stage == "seed0/sft_bridge" else [])
