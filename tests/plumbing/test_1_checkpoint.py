"""Bridge checkpoints (bridgekit/checkpoint.py): a round trip gives the same logits, a bf16 copy loads,
the base model is named by a fingerprint, and a wrong or damaged file is a one-line error; sample.py
runs a checkpoint with its blocks on and off."""
import json
from pathlib import Path

import pytest
import torch

from bridgekit.checkpoint import convert_bridge, fingerprint, save_bridge
from model import load_model
from tiny import add_random_bridge, logits, make_tiny_model, tokens_alive


def test_checkpoint_round_trip_gives_the_same_logits(tiny_dir, tmp_path):
    model, _ = load_model(str(tiny_dir))  # fp32, the dtype checkpoints are stored in
    add_random_bridge(model, seed=2)
    save_bridge(model, tmp_path / "b.safetensors")
    loaded, _ = load_model(str(tiny_dir), bridge=tmp_path / "b.safetensors")
    assert loaded.bridge_config == model.bridge_config
    x, alive = tokens_alive(4, 6, 5)
    assert torch.equal(logits(loaded, x, 3, alive), logits(model, x, 3, alive))


def test_a_bf16_copy_of_a_checkpoint_loads_with_its_metadata_and_rounded_weights(tiny_dir, tmp_path):
    model, _ = load_model(str(tiny_dir))
    add_random_bridge(model, seed=2)
    save_bridge(model, tmp_path / "b.safetensors")
    convert_bridge(tmp_path / "b.safetensors", tmp_path / "b16.safetensors", "bf16")
    half = (tmp_path / "b16.safetensors").stat().st_size
    assert half < 0.6 * (tmp_path / "b.safetensors").stat().st_size
    loaded, _ = load_model(str(tiny_dir), bridge=tmp_path / "b16.safetensors")
    assert loaded.bridge_config == model.bridge_config
    for p, q in zip(loaded.bridge_parameters(), model.bridge_parameters()):
        assert torch.equal(p, q.to(torch.bfloat16).float())


def test_checkpoint_for_another_base_model_is_a_clear_error(bridged, tmp_path):
    model, _ = bridged
    save_bridge(model, tmp_path / "b.safetensors")
    other, _ = make_tiny_model(tmp_path / "other", "llama", seed=8)  # same shapes, other weights
    with pytest.raises(ValueError, match="made for another base model") as e:
        load_model(str(other), bridge=tmp_path / "b.safetensors")
    assert "committed" not in str(e.value)


def test_a_checkpoint_missing_metadata_is_a_clear_error(bridged, tiny_dir, tmp_path):
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(1)}, str(tmp_path / "b.safetensors"), metadata={"format": "bridge-ref/1"})
    with pytest.raises(ValueError, match="a damaged Bridge checkpoint .no kind, n_heads, head_dim"):
        load_model(str(tiny_dir), bridge=tmp_path / "b.safetensors")


def test_a_committed_bridge_on_another_model_says_it_needs_the_default_model(tmp_path):
    """The hub's SmolLM2 is not the default model's dequantized weights: the error says what to do."""
    tiny, _ = make_tiny_model(tmp_path / "tiny", "llama", seed=8)
    with pytest.raises(ValueError, match=r"the committed Bridges need the default model \(leave out --model\)$"):
        load_model(str(tiny), bridge=Path(__file__).resolve().parents[2] / "bridges" / "default.safetensors")


def test_corrupt_or_foreign_checkpoint_is_a_clear_error(bridged, tiny_dir, tmp_path):
    from safetensors.torch import save_file
    model, _ = bridged
    save_bridge(model, tmp_path / "b.safetensors")
    data = (tmp_path / "b.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:100])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(str(tiny_dir), bridge=tmp_path / "cut.safetensors")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not a Bridge checkpoint"):
        load_model(str(tiny_dir), bridge=tmp_path / "plain.safetensors")


def test_cli_runs_a_checkpoint_on_and_off_and_records_it(bridged, tiny_dir, tmp_path, capsys):
    import sample
    model, _ = bridged
    ckpt = tmp_path / "b.safetensors"
    save_bridge(model, ckpt)
    runs = {}
    for flags in ([], ["--no-bridge"]):
        sample.main(["--model", str(tiny_dir), "--bridge", str(ckpt), "--width", "3", "--max-new-tokens", "6",
                     "--prompt", "What is 2 + 3?", "--json", *flags])
        out = capsys.readouterr()
        assert "new parameters" in out.err  # the size of the blocks is printed at start-up
        runs[bool(flags)] = json.loads(out.out)
    on, off = runs[False], runs[True]
    assert on["bridge"] == str(ckpt) and on["bridge_config"]["kind"] == "bridge"
    assert on["bridge_on"] and not off["bridge_on"]
    assert on["results"] != off["results"]  # same seed; the blocks change what is sampled


def test_the_fingerprint_sees_a_change_in_any_one_tensor_and_not_the_dtype(tiny_dir):
    """Bridge checkpoints name their base model by this fingerprint: two models of one shape that
    differ in any single tensor (one layer's MLP, a norm, ...) must not share it."""
    model, _ = load_model(str(tiny_dir))
    reference = fingerprint(model)
    assert fingerprint(load_model(str(tiny_dir), dtype=torch.bfloat16)[0]) == reference
    for name, tensor in model.state_dict().items():
        saved = tensor.clone()
        with torch.no_grad():
            tensor.mul_(1.05).add_(0.01)
        assert fingerprint(model) != reference, name
        with torch.no_grad():
            tensor.copy_(saved)
    assert fingerprint(model) == reference


def test_the_checkpoint_format_knows_every_kind_of_block():
    from bridge import BLOCKS
    from bridgekit.checkpoint import BLOCK_KINDS
    assert set(BLOCK_KINDS) == set(BLOCKS)
