"""rlvr/tracking/metric_names.py declares the metrics the code produces, each with a meaning.
(The e2e test of the README's short quickstart checks every name a real run writes.)"""
import ast
import re
from pathlib import Path

import torch

from rlvr.rewards.categorize import reward_error_metrics
from rlvr.tracking.metric_names import METRICS, undeclared

ROOT = Path(__file__).resolve().parents[2]


def test_every_name_is_group_slash_name_with_a_one_line_meaning():
    for name, meaning in METRICS.items():
        assert name in ("step", "loss") or re.fullmatch(r"[a-z]+/[a-zA-Z0-9_]+", name), name
        assert meaning and "\n" not in meaning, name


def test_the_reward_error_metrics_are_declared_fine_labels_included():
    proxy = torch.tensor([[1.0, 0.0, 1.0, 0.5], [0.0, 0.0, 1.0, 1.0]])
    gt = torch.tensor([[1.0, 1.0, 0.0, 0.25], [0.0, 1.0, 0.0, 1.0]])
    assert undeclared(reward_error_metrics(proxy, gt, fine=True)) == []


# Names in the code that never reach metrics.jsonl: the trainer hands its broadcast time to the
# controller, which logs it as perf/weight_sync_s.
INTERNAL = {"perf/weight_broadcast_s"}
METRIC_LITERAL = re.compile(r"(gt|proxy|reward|errors|eval|policy|perf|response|trainer|fault)/[a-z][a-z0-9_]*")


def test_every_metric_name_written_in_the_code_is_declared():
    """A static scan, so it survives modules moving: every string literal in rlvr/ (outside the
    theory simulator, whose result files use their own keys) shaped like a metric name."""
    found = set()
    for path in (ROOT / "rlvr").rglob("*.py"):
        if "theory" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and METRIC_LITERAL.fullmatch(node.value):
                found.add(node.value)
    assert len(found) > 30  # the scan sees the code
    assert undeclared(found - INTERNAL) == [], "declare them in rlvr/tracking/metric_names.py"


def test_undeclared_names_the_missing_ones():
    assert undeclared(["gt/reward_mean", "gt/made_up", "a/b"]) == ["a/b", "gt/made_up"]
