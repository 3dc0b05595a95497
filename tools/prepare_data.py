"""Write a task JSONL (for task.path) from a HF dataset name or a local parquet/JSON/JSONL file.

    python tools/prepare_data.py openai/gsm8k --config main --split train --out data/gsm8k_train.jsonl
    python tools/prepare_data.py openai/gsm8k --config main --split test  --out data/gsm8k_eval.jsonl
    python tools/prepare_data.py DigitalLearningGmbH/MATH-lighteval --kind math --question-key problem \
        --split train --out data/math_train.jsonl
    python tools/prepare_data.py my_rows.parquet --question-key prompt --answer-key target --out data/x.jsonl

A recipe then reads it with task.path=data/gsm8k_{split}.jsonl ("{split}" is train or eval).
A dataset name downloads through `datasets` (run it where the hub is reachable, same HF_HOME);
a local file never touches the network. Every record is checked with the task's own rules:
a missing field is an error naming the row and the key.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from rlvr.tasks.loaders import KINDS, TaskDataError
from rlvr.tasks.prepare import prepare_records, source_records, write_task_jsonl


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="HF dataset name (org/name) or a local .parquet/.json/.jsonl file")
    parser.add_argument("--out", required=True, help="task JSONL to write")
    parser.add_argument("--kind", choices=KINDS, default="gsm8k",
                        help="gsm8k: answers end with '#### <answer>'; math: a final answer or a \\boxed{} solution")
    parser.add_argument("--question-key", default="question", help="field holding the question")
    parser.add_argument("--answer-key", default="answer", help="field holding the answer")
    parser.add_argument("--split", default="train", help="dataset split (HF datasets only)")
    parser.add_argument("--config", default=None, help="dataset configuration, e.g. main for openai/gsm8k")
    parser.add_argument("--limit", type=int, default=None, help="keep only the first N records")
    args = parser.parse_args(argv)
    prefix = Path(args.source).stem if Path(args.source).exists() else f"{args.source.split('/')[-1]}-{args.split}"
    try:
        records = prepare_records(source_records(args.source, args.split, args.config), args.kind,
                                  args.question_key, args.answer_key, id_prefix=prefix, limit=args.limit)
    except TaskDataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    path = write_task_jsonl(records, args.out)
    print(f"wrote {len(records)} {args.kind} records to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
