"""Task data preparation: a HF dataset or a local parquet/JSON/JSONL file -> the task JSONL.

The JSONL written has one {"id", "question", "answer"} object per line, which the gsm8k and
math tasks read with their default keys (rlvr/tasks/loaders.py): gsm8k keeps the source
answer (its "#### <final answer>" line), math gets the final answer itself. Every record is
converted with the loaders' own rules, so a record the run would reject is rejected here,
with its row and key named. `tools/prepare_data.py` is the command line.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from rlvr.tasks.loaders import KINDS, TaskDataError, _record_to_prompt, read_records


def source_records(source: str, split: str = "train",
                   config: Optional[str] = None) -> Iterator[Tuple[str, Any, Dict[str, Any]]]:
    """(where, record, meta) of a local file (.parquet, .json, .jsonl), else of the HF dataset
    `source` (datasets.load_dataset(source, config, split=split); may download)."""
    if os.path.exists(source):
        if os.path.isdir(source):
            raise TaskDataError(f"{source}: a folder; give one .parquet, .json or .jsonl file")
        yield from read_records(source)
        return
    import datasets

    rows = datasets.load_dataset(source, config, split=split)
    for n, row in enumerate(rows):
        yield f"{source} ({split}) row {n}", row, {"source": source, "row": n}


def prepare_records(records: Iterable[Tuple[str, Any, Dict[str, Any]]], kind: str = "gsm8k",
                    question_key: str = "question", answer_key: str = "answer", id_prefix: str = "q",
                    limit: Optional[int] = None) -> List[Dict[str, str]]:
    """[{"id", "question", "answer"}] in source order (the first `limit` when given).

    Ids: the record's own "id" / "unique_id", else f"{id_prefix}-{n}". A record the task
    could not read raises TaskDataError naming its row and the missing key.
    """
    if kind not in KINDS:
        raise ValueError(f"kind = {kind!r} must be one of {list(KINDS)}")
    out: List[Dict[str, str]] = []
    seen: Dict[str, str] = {}
    for n, (where, record, meta) in enumerate(records):
        if limit is not None and n >= limit:
            break
        prompt = _record_to_prompt(record, where, f"{id_prefix}-{n}", question_key, answer_key, kind, meta)
        if prompt.id in seen:  # rewards are keyed by prompt id: two prompts must never share one
            raise TaskDataError(f"{where}: id {prompt.id!r} repeats the one at {seen[prompt.id]}")
        seen[prompt.id] = where
        answer = str(record[answer_key]) if kind == "gsm8k" else prompt.gold
        out.append({"id": prompt.id, "question": prompt.text, "answer": answer})
    if not out:
        raise TaskDataError("no records in the source")
    return out


def write_task_jsonl(records: List[Dict[str, str]], out: str) -> Path:
    """Write the records as JSONL (via a temporary file, so a half-written file never stays)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path
