"""tools/prepare_data.py and the file-backed tasks on a small parquet file the test writes
(field names unlike the defaults), no downloads."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlvr.config import load_recipe
from rlvr.tasks.loaders import TaskDataError
from rlvr.tasks.prepare import prepare_records, source_records
from rlvr.tasks.registry import get_task_prompts

ROOT = Path(__file__).resolve().parents[2]
ROWS = {"prompt": ["Ann has 2 pens and buys 3. How many?", "What is 10 times 12?", "Half of 9?"],
        "target": ["2 + 3 = 5\n#### 5", "10 * 12 = 120\n#### 1,20", "9 / 2\n#### 4.5"]}


def write_parquet(path, columns):
    pq.write_table(pa.table(columns), str(path))
    return str(path)


def test_prepare_data_writes_the_task_jsonl_a_recipe_reads(tmp_path):
    source = write_parquet(tmp_path / "raw.parquet", ROWS)
    out = tmp_path / "data" / "gsm_train.jsonl"
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "prepare_data.py"), source, "--out", str(out),
                           "--question-key", "prompt", "--answer-key", "target"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert "wrote 3 gsm8k records" in done.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[1] == {"id": "raw-1", "question": "What is 10 times 12?", "answer": "10 * 12 = 120\n#### 1,20"}
    # The recipe's default keys read the prepared file; golds come out as the task computes them.
    cfg = load_recipe(None, ["task.name=gsm8k", "reward.verifier=math", f"task.path={tmp_path}/data/gsm_{{split}}.jsonl"])
    prompts = get_task_prompts(cfg.task, "train", 3)
    assert [(p.id, p.gold) for p in prompts] == [("raw-0", "5"), ("raw-1", "120"), ("raw-2", "4.5")]


def test_the_raw_parquet_loads_directly_with_task_keys(tmp_path):
    source = write_parquet(tmp_path / "raw.parquet", ROWS)
    cfg = load_recipe(None, ["task.name=gsm8k", "reward.verifier=math", f"task.path={source}",
                             "task.question_key=prompt", "task.answer_key=target", "task.eval_size=1",
                             "task.train_size=2", "rollout.prompts_per_step=2"])
    train, held_out = get_task_prompts(cfg.task, "train", 2), get_task_prompts(cfg.task, "eval", 1)
    assert sorted(p.gold for p in train + held_out) == ["120", "4.5", "5"]
    assert held_out[0].meta["row"] in (0, 1, 2)


def test_a_missing_field_names_the_row_and_the_key(tmp_path):
    source = write_parquet(tmp_path / "holes.parquet", {"prompt": ["q0", "q1"], "target": ["#### 1", None]})
    with pytest.raises(TaskDataError, match=r"holes.parquet row 1: missing answer key 'target'"):
        prepare_records(source_records(source), question_key="prompt", answer_key="target")
    with pytest.raises(TaskDataError, match=r"holes.parquet row 0: missing question key 'question'"):
        prepare_records(source_records(source), answer_key="target")
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "prepare_data.py"), source, "--out",
                           str(tmp_path / "x.jsonl"), "--question-key", "prompt", "--answer-key", "target"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and "row 1: missing answer key 'target'" in done.stderr
    assert not (tmp_path / "x.jsonl").exists()


def test_math_records_keep_the_final_answer_and_ids_must_be_unique(tmp_path):
    rows = [{"problem": "1/2 + 1/2?", "solution": "so \\boxed{1}", "unique_id": "a"},
            {"problem": "x?", "solution": "\\boxed{\\frac{1}{3}}", "unique_id": "b"}]
    path = tmp_path / "math.json"
    path.write_text(json.dumps(rows))  # a JSON array
    records = prepare_records(source_records(str(path)), kind="math")
    assert records == [{"id": "a", "question": "1/2 + 1/2?", "answer": "1"},
                       {"id": "b", "question": "x?", "answer": "\\frac{1}{3}"}]
    path.write_text(json.dumps([rows[0], rows[0]]))
    with pytest.raises(TaskDataError, match=r"element 1: id 'a' repeats"):
        prepare_records(source_records(str(path)), kind="math")
    assert len(prepare_records(source_records(str(path)), kind="math", limit=1)) == 1
