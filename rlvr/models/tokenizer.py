"""The driver's tokenizer for a model folder, without importing transformers' model code."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence


class BuiltTokenizer:
    """The tokenizer of a model rlvr built (rlvr/models/tiny.py) on the `tokenizers` library
    alone: what the driver asks of a tokenizer (`tok(text, add_special_tokens)["input_ids"]`,
    `decode`, the special token ids, `chat_template`), giving the ids AutoTokenizer gives.

    The driver loads its tokenizer while the actors import torch and transformers on the same
    cores; importing transformers for it cost the driver about 0.8 CPU seconds more there
    (tools/bench/startup.py).
    """

    def __init__(self, model_dir: str):
        from tokenizers import Tokenizer

        folder = Path(model_dir)
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = json.loads((folder / "tokenizer_config.json").read_text())
        self.eos_token_id = self._token_id(config.get("eos_token"))
        self.pad_token_id = self._token_id(config.get("pad_token"))
        self.bos_token_id = self._token_id(config.get("bos_token"))
        self.padding_side = config.get("padding_side", "right")
        self.model_max_length = config.get("model_max_length")
        self.chat_template = config.get("chat_template")

    def _token_id(self, token) -> Optional[int]:
        if isinstance(token, dict):  # an AddedToken written out
            token = token.get("content")
        return None if token is None else self._tokenizer.token_to_id(token)

    def __call__(self, text: str, add_special_tokens: bool = True) -> Dict[str, List[int]]:
        return {"input_ids": self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)


def load_tokenizer(model_dir: str, built: bool = False):
    """The tokenizer of `model_dir`.

    built: the folder holds a tiny model rlvr built (rlvr/models/tiny.py), whose tokenizer is a
    plain `tokenizers` file: it is read by BuiltTokenizer, without transformers. Any other
    folder (a given model.path) goes through AutoTokenizer, which knows every model's special
    cases (its import pulls in transformers' model machinery: about 5 CPU seconds on a 2-core
    machine).
    """
    if built:
        return BuiltTokenizer(model_dir)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)
