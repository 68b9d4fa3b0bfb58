"""Nothing lost, nothing silent: results files are written whole and never replaced unasked, a run
directory belongs to one training script, every error is one line (Ctrl-C, a damaged checkpoint, a
full disk), what the arguments alone decide is refused before the model loads, a width that cannot
fit is refused with its size, and no flag is abbreviated (a report's --check checks the stored
summaries it reads: test_3_nothing_lost_check.py). Refusals are in-process and name a model that
does not exist, so a check that came after the model load would fail on the load instead; a full
disk is a write that raises."""
import errno
import json
import os
import signal
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

from bridgekit import checks, cli
import evaluate
from bridgekit import fast
import sample
import train_grpo
import train_sft
from tiny import make_tiny_model

ROOT = Path(__file__).resolve().parents[2]
for folder in ("experiments/bench", "experiments/studies", "tools"):  # the scripts beside the method
    sys.path.insert(0, str(ROOT / folder))
import attention_map  # noqa: E402
import block_cost  # noqa: E402
import memory  # noqa: E402
from bridgekit import readme_section  # noqa: E402
import report  # noqa: E402
import siblings_report  # noqa: E402

NO_MODEL = "/nonexistent/model"  # loading it would fail: a refusal must come first


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path, _ = make_tiny_model(tmp_path_factory.mktemp("llama"), "llama", seed=3, max_position_embeddings=1024)
    return path


def one_line_exit(main, capsys):
    """(exit code, the error's line) of cli.run(main): one non-empty line, after what the command
    printed as it went (the model it loaded), and no traceback."""
    with pytest.raises(SystemExit) as e:
        cli.run(main)
    err = capsys.readouterr().err.strip()
    message = err.splitlines()[-1] if e.value.code == 130 else str(e.value.code)
    assert message and "\n" not in message and "Traceback" not in err, err
    return e.value.code, message


def full_disk(monkeypatch, after=10):
    """Every Path.write_text into a temporary file writes `after` characters, then fails as a full disk."""
    real = Path.write_text

    def write_text(self, data, *args, **kwargs):
        if self.name.startswith(".") and ".tmp" in self.name:
            real(self, data[:after], *args, **kwargs)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data, *args, **kwargs)
    monkeypatch.setattr(Path, "write_text", write_text)

# -----------------------------------------------------------------------------
# 1. results files: whole or not at all, and never replaced unasked


def test_a_full_disk_leaves_the_previous_file_whole_and_the_error_names_it(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    path.write_text('{"old": true}\n')
    full_disk(monkeypatch)
    with pytest.raises(OSError, match=f"{path}: not written .No space left on device.") as e:
        cli.write_text(path, json.dumps({"new": list(range(1000))}))
    assert "\n" not in str(e.value)
    assert path.read_text() == '{"old": true}\n' and os.listdir(tmp_path) == ["results.json"]


def test_an_atomic_write_keeps_the_usual_file_mode(tmp_path):
    cli.write_text(tmp_path / "a.json", "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_evaluate_on_a_full_disk_keeps_the_old_results(tiny, tmp_path, monkeypatch):
    out = tmp_path / "base.json"
    out.write_text('{"old": true}\n')
    full_disk(monkeypatch)
    with pytest.raises(OSError, match=f"{out}: not written"):
        evaluate.main(["--model", str(tiny), "--problems", "2", "--n", "2", "--widths", "1", "--max-new-tokens", "2",
                       "--shots", "0", "--out", str(out), "--overwrite"])
    assert out.read_text() == '{"old": true}\n' and os.listdir(tmp_path) == ["base.json"]


def test_evaluate_refuses_an_existing_out_before_the_model_loads(tmp_path):
    out = tmp_path / "base.json"
    out.write_text("{}")
    with pytest.raises(ValueError, match="already exists; pass --overwrite to replace it"):
        evaluate.main(["--model", NO_MODEL, "--out", str(out)])
    with pytest.raises(OSError, match="nonexistent"):  # with --overwrite it goes on, to the model load
        evaluate.main(["--model", NO_MODEL, "--out", str(out), "--overwrite"])
    assert out.read_text() == "{}"


def test_the_tools_refuse_an_existing_results_file(tmp_path):
    old = tmp_path / "old.json"
    old.write_text("{}")
    for main, argv in [(memory.main, ["--out", str(old)]), (block_cost.main, ["--out", str(old)]),
                       (report.main, ["--print", "--json", str(old)]),
                       (siblings_report.main, ["--check", "--json", str(old)])]:
        with pytest.raises(ValueError, match="already exists; pass --overwrite"):
            main(argv)
    assert old.read_text() == "{}"


def test_the_figure_tools_refuse_an_existing_figure_unless_overwrite(tmp_path):
    """A figure is a result too: every command that draws one refuses an existing file in one line,
    before it loads a model or reads a run, and goes on with --overwrite (here: to the model or run
    that does not exist)."""
    old = tmp_path / "old.png"
    old.write_bytes(b"a figure")
    reward_curves = __import__("reward_curves")
    positive_control = __import__("positive_control")
    commands = [
        (evaluate.main, ["--plot", str(tmp_path / "none.json"), "--out", str(old)], FileNotFoundError),
        (attention_map.main, ["--model", NO_MODEL, "--out", str(old)], OSError),
        (reward_curves.main, [str(tmp_path / "no_run"), "--out", str(old)], (OSError, ValueError)),
        (positive_control.main, ["--from-json", "--out", str(tmp_path / "none.json"), "--plot", str(old)],
         (OSError, ValueError)),
    ]
    for main, argv, after in commands:
        with pytest.raises(ValueError, match=f"{old} already exists; pass --overwrite to replace it"):
            main(argv)
        with pytest.raises(after) as e:  # with --overwrite the figure check passes: what fails is the input
            main(argv + ["--overwrite"])
        assert "already exists" not in str(e.value)
    assert old.read_bytes() == b"a figure"


def test_a_readme_section_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text("head\n<!-- b -->\nold\n<!-- e -->\ntail\n")
    full_disk(monkeypatch, after=3)
    with pytest.raises(OSError, match="README.md: not written"):
        readme_section.update(readme, "<!-- b -->\nnew\n<!-- e -->", "<!-- b -->", "<!-- e -->",
                              check=False, what="x", command="y")
    assert readme.read_text() == "head\n<!-- b -->\nold\n<!-- e -->\ntail\n"


FAKE_PYTHON = r'''#!/usr/bin/env bash
[ "$1" = -c ] && { echo "fake machine"; exit 0; }
shift  # evaluate.py: the real argument checks (they refuse an existing --out), then the file
exec "$REAL_PYTHON" -c 'import sys, evaluate; from bridgekit import eval_args; a = evaluate.parse_args(sys.argv[1:]); eval_args.check_args(a); open(a.out, "w").write("{}")' "$@"
'''


def test_the_stages_evaluate_over_their_own_leftover_tmp_file(tmp_path):
    """experiments/studies/stages.sh writes $name.json.tmp, then renames it: a .tmp left by a stopped sitting is the
    stage's own, and the real evaluate.py argument checks let the stage replace it."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "python").write_text(FAKE_PYTHON)
    (bin_ / "python").chmod(0o755)
    res = tmp_path / "res"
    res.mkdir()
    (res / "base.json.tmp").write_text("left by a stopped sitting")
    script = (f"set -euo pipefail; source {ROOT / 'experiments' / 'studies' / 'stages.sh'}; RES={res}; DEVICE=cpu; "
              "EVAL=(--problems 2 --shots 0); evaluate base --model /nowhere")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "REAL_PYTHON": sys.executable,
                               "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert (res / "base.json").read_text() == "{}" and not (res / "base.json.tmp").exists()

# -----------------------------------------------------------------------------
# 2. a run directory belongs to one script


def run_dir(tmp_path, started):
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    torch.save(dict(step=3), out / "checkpoint" / "state.pt")
    (out / "args.json").write_text(json.dumps(started))
    (out / "log.jsonl").write_text('{"step": 0}\n')
    return out


@pytest.mark.parametrize("started", [dict(script="train_sft.py", samples_per_problem=8),
                                     dict(samples_per_problem=8)])  # (a run from before "script")
def test_grpo_refuses_to_resume_a_warm_up_run(tmp_path, started):
    out = run_dir(tmp_path, started)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=f"{out} holds a train_sft.py run, not a train_grpo.py one"):
        train_grpo.main(["--model", NO_MODEL, "--resume", "--out", str(out)])
    with pytest.raises(ValueError, match="holds a train_sft.py run"):  # nor a fresh run in it
        train_grpo.main(["--model", NO_MODEL, "--out", str(out)])
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_the_warm_up_refuses_to_resume_a_grpo_run(tmp_path):
    out = run_dir(tmp_path, dict(script="train_grpo.py", prompts_per_step=8))
    before = (out / "args.json").read_bytes()
    with pytest.raises(ValueError, match="holds a train_grpo.py run, not a train_sft.py one"):
        train_sft.main(["--model", NO_MODEL, "--resume", "--out", str(out)])
    assert (out / "args.json").read_bytes() == before


def test_a_run_records_its_script(tmp_path):
    from bridgekit import training
    for module, script in ((train_grpo, "train_grpo.py"), (train_sft, "train_sft.py")):
        args = module.parse_args(["--out", str(tmp_path / script)])
        training.start_run(args)
        assert json.loads((tmp_path / script / "args.json").read_text())["script"] == script

# -----------------------------------------------------------------------------
# 3. every error is one line


def test_a_truncated_state_pt_is_one_line_naming_it_before_the_model_loads(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    state = out / "checkpoint" / "state.pt"
    torch.save(dict(step=3, optimizer={"x": torch.zeros(1000)}), state)
    state.write_bytes(state.read_bytes()[:2000])
    code, message = one_line_exit(lambda: train_grpo.main(["--model", NO_MODEL, "--resume", "--out", str(out)]), capsys)
    assert code != 0 and message.startswith(f"error: {state} is damaged") and "new --out" in message
    from bridgekit import checkpoint  # and if it is read anyway, the same line (never the zip reader's traceback)
    with pytest.raises(ValueError, match=f"{state} is damaged"):
        checkpoint.load_checkpoint(out, lambda *a: pytest.fail("the model must not load"))


def test_a_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_last_one(tiny, tmp_path, monkeypatch, capsys):
    import safetensors.torch
    from bridgekit.checkpoint import write_checkpoint
    from model import load_model
    model, _ = load_model(str(tiny))
    model.add_bridge("bridge", n_heads=2, head_dim=8, verbose=False)
    optimizer = torch.optim.AdamW(model.bridge_parameters())
    out = tmp_path / "run"
    write_checkpoint(out, model, optimizer, 0, Namespace(a=1), "new")
    good = {p.name: p.read_bytes() for p in (out / "checkpoint").iterdir()}

    def no_space(*args, **kwargs):  # what safetensors raises when its write fails
        raise safetensors.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    monkeypatch.setattr(safetensors.torch, "save_file", no_space)
    code, message = one_line_exit(lambda: write_checkpoint(out, model, optimizer, 1, Namespace(a=1), "new"), capsys)
    assert code != 0 and message.startswith(f"error: {out / 'checkpoint.tmp' / 'bridge.safetensors'}: not written")
    assert "No space left on device" in message and "the previous checkpoint is unchanged" in message
    assert sorted(os.listdir(out)) == ["checkpoint"]
    assert {p.name: p.read_bytes() for p in (out / "checkpoint").iterdir()} == good


def test_a_second_ctrl_c_in_training_is_one_line_and_exit_130(capsys):
    def main():
        with cli.GracefulStop() as stop:
            signal.raise_signal(signal.SIGINT)
            assert stop.requested  # the first only asks to stop after the step
            signal.raise_signal(signal.SIGINT)
            pytest.fail("the second Ctrl-C stops at once")
    with pytest.raises(SystemExit) as e:
        cli.run(main)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 130 and "Traceback" not in "".join(err)
    assert err[-1].startswith("stopped at once by a second Ctrl-C") and "--resume" in err[-1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def interrupted(*args, **kwargs):
    raise KeyboardInterrupt  # Ctrl-C while the answers are sampled


@pytest.mark.parametrize("use_fast", [False, True])  # sample.sample by default, fast.sample with --fast
def test_ctrl_c_in_evaluate_is_one_line_exit_130_and_writes_nothing(tiny, tmp_path, monkeypatch, capsys, use_fast):
    monkeypatch.setattr(fast if use_fast else sample, "sample", interrupted)
    code, message = one_line_exit(lambda: evaluate.main(["--model", str(tiny), "--problems", "2", "--n", "2", "--widths", "1",
                                                         "--shots", "0", "--out", str(tmp_path / "r.json")]
                                                        + ["--fast"] * use_fast), capsys)
    assert (code, message) == (130, "stopped by Ctrl-C") and os.listdir(tmp_path) == []


@pytest.mark.parametrize("use_fast", [False, True])
def test_ctrl_c_in_sample_is_one_line_exit_130(tiny, monkeypatch, capsys, use_fast):
    monkeypatch.setattr(fast if use_fast else sample, "sample", interrupted)
    assert one_line_exit(lambda: sample.main(["--model", str(tiny), "--prompt", "hi"] + ["--fast"] * use_fast),
                         capsys) == (130, "stopped by Ctrl-C")

# -----------------------------------------------------------------------------
# 4. what the arguments alone decide, before the model loads


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_a_bad_bridge_or_init_path_is_refused_before_the_model_loads(tmp_path, kind):
    path = tmp_path / "blocks.safetensors"
    if kind == "directory":
        path.mkdir()
    error, match = (FileNotFoundError, "no such Bridge checkpoint") if kind == "missing" else (ValueError, "is a directory")
    for main, argv in [(sample.main, ["--bridge", str(path)]),
                       (attention_map.main, ["--bridge", str(path), "--out", str(tmp_path / "a.png")]),
                       (evaluate.main, ["--bridge", str(path), "--out", str(tmp_path / "r.json")]),
                       (train_grpo.main, ["--init", str(path), "--out", str(tmp_path / "run")])]:
        with pytest.raises(error, match=match):
            main(["--model", NO_MODEL, *argv])


def test_a_pool_larger_than_the_split_is_refused_before_the_model_loads(tmp_path):
    from bridgekit import tasks
    have = tasks.question_count("add1", "train")
    with pytest.raises(ValueError, match=f"--pool 100000: task 'add1' has only {have} training questions"):
        train_grpo.main(["--model", NO_MODEL, "--task", "add1", "--pool", "100000", "--out", str(tmp_path / "run")])


def test_sampling_a_set_level_task_at_width_1_is_refused():
    with pytest.raises(ValueError, match="'distinct' is scored as a group: at --width 1"):
        sample.main(["--model", NO_MODEL, "--task", "distinct", "--width", "1"])

# -----------------------------------------------------------------------------
# 5. a width that cannot fit


def test_a_width_that_cannot_fit_is_refused_with_its_size(tiny, monkeypatch, capsys):
    from model import load_model
    model, tok = load_model(str(tiny))
    cache, logits = checks.call_bytes(model.config, 1, 1000, 3 + 4, torch.float32)
    # 2 layers x (keys, values) x 2 kv heads x head_dim 16 x 7 columns x 4 bytes per row; fp32 logits twice
    assert cache == 1001 * 2 * 2 * 2 * 16 * 7 * 4 and logits == 1000 * 272 * 8
    monkeypatch.setattr(checks, "available_bytes", lambda device: 2 ** 20)  # a machine with 1 MiB free
    with pytest.raises(ValueError, match=r"^1000 rows of 7 tokens need at least 5.5 MiB \(KV cache 3.4 MiB, "
                                         r"logits 2.1 MiB\), more than the 1.0 MiB available on cpu"):
        checks.check_sample_call(model, [[5, 6, 7]], width=1000, max_new_tokens=4)
    checks.check_sample_call(model, [[5, 6, 7]], width=4, max_new_tokens=4)  # what fits passes
    code, message = one_line_exit(lambda: sample.main(["--model", str(tiny), "--prompt", "hi", "--width", "1000"]), capsys)
    assert code != 0 and "MiB available on cpu" in message


@pytest.mark.skipif(not Path("/proc/meminfo").is_file(), reason="needs Linux's /proc")
def test_the_available_memory_is_read():
    total = next(int(line.split()[1]) * 1024 for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    assert 0 < checks.available_bytes("cpu") <= total

# -----------------------------------------------------------------------------
# 6. no abbreviated flags


def test_an_abbreviated_flag_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        train_sft.parse_args(["--out", str(tmp_path), "--lr", "1e-3"])  # not --lr-new
    assert e.value.code == 2 and "unrecognized arguments: --lr 1e-3" in capsys.readouterr().err
    assert train_sft.parse_args(["--out", str(tmp_path), "--lr-new", "1e-3"]).lr_new == 1e-3


def test_every_command_line_uses_the_shared_parser():
    scripts = [p for folder in ("experiments/bench", "experiments/studies", "tools", "bridgekit") for p in ROOT.glob(f"{folder}/*.py")]
    sources = [p for p in [*ROOT.glob("*.py"), *scripts] if p.name != "cli.py"]
    plain = [p.name for p in sources if "ArgumentParser(" in p.read_text()]
    assert plain == [] and not cli.Parser().allow_abbrev
