"""
The tokenizer of a model directory: tokenizer.json through the `tokenizers` library, the chat
template from tokenizer_config.json rendered with jinja2 (as transformers renders it), and every
token id that ends a generation.

    tok = Tokenizer("path/to/model_dir")
    ids = tok.encode_chat([{"role": "user", "content": "Hi"}])   # the chat template, then ids
"""
import json
from pathlib import Path


class Tokenizer:
    """tokenizer.json through the `tokenizers` library, plus the chat template and the EOS ids."""

    def __init__(self, model_dir, config=None):
        from tokenizers import Tokenizer as HFTokenizer
        model_dir = Path(model_dir)
        path = model_dir / "tokenizer.json"
        if not path.exists():
            raise FileNotFoundError(f"{model_dir}: no tokenizer.json")
        self.tok = HFTokenizer.from_file(str(path))
        tc_path = model_dir / "tokenizer_config.json"
        self.tokenizer_config = json.loads(tc_path.read_text()) if tc_path.exists() else {}
        self.chat_template = self.tokenizer_config.get("chat_template")
        if isinstance(self.chat_template, list):  # some configs hold several named templates
            self.chat_template = {t["name"]: t["template"] for t in self.chat_template}.get("default")
        if self.chat_template is None and (model_dir / "chat_template.jinja").exists():
            self.chat_template = (model_dir / "chat_template.jinja").read_text()
        self.eos_ids = self._eos_ids(model_dir, config)
        if not self.eos_ids:
            raise ValueError(f"{model_dir}: no eos_token_id in config.json, generation_config.json "
                             "or tokenizer_config.json")
        self.eos_id = self.eos_ids[0]

    def special(self, name):
        tok = self.tokenizer_config.get(name)
        return tok.get("content") if isinstance(tok, dict) else tok

    def _eos_ids(self, model_dir, config):
        """Every id that ends a generation: from generation_config, config and tokenizer_config."""
        ids = []
        gen_path = model_dir / "generation_config.json"
        sources = [json.loads(gen_path.read_text()).get("eos_token_id") if gen_path.exists() else None,
                   config.eos_token_id if config is not None else None]
        eos_text = self.special("eos_token")
        if eos_text is not None:
            sources.append(self.tok.token_to_id(eos_text))
        for s in sources:
            for i in (s if isinstance(s, list) else [s]):
                if i is not None and i not in ids:
                    ids.append(int(i))
        return ids

    def encode(self, text, add_special_tokens=True):
        return self.tok.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids, skip_special_tokens=True):
        return self.tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def encode_chat(self, messages):
        """The ids of a chat rendered with the template, ready for the assistant's turn.

        No special tokens are added on top: the template writes every one the model expects.
        """
        return self.encode(self.chat(messages), add_special_tokens=False)

    def chat(self, messages, add_generation_prompt=True):
        """Render the chat template (jinja2, sandboxed, the same environment settings as HF)."""
        if not self.chat_template:
            raise ValueError("this tokenizer has no chat template; use chat=False")
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            raise ValueError(f"chat template: {message}")
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                            extensions=["jinja2.ext.loopcontrols"])
        env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
        env.globals["raise_exception"] = raise_exception
        specials = {k: self.special(k) for k in ("bos_token", "eos_token", "pad_token", "unk_token")}
        return env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt, **specials)
