"""The driver's tokenizer: for a model rlvr built, the same tokenizer AutoTokenizer gives,
loaded without transformers' model code; and the controller module imports no torch, so that
`rlvr train` starts Ray before paying for it."""
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
    assert type(ours) is type(auto)
    for text in ["12+34=", "99+1=100;", "Q: what is 7*8?\nA:", "", "  spaces  ", "unicode é ✓"]:
        for special in (True, False):
            assert ours(text, add_special_tokens=special)["input_ids"] == auto(text, add_special_tokens=special)["input_ids"]
    for attr in ("eos_token_id", "pad_token_id", "bos_token_id", "padding_side", "chat_template", "model_max_length"):
        assert getattr(ours, attr) == getattr(auto, attr), attr
    assert ours.decode([5, 6, 7]) == auto.decode([5, 6, 7])


def test_the_driver_loads_it_without_model_code_and_imports_the_loop_without_torch(tiny):
    code = (f"import sys; import rlvr.controller.loop; assert 'torch' not in sys.modules, 'torch'; "
            f"from rlvr.models.tokenizer import load_tokenizer; load_tokenizer({tiny!r}, built=True); "
            "assert 'transformers.modeling_utils' not in sys.modules, 'model code'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
