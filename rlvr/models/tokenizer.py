"""The driver's tokenizer for a model folder, without importing transformers' model code."""
from __future__ import annotations


def load_tokenizer(model_dir: str, built: bool = False):
    """The tokenizer of `model_dir`.

    built: the folder holds a tiny model rlvr built (rlvr/models/tiny.py), whose tokenizer is a
    plain `tokenizers` file: it is loaded with TokenizersBackend, the class AutoTokenizer picks
    for it. AutoTokenizer's import pulls in transformers' model machinery (about 5 CPU
    seconds on a 2-core machine), which the driver otherwise never needs. Any other folder
    (a given model.path) goes through AutoTokenizer, which knows every model's special cases.
    """
    if built:
        from transformers import TokenizersBackend

        return TokenizersBackend.from_pretrained(model_dir)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)
