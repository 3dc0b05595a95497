"""The tiny-model cache: concurrent builders share one build, an incomplete cache is rebuilt."""
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rlvr.config import load_recipe
from rlvr.models.prepare import WARMUP_INFO, cached_policy, policy_cache_key, prepare_policy
from rlvr.rewards.verifiers.arithmetic import verify_arithmetic
from rlvr.tasks.arithmetic import arithmetic_prompts

ROOT = Path(__file__).resolve().parents[2]
TINY = ["task.train_size=200", "task.eval_size=16", "warmup.steps=20", "warmup.check_every=10",
        "warmup.target_accuracy=1.0", "warmup.batch_size=16", "model.hidden_size=32", "model.num_heads=1",
        "rollout.max_new_tokens=4"]
BUILD = """
import sys
from rlvr.config import load_recipe
from rlvr.models.prepare import prepare_policy
from rlvr.rewards.verifiers.arithmetic import verify_arithmetic
from rlvr.tasks.arithmetic import arithmetic_prompts
cfg = load_recipe(None, sys.argv[1:])
folder, info = prepare_policy(cfg, arithmetic_prompts(0, "train", 200), arithmetic_prompts(0, "eval", 16),
                              lambda text, gold, meta: verify_arithmetic(text, gold), log=lambda m: print(m, flush=True))
print("RESULT", folder, info["steps"], flush=True)
"""


def _verify(text, gold, meta):
    return verify_arithmetic(text, gold)


def test_two_runs_building_the_same_cache_at_once_share_one_complete_build(tmp_path):
    """Both once built in the same `<hash>.building` folder and deleted each other's files."""
    overrides = [f"output_dir={tmp_path}", *TINY]
    folder = tmp_path / "_models" / policy_cache_key(load_recipe(None, overrides))
    folder.parent.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    logs = [tmp_path / f"builder{i}.log" for i in range(2)]
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # hold both builders at the lock so that they start together
        procs = [subprocess.Popen([sys.executable, "-c", BUILD, *overrides], env=env, stdout=open(log, "w"),
                                  stderr=subprocess.STDOUT) for log in logs]
        deadline = time.monotonic() + 120
        while not all("waiting for it" in log.read_text() for log in logs):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), \
                [log.read_text()[-2000:] for log in logs]
            time.sleep(0.2)
    assert [p.wait(timeout=300) for p in procs] == [0, 0], [log.read_text()[-2000:] for log in logs]
    outputs = [log.read_text() for log in logs]
    assert sum("initial policy: built tiny model" in out for out in outputs) == 1  # one built, the other used it
    assert sum(f"cached tiny model {folder}" in out for out in outputs) == 1
    results = [[line for line in out.splitlines() if line.startswith("RESULT")] for out in outputs]
    assert results[0] == results[1] == [f"RESULT {folder} 20"]
    assert cached_policy(folder) is not None
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name, folder.name + ".lock"]


def test_an_incomplete_cache_is_rebuilt(tmp_path):
    """A cache with rlvr_warmup.json but no tokenizer.json once failed every later run."""
    cfg = load_recipe(None, [f"output_dir={tmp_path}", *TINY, "warmup.enabled=false"])
    train, held_out = arithmetic_prompts(0, "train", 200), arithmetic_prompts(0, "eval", 16)
    logs = []
    folder, info = prepare_policy(cfg, train, held_out, _verify, log=logs.append)
    folder = Path(folder)
    assert cached_policy(folder) == info == json.loads((folder / WARMUP_INFO).read_text())
    (folder / "tokenizer.json").unlink()
    assert cached_policy(folder) is None
    stale = folder.with_name(folder.name + ".building-999999")  # left by a builder that died
    stale.mkdir()
    logs.clear()
    again, info_again = prepare_policy(cfg, train, held_out, _verify, log=logs.append)
    assert again == str(folder) and info_again == info
    assert any("is incomplete; rebuilding it" in m for m in logs)
    assert (folder / "tokenizer.json").is_file() and not stale.exists()
    (folder / WARMUP_INFO).write_text("")  # an empty info file is incomplete too
    assert cached_policy(folder) is None
    logs.clear()
    prepare_policy(cfg, train, held_out, _verify, log=logs.append)
    assert any("is incomplete" in m for m in logs) and cached_policy(folder) == info
