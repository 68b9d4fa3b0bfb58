"""The evaluation command: the JSON it writes, its protocol record, its refusals, and the plot.

Every run is on a tiny random model (tests/tiny.py), 4 problems, n = 4, widths 1 2 4, 8 new
tokens. That model is almost never right, so the numbers are checked by recomputing them from the
stored per-problem records with the metric functions (metrics.py), never against expected values.
Bad arguments are refused in-process, before any model loads; one subprocess checks what the
command line makes of such a refusal (one line, exit code 1).
"""
import json
import math
import os
import statistics
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

import evaluate
from bridgekit import result_files
from bridgekit.metrics import g_pass_at_k, maj_at_k, mg_pass_at_k, pass_at_k, summarize
from tiny import make_tiny_model

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--problems", "4", "--n", "4", "--widths", "1", "2", "4", "--max-new-tokens", "8",
         "--shots", "1", "--batch-rows", "6"]  # 6 rows: several calls per width, one group split off


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # a longer context than tiny.py's 256: the byte-level prompt with a worked example is ~400 tokens
    path, _ = make_tiny_model(tmp_path_factory.mktemp("llama"), "llama", seed=3,
                              max_position_embeddings=1024)
    return path


def run(path, out, *extra):
    return evaluate.main(["--model", str(path), *SMALL, "--out", str(out), *extra])


@pytest.fixture(scope="module")
def result(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "base.json"
    run(tiny, out, "--save-texts")
    return out


def without_timing(path):
    data = json.loads(Path(path).read_text())
    del data["timing"]
    return data


def test_the_command_writes_every_width_and_prints_a_table_per_width(tiny, tmp_path, capsys):
    out = tmp_path / "r.json"
    returned = run(tiny, out)
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data == json.loads(json.dumps(returned))
    assert [r["width"] for r in data["results"]] == [1, 2, 4]
    assert [r["groups"] for r in data["results"]] == [4, 2, 1]
    for r in data["results"]:
        assert f"width {r['width']}:" in printed
        assert len(r["per_problem"]) == 4 and all(len(p["answers"]) == 4 for p in r["per_problem"])
        # the per-problem count and the stored answers agree (one extractor, one reward)
        assert all(p["correct"] == sum(a == p["gold"] for a in p["answers"]) for p in r["per_problem"])
        assert all(1 <= x <= 8 for p in r["per_problem"] for x in p["lengths"])
    for name in ("mean accuracy", "pass@4", "maj@2", "G-Pass@4_1/2", "mG-Pass@4", "all correct",
                 "has answer line", "answer length (tokens)", "truncated", "tokens/s"):
        assert printed.count(f"| {name} |") == 3
    timing = data["timing"]["widths"]
    assert set(timing) == {"1", "2", "4"} and all(t["tokens_per_s"] > 0 for t in timing.values())


def test_the_protocol_records_everything_needed_to_rerun(result, tiny):
    p = json.loads(result.read_text())["protocol"]
    for key in ("model", "model_dir", "model_fingerprint", "bridge", "bridge_config", "bridge_on",
                "task", "knobs", "split", "problems", "seeds", "widths", "n", "ks", "taus", "shots",
                "temperature", "top_p", "max_new_tokens", "batch_rows", "dtype", "device",
                "git_commit", "torch"):
        assert key in p, key
    assert p["model"] == str(tiny) and len(p["model_fingerprint"]) == 16
    assert (p["bridge"], p["bridge_config"], p["bridge_on"]) == (None, None, False)
    assert (p["task"], p["split"], p["problems"], p["n"], p["widths"]) == ("word", "test", 4, 4, [1, 2, 4])
    assert p["ks"] == [1, 2, 4] and p["taus"] == ["1/8", "1/4", "1/2", "3/4", "1"]
    assert p["seeds"] == {"problems": 0, "sampling": 0} and p["max_new_tokens"] == 8
    assert p["git_commit"] is None or len(p["git_commit"].split("-")[0]) == 40


def test_every_number_is_the_metric_functions_applied_to_the_stored_counts(result):
    data = json.loads(result.read_text())
    n, ks, taus = data["protocol"]["n"], data["protocol"]["ks"], data["protocol"]["taus"]
    for r in data["results"]:
        pp = r["per_problem"]
        expect = {"accuracy": [p["correct"] / n for p in pp],
                  f"mG-Pass@{n}": [mg_pass_at_k(n, p["correct"], n) for p in pp],
                  "all_correct": [float(p["correct"] == n) for p in pp],
                  "truncated": [p["truncated"] / n for p in pp],
                  "length": [sum(p["lengths"]) / n for p in pp]}
        for k in ks:
            expect[f"pass@{k}"] = [pass_at_k(n, p["correct"], k) for p in pp]
            expect[f"maj@{k}"] = [maj_at_k(p["answers"], p["gold"], k) for p in pp]
        for t in taus:
            expect[f"G-Pass@{n}_{t}"] = [g_pass_at_k(n, p["correct"], n, Fraction(t)) for p in pp]
        for name, values in expect.items():
            got = r["summary"][name]
            assert got["mean"] == pytest.approx(sum(values) / len(values), abs=1e-12), name
            se = statistics.stdev(values) / math.sqrt(len(values))
            assert got["se"] == pytest.approx(se, abs=1e-12), name
        assert r["summary"] == summarize(pp, n, ks, taus)


def test_summarize_on_hand_made_records():
    """Two problems, n = 4: one with 3 right (two votes for gold 5), one with none."""
    pp = [dict(gold=5, correct=3, answers=[5, 5, 5, 7], lengths=[4, 4, 4, 4], truncated=0, answer_line=4),
          dict(gold=9, correct=0, answers=[1, 2, None, None], lengths=[8, 8, 8, 8], truncated=4, answer_line=0)]
    s = summarize(pp, 4, [1, 4], ["1/2", "1"])
    assert s["accuracy"]["mean"] == 3 / 8
    assert s["accuracy"]["se"] == pytest.approx(statistics.stdev([0.75, 0]) / math.sqrt(2))
    assert s["pass@4"]["mean"] == 0.5 and s["maj@4"]["mean"] == 0.5
    assert s["G-Pass@4_1/2"]["mean"] == 0.5 and s["G-Pass@4_1"]["mean"] == 0.0
    assert (s["truncated"]["mean"], s["answer_line"]["mean"], s["length"]["mean"]) == (0.5, 0.5, 6.0)
    with pytest.raises(ValueError, match="holds 4 answers, expected n=3"):
        summarize(pp, 3, [1], ["1"])
    assert summarize(pp[:1], 4, [1], ["1"])["accuracy"]["se"] is None


def test_the_same_seed_gives_the_same_file_and_another_seed_other_answers(result, tiny, tmp_path):
    again = tmp_path / "again.json"
    run(tiny, again, "--save-texts", "--batch-rows", "64")  # every group has its own generator, so
    a, b = without_timing(again), without_timing(result)    # how groups share a forward changes nothing
    a["protocol"].pop("batch_rows"), b["protocol"].pop("batch_rows")
    assert a == b
    # the speed-ups (--fast, recorded only when given) give the same file as the naive default
    with_fast = tmp_path / "fast.json"
    run(tiny, with_fast, "--save-texts", "--fast")
    a, b = without_timing(with_fast), without_timing(result)
    assert a["protocol"].pop("fast") is True and "fast" not in b["protocol"]
    assert a == b
    other = tmp_path / "other.json"
    run(tiny, other, "--save-texts", "--seed", "1")
    texts = lambda d: [p["texts"] for r in d["results"] for p in r["per_problem"]]
    assert texts(without_timing(other)) != texts(without_timing(result))


def test_fresh_bridge_blocks_change_nothing_and_are_recorded(result, tiny, tmp_path):
    """Zero-initialised W_O: with the blocks on or off, every stored answer equals the base run's."""
    from bridgekit.checkpoint import save_bridge
    from model import load_model
    model, _ = load_model(str(tiny))
    model.add_bridge(n_heads=2, head_dim=8, verbose=False)
    ckpt = tmp_path / "fresh.safetensors"
    save_bridge(model, ckpt)
    base = without_timing(result)
    for flag, on in (([], True), (["--no-bridge"], False)):
        out = tmp_path / f"bridge{on}.json"
        run(tiny, out, "--save-texts", "--bridge", str(ckpt), *flag)
        data = without_timing(out)
        p = data["protocol"]
        assert (p["bridge"], p["bridge_on"]) == (str(ckpt), on)
        assert p["bridge_config"] == {"kind": "bridge", "n_heads": 2, "head_dim": 8}
        assert data["results"] == base["results"]
        assert result_files.label_of(p) == ("fresh" if on else "fresh off")


def test_a_full_training_checkpoint_directory_with_its_blocks_evaluates(tiny, tmp_path):
    """training.save_checkpoint with --train all writes model.safetensors and bridge.safetensors side by side."""
    import shutil
    from bridgekit.checkpoint import save_bridge
    from model import load_model
    ckpt = tmp_path / "checkpoint"
    shutil.copytree(tiny, ckpt)
    model, _ = load_model(str(ckpt))
    model.add_bridge(n_heads=2, head_dim=8, verbose=False)
    save_bridge(model, ckpt / "bridge.safetensors")
    out = tmp_path / "full.json"
    run(ckpt, out, "--bridge", str(ckpt / "bridge.safetensors"))
    assert json.loads(out.read_text())["protocol"]["bridge_on"] is True


BAD = {  # name: (arguments, what the one line must mention)
    "width-not-dividing-n": (["--n", "4", "--widths", "1", "3"], "--widths: 3 must be >= 1 and divide n=4"),
    "width<1": (["--n", "4", "--widths", "0"], "--widths: 0 must be >= 1"),
    "k>n": (["--n", "4", "--ks", "1", "8"], "--ks: k=8"),
    "tau=0": (["--n", "4", "--taus", "0", "1"], "--taus: tau must be in (0, 1]"),
    "tau>1": (["--n", "4", "--taus", "3/2"], "--taus: tau must be in (0, 1]"),
    "unknown-task": (["--task", "calculus"], "unknown task 'calculus'"),
    "bad-split": (["--split", "dev"], "unknown split 'dev'"),
    "bad-knob": (["--task", "add1", "--lo", "5", "--hi", "2"], "number range"),
    "too-many-problems": (["--task", "add1", "--problems", "1000"], "distinct questions"),
    "top-p": (["--top-p", "0"], "top-p"),
    "missing-bridge": (["--bridge", "no-such.safetensors"], "no-such.safetensors"),
    "missing-out-dir": (["--out", "no/such/dir/r.json"], "does not exist"),
    "out-is-a-directory": (["--out", "."], "is a directory"),
    "missing-model": (["--model", "./no-such-model-dir"], "no-such-model-dir"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_clear_error_before_the_model_loads(case, monkeypatch):
    import model

    def no_load(*a, **kw):
        raise AssertionError("the model was loaded before the arguments were checked")
    args, needle = BAD[case]
    if case != "missing-model":  # that one is found by the loader itself
        monkeypatch.setattr(model, "load_model", no_load)
    with pytest.raises((ValueError, FileNotFoundError)) as e:
        evaluate.main(args)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_own_data_is_evaluated_on_the_files_first_problems(tiny, tmp_path):
    lines = [{"question": f"What is {i} plus {i}?", "answer": f"#### {2 * i}"} for i in range(1, 6)]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "r.json"
    run(tiny, out, "--data", str(tmp_path / "mine.jsonl"), "--problems", "2")
    r = json.loads(out.read_text())
    assert [p["question"] for p in r["problems"]] == ["What is 1 plus 1?", "What is 2 plus 2?"]
    assert [p["answer"] for p in r["problems"]] == [2, 4]
    assert (r["protocol"]["task"], r["protocol"]["data"], r["protocol"]["split"]) == ("gsm8k", str(tmp_path / "mine.jsonl"), None)
    with pytest.raises(ValueError, match="5 problems, fewer than --problems 6"):
        run(tiny, tmp_path / "r6.json", "--data", str(tmp_path / "mine.jsonl"), "--problems", "6")


@pytest.mark.parametrize("extra", [["--task", "add2"], ["--split", "train"], ["--hi", "9"]])
def test_data_with_a_task_or_split_is_one_usage_line(capsys, extra):
    with pytest.raises(SystemExit) as e:
        evaluate.main(["--data", "x.jsonl", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "--data FILE gives the problems" in err[0]


def test_an_unreadable_flag_value_is_argparse_s_one_line_and_exit_code_2(capsys):
    with pytest.raises(SystemExit) as e:
        evaluate.main(["--taus", "1/0"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and "--taus" in err


def test_plot_refuses_files_that_are_not_results(result, tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    (tmp_path / "x.txt").write_text("hello")
    for bad, needle in (("x.json", "not an evaluate.py result"), ("x.txt", "not a JSON file"),
                        ("nope.json", "no such file")):
        with pytest.raises((ValueError, FileNotFoundError), match=needle):
            evaluate.main(["--plot", str(result), str(tmp_path / bad), "--out", str(tmp_path / "f.png")])
    with pytest.raises(ValueError, match="2 labels for 1 files"):
        evaluate.main(["--plot", str(result), "--labels", "a", "b", "--out", str(tmp_path / "f.png")])


def test_plot_refuses_set_level_results_and_a_name_matplotlib_would_change(result, tmp_path):
    from types import SimpleNamespace
    data = json.loads(result.read_text())
    for r in data["results"]:  # what a set-level task stores: each answer's number, scored by groups
        for p in r["per_problem"]:
            p["choices"] = [None] * r["n"]
        r["summary"] = evaluate.summary_of(r["per_problem"], r["width"],
                                           SimpleNamespace(n=r["n"], widths=[2], set_sizes=None))
    (tmp_path / "set.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="set-level task's results"):
        evaluate.main(["--plot", str(tmp_path / "set.json"), "--out", str(tmp_path / "f.png")])
    with pytest.raises(ValueError, match="a figure's name ends in .png"):
        evaluate.main(["--plot", str(result), "--out", str(tmp_path / "figure")])


def test_plot_writes_a_png(result, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "fig.png"
    evaluate.main(["--plot", str(result), str(result), "--labels", "a", "b", "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_bad_input_exits_1_with_one_line(tmp_path):
    # from another directory: the command must not depend on the working directory
    out = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--n", "8", "--widths", "3"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == ["error: --widths: 3 must be >= 1 and divide n=8 "
                                               "(n answers = n/width groups of width)"]
