"""Tiny random HF-style models written to a directory, for offline tests.

`make_tiny_model(path, arch)` saves a randomly initialised transformers model (config.json +
safetensors) with a byte-level tokenizer (256 byte tokens + 3 ChatML specials, no merges) and a
ChatML chat template, i.e. exactly the files `load_model` reads from a real checkpoint.
"""
import json

import torch

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2; eos = 2
VOCAB = 272  # 3 specials + 256 bytes, rounded up; ids past 258 are never produced by the tokenizer
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

SHAPES = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=112, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              bos_token_id=1, eos_token_id=2, pad_token_id=0)


def write_tokenizer(path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel
    alphabet = ByteLevel.alphabet()  # the 256 printable stand-ins for bytes
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in sorted(alphabet):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    tok.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps(dict(
        chat_template=CHATML, eos_token="<|im_end|>", bos_token=None, pad_token="<|endoftext|>")))


def hf_config(arch, **overrides):
    import transformers
    cls = dict(llama=transformers.LlamaConfig, qwen2=transformers.Qwen2Config,
               qwen3=transformers.Qwen3Config)[arch]
    return cls(**{**SHAPES, **overrides})


def randomize(model, seed):
    """Weights large enough that logits are far from uniform (HF's 0.02 init hides bugs)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(1 + 0.2 * noise if name.endswith("norm.weight") else 0.15 * noise)


def make_tiny_model(path, arch="llama", seed=0, shard=False, **overrides):
    """Save a random `arch` model + tokenizer into path; returns (path, the HF model in fp32)."""
    import transformers
    path.mkdir(parents=True, exist_ok=True)
    config = hf_config(arch, **overrides)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    randomize(model, seed)
    if config.tie_word_embeddings:
        model.tie_weights()
    model.save_pretrained(path, max_shard_size="100KB" if shard else "10GB")
    write_tokenizer(path)
    return path, model.eval()


def add_random_bridge(model, seed=0, scale=0.3, kind="bridge"):
    """Add `kind` blocks and push them away from their zero init, so the siblings really interact."""
    model.add_bridge(kind, n_heads=2, head_dim=8, verbose=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.bridge_parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


# --- training on the tiny model: short answers, and a reward that gives mixed groups -------------

MANY_EOS = [2] + list(range(40, 100))  # many end ids: answers of a few tokens, some rows end early
# flags that keep a training run on the tiny model small: its byte-level tokenizer makes long
# prompts, so no worked examples
SMALL = ["--shots", "0", "--max-new-tokens", "6", "--heads", "2", "--head-dim", "4", "--show-every", "1"]


def make_training_model(path, seed):
    """A tiny llama with a 1024-token context whose generations end at any of MANY_EOS."""
    make_tiny_model(path, "llama", seed=seed, max_position_embeddings=1024)
    config = json.loads((path / "generation_config.json").read_text())
    (path / "generation_config.json").write_text(json.dumps(dict(config, eos_token_id=MANY_EOS)))
    return path


def even_length_reward(text, problem):
    """The tiny model never solves a problem; this rule (even length = right) gives mixed groups."""
    return float(len(text) % 2 == 0)


def even_length_group_reward(texts, problem, finished=None, credit="answer"):
    """even_length_reward of each answer of a group (GRPO scores a group with tasks.group_reward)."""
    return [even_length_reward(t, problem) for t in texts]


def tokens_alive(seed, N, T, vocab=259):
    """Random token ids (N, T) past the specials, all alive."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, vocab, (N, T), generator=g), torch.ones(N, T, dtype=torch.bool)


def logits(model, tokens, width, alive):
    """The model's logits (N, T, V) without gradients."""
    with torch.no_grad():
        return model(tokens, width=width, alive=alive)
