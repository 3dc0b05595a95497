"""Question/answer prompts from local JSONL files (GSM8K- and MATH-style), no downloads.

    GSM8K: {"question": ..., "answer": "... reasoning ...\\n#### 1,234"} -> gold "1234"
    MATH:  {"problem": ..., "solution": "... \\\\boxed{\\\\frac{1}{2}} ..."} -> gold "\\\\frac{1}{2}"
           (or an "answer" field, which wins over the solution)

Files: JSONL (one record per line), a .json array, or a .parquet table; task.question_key
and task.answer_key name the fields, so a raw file with other field names loads as it is.
Prompt ids are "{file stem}-{n}" (n = the record's 0-based position among records), or the
record's own "id" / "unique_id" when it has one, so they are stable across runs.
meta = {"source": path, "line": line number}. Errors name the file and line.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from rlvr.tasks import Prompt

KINDS = ("gsm8k", "math")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


class TaskDataError(ValueError):
    """A task data file cannot be read; the message names the file and line."""


def last_boxed(text: str) -> Optional[str]:
    """The content of the last \\boxed{...} (or \\fbox{...}) in `text`, braces matched; None if none."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    for start in reversed(starts):
        depth = 1
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    return text[start:i].strip()
    return None


def gsm8k_gold(answer: str) -> Optional[str]:
    """The text after the last '####', commas (thousands separators) and spaces stripped."""
    if "####" not in answer:
        return None
    gold = answer.rsplit("####", 1)[1].strip().replace(",", "").replace(" ", "")
    return gold or None


def _record_to_prompt(record: Any, where: str, default_id: str, question_key: str,
                      answer_key: str, kind: str, meta: Dict[str, Any]) -> Prompt:
    if not isinstance(record, Mapping):
        raise TaskDataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    question = record.get(question_key)
    if question is None and kind == "math":
        question = record.get("problem")
    if not isinstance(question, str):
        wanted = f"{question_key!r}" + (" or 'problem'" if kind == "math" else "")
        raise TaskDataError(f"{where}: missing question key {wanted}")
    if kind == "gsm8k":
        answer = record.get(answer_key)
        if answer is None:
            raise TaskDataError(f"{where}: missing answer key {answer_key!r}")
        gold = gsm8k_gold(str(answer))
        if gold is None:
            raise TaskDataError(f"{where}: GSM8K answer has no '#### <final answer>' line")
    else:
        answer = record.get(answer_key)
        if answer is not None and str(answer).strip():
            gold = str(answer).strip()
        else:
            solution = record.get("solution")
            gold = last_boxed(solution) if isinstance(solution, str) else None
            if not gold:
                raise TaskDataError(
                    f"{where}: MATH record needs {answer_key!r} or a 'solution' with \\boxed{{...}}")
    prompt_id = str(record.get("id", record.get("unique_id", default_id)))
    return Prompt(prompt_id, question, gold, meta)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind = {kind!r} must be one of {list(KINDS)}")


def read_records(path: str) -> Iterator[Tuple[str, Any, Dict[str, Any]]]:
    """(where, record, meta) for every record of a local data file, in order.

    .parquet: one record per row (pyarrow); .json holding a JSON array: one per element;
    anything else (.jsonl, JSON-lines .json): one per non-blank line. `where` names the file
    and line or row for error messages.
    """
    if str(path).endswith(".parquet"):
        try:
            import pyarrow.parquet as pq

            rows = pq.read_table(path).to_pylist()
        except (OSError, ValueError) as err:
            raise TaskDataError(f"{path}: cannot read as parquet ({_first_line(err)})") from None
        for n, row in enumerate(rows):
            yield f"{path} row {n}", row, {"source": str(path), "row": n}
        return
    try:
        f = open(path, encoding="utf-8")
    except OSError as err:
        raise TaskDataError(f"{path}: cannot open ({err.strerror})") from None
    with f:
        if str(path).endswith(".json"):
            text = f.read()
            if text.lstrip().startswith("["):
                try:
                    rows = json.loads(text)
                except json.JSONDecodeError as err:
                    raise TaskDataError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None
                for n, row in enumerate(rows):
                    yield f"{path} element {n}", row, {"source": str(path), "row": n}
                return
            lines = iter(text.splitlines(keepends=True))
        else:
            lines = f
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise TaskDataError(f"{path}:{lineno}: malformed JSON ({err.msg})") from None
            yield f"{path}:{lineno}", record, {"source": str(path), "line": lineno}


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_jsonl_qa(path: str, question_key: str = "question", answer_key: str = "answer",
                  kind: str = "gsm8k") -> List[Prompt]:
    """Every record of a JSONL file (or .json array, or .parquet table) as a Prompt (blank
    lines are ignored)."""
    _check_kind(kind)
    stem, prompts = Path(path).stem, []
    for where, record, meta in read_records(path):
        prompts.append(_record_to_prompt(record, where, f"{stem}-{len(prompts)}", question_key,
                                         answer_key, kind, meta))
    if not prompts:
        raise TaskDataError(f"{path}: no records")
    return prompts


def load_hf_dataset(name_or_path: str, split: str = "train", question_key: str = "question",
                    answer_key: str = "answer", kind: str = "gsm8k",
                    config_name: Optional[str] = None, cache_dir: Optional[str] = None) -> List[Prompt]:
    """Prompts from a Hugging Face `datasets` source.

    A local .json/.jsonl file (or a folder of them) loads with load_dataset("json",
    data_files=...), no network; any other name goes to load_dataset(name, config_name,
    split=split), which may download. cache_dir: the datasets cache (default ~/.cache).
    Rows convert as in load_jsonl_qa; errors name the row.
    """
    _check_kind(kind)
    import datasets

    if os.path.exists(name_or_path):
        path = Path(name_or_path)
        files = sorted(str(p) for p in path.glob("*.json*")) if path.is_dir() else [str(path)]
        if not files:
            raise TaskDataError(f"{name_or_path}: folder holds no .json/.jsonl files")
        rows: Iterable = datasets.load_dataset("json", data_files=files, split="train",
                                              cache_dir=cache_dir)
        stem = path.stem
    else:
        rows = datasets.load_dataset(name_or_path, config_name, split=split, cache_dir=cache_dir)
        stem = f"{name_or_path.replace('/', '_')}-{split}"
    prompts = []
    for n, row in enumerate(rows):
        prompts.append(_record_to_prompt(row, f"{name_or_path} row {n}", f"{stem}-{n}", question_key,
                                         answer_key, kind, {"source": name_or_path, "row": n}))
    return prompts
