"""The oracle check's constructed sets (experiments/studies/oracle.py) and the credit study's report (experiments/studies/credit_report.py)."""
import json
import random
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "experiments" / "studies"))
import credit_report  # noqa: E402
import oracle  # noqa: E402
import oracle_read  # noqa: E402


@given(positions=st.lists(st.integers(3, 6), min_size=1, max_size=6), seed=st.integers(0, 2**16))
def test_constructed_numbers_are_distinct_and_a_lone_later_row_takes_the_smallest_free(positions, seed):
    K = 9
    numbers = oracle.oracle_numbers(positions, K, random.Random(seed), "smallest")
    assert sorted(set(numbers)) == sorted(numbers) and all(1 <= v <= K for v in numbers)
    for i, p in enumerate(positions):
        earlier = {numbers[j] for j, q in enumerate(positions) if q < p}
        alone = positions.count(p) == 1
        assert numbers[i] not in earlier
        if alone and earlier:
            assert numbers[i] == min(v for v in range(1, K + 1) if v not in earlier)


@given(positions=st.lists(st.integers(3, 6), min_size=1, max_size=6), seed=st.integers(0, 2**16))
def test_a_lone_later_row_takes_the_next_free_number_after_the_most_recent_writer(positions, seed):
    K = 9
    numbers = oracle.oracle_numbers(positions, K, random.Random(seed))
    assert sorted(set(numbers)) == sorted(numbers) and all(1 <= v <= K for v in numbers)
    for i, p in enumerate(positions):
        earlier = [q for q in positions if q < p]
        taken = {numbers[j] for j, q in enumerate(positions) if q < p}
        assert numbers[i] not in taken
        if positions.count(p) == 1 and earlier:
            recent = [numbers[j] for j, q in enumerate(positions) if q == max(earlier)]
            # counting on from one of the most recent writers' numbers, every number passed is taken
            assert any(all((v + d - 1) % K + 1 in taken for d in range(1, (numbers[i] - v) % K))
                       and (numbers[i] - v) % K != 0 for v in recent)


@given(positions=st.lists(st.integers(3, 6), min_size=1, max_size=6), seed=st.integers(0, 2**16))
def test_a_lone_later_row_of_the_free_targets_takes_a_number_no_earlier_row_took(positions, seed):
    numbers = oracle.oracle_numbers(positions, 9, random.Random(seed), "free")
    assert sorted(set(numbers)) == sorted(numbers) and all(1 <= v <= 9 for v in numbers)
    for i, p in enumerate(positions):
        assert numbers[i] not in {numbers[j] for j, q in enumerate(positions) if q < p}


@pytest.mark.parametrize("rule", ["successor", "free"])
def test_every_row_of_the_successor_and_free_targets_is_uniform_over_1_to_K(rule):
    # both rules commute with relabelling 1..K; counted over many sets of random timing, each row's
    # number is uniform (a sample of 9,000 rows per timing type, within 4 se of 1/9)
    rng = random.Random(0)
    counts = {}
    for _ in range(3000):
        positions = [rng.randint(5, 9) for _ in range(4)]
        numbers = oracle.oracle_numbers(positions, 9, rng, rule)
        for kind, v in zip(oracle.row_types(positions), numbers):
            counts.setdefault(kind, [0] * 9)[v - 1] += 1
    for kind, c in counts.items():
        n = sum(c)
        se = (1 / 9 * 8 / 9 / n) ** 0.5
        assert all(abs(x / n - 1 / 9) < 4 * se for x in c), (kind, c)
    # the first oracle's rule is not: after one earlier writer, 1 is far more common than 9
    smallest = [oracle.oracle_numbers([5, 6], 9, random.Random(s), "smallest")[1] for s in range(900)]
    assert smallest.count(1) > 5 * smallest.count(9)


def test_row_types_follow_what_the_mask_lets_a_row_read():
    # positions are the steps rows write their numbers; a sibling is readable 1 or 2 steps later
    assert oracle.row_types([5, 6, 7, 10]) == ["first", "readable", "readable", "two-hop"]
    assert oracle.row_types([5, 5, 8, 9]) == ["simultaneous", "simultaneous", "two-hop", "readable"]
    assert oracle.row_types([7, 7, 7, 7]) == ["simultaneous"] * 4


def test_policy_bounds_on_a_runs_timing():
    rng = random.Random(0)
    # two rows a step apart: the later one reads the earlier and never collides
    assert oracle_read.policy_scores([5, 6], 9, rng, 200)["readable"] == 1.0
    # rows at the same step read nothing: every policy is the independent one, (8/9) per answer
    same = oracle_read.policy_scores([5, 5], 9, random.Random(1), 4000)
    assert abs(same["readable"] - 8 / 9) < 0.02 and abs(same["earlier"] - 8 / 9) < 0.02
    # a sibling three steps earlier is dead at the decision: only "earlier" avoids it
    late = oracle_read.policy_scores([5, 8], 9, random.Random(2), 4000)
    assert late["earlier"] == 1.0 and abs(late["readable"] - 8 / 9) < 0.02
    # a row without a valid number scores 0 and takes nothing from its sibling
    assert oracle_read.policy_scores([5, None], 9, rng, 50)["independent"] == 0.5


def test_too_many_rows_for_distinct_numbers_is_an_error():
    with pytest.raises(ValueError, match="distinct numbers"):
        oracle.oracle_numbers([1, 2, 3], 2, random.Random(0))


def test_build_sets_changes_only_the_digit_of_each_answer():
    digits = [33 + v for v in range(9)]  # token of v + 1
    eos = {2}
    answers = [[50, 51, 52, digits[0], 2], [60, 61, digits[4], 2], [70, 71, 72, 73, digits[8], 2], [80, digits[2], 2],
               [90, 91, 2]]                                  # the last one writes no number: not used
    records = [dict(question="q", prompt=[1, 2, 3], answer=9, right=answers)]
    sets = oracle.build_sets(records, 3, 5, 0, digits, eos, 9)
    assert len(sets) == 5
    for s in sets:
        assert len(s["answers"]) == 3
        for a, p, v in zip(s["answers"], s["positions"], s["numbers"]):
            original = next(x for x in answers[:4] if len(x) == len(a) and x[:p] == a[:p])
            assert a[p] == digits[v - 1] and a[:p] == original[:p] and a[p + 1:] == original[p + 1:]


def test_the_pilot_chooses_the_best_credit_on_the_second_half(tmp_path):
    accs = {"answer": [0.9, 0.9, 0.2, 0.2], "team": [0.1, 0.1, 0.5, 0.6], "difference": [0.5, 0.5, 0.5, 0.5]}
    for credit, values in accs.items():
        (tmp_path / f"pilot_{credit}.log.jsonl").write_text("".join(json.dumps(dict(step=i, acc=a)) + "\n"
                                                                     for i, a in enumerate(values)))
    choice = credit_report.pilot_choice(tmp_path)
    assert choice["chosen"] == "team" and choice["credits"]["team"]["acc"] == pytest.approx(0.55)
    (tmp_path / "pilot_team.log.jsonl").unlink()
    with pytest.raises(ValueError, match="no such file"):
        credit_report.pilot_choice(tmp_path)


def test_the_report_says_when_the_oracle_has_not_run(tmp_path):
    text = credit_report.section(tmp_path)
    assert "has not been run yet" in text and text.startswith(credit_report.BEGIN) and text.endswith(credit_report.END)


def test_the_report_reads_real_result_files_and_checks_itself(tmp_path):
    """evaluate.py on a tiny Bridge with the three paths, as experiments/studies/credit.sh writes them: the report
    builds its tables from them, and --check tells a stale section from a current one."""
    import evaluate
    from bridgekit.checkpoint import save_bridge
    from model import load_model
    from tiny import add_random_bridge, make_training_model
    model_dir = make_training_model(tmp_path / "model", seed=4)
    res = tmp_path / "res"
    res.mkdir()
    for kind in ("bridge", "pmatch"):
        model, _ = load_model(str(model_dir))
        add_random_bridge(model, seed=2, kind=kind)
        save_bridge(model, tmp_path / f"{kind}.safetensors")
    common = ["--model", str(model_dir), "--task", "distinct", "--shots", "0", "--problems", "2", "--n", "16",
              "--max-new-tokens", "4"]
    evaluate.main(common + ["--bridge", str(tmp_path / "bridge.safetensors"), "--widths", "1", "2", "4", "8",
                            "--paths", "siblings", "self", "crossed", "--out", str(res / "oracle_bridge.json")])
    evaluate.main(common + ["--bridge", str(tmp_path / "pmatch.safetensors"), "--widths", "1", "--set-sizes", "2", "4",
                            "8", "--out", str(res / "oracle_pmatch.json")])
    (res / "committed_distinct.json").write_text((res / "oracle_bridge.json").read_text())
    (res / "oracle_bridge.log.jsonl").write_text(json.dumps(dict(step=0, loss=1.0)) + "\n")
    (res / "oracle_pmatch.log.jsonl").write_text(json.dumps(dict(step=0, loss=1.2)) + "\n")
    text = credit_report.section(res)
    assert "| 4 | 0.702 / 0.461 |" in text and "Verdict" in text
    assert text.count("the set-level blocks (`experiments/results/siblings/distinct_blocks.safetensors`) | distinct |") == 3
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{credit_report.BEGIN}\nold\n{credit_report.END}\nend\n")
    args = ["--results", str(res), "--doc", str(readme)]
    assert credit_report.main(args + ["--check"]) == 1
    assert credit_report.main(args) == 0 and credit_report.main(args + ["--check"]) == 0
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("end\n")
    # the study's files have the first study's names (seedS_ARM.json): two seeds of the same results
    for seed in (0, 1):
        (res / f"seed{seed}_bridge.json").write_text((res / "oracle_bridge.json").read_text())
        (res / f"seed{seed}_pmatch.json").write_text((res / "oracle_pmatch.json").read_text())
    runs, _ = credit_report.sib.load(res)
    twins = {(c["arms"][1], c["width"]): c for c in credit_report.twin_comparisons(runs)}
    assert set(twins) == {(t, W) for t in ("its self-only twin", "its crossed twin") for W in (2, 4, 8)}
    bridge = json.loads((res / "oracle_bridge.json").read_text())
    for W in (2, 4, 8):  # paired by seed, the mean difference is the file's paired per-set difference
        direct = credit_report.paired_set_difference(credit_report.entry(bridge, W)["per_problem"],
                                                     credit_report.entry(bridge, W, "self")["per_problem"], W)
        assert twins["its self-only twin", W]["mean"] == pytest.approx(direct["mean"], abs=1e-12)
        assert twins["its self-only twin", W]["differences"] == pytest.approx([direct["mean"]] * 2, abs=1e-12)
    for seed, sets in ((0, 2), (1, 3)):  # the protocol is what the runs recorded, a value per run if they differ
        (res / f"seed{seed}/grpo_bridge").mkdir(parents=True)
        (res / f"seed{seed}/grpo_bridge/args.json").write_text(json.dumps(dict(task="distinct", width=4, sets=sets)))
    study = "\n".join(credit_report.study_section(res))
    assert "GRPO with --task distinct --width 4 --sets 2 (Bridge seed 0) / 3 (Bridge seed 1)" in study
    assert "Bridge at width 4 − its crossed twin | 4 |" in study and "seed 1:" in study and "**Verdict**" in study


def test_the_committed_section_is_what_the_committed_results_give():
    assert credit_report.main(["--check"]) == 0


def test_a_no_path_arm_above_the_ceiling_is_named_as_sampling_noise():
    """Rows without a path are independent draws: a seed that scores above the ceiling anyway is
    named, with its se over questions; one below it is not."""
    def result(choices):  # one width-1 run of two questions, 8 answers each
        return {"results": [{"width": 1, "per_problem": [{"choices": c} for c in choices]}]}
    spread = [[1, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3, 2, 1]]  # every set of 2, 4 or 8 all distinct
    same = [[3] * 8, [3] * 7 + [None]]
    line = " ".join(credit_report.above_ceiling_line({("pmatch", 0): result(spread), ("rlvr", 0): result(same)}))
    for W, ceiling in ((2, 0.889), (4, 0.702), (8, 0.438)):
        assert f"P-Match seed 0 at W = {W}: 1.000 ± 0.000 against {ceiling:.3f}" in line
    assert "RLVR" not in line and "cannot exceed the ceiling" in line
    assert credit_report.above_ceiling_line({("pmatch", 0): result(same)}) == []


def test_the_committed_verdict_names_a_bridge_whose_siblings_move_its_score():
    """Within two se of 0 on the committed results; a self-only twin whose answers are all invalid
    (score 0) makes Bridge − self-only far from 0, and the sentence names that Bridge and width."""
    import copy
    import credit_report
    r = credit_report.read(credit_report.RES / "committed_distinct.json")
    if r is None:
        pytest.skip("no committed fixed-randomness result")
    assert "within two standard errors of 0" in credit_report.committed_verdict([("committed_distinct", r)])
    broken = copy.deepcopy(r)
    alone = credit_report.entry(broken, 4, "self")
    for p in alone["per_problem"]:
        p["choices"] = [None] * len(p["choices"])
    line = credit_report.committed_verdict([("committed_distinct", broken)])
    assert "in 1 of 3 cases: the set-level blocks (`experiments/results/siblings/distinct_blocks.safetensors`) at W = 4 (+" in line


def test_the_crossed_cell_shows_the_sets_its_paired_difference_compares():
    """The crossed run keeps every other set, so Bridge's score on those sets minus the crossed score
    is exactly the paired Bridge − crossed difference the table prints beside it."""
    import re
    import credit_report
    from bridgekit.metrics import paired_set_difference
    r = credit_report.read(credit_report.RES / "committed_distinct.json")
    if r is None:
        pytest.skip("no committed fixed-randomness result")
    for W in (2, 4, 8):
        own, crossed = credit_report.entry(r, W), credit_report.entry(r, W, "crossed")
        score = credit_report.set_summary(crossed["per_problem"], crossed["n"], W)["set_score"]["mean"]
        cell = credit_report.crossed_cell(r, W, f"{score:.6f}")
        on_those = float(re.search(r"\(Bridge ([0-9.]+) on those sets\)", cell)[1])
        d = paired_set_difference(own["per_problem"], crossed["per_problem"], W, groups=list(range(0, own["groups"], 2)))
        assert on_those - score == pytest.approx(d["mean"], abs=6e-4)  # the cell rounds to 3 places


def test_the_number_weighted_step_is_the_token_mean_plus_the_weighted_number_loss(tmp_path):
    """number_step's text loss is train_sft.py's step loss (the token mean), and its number loss is the
    mean cross-entropy of the tokens at the sets' number positions (the one log-prob rule)."""
    import argparse

    import torch

    import train_sft
    from bridgekit import training
    from model import load_model
    from sample import answer_logprobs
    from tiny import add_random_bridge, make_training_model
    model_dir = make_training_model(tmp_path / "model", seed=4)
    g = torch.Generator().manual_seed(0)
    batch = [([5, 6, 7, 8][:n], [torch.randint(3, 250, (k,), generator=g).tolist() + [2] for k in (3, 5, 4)], [2, 4, 3])
             for n in (3, 4)]
    runs = {}
    for weight in (0.0, 2.0):
        model, tok = load_model(str(model_dir))
        add_random_bridge(model, seed=1)
        optimizer = training.make_optimizer(model, "new", 0.0, 1e-3)
        runs[weight] = oracle.number_step(model, optimizer, batch, tok.eos_id, weight, 1, 1.0)
    model, tok = load_model(str(model_dir))
    add_random_bridge(model, seed=1)
    optimizer = training.make_optimizer(model, "new", 0.0, 1e-3)
    args = argparse.Namespace(micro_groups=1, device="cpu", dtype="fp32", max_grad_norm=1.0)
    sft_loss, tokens, _ = train_sft.train_step(model, optimizer, [(p, a) for p, a, _ in batch], tok.eos_id, args)
    loss, text, number, _, total = runs[0.0]
    assert total == tokens and abs(text - sft_loss) < 1e-5 and loss == text
    model, _ = load_model(str(model_dir))
    add_random_bridge(model, seed=1)
    with torch.no_grad():
        nll = []
        for p, answers, positions in batch:
            (prompt, pa, answer, aa), w = train_sft.pad_groups([(p, answers)], tok.eos_id, "cpu")
            logp = answer_logprobs(model, prompt, pa, answer, aa, w)
            nll += [-float(logp[i, q]) for i, q in enumerate(positions)]
    assert abs(number - sum(nll) / len(nll)) < 1e-5
    loss2, text2, number2, _, _ = runs[2.0]
    assert (text2, number2) == (text, number) and abs(loss2 - (text + 2.0 * number)) < 1e-5


def test_the_read_on_the_self_path_is_each_row_alone_and_the_siblings_path_differs(tmp_path):
    """oracle_read.number_logits: reading only itself, a row's number logits are those of the row sampled
    as a set of one; with non-zero blocks, reading the siblings changes them."""
    import torch

    from model import load_model
    from tiny import add_random_bridge, make_training_model
    model, tok = load_model(str(make_training_model(tmp_path / "model", seed=4)), dtype=torch.float64)
    add_random_bridge(model, seed=3, scale=1.0)
    digits = list(range(40, 49))
    s = dict(prompt=[5, 6, 7], answers=[[60, 61, 42, 2], [70, 44, 2], [80, 81, 82, 45, 2]], positions=[2, 1, 3])
    alone = [dict(prompt=s["prompt"], answers=[a], positions=[q]) for a, q in zip(s["answers"], s["positions"])]
    own = oracle_read.number_logits(model, [s], "self", digits, tok.eos_id)
    single = oracle_read.number_logits(model, alone, "siblings", digits, tok.eos_id)
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(own, single))
    sib = oracle_read.number_logits(model, [s], "siblings", digits, tok.eos_id)
    assert any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(sib, own))


def test_taken_mass_is_the_share_of_a_rows_number_probability_on_earlier_numbers():
    import math
    uniform = [math.log(1 / 9)] * 9
    peaked = [math.log(0.92 if v == 3 else 0.01) for v in range(1, 10)]
    # row 1 writes a step after row 0 (which wrote 3); row 2 writes first; row 3 with row 1
    positions, numbers = [6, 7, 5, 7], [3, 4, 8, 1]
    mass = oracle_read.taken_mass([uniform, peaked, uniform, uniform], positions, numbers)
    assert mass[2] == 0.0                                  # nothing written before it
    assert abs(mass[0] - 1 / 9) < 1e-9                     # row 2's 8, uniform
    assert abs(mass[1] - (0.92 + 0.01)) < 1e-9             # rows 0 and 2 took 3 and 8
    assert abs(mass[3] - 2 / 9) < 1e-9


def test_the_free_targets_number_loss_is_the_cross_entropy_against_the_uniform_over_the_free_numbers(tmp_path):
    """With soft digits, number_step's number loss is the mean over rows of -mean log p(v) over the
    numbers no row wrote before the row's step (oracle.soft_targets), read at the sets' positions."""
    import torch

    import train_sft
    from bridgekit import training
    from model import load_model
    from sample import answer_hidden
    from tiny import add_random_bridge, make_training_model
    model_dir = make_training_model(tmp_path / "model", seed=4)
    digits = list(range(40, 49))  # the tokens of 1..9
    batch = [([5, 6, 7], [[60, 61, 42, 2], [70, 44, 2], [80, 81, 82, 45, 2]], [2, 1, 3], [3, 5, 6]),
             ([5, 6, 8, 9], [[61, 47, 2], [71, 72, 41, 2], [48, 2]], [1, 2, 0], [8, 2, 9])]
    assert oracle.soft_targets([2, 1, 3], [3, 5, 6], 9) == [[1, 2, 3, 4, 6, 7, 8, 9], list(range(1, 10)),
                                                            [1, 2, 4, 6, 7, 8, 9]]
    model, tok = load_model(str(model_dir))
    add_random_bridge(model, seed=1)
    with torch.no_grad():
        expected = []
        for p, answers, positions, numbers in batch:
            (prompt, pa, answer, aa), w = train_sft.pad_groups([(p, answers)], tok.eos_id, "cpu")
            h = answer_hidden(model, prompt, pa, answer, aa, w)
            for i, (q, free) in enumerate(zip(positions, oracle.soft_targets(positions, numbers, 9))):
                logp = torch.log_softmax(model.lm_head(h[i, q]), -1)
                expected.append(-sum(float(logp[digits[v - 1]]) for v in free) / len(free))
    optimizer = training.make_optimizer(model, "new", 0.0, 1e-3)
    _, _, number, _, _ = oracle.number_step(model, optimizer, batch, tok.eos_id, 1.0, 1, 1.0, soft=digits)
    assert abs(number - sum(expected) / len(expected)) < 1e-5


def test_a_later_stage_starts_from_the_earlier_stages_blocks(tmp_path):
    """oracle.py --init: the run loads the given blocks (not fresh ones) and records where it started."""
    from bridgekit.checkpoint import read_safetensors
    from model import load_model
    from tiny import make_training_model
    model_dir = make_training_model(tmp_path / "model", seed=4)
    _, tok = load_model(str(model_dir))
    digits, eos = oracle.digit_tokens(tok, 9), tok.eos_ids[0]
    rng = random.Random(0)
    records = [dict(question=f"q{q}", prompt=[5, 6, 7 + q], answer=9,
                    right=[[60 + rng.randrange(20)] * rng.randint(1, 3) + [digits[rng.randrange(9)], eos]
                           for _ in range(6)]) for q in range(3)]
    warmup = tmp_path / "data.jsonl"
    warmup.write_text("".join(json.dumps(r) + "\n" for r in records))
    common = ["--arch", "bridge", "--warmup", str(warmup), "--model", str(model_dir), "--targets", "free",
              "--sets-per-question", "2", "--groups-per-step", "2", "--micro-groups", "2", "--steps", "2"]
    oracle.main(common + ["--out", str(tmp_path / "one")])
    first = read_safetensors(tmp_path / "one" / "checkpoint" / "bridge.safetensors")
    assert any(float(v.abs().max()) > 0 for k, v in first.items() if "o_proj" in k or "out" in k)
    oracle.main(common + ["--out", str(tmp_path / "two"), "--lr-new", "1e-12",
                          "--init", str(tmp_path / "one" / "checkpoint" / "bridge.safetensors")])
    second = read_safetensors(tmp_path / "two" / "checkpoint" / "bridge.safetensors")
    assert all(float((second[k] - v).abs().max()) < 1e-6 for k, v in first.items())
    assert json.loads((tmp_path / "two" / "args.json").read_text())["init"].endswith("bridge.safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):  # refused before anything loads
        oracle.parse_args(common + ["--out", str(tmp_path / "three"), "--init", str(warmup)])
