"""The driver's tokenizer: for a model rlvr built, the same ids, special tokens and text as
AutoTokenizer's, loaded without transformers; and the controller module imports no torch, so
that `rlvr train` starts Ray before paying for it."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from rlvr.models.tiny import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny")))


def test_a_built_models_tokenizer_matches_autotokenizer(tiny):
    from transformers import AutoTokenizer

    from rlvr.models.tokenizer import load_tokenizer

    ours, auto = load_tokenizer(tiny, built=True), AutoTokenizer.from_pretrained(tiny)
    for text in ["12+34=", "99+1=100;", "Q: what is 7*8?\nA:", "", "  spaces  ", "unicode é ✓", "<eos>x<pad>"]:
        for special in (True, False):
            assert ours(text, add_special_tokens=special)["input_ids"] == auto(text, add_special_tokens=special)["input_ids"]
        assert ours(text)["input_ids"] == auto(text)["input_ids"]
    for attr in ("eos_token_id", "pad_token_id", "bos_token_id", "padding_side", "chat_template", "model_max_length"):
        assert getattr(ours, attr) == getattr(auto, attr), attr
    assert (ours.eos_token_id, ours.pad_token_id) == (1, 0)  # not None == None
    for ids in ([5, 6, 7], [5, 6, 1, 0, 7], [], [2, 40]):
        assert ours.decode(ids) == auto.decode(ids)
        assert ours.decode(ids, skip_special_tokens=True) == auto.decode(ids, skip_special_tokens=True)


def test_the_driver_loads_it_without_transformers_and_imports_the_loop_without_torch(tiny):
    code = (f"import sys; import rlvr.controller.loop; assert 'torch' not in sys.modules, 'torch'; "
            f"from rlvr.models.tokenizer import load_tokenizer; load_tokenizer({tiny!r}, built=True); "
            "assert 'transformers' not in sys.modules, 'transformers'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
