"""The README's short quickstart prints what the README says it prints.

The command and its figures are read from README.md itself, so the two cannot drift apart:
the test runs the command (in a fresh output folder, so the warm-up runs too: about 20 s on a
quiet 2-core machine) and compares the `done:` line's held-out accuracies and the warm-up's
validation accuracy with the README's. Runs are bit-for-bit reproducible on a fixed seed. The
same run checks that every metric it writes is declared in rlvr/tracking/metric_names.py.
"""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.tracking.metric_names import undeclared

ROOT = Path(__file__).resolve().parents[2]
# In README.md: a line `$ .venv/bin/rlvr train recipes/quickstart.yaml steps=...` in a code block,
# later the `[rlvr] done: held-out greedy gt accuracy A -> B (best C)` line it printed, and
# beside it "validation accuracy V" for the warm-up.
COMMAND = re.compile(r"^\$ \.venv/bin/rlvr (train recipes/quickstart\.yaml steps=[^\n]*)$", re.M)
DONE = re.compile(r"done: held-out greedy gt accuracy (\d\.\d{3}) -> (\d\.\d{3}) \(best (\d\.\d{3})\)")
VALIDATION = re.compile(r"validation accuracy (\d\.\d{3})")


def readme_short_form():
    """(argv after `rlvr`, (initial, final, best), warm-up validation) as README.md quotes them."""
    text = (ROOT / "README.md").read_text()
    command = COMMAND.search(text)
    assert command, "README.md: no `$ .venv/bin/rlvr train recipes/quickstart.yaml steps=...` line"
    rest = text[command.end():]
    done, validation = DONE.search(rest), VALIDATION.search(rest)
    assert done and validation, "README.md: the short quickstart's `done:` line or its validation accuracy is missing"
    return shlex.split(command.group(1)), done.groups(), validation.group(1)


def test_the_readme_quotes_a_short_quickstart():
    argv, figures, validation = readme_short_form()
    assert argv[:2] == ["train", "recipes/quickstart.yaml"] and any(a.startswith("steps=") for a in argv)
    assert all(re.fullmatch(r"\d\.\d{3}", x) for x in (*figures, validation))


@pytest.mark.e2e
def test_the_short_quickstart_prints_the_readme_figures(tmp_path):
    argv, (initial, final, best), validation = readme_short_form()
    argv = [a for a in argv if not a.startswith(("output_dir=", "run_name="))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "rlvr.cli", *argv, f"output_dir={tmp_path}", "run_name=short"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    printed = DONE.search(out)
    assert printed, out[-3000:]
    assert printed.groups() == (initial, final, best), (
        f"README.md quotes {initial} -> {final} (best {best}) for `rlvr {' '.join(argv)}`, "
        f"the command printed {printed.group(0)!r}: update the README (or find what changed the run)")
    summary = json.loads((tmp_path / "short" / "summary.json").read_text())
    assert f"{summary['warmup']['validation_accuracy']:.3f}" == validation

    names = set()
    for line in (tmp_path / "short" / "metrics.jsonl").read_text().splitlines():
        names |= set(json.loads(line))
    assert not undeclared(names), (
        f"metrics {undeclared(names)} are not declared in rlvr/tracking/metric_names.py: add a line "
        "each, then run `python tools/gen_docs.py`")
