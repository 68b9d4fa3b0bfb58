"""experiments/studies/talk_report.py: the oracle done right, its section of docs/results.md from committed files."""
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "experiments" / "studies"))
import talk_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]


def test_the_committed_section_is_what_the_files_give():
    assert talk_report.main(["--check"]) == 0


def evaluation(choices, lengths, path=None, width=4, problems=1):
    entry = dict(width=width, n=len(choices), groups=len(choices) // width,
                 summary=dict(length=dict(mean=sum(lengths) / len(lengths), se=0.0)),  # as evaluate.py writes it
                 per_problem=[dict(gold=9, choices=choices, lengths=lengths)] * problems)
    return {**entry, "path": path} if path else entry


def test_the_shortcut_counts_rows_writing_after_a_sibling_that_say_one():
    # set 1: rows at steps 7, 8, 8, 9: three write after a sibling, two of them say 1;
    # set 2: all at step 7 (no row after a sibling), two 1s
    sib = evaluation([3, 1, 1, 5, 1, 1, 2, 4], [9, 10, 10, 11, 9, 9, 9, 9])
    own = evaluation([3, 2, 4, 5, 1, 6, 2, 4], [9, 10, 10, 11, 9, 9, 9, 9], "self")
    s = talk_report.shortcut(dict(results=[sib, own]))
    assert s["siblings"] == dict(says_one=2 / 3, rows=3, two_ones=1.0)
    assert s["self"] == dict(says_one=0.0, rows=3, two_ones=0.0)


def fake_run(res, seed, sib_choices, self_choices):
    """A seed's four files: Bridge read and evaluation, P-Match read and evaluation (W = 2 4 8, n = 8)."""
    lengths = [9, 10, 11, 12, 9, 10, 11, 12]
    results = []
    for W in (2, 4, 8):  # (the crossed path's file keeps every other set; its score is not what is tested here)
        results += [evaluation(sib_choices, lengths, None, W, 2), evaluation(self_choices, lengths, "self", W, 2),
                    evaluation(self_choices, lengths, "crossed", W, 2)]
    proto = dict(problems=2, n=8)
    (res / f"seed{seed}_bridge.json").write_text(json.dumps(dict(protocol=proto, results=results)))
    (res / f"seed{seed}_pmatch.json").write_text(json.dumps(dict(protocol=proto, results=[
        evaluation(self_choices, lengths, None, 1, 2)])))
    by_type = {k: dict(rows=5, hit=dict(mean=0.5, se=0.1), nll=dict(mean=1.0, se=0.1)) for k in talk_report.oracle.ROW_TYPES}
    for arch in ("bridge", "pmatch"):
        (res / f"seed{seed}_{arch}_read.json").write_text(json.dumps(dict(n_sets=10, paths={"siblings": by_type,
                                                                                              "self": by_type})))
    (res / f"seed{seed}_bridge.log.jsonl").write_text(json.dumps(dict(step=0, epoch=1.0, loss=7.0, text_loss=1.0,
                                                                      number_loss=2.0)) + "\n")


def test_the_verdict_needs_the_ceiling_and_the_self_path_both_passed(tmp_path):
    # every set all distinct on the siblings path; the self path collides everywhere
    fake_run(tmp_path, 0, [1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 1, 1, 1, 1, 1, 1])
    rows, facts = talk_report.sampled_rows(tmp_path, ["seed0"])
    f = facts["seed0"]
    assert f[2]["bridge"]["mean"] == 1.0 and f[2]["vs_self"]["mean"] == 1.0
    assert talk_report.verdict({"seed0": {W: dict(f[W], passes=True, beats_self=True) for W in (2, 4, 8)}}).startswith(
        "**Verdict: the siblings talk** (seed0 at W = 2; seed0 at W = 4; seed0 at W = 8)")
    assert talk_report.verdict({"seed0": {W: dict(f[W], beats_self=False) for W in (2, 4, 8)}}).startswith(
        "**Verdict: not shown.**")
    assert talk_report.verdict({"seed0": {W: dict(f[W], passes=False) for W in (2, 4, 8)}}).startswith(
        "**Verdict: the siblings are read in sampling, but not past the ceiling.**")
    # a twin whose siblings path is the self path: no difference, so not shown
    twin = tmp_path / "twin"
    twin.mkdir()
    fake_run(twin, 0, [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1])
    assert "not shown" in talk_report.verdict(talk_report.sampled_rows(twin, ["seed0"])[1])


def test_the_verdict_says_where_the_p_match_control_stands_against_the_ceiling(tmp_path):
    fake_run(tmp_path, 0, [1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 1, 1, 1, 1, 1, 1])  # P-Match gets the self path's 1s
    facts = talk_report.sampled_rows(tmp_path, ["seed0"])[1]
    text = talk_report.verdict(facts)
    assert "The control, P-Match" in text and "seed0's, at W = 2 / 4 / 8: 0.000 / 0.000 / 0.000, none past the ceiling" in text
    (tmp_path / "seed0_pmatch.json").write_text(json.dumps(dict(protocol=dict(problems=2, n=8), results=[
        evaluation([1, 2, 3, 4, 5, 6, 7, 8], [9] * 8, None, 1, 2)])))  # every set distinct: past the ceiling
    text = talk_report.verdict(talk_report.sampled_rows(tmp_path, ["seed0"])[1])
    assert "1.000 / 1.000 / 1.000, past the ceiling by more than two standard errors at W = 2, 4, 8" in text
    (tmp_path / "seed0_pmatch.json").unlink()  # no control run: nothing said of it
    assert "P-Match" not in talk_report.verdict(talk_report.sampled_rows(tmp_path, ["seed0"])[1])


def test_runs_are_found_by_seed_then_variant_and_each_shows_its_setting(tmp_path):
    fake_run(tmp_path, 0, [1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 1, 1, 1, 1, 1, 1])
    fake_run(tmp_path, 1, [1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 1, 1, 1, 1, 1, 1])
    for name in ("bridge_read.json", "bridge.log.jsonl"):
        (tmp_path / f"seed0_{name}").rename(tmp_path / f"seed0_w10_{name}")
    (tmp_path / "seed1_bridge.json").unlink()  # trained and read, not sampled yet
    assert talk_report.runs(tmp_path) == ["seed0_w10", "seed1"]
    assert talk_report.setting(tmp_path, "seed1") == dict(steps=1, epochs=1.0, weight=3.0)
    text = "\n".join(talk_report.talk_lines(tmp_path))
    assert "| seed1 | successor targets, weight 3, 1.00 epochs (1 steps) |" in text and "**Sampled**" not in text
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "has not been run yet" in talk_report.talk_lines(empty)[0]
    assert talk_report.headline_lines(empty) == []


def test_the_readme_says_what_was_tried_and_what_the_read_showed_while_nothing_passes(tmp_path):
    fake_run(tmp_path, 0, [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1])  # sampled, and below the ceiling
    text = " ".join(talk_report.headline_lines(tmp_path))
    assert "seed0: successor targets, weight 3, 1.00 epochs (1 steps)" in text and "0.500 reading their siblings" in text
    assert "no Bridge passes yet" in text
    fake_run(tmp_path, 0, [1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 1, 1, 1, 1, 1, 1])  # passes both bars at every width
    text = " ".join(talk_report.headline_lines(tmp_path))
    assert "**Verdict: the siblings talk**" in text and "no Bridge passes" not in text
    fake_run(tmp_path, 1, [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1])  # a seed that passes nothing is not counted
    assert "Training seeds behind it: 1 (seed0)." in talk_report.verdict(talk_report.sampled_rows(tmp_path, ["seed0", "seed1"])[1])


def test_the_committed_bridge_is_reported_with_its_fresh_seed_and_both_bars(tmp_path):
    assert talk_report.committed_lines(tmp_path) == []
    lengths = [9, 10, 11, 12, 9, 10, 11, 12]
    result = dict(protocol=dict(seeds=dict(sampling=7)), results=[
        evaluation([1, 2, 3, 4, 5, 6, 7, 8], lengths, None, 4, 2), evaluation([1, 1, 1, 1, 1, 1, 1, 1], lengths, "self", 4, 2)])
    (tmp_path / "candidate_distinct.json").write_text(json.dumps(result))
    (tmp_path / "candidate.json").write_text(json.dumps(dict(run="seed0_w10e2")))
    f = talk_report.committed_facts(tmp_path)
    assert f["run"] == "seed0_w10e2" and f["seed"] == 7 and f["bridge"]["mean"] == 1.0 and f["own"]["mean"] == 0.0
    assert f["passes"] and f["beats_self"]
    assert "it is the committed `bridges/distinct.safetensors`" in talk_report.committed_lines(tmp_path)[0]


def test_a_free_targets_run_shows_its_rule_and_its_taken_mass(tmp_path):
    fake_run(tmp_path, 0, [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1])
    read = json.loads((tmp_path / "seed0_bridge_read.json").read_text())
    read["paths"]["siblings"]["readable"]["taken"] = dict(mean=0.04, se=0.01)
    read["paths"]["self"]["readable"]["taken"] = dict(mean=0.11, se=0.01)
    (tmp_path / "seed0_bridge_read.json").write_text(json.dumps(read))
    assert "successor targets" in talk_report.setting_text(tmp_path, "seed0")
    (tmp_path / "seed0_bridge.args.json").write_text(json.dumps(dict(targets="free")))
    text = "\n".join(talk_report.talk_lines(tmp_path))
    assert "| seed0 | free targets, weight 3" in text and "| 0.040 ± 0.010 / 0.110 |" in text
    readme = " ".join(talk_report.headline_lines(tmp_path))
    assert "put 0.040 of their probability on the numbers written before them reading their siblings and 0.110" in readme


def test_every_candidate_tried_before_the_present_one_is_listed(tmp_path):
    lengths = [9, 10, 11, 12, 9, 10, 11, 12]
    passing = dict(protocol=dict(seeds=dict(sampling=7)), results=[
        evaluation([1, 2, 3, 4, 5, 6, 7, 8], lengths, None, 4, 2), evaluation([1, 1, 1, 1, 1, 1, 1, 1], lengths, "self", 4, 2)])
    failing = dict(protocol=dict(seeds=dict(sampling=7)), results=[
        evaluation([1, 1, 1, 1, 1, 1, 1, 1], lengths, None, 4, 2), evaluation([1, 1, 1, 1, 1, 1, 1, 1], lengths, "self", 4, 2)])
    (tmp_path / "candidate_distinct.json").write_text(json.dumps(passing))
    (tmp_path / "candidate.json").write_text(json.dumps(dict(run="seed0_free4")))
    assert talk_report.earlier_lines(tmp_path) == []
    (tmp_path / "earlier_seed0_w10e2_distinct.json").write_text(json.dumps(failing))
    (tmp_path / "earlier_seed0_w10e2_fp32.json").write_text(json.dumps(failing))
    assert talk_report.earlier_runs(tmp_path) == ["seed0_w10e2"]
    text = " ".join(talk_report.committed_lines(tmp_path))
    assert "so 2 candidates in all: seed0_w10e2 (bf16 0.000" in text and text.count("not passing both") == 2
    assert "seed0_free4's Bridge" in text and "it is the committed `bridges/distinct.safetensors`" in text
    assert "each sampled the same way (seed 7, W = 4," in text
    # the same run's fp32 blocks: the sentence says what their paired difference shows, either way
    (tmp_path / "candidate_fp32.json").write_text(json.dumps(passing))
    assert "1.000 ± 0.000 over reading only themselves, by more than two standard errors." in " ".join(
        talk_report.committed_lines(tmp_path))
    (tmp_path / "candidate_fp32.json").write_text(json.dumps(failing))
    assert "over reading only themselves: the gain over the self path is not shown on fresh random numbers." in " ".join(
        talk_report.committed_lines(tmp_path))


def test_a_passing_candidate_leads_the_readme_with_its_fresh_seed_and_the_study_s_own_sampling(tmp_path):
    fake_run(tmp_path, 0, [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1])  # the study's sampling passes nothing
    assert "no Bridge passes yet" in " ".join(talk_report.headline_lines(tmp_path))
    lengths = [9, 10, 11, 12, 9, 10, 11, 12]
    failing = dict(protocol=dict(seeds=dict(sampling=7)), results=[
        evaluation([1, 1, 1, 1, 1, 1, 1, 1], lengths, None, 4, 2), evaluation([1, 1, 1, 1, 1, 1, 1, 1], lengths, "self", 4, 2)])
    (tmp_path / "candidate_distinct.json").write_text(json.dumps(failing))
    (tmp_path / "candidate.json").write_text(json.dumps(dict(run="seed0")))
    assert "no Bridge passes yet" in " ".join(talk_report.headline_lines(tmp_path))  # a failing candidate changes nothing
    failing["results"][0] = evaluation([1, 2, 3, 4, 5, 6, 7, 8], lengths, None, 4, 2)
    (tmp_path / "candidate_distinct.json").write_text(json.dumps(failing))
    text = " ".join(talk_report.headline_lines(tmp_path))
    assert "**The siblings talk, with constructed targets**" in text and "no Bridge passes yet" not in text
    assert "sampled with seed 7" in text and "scores 1.000 ± 0.000 per answer against the exact independent ceiling 0.702" in text
    assert "at W = 2 / 4 / 8: 0.000 ± 0.000 / 0.000 ± 0.000 / 0.000 ± 0.000" in text  # the study's own, shown beside it
    assert "Training seeds of this setting: 1 (seed0); candidates tried for the file: 1." in text


def test_grpo_from_the_oracle_blocks_is_compared_with_them_on_the_same_random_numbers(tmp_path):
    assert talk_report.grpo_lines(tmp_path) == []
    fake_run(tmp_path, 0, [1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1])  # the oracle blocks: every set collides
    after = json.loads((tmp_path / "seed0_bridge.json").read_text())
    lengths = [9, 10, 11, 12, 9, 10, 11, 12]  # the oracle's: 10.5 tokens an answer; after GRPO 13.5, its self path 10.0
    after["results"] = [e for W in (2, 4, 8) for e in (evaluation([1, 2, 3, 4, 5, 6, 7, 8], [n + 3 for n in lengths], None, W, 2),
                                                       evaluation([1, 1, 1, 1, 1, 1, 1, 1], [10] * 8, "self", W, 2))]
    (tmp_path / "grpo_seed0_bridge.json").write_text(json.dumps(after))
    (tmp_path / "grpo_seed0_bridge.log.jsonl").write_text(
        "".join(json.dumps(dict(step=i, reward=r)) + "\n" for i, r in enumerate([0.2] * 5 + [0.6] * 5)))
    assert talk_report.grpo_runs(tmp_path) == ["seed0"]
    text = "\n".join(talk_report.grpo_lines(tmp_path))
    assert "| seed0 | 10 | 4 | 0.702 | 0.000 ± 0.000 | **1.000 ± 0.000** | +1.000 ± 0.000 | +1.000 ± 0.000 | 10.5 / 13.5 / 10.0 |" in text
    assert "GRPO raises what the oracle taught at W = 4" in text and "from 0.200 (first 5 steps) to 0.600 (last 5)" in text
    assert "1 training seed of the 3 planned. At W = 4, GRPO raises / keeps / loses it from 1 / 0 / 0 of them." in text
    assert "raises it at W = 2 (+1.000 ± 0.000) and raises it at W = 8 (+1.000 ± 0.000)" in text  # the other widths
    after["results"] = [e for W in (2, 4, 8) for e in (evaluation([1, 1, 1, 1, 1, 1, 1, 1], lengths, None, W, 2),
                                                       evaluation([1, 1, 1, 1, 1, 1, 1, 1], [10] * 8, "self", W, 2))]
    (tmp_path / "grpo_seed0_bridge.json").write_text(json.dumps(after))  # the same as before GRPO: nothing moved
    text = "\n".join(talk_report.grpo_lines(tmp_path))
    assert "keeps (within two standard errors) what the oracle taught at W = 4 (+0.000 ± 0.000); its train" in text
    assert "raises / keeps / loses it from 0 / 1 / 0 of them." in text


def test_the_regenerate_line_says_how_the_committed_candidate_s_setting_is_run_again(tmp_path):
    assert talk_report.rerun_text(tmp_path) == ""
    (tmp_path / "candidate.json").write_text(json.dumps(dict(run="seed0_free4")))
    (tmp_path / "seed0_free4_bridge.log.jsonl").write_text(
        json.dumps(dict(step=0, epoch=4.0, loss=21.0, text_loss=1.0, number_loss=2.0)) + "\n")
    (tmp_path / "seed0_free4_bridge.args.json").write_text(json.dumps(dict(targets="free")))
    assert talk_report.rerun_text(tmp_path) == (
        "; the committed candidate's setting is `VARIANT=free4 TARGETS=free NUMBER_WEIGHT=10 EPOCHS=4 "
        "bash experiments/studies/talk.sh seed 0`, then the same with `commit 0`")
