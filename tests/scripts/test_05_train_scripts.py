"""The two training scripts end to end: the log, the checkpoints that load and resume bit-equal, your
own problems, Ctrl-C, and bad input as one clear error before anything slow.

The scripts run in-process on the tiny random model of tests/scripts/test_04_training.py (its fixtures and
helpers are shared: --shots 0, a short context, many EOS ids, and where a run must learn something
a reward that gives mixed groups).
"""
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from bridgekit import tasks
import train_grpo
import train_sft
from bridgekit import training
from bridgekit.checkpoint import read_state, save_bridge
from model import load_model
from tiny import SMALL, make_training_model

from test_04_training import fake_reward, grpo, log_of, sft, tiny  # noqa: F401  (shared fixtures and runs)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import reward_curves  # noqa: E402

# --- the scripts end to end ---------------------------------------------------------------------

def test_grpo_two_steps_writes_a_log_and_checkpoints_that_load(tiny, tmp_path, fake_reward, capsys):
    out = tmp_path / "all"
    grpo(tiny, out, "--steps", "2", "--train", "all")
    text = capsys.readouterr().out
    assert "step 2/2 | loss" in text and "[1 " in text  # the step line and one group side by side
    log = log_of(out)
    assert [r["step"] for r in log] == [0, 1]
    fields = {"loss", "reward", "acc", "zero_var", "len", "trunc", "kl", "clip", "grad_norm", "tok_s",
              "elapsed_s", "eta_s", "peak_rss_mb"}
    assert fields <= set(log[0])
    assert log[0]["ratio_max"] < 1e-4  # fp32: the sampler's log-probs are the forward's
    mean = sum(r["reward"] for r in log) / 2
    assert f"| all | 2 | {mean:.3f} | {mean:.3f} |" in reward_curves.summarize_runs([out])
    if importlib.util.find_spec("matplotlib"):  # two runs: the loop must not lose `steps`
        reward_curves.plot_runs([out, out], tmp_path / "reward.png", steps=1)
        assert (tmp_path / "reward.png").read_bytes()[:4] == b"\x89PNG"
    ckpt = out / "checkpoint"
    model, _ = load_model(str(ckpt), bridge=str(ckpt / "bridge.safetensors"))  # HF dir + its blocks
    assert model.bridge_config["kind"] == "bridge"
    out_new = tmp_path / "new"
    grpo(tiny, out_new, "--steps", "2", "--train", "new", "--arch", "pmatch")
    assert sorted(p.name for p in (out_new / "checkpoint").iterdir()) == ["bridge.safetensors", "state.pt"]
    run = subprocess.run([sys.executable, "sample.py", "--model", str(tiny), "--bridge",
                          str(out_new / "checkpoint" / "bridge.safetensors"), "--width", "2",
                          "--max-new-tokens", "4", "--prompt", "hi"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0 and "answer 2/2" in run.stdout


def test_sft_trains_only_the_new_parameters_and_its_checkpoint_samples(tiny, tmp_path, fake_reward, capsys):
    base, _ = load_model(str(tiny))
    before = {k: v.clone() for k, v in base.state_dict().items()}
    sft(tiny, tmp_path, "--steps", "2")
    err = capsys.readouterr().err
    assert "problems tried" in err and "groups, by width" in err  # the data statistics
    ckpt = tmp_path / "checkpoint" / "bridge.safetensors"
    model, _ = load_model(str(tiny), bridge=str(ckpt))
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(after[k], v), k  # the base model is bit-identical
    blocks = load_file(str(ckpt))
    assert any(v.abs().max() > 0 for k, v in blocks.items() if "o_proj" in k)  # W_O left zero
    data = [json.loads(line) for line in (tmp_path / "data.jsonl").read_text().splitlines()]
    assert len(data) == 4 and all(len(d["right"]) <= 4 for d in data)


def test_sft_groups_are_near_equal_and_never_a_single_answer():
    rec = lambda k: dict(prompt=[1], right=[[i] for i in range(k)])
    widths = lambda k, w: [len(a) for _, a in train_sft.make_groups([rec(k)], w)]
    assert widths(1, 4) == [] and widths(2, 4) == [2] and widths(4, 4) == [4]
    assert widths(5, 4) == [3, 2] and widths(7, 4) == [4, 3] and widths(8, 4) == [4, 4]
    assert widths(3, 2) == [2]  # the leftover single answer is dropped


def same_tensors(a, b):
    ta, tb = load_file(str(a)), load_file(str(b))
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.mark.parametrize("flags", [["--train", "all"], ["--train", "new", "--kl-coef", "0.5"]],
                         ids=["all", "new-with-kl"])
def test_grpo_resume_ends_bit_equal_to_an_uninterrupted_run(tiny, tmp_path, fake_reward, flags):
    """With --kl-coef the reference is the starting policy: a resumed run must rebuild it as such, not
    from the checkpoint's weights."""
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    grpo(tiny, straight, "--steps", "4", *flags)
    grpo(tiny, stopped, "--steps", "2", *flags)
    grpo(tiny, stopped, "--steps", "4", *flags, "--resume")
    names = ("model.safetensors", "bridge.safetensors") if "all" in flags else ("bridge.safetensors",)
    for name in names:
        assert same_tensors(straight / "checkpoint" / name, stopped / "checkpoint" / name)
    a, b = log_of(straight), log_of(stopped)
    assert [r["loss"] for r in a] == [r["loss"] for r in b] and any(r["groups_updated"] for r in a)
    assert [r["kl"] for r in a] == [r["kl"] for r in b]


def write_data(path, n):
    path.write_text("".join(json.dumps({"question": f"Sam has {i} pens and finds {i + 1} more. How many pens?",
                                        "answer": f"{i} + {i + 1} = {2 * i + 1}\n#### {2 * i + 1}"}) + "\n"
                            for i in range(n)))
    return path


def test_own_data_trains_grpo_and_sft_on_the_files_problems(tiny, tmp_path, fake_reward, monkeypatch):
    data = write_data(tmp_path / "mine.jsonl", 7)
    seen = []
    rollout = train_grpo.sample_sets
    monkeypatch.setattr(train_grpo, "sample_sets", lambda m, t, batch, a: seen.extend(p for _, p in batch) or rollout(m, t, batch, a))
    grpo(tiny, tmp_path / "g", "--data", str(data), "--steps", "2", "--pool", "5")
    file = tasks.load_jsonl(data)
    assert seen and all(p in file[:5] for p in seen) and {p.task for p in seen} == {"gsm8k"}  # the first --pool
    started = json.loads((tmp_path / "g" / "args.json").read_text())
    assert (started["task"], started["data"]) == ("gsm8k", str(data)) and len(log_of(tmp_path / "g")) == 2
    grpo(tiny, tmp_path / "g", "--data", str(data), "--steps", "3", "--pool", "5", "--resume")  # the same run
    sft(tiny, tmp_path / "s", "--data", str(data), "--steps", "1")
    assert [json.loads(x)["question"] for x in (tmp_path / "s" / "data.jsonl").read_text().splitlines()] == \
        [p.question for p in file[:4]]  # --problems 4: the file's first four


@pytest.mark.parametrize("extra, message", [
    (["--task", "add2"], "--data FILE gives the problems: drop --task and --hi"),
    (["--hi", "5"], "--data FILE gives the problems"),
])
def test_data_with_a_task_is_one_usage_line(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as e:
        train_grpo.main(["--out", str(tmp_path / "o"), "--data", "x.jsonl", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and message in err[0]


def test_a_bad_data_file_is_one_line_before_the_model_loads(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "no number"}\n')
    few = write_data(tmp_path / "few.jsonl", 2)
    (tmp_path / "empty.jsonl").write_text("\n")
    for data, message in [(tmp_path / "none.jsonl", "cannot be read as a JSONL file"),
                          (bad, "bad.jsonl, line 1: the answer must end with '#### N'"),
                          (tmp_path / "empty.jsonl", "no problems in it"),
                          (few, "2 problems, fewer than --prompts-per-step")]:
        with pytest.raises(ValueError, match=message):
            train_grpo.main(["--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "o"), "--data", str(data),
                             "--prompts-per-step", "3"])


def test_a_resume_that_changes_what_the_run_computes_is_refused(tiny, tmp_path, fake_reward):
    """The optimizer state a resume loads holds the run's learning rates: a new --lr would be ignored."""
    grpo(tiny, tmp_path, "--steps", "1")
    with pytest.raises(ValueError, match=r"--resume continues .* these differ: --lr 0.5 \(the run has 0.001\)"):
        grpo(tiny, tmp_path, "--steps", "2", "--resume", "--lr", "0.5")
    grpo(tiny, tmp_path, "--steps", "2", "--resume", "--show-every", "0", "--save-every", "1")  # how, not what
    assert [r["step"] for r in log_of(tmp_path)] == [0, 1]


def test_sft_resume_ends_bit_equal_to_an_uninterrupted_run(tiny, tmp_path, fake_reward):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    sft(tiny, straight, "--steps", "3")
    sft(tiny, stopped, "--steps", "1")
    sft(tiny, stopped, "--steps", "3", "--resume")
    assert same_tensors(straight / "checkpoint" / "bridge.safetensors", stopped / "checkpoint" / "bridge.safetensors")


def test_ctrl_c_finishes_the_step_saves_and_exits_130(tiny, tmp_path, fake_reward, monkeypatch):
    real = train_grpo.sample_sets
    calls = []

    def interrupted(*args, **kw):
        calls.append(1)
        if len(calls) == 2:  # Ctrl-C arrives while step 2 is sampling
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kw)
    monkeypatch.setattr(train_grpo, "sample_sets", interrupted)
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a shell's background job
    with pytest.raises(SystemExit) as e:
        grpo(tiny, tmp_path, "--steps", "5", "--save-every", "100")
    assert e.value.code == 130
    state = read_state(tmp_path / "checkpoint" / "state.pt")
    assert state["step"] == 1 and [r["step"] for r in log_of(tmp_path)] == [0, 1]
    assert signal.getsignal(signal.SIGINT) is before  # handler restored


# --- bad input: one clear error before anything slow --------------------------------------------

@pytest.mark.parametrize("script, args, message", [
    (train_grpo, ["--width", "0"], "--width must be >= 1"),
    (train_grpo, ["--width", "1"], "--width must be >= 2 for GRPO"),
    (train_sft, ["--width", "0"], "--width must be >= 1"),
    (train_sft, ["--arch", "none"], "nothing to warm up"),
    (train_grpo, ["--resume"], "holds no checkpoint"),
    (train_grpo, ["--hi", "-1"], "number range"),
    (train_grpo, ["--temperature", "0"], "--temperature must be > 0"),
    (train_grpo, ["--steps", "0"], "--steps must be >= 1"),  # not the default 100
    (train_grpo, ["--lr", "-0.5"], "--lr must be > 0"),  # AdamW would climb the loss
    (train_grpo, ["--lr-new", "0"], "--lr-new must be > 0"),
    (train_sft, ["--lr-new", "-1"], "--lr-new must be > 0"),
    (train_grpo, ["--max-grad-norm", "-1"], "--max-grad-norm must be > 0"),  # would flip the gradient
    (train_sft, ["--max-grad-norm", "nan"], "--max-grad-norm must be > 0"),
    (train_grpo, ["--clip-low", "1"], r"--clip-low must be in \[0, 1\)"),
    (train_grpo, ["--clip-high", "-0.1"], "--clip-high must be >= 0"),
    (train_grpo, ["--kl-coef", "-1"], "--kl-coef must be >= 0"),
    (train_sft, ["--epochs", "0"], "--epochs must be > 0"),
])
def test_bad_arguments_are_one_clear_error_before_the_model_loads(tmp_path, script, args, message):
    # --model points nowhere: the error must come from the argument check, before any loading
    with pytest.raises(ValueError, match=message):
        script.main(["--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "o"), *args])


@pytest.mark.parametrize("script", [train_grpo, train_sft])
def test_an_out_that_is_a_file_is_refused_before_the_model_loads(tmp_path, script):
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        script.main(["--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "f")])
    with pytest.raises(ValueError, match="f is a file, not a directory"):
        script.main(["--model", str(tmp_path / "no-model"), "--out", str(tmp_path / "f" / "run")])


def test_a_bad_choice_is_one_line_and_exit_code_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        train_grpo.main(["--out", str(tmp_path), "--arch", "mlp"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and "invalid choice: 'mlp'" in err[0]


def test_an_error_is_one_line_and_a_nonzero_exit_from_the_command_line(tiny, tmp_path):
    r = subprocess.run([sys.executable, "train_sft.py", "--model", str(tiny), "--out", str(tmp_path),
                        "--problems", "2", "--samples-per-problem", "2", *SMALL],  # the tiny model is never right
                       cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and lines[-1].startswith("error: no problem had two right answers among 2")
    assert "Traceback" not in r.stderr


def test_init_from_a_checkpoint_of_another_base_model_is_a_clear_error(tiny, tmp_path):
    other = make_training_model(tmp_path / "other", seed=9)
    model, _ = load_model(str(other))
    model.add_bridge("bridge", n_heads=2, head_dim=4, verbose=False)
    save_bridge(model, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="made for another base model"):
        train_grpo.main(["--model", str(tiny), "--out", str(tmp_path / "o"),
                         "--init", str(tmp_path / "other.safetensors"), *SMALL])


def test_a_run_directory_in_use_is_not_overwritten(tiny, tmp_path, fake_reward):
    grpo(tiny, tmp_path, "--steps", "1")
    with pytest.raises(ValueError, match="pass --resume"):
        grpo(tiny, tmp_path, "--steps", "1")


def test_with_fewer_groups_than_a_step_takes_an_sft_step_holds_each_group_once(tiny, tmp_path, fake_reward):
    sft(tiny, tmp_path, "--steps", "1", "--groups-per-step", "50")
    records = [json.loads(line) for line in (tmp_path / "data.jsonl").read_text().splitlines()]
    groups = train_sft.make_groups(records, 4)
    assert 0 < log_of(tmp_path)[0]["groups"] == len(groups) < 50


@pytest.mark.parametrize("flags", [["--aggregate", "sequence"], ["--kl-coef", "0.1"], ["--dtype", "bf16"]],
                         ids=["aggregate-sequence", "kl", "bf16"])
def test_grpo_variants_run_and_log_finite_numbers(tiny, tmp_path, fake_reward, flags):
    grpo(tiny, tmp_path, "--steps", "3", "--train", "all", *flags)
    log = log_of(tmp_path)
    assert len(log) == 3 and all(torch.isfinite(torch.tensor([r["loss"], r["grad_norm"], r["kl"]])).all() for r in log)
    # the update is on-policy: the ratio to the sampler's log-probs is 1 up to rounding, which in bf16
    # must stay far inside the clip range (0.2), or the clip would act on rounding alone
    assert max(r["ratio_max"] for r in log) < (2e-2 if "bf16" in flags else 1e-4)
    first = next(i for i, r in enumerate(log) if r["grad_norm"] > 0)  # the first step that moved
    assert first < 2
    if "--kl-coef" in flags:  # the run starts at the reference policy; after an update it has moved
        assert log[0]["kl"] < 1e-6 and log[first + 1]["kl"] > 0


def test_training_at_any_seed_and_sample_py_ask_a_problem_exactly_as_tasks_prompt_ids(tiny):
    """One prompt renderer: the worked examples depend on the problem, not on the run's seed, so
    training (every seed), evaluation and sample.py ask a held-out problem the same way."""
    import argparse
    import sample as sample_cli
    from bridgekit import sample_command, tasks
    _, tok = load_model(str(tiny))
    problem = sample_command.default_problem()
    expected = tasks.prompt_ids(tok, problem)
    for seed in (0, 1, 2):
        args = train_grpo.parse_args(["--out", "unused", "--seed", str(seed)])
        assert training.encode_problems(tok, [problem], args) == [expected]
    cli_args = argparse.Namespace(prompt=None, no_chat=False, task=None)
    assert sample_cli.prompts_of(cli_args, tok)[1] == [expected]
