"""experiments/studies/report.py: the study sections of docs/results.md come from the result files, exactly and reproducibly."""
import json
import random
import statistics
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from evaluate import FORMAT
from bridgekit.metrics import g_pass_at_k, mean_accuracy

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "experiments" / "studies"))  # the tools import each other from their folder
import pilot  # noqa: E402
import report  # noqa: E402
import verdict  # noqa: E402
PROTOCOL = dict(task="word", knobs={"hi": 9}, split="test", problems=12, seeds={"problems": 0, "sampling": 0},
                widths=[1, 2, 4, 8], n=8, shots=2, system="s", temperature=1.0, top_p=1.0, max_new_tokens=64)


def result(seed, skill, **protocol):
    """A minimal evaluate.py file: per-problem correct counts drawn around `skill`."""
    rng = random.Random(seed)
    p = {**PROTOCOL, **protocol}
    return dict(format=FORMAT, protocol=p, problems=[{"question": f"q{i}", "answer": i} for i in range(p["problems"])],
                results=[dict(width=w, n=p["n"], per_problem=[{"correct": sum(rng.random() < skill for _ in range(p["n"]))}
                                                              for _ in range(p["problems"])])
                         for w in p["widths"]], timing={})


def write(res, name, data):
    (res / f"{name}.json").write_text(json.dumps(data))


@pytest.fixture
def study(tmp_path):
    res = tmp_path / "repro"
    res.mkdir()
    write(res, "base", result(0, 0.2))
    for s in range(3):
        for arm, skill in (("rlvr", 0.5), ("pmatch", 0.6), ("bridge", 0.65)):
            write(res, f"seed{s}_{arm}", result(100 * s + len(arm), skill))
    return res


def test_numbers_in_the_section_are_the_metric_functions_of_the_stored_counts(study):
    runs = report.load(study)
    text = report.section(runs, study)
    bridge = [json.loads((study / f"seed{s}_bridge.json").read_text()) for s in range(3)]
    for w_index, w in enumerate(PROTOCOL["widths"]):
        accs = [statistics.fmean(mean_accuracy(8, p["correct"]) for p in run["results"][w_index]["per_problem"])
                for run in bridge]
        cell = f"{100 * statistics.fmean(accs):.1f} ± {100 * statistics.stdev(accs):.1f}"
        assert cell in text.split("| Bridge | 3 |")[1].splitlines()[0]
        g = [statistics.fmean(g_pass_at_k(8, p["correct"], 8, Fraction(1, 2)) for p in run["results"][w_index]["per_problem"])
             for run in bridge]
        if w in (1, 4, 8):
            row = next(line for line in text.splitlines() if line.startswith(f"| Bridge | {w} |"))
            assert f"{100 * statistics.fmean(g):.1f} ± {100 * statistics.stdev(g):.1f}" == row.split(" | ")[3]


def test_the_section_is_the_same_every_time_and_check_finds_a_stale_readme(study, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{report.BEGIN}\nold\n{report.END}\n\ntail\n")
    args = ["--results", str(study), "--doc", str(readme)]
    assert report.main(args + ["--check"]) == 1
    assert report.main(args) == 0
    first = readme.read_text()
    assert first.startswith("# x\n\n" + report.BEGIN) and first.endswith(report.END + "\n\ntail\n")
    assert report.main(args + ["--check"]) == 0
    assert report.main(args) == 0 and readme.read_text() == first
    write(study, "seed0_bridge", result(7, 0.9))  # new results: the README is stale again
    assert report.main(args + ["--check"]) == 1


def test_files_from_different_protocols_are_refused(study):
    write(study, "seed1_rlvr", result(1, 0.5, temperature=0.7))
    with pytest.raises(ValueError, match="temperature"):
        report.load(study)


def test_verdict_says_when_bridge_wins_loses_or_ties(study):
    text = report.section(report.load(study), study)
    verdict = text.split("**Verdict**")[1]
    assert "RLVR only" in verdict and "P-Match" in verdict
    assert any(s in verdict for s in ("beat", "lost to", "not distinguishable"))
    assert "no warm-up" in verdict  # the gap over RLVR only is never read as the siblings' alone


def test_a_lead_over_pmatch_already_there_at_width_1_is_not_credited_to_the_siblings(study):
    """Every width of a run holds the same counts, and Bridge = P-Match + 2 right answers per problem:
    Bridge leads at width 4 and at width 1, and its width 4 equals its width 1, so the verdict says
    the lead cannot be credited to the siblings. When width 4 then gains, it no longer says so."""
    for s in range(3):
        p = json.loads((study / f"seed{s}_pmatch.json").read_text())
        for r in p["results"]:
            r["per_problem"] = [dict(q) for q in p["results"][0]["per_problem"]]
        write(study, f"seed{s}_pmatch", p)
        for r in p["results"]:
            r["per_problem"] = [{"correct": min(q["correct"] + 2, 8)} for q in r["per_problem"]]
        write(study, f"seed{s}_bridge", p)
    verdict = report.section(report.load(study), study).split("**Verdict**")[1]
    assert "Bridge beat P-Match by" in verdict and "the siblings add nothing measurable" in verdict
    assert "cannot be credited to reading the siblings: at width 1, where no row has one, Bridge's weights score +" in verdict
    assert "over the problems, the difference has a standard error of" in verdict
    for s in range(3):  # now the siblings help: width 4 gets 2 more right answers per problem
        b = json.loads((study / f"seed{s}_bridge.json").read_text())
        (r4,) = [r for r in b["results"] if r["width"] == 4]
        r4["per_problem"] = [{"correct": min(q["correct"] + 2, 8)} for q in r4["per_problem"]]
        write(study, f"seed{s}_bridge", b)
    verdict = report.section(report.load(study), study).split("**Verdict**")[1]
    assert "the siblings help" in verdict and "cannot be credited" not in verdict


def test_read_interval_sides():
    assert verdict.read_interval(dict(mean=0.03, interval=[0.01, 0.05]))[2] == 1
    assert verdict.read_interval(dict(mean=-0.03, interval=[-0.05, -0.01]))[2] == -1
    assert verdict.read_interval(dict(mean=0.01, interval=[-0.01, 0.03]))[2] == 0
    assert verdict.read_interval(dict(mean=0.01, interval=None)) == (1.0, "no interval (one seed)", 0)


def test_the_committed_readme_is_what_the_committed_results_give():
    """The bar: docs/results.md's first study is reproduced exactly by python experiments/studies/report.py --check."""
    if not (report.RES / "base.json").is_file():
        pytest.skip("no committed results yet")
    assert report.main(["--check"]) == 0


def test_every_comparison_is_paired_by_seed_and_a_tie_is_a_tie(study):
    """Seed 1 of Bridge at width 4 is made identical to seed 1 of P-Match: that pair is a tie, in
    the table and in the verdict, and the interval is the t interval over the per-seed differences."""
    p = json.loads((study / "seed1_pmatch.json").read_text())
    write(study, "seed1_bridge", p)
    runs = report.load(study)
    c = next(c for c in report.comparisons(runs) if c["arms"] == ["Bridge", "P-Match"] and c["width"] == 4)
    assert c["seeds"] == [0, 1, 2] and c["differences"][1] == 0 and c["ties"] == 1
    assert c["wins"] + c["losses"] == 2
    half = 4.302653 * statistics.stdev(c["differences"]) / 3 ** 0.5
    assert c["interval"] == pytest.approx([c["mean"] - half, c["mean"] + half], abs=1e-6)
    text = report.section(runs, study)
    row = next(line for line in text.splitlines() if line.startswith("| Bridge - P-Match | 4 |"))
    assert row.endswith(f"| {c['wins']} / 1 / {c['losses']} |") and "1: +0.0" in row
    assert f"tied in 1 and lower in {c['losses']}" in text.split("**Verdict**")[1]
    assert "detected with 80% power" in text.split("**Verdict**")[1]


def test_the_width_effect_is_netted_of_the_shared_seeds_by_p_match(study):
    """Shared evaluation seeds move width w against width 1 in every arm alike: P-Match's runs made
    identical to Bridge's give a difference-in-differences of exactly 0, and in general it is Bridge's
    (width w - width 1) minus P-Match's, per seed."""
    runs = report.load(study)
    means = {arm: {s: {w: statistics.fmean(report.per_problem(r, w)) for w in (1, 4)} for s, r in seeds.items()}
             for arm, seeds in runs["arms"].items() if seeds}
    c = next(c for c in report.comparisons(runs) if c["arms"][1] == "P-Match's width effect" and c["width"] == 4)
    want = [(means["bridge"][s][4] - means["bridge"][s][1]) - (means["pmatch"][s][4] - means["pmatch"][s][1])
            for s in c["seeds"]]
    assert c["differences"] == pytest.approx(want, abs=1e-12)
    for s in (0, 1, 2):
        write(study, f"seed{s}_pmatch", json.loads((study / f"seed{s}_bridge.json").read_text()))
    runs = report.load(study)
    c = next(c for c in report.comparisons(runs) if c["arms"][1] == "P-Match's width effect" and c["width"] == 4)
    assert c["differences"] == [0, 0, 0] and c["ties"] == 3
    assert "Net of what the shared evaluation seeds do to width 4" in report.section(runs, study).split("**Verdict**")[1]


def test_one_seed_gives_no_interval_and_no_crash(study):
    for s in (1, 2):
        for arm in ("rlvr", "pmatch", "bridge"):
            (study / f"seed{s}_{arm}.json").unlink()
    text = report.section(report.load(study), study)
    assert "| none (1 seed) | none (1 seed) |" in text
    assert "pairs only 1 training seed so far: no interval over seeds exists" in text
    assert "in its one seed, Bridge scored higher" in text and "over the 1 seeds" not in text


def test_json_is_the_comparisons_of_the_section(study, tmp_path):
    out = tmp_path / "cmp.json"
    assert report.main(["--results", str(study), "--print", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["comparisons"] == json.loads(json.dumps(report.comparisons(report.load(study))))
    assert {tuple(c["arms"]) for c in doc["comparisons"]} >= {("Bridge", "RLVR only"), ("Bridge", "P-Match"),
                                                              ("Bridge at width 4", "Bridge at width 1")}
    for c in doc["comparisons"]:
        assert {"width", "metric", "differences", "mean", "interval", "method", "detectable"} <= set(c)


@pytest.mark.parametrize("name", ["repro", "headroom"])
@pytest.mark.parametrize("other", ["pmatch", "rlvr"])
def test_committed_comparisons_at_width_4_recomputed_from_the_raw_files(tmp_path, name, other):
    """Independent of report.py and study.py: per-seed accuracy straight from the per-problem counts,
    then the mean and the t interval over the seeds (t quantile of 2, 3 or 4 degrees of freedom)."""
    res = ROOT / "experiments" / "results" / name
    seeds = [s for s in range(10) if (res / f"seed{s}_bridge.json").is_file() and (res / f"seed{s}_{other}.json").is_file()]
    if not (res / "base.json").is_file() or len(seeds) < 3:
        pytest.skip("fewer than 3 committed seeds of both arms")

    def accuracy(arm, seed):
        run = json.loads((res / f"seed{seed}_{arm}.json").read_text())
        (r,) = [r for r in run["results"] if r["width"] == 4]
        return sum(p["correct"] for p in r["per_problem"]) / (r["n"] * len(r["per_problem"]))

    diffs = [accuracy("bridge", s) - accuracy(other, s) for s in seeds]
    out = tmp_path / "cmp.json"
    assert report.main(["--study", name, "--print", "--json", str(out)]) == 0
    label = {"pmatch": "P-Match", "rlvr": "RLVR only"}[other]
    (c,) = [c for c in json.loads(out.read_text())["comparisons"] if c["arms"] == ["Bridge", label] and c["width"] == 4]
    assert c["seeds"] == seeds and c["differences"] == pytest.approx(diffs, abs=1e-12)
    t975 = {3: 4.302653, 4: 3.182446, 5: 2.776445}[len(seeds)]
    mean, half = statistics.fmean(diffs), t975 * statistics.stdev(diffs) / len(seeds) ** 0.5
    assert c["mean"] == pytest.approx(mean, abs=1e-12)
    assert c["interval"] == pytest.approx([mean - half, mean + half], abs=1e-6)


def test_base_gain_is_over_the_base_mean_of_all_widths_and_few_seeds_are_no_verdict(study):
    runs = report.load(study)
    base = statistics.fmean(statistics.fmean(report.per_problem(runs["base"], w)) for w in PROTOCOL["widths"])
    text = report.section(runs, study)
    assert f"over the base model's {100 * base:.1f}, its mean over all widths" in text
    assert "Bridge at width 4 - Bridge at width 1" in text and "Within Bridge" in text
    assert "not a verdict yet" not in text
    (study / "seed2_rlvr.json").unlink()  # RLVR only now has 2 seeds
    assert "pairs only 2 training seeds so far" in report.section(report.load(study), study)


def test_the_command_runs_from_any_directory_and_bad_input_is_one_line(study, tmp_path):
    cmd = [sys.executable, str(ROOT / "experiments" / "studies" / "report.py")]
    out = subprocess.run(cmd + ["--print", "--results", str(study)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(report.BEGIN) and out.stdout.endswith(report.END + "\n")
    bad = subprocess.run(cmd + ["--results", str(tmp_path / "none")], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'none' / 'base.json'}: no base-model result yet (bash experiments/studies/reproduce.sh base)"]


# --- the second study (experiments/results/headroom): its pilot, and its own section -------------------------

def write_pilot(res, rewards):
    (res / "pilot").mkdir(parents=True, exist_ok=True)
    for (task, hi), r in rewards.items():
        (res / "pilot" / f"{task}_hi{hi}.log.jsonl").write_text("".join(json.dumps(dict(step=i, reward=x)) + "\n"
                                                                       for i, x in enumerate(r)))


def survey_row(task, hi, mixed):
    return dict(task=task, hi=hi, acc=0.1, mixed=mixed, trunc=0.0)


def test_the_screen_needs_held_out_problems_and_mixed_groups():
    survey = [survey_row("word2", 20, 0.02), survey_row("mul2", 49, 0.25), survey_row("mul2", 99, 0.10),
              survey_row("word2", 30, 0.05)]
    # word2 20: too few mixed groups; mul2 49: 156 held-out products, fewer than the protocol's 200
    assert pilot.pilot_screen(survey) == [("mul2", 99), ("word2", 30)]


def test_the_pilot_picks_the_hardest_candidate_inside_the_band(tmp_path):
    write_pilot(tmp_path, {("word2", 20): [0.1] * 20 + [0.6] * 10, ("word2", 30): [0.1] * 20 + [0.35] * 10,
                           ("mul2", 99): [0.1] * 20 + [0.2] * 10})   # 0.2: below the band, not learning
    survey = [survey_row(t, h, 0.5) for t, h in (("word2", 20), ("word2", 30), ("mul2", 99), ("mul2", 49))]
    (tmp_path / "pilot" / "survey.json").write_text(json.dumps(survey))
    runs, got = pilot.pilot(tmp_path)
    assert pilot.pilot_choice(runs) == ("word2", 30) and got == survey
    lines = pilot.pilot_lines(tmp_path)
    assert "| word2 | 30 |" in "\n".join(lines) and "It chose `word2` with numbers up to 30." in lines[-2]
    assert "| mul2 | 49 | 156 | 10.0% | 50% | 0% | not trained | not trained |" in lines
    write_pilot(tmp_path, {(t, h): [0.9] * 30 for t, h in (("word2", 20), ("word2", 30), ("mul2", 99))})
    assert pilot.pilot_choice(pilot.pilot(tmp_path)[0]) is None
    assert "No candidate is inside the band." in pilot.pilot_lines(tmp_path)[-2]


def test_each_study_has_its_own_markers(study, tmp_path):
    headroom = report.STUDIES["headroom"]
    begin, end = report.markers(headroom)
    readme = f"a\n{report.BEGIN}\nfirst\n{report.END}\nb\n{begin}\nold\n{end}\nc\n"
    new = report.splice(readme, f"{begin}\nnew\n{end}", headroom)
    assert new == f"a\n{report.BEGIN}\nfirst\n{report.END}\nb\n{begin}\nnew\n{end}\nc\n"
    with pytest.raises(ValueError, match="no markers .<!-- headroom:begin"):
        report.splice("nothing", "x", headroom)


def test_the_committed_headroom_section_is_what_its_results_give():
    headroom = report.STUDIES["headroom"]
    if not (headroom.res / "pilot" / "survey.json").is_file():
        pytest.skip("the headroom study has no results yet")
    assert report.main(["--study", "headroom", "--check"]) == 0


def test_the_headroom_script_trains_the_task_its_committed_pilot_chose():
    runs, survey = pilot.pilot(report.STUDIES["headroom"].res)
    if not survey or {(t, h) for t, h, _ in runs} != set(pilot.pilot_screen(survey)):
        pytest.skip("the pilot has not finished")
    task, hi = pilot.pilot_choice(runs)
    script = (ROOT / "experiments" / "studies" / "headroom.sh").read_text()
    assert f'HEADROOM_TASK:-{task}}}' in script and f'HEADROOM_HI:-{hi}}}' in script


def test_a_stage_of_a_study_with_its_own_runs_dir_leads_to_its_result():
    import study
    assert study.result_of("headroom/seed0/grpo_rlvr") == study.result_of("seed0/grpo_rlvr") == ["seed0_rlvr"]
    assert study.result_of("headroom/seed1/sft_pmatch") == ["seed1_pmatch"]
    assert study.result_of("eval/seed0_bridge") == ["seed0_bridge"]


def test_the_wall_time_table_sums_sittings_and_shows_a_hand_written_note(study):
    lines = [dict(stage="eval/seed0_rlvr", seconds=600, machine="m"),
             dict(stage="eval/seed0_rlvr", seconds=300, machine="m", note="stopped 2 min while a benchmark ran"),
             dict(stage="eval/seed9_rlvr", seconds=60, machine="m")]  # no result: not listed
    (study / "walltime.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    table = report.walltime_table(study)
    assert "| eval/seed0_rlvr | 15.0 (stopped 2 min while a benchmark ran) | m |" in table
    assert not any("seed9" in line for line in table)


def test_a_later_study_reports_whether_its_task_leaves_rlvr_room(study, tmp_path):
    other = tmp_path / "later"
    other.mkdir()
    for f in study.glob("*.json"):
        (other / f.name).write_text(f.read_text())
    for s in range(3):  # 20 steps; the last 10 average 0.5 + s / 10 -> 0.6 over the seeds
        rewards = [0.1] * 10 + [0.5 + s / 10] * 10
        (other / f"seed{s}_rlvr.log.jsonl").write_text("".join(json.dumps(dict(reward=r)) + "\n" for r in rewards))
    text = "\n".join(report.reward_table(report.load(other), other))
    assert "over its last 10 steps stays below 0.85: it is 0.60." in text
    assert "sized from" not in text


def test_paths_of_the_wrong_kind_are_one_line_before_the_section(study, tmp_path, monkeypatch):
    monkeypatch.setattr(report, "load", lambda res: pytest.fail("read the results first"))
    with pytest.raises(ValueError, match="--json .* is a directory"):
        report.main(["--results", str(study), "--print", "--json", str(tmp_path)])
    with pytest.raises(ValueError, match="--doc .* is a directory"):
        report.main(["--results", str(study), "--doc", str(tmp_path)])
    with pytest.raises(ValueError, match="--doc .*: no such file"):
        report.main(["--results", str(study), "--check", "--doc", str(tmp_path / "README.md")])
    with pytest.raises(ValueError, match="--results .* is a file"):
        report.main(["--results", str(study / "base.json"), "--print"])


def test_the_sections_go_to_docs_and_their_figure_links_are_relative_to_the_file_named(study, tmp_path):
    """By default the sections are written into docs/results.md; --doc (or its earlier name --readme)
    names another file, and the figure is linked from wherever that file is, so the same results
    give the same text in any file but for that link."""
    from bridgekit import readme_section  # noqa: E402
    assert report.DOC == ROOT / "docs" / "results.md"
    figure = ROOT / "experiments" / "results" / "repro" / "accuracy.png"
    assert readme_section.link(figure, ROOT / "docs" / "results.md") == "../experiments/results/repro/accuracy.png"
    assert readme_section.link(figure, ROOT / "README.md") == "experiments/results/repro/accuracy.png"
    assert readme_section.link(tmp_path / "a.png", ROOT / "README.md") == str((tmp_path / "a.png").resolve())
    for flag in ("--doc", "--readme"):
        doc = tmp_path / f"{flag[2:]}.md"
        doc.write_text(f"{report.BEGIN}\n{report.END}\n")
        assert report.main(["--results", str(study), flag, str(doc)]) == 0
        assert report.main(["--results", str(study), flag, str(doc), "--check"]) == 0
    assert (tmp_path / "doc.md").read_text() == (tmp_path / "readme.md").read_text()
    if (report.RES / "base.json").is_file():  # the committed study, written for the README and for docs/
        runs = report.load(report.RES)
        at_root, in_docs = (report.section(runs, report.RES, doc) for doc in (ROOT / "README.md", report.DOC))
        assert "](experiments/results/repro/accuracy.png)" in at_root
        assert at_root.replace("](experiments/results/", "](../experiments/results/") == in_docs
