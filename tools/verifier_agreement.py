"""Agreement of the `math` verifier with hand-labelled cases, per class and overall.

    python tools/verifier_agreement.py [--cases tests/rewards/math_verifier_cases.jsonl] [--show-misses]

Each case (one JSON object a line) has: class, response, gold, expected, why, and optionally
set ("held_out": labelled after the verifier was changed, before it was run on them; else
"labelled": labelled before the change). `expected` is ok | wrong | no_answer, or refuse
(score 0 with any reason). Two agreements are printed per set and class: on the credit
(score 1 vs 0, what the reward sees) and on the verdict (score and reason; a `refuse` case
agrees on any reason with score 0), and the false credits (score 1 where the label says 0:
the errors a policy can learn to exploit). The verifier is called directly,
in this process (no VerifierPool): fine for these short, hand-written responses.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Mapping

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CASES = REPO / "tests" / "rewards" / "math_verifier_cases.jsonl"
EXPECTED = ("ok", "wrong", "no_answer", "refuse")


def load_cases(path: Path) -> List[dict]:
    """The labelled cases of a JSONL file (ValueError naming the line if one is malformed)."""
    cases = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        case = json.loads(line)
        missing = {"class", "response", "gold", "expected"} - set(case)
        if missing or case["expected"] not in EXPECTED:
            raise ValueError(f"{path}:{number}: needs class, response, gold and expected in {EXPECTED}; got {case}")
        cases.append(case)
    return cases


def judge(case: Mapping) -> Dict[str, object]:
    """The verifier's verdict on one case and whether it agrees with the label."""
    from rlvr.rewards.verifiers.math_answers import verify_math

    gt = verify_math(case["response"], case["gold"], {})
    credit_expected = case["expected"] == "ok"
    credit_agrees = (gt.score == 1.0) == credit_expected
    if case["expected"] == "refuse":
        verdict_agrees = gt.score == 0.0
    else:
        verdict_agrees = credit_agrees and gt.reason == case["expected"]
    return {"score": gt.score, "reason": gt.reason, "answer": gt.answer,
            "credit_agrees": credit_agrees, "verdict_agrees": verdict_agrees,
            "false_credit": gt.score == 1.0 and not credit_expected}


def agreement_table(cases: List[Mapping]) -> Dict[str, Dict[str, int]]:
    """{"set/class": {"n", "credit", "verdict", "false_credit"}} counts, with a "set/all" row per set."""
    table: Dict[str, Dict[str, int]] = {}
    for case in cases:
        result = judge(case)
        case_set = case.get("set", "labelled")
        for key in (f"{case_set}/{case['class']}", f"{case_set}/all"):
            row = table.setdefault(key, {"n": 0, "credit": 0, "verdict": 0, "false_credit": 0})
            row["n"] += 1
            row["credit"] += int(result["credit_agrees"])
            row["verdict"] += int(result["verdict_agrees"])
            row["false_credit"] += int(result["false_credit"])
    sets = dict.fromkeys(key.split("/")[0] for key in table)
    return {key: table[key] for case_set in sets for key in
            [k for k in table if k.startswith(case_set + "/") and not k.endswith("/all")] + [f"{case_set}/all"]}


def format_table(table: Mapping[str, Mapping[str, int]]) -> str:
    lines = [f"{'set/class':<20} {'n':>4} {'credit agrees':>16} {'verdict agrees':>16} {'false credits':>14}"]
    for name, row in table.items():
        n = row["n"]
        lines.append(f"{name:<20} {n:>4} {row['credit']:>6}/{n:<3} {row['credit'] / n:>5.0%} "
                     f"{row['verdict']:>6}/{n:<3} {row['verdict'] / n:>5.0%} {row['false_credit']:>14}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--show-misses", action="store_true", help="print every case that disagrees")
    args = parser.parse_args(argv)
    cases = load_cases(args.cases)
    print(format_table(agreement_table(cases)))
    if args.show_misses:
        for case in cases:
            result = judge(case)
            if not result["verdict_agrees"]:
                print(f"[{case['class']}] expected {case['expected']}, got {result['reason']} "
                      f"({result['answer']!r}): {case['response']!r} gold {case['gold']!r}")
    return 0


if __name__ == "__main__":
    sys.path.append(str(REPO))  # after PYTHONPATH: another checkout's rlvr can be measured
    sys.exit(main())
