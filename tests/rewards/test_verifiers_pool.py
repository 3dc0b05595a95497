"""VerifierPool: killable worker processes, the timeout path, order, in-process verifiers,
the memory cap and crashed workers."""
import threading
import time

import pytest

from rlvr.rewards.errors import RewardConfigError
from rlvr.rewards.verifiers import VerifierPool

TOWER = "The answer is \\boxed{9^{9^{9^{9^{9}}}}}"


@pytest.fixture(scope="module")
def math_pool():
    with VerifierPool("math", num_procs=2, timeout_s=1.0) as pool:
        yield pool


def test_math_pool_scores_in_order(math_pool):
    items = [(f"so \\boxed{{{i}}}", str(i % 3), None) for i in range(40)]
    gts = math_pool.verify_many(items)
    assert [gt.score for gt in gts] == [1.0 if i == i % 3 else 0.0 for i in range(40)]
    assert [gt.answer for gt in gts] == [str(i) for i in range(40)]
    assert math_pool.verify_many([]) == []


def test_tower_of_exponents_times_out_and_pool_goes_on(math_pool):
    restarts = math_pool.stats["restarts"]
    items = [("\\boxed{7}", "7", None), (TOWER, "1", None), ("\\boxed{\\frac12}", "0.5", None),
             ("the answer is 3", "4", None)]
    start = time.monotonic()
    gts = math_pool.verify_many(items)
    elapsed = time.monotonic() - start
    assert (gts[1].score, gts[1].reason, gts[1].details["limit"]) == (0.0, "timeout", "time")
    assert [gt.reason for gt in gts] == ["ok", "timeout", "ok", "wrong"]
    assert elapsed < 1.0 + 8.0  # the timeout plus a replacement's start-up, with room for a busy machine
    assert math_pool.stats["restarts"] == restarts + 1
    # the replacement works
    assert math_pool.verify_many([("\\boxed{5}", "5", None)])[0].score == 1.0


def test_two_pathological_samples_in_one_batch(math_pool):
    gts = math_pool.verify_many([(TOWER, "1", None), ("\\boxed{2}", "2", None),
                                 (TOWER + " ", "1", None), ("\\boxed{3}", "2", None)])
    assert [gt.reason for gt in gts] == ["timeout", "ok", "timeout", "wrong"]


def test_identical_items_are_verified_once(math_pool):
    samples = math_pool.stats["samples"]
    gts = math_pool.verify_many([("\\boxed{1}", "1", None)] * 5)
    assert [gt.score for gt in gts] == [1.0] * 5
    assert math_pool.stats["samples"] == samples + 5


def test_pool_is_usable_from_threads(math_pool):
    out = {}

    def work(k):
        out[k] = [gt.score for gt in math_pool.verify_many([(f"\\boxed{{{k}}}", str(k), None)] * 3)]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == {k: [1.0, 1.0, 1.0] for k in range(3)}


def test_cheap_verifiers_run_in_process_unless_told_otherwise():
    with VerifierPool("arithmetic", num_procs=2) as pool:
        assert pool.in_process and pool._workers == []
        assert [gt.score for gt in pool.verify_many([("46;", "46", None), ("4;", "46", None)])] == [1.0, 0.0]
    with VerifierPool("constraints", in_process=False, timeout_s=5.0) as pool:
        assert len(pool._workers) == 1
        meta = {"constraints": [{"name": "no_digits"}, {"name": "all_lowercase"}]}
        gts = pool.verify_many([("abc", "", meta), ("ab1", "", meta)])
        assert [gt.details["constraints_held"] for gt in gts] == [[True, True], [False, True]]
        # a configuration error inside a worker process reaches the caller
        with pytest.raises(RewardConfigError, match="not a constraint"):
            pool.verify_many([("abc", "", {"constraints": [{"name": "nope"}]})])


def test_unknown_verifier_and_bad_settings():
    with pytest.raises(RewardConfigError, match="reward.verifier"):
        VerifierPool("nope")
    with pytest.raises(RewardConfigError, match="timeout_s"):
        VerifierPool("arithmetic", timeout_s=0)


def test_close_is_idempotent_and_stops_processes():
    pool = VerifierPool("math", num_procs=1, timeout_s=5.0)
    process = pool._workers[0].process
    pool.close()
    pool.close()
    assert process.poll() is not None
    with pytest.raises(RuntimeError, match="after close"):
        pool.verify_many([("1", "1", None)])


# ----------------------------------------------------------------------------- memory cap, crashes

WORDS = {"constraints": [{"name": "word_count_between", "low": 1, "high": 5}]}
MANY_WORDS = "ab " * 3_000_000  # 9 MB of text; its list of 3 M words needs ~200 MB


@pytest.mark.parametrize("memory_limit_mb, reason", [(64, "timeout"), (1024, "wrong")])
def test_memory_cap_scores_the_sample_and_the_worker_goes_on(memory_limit_mb, reason):
    with VerifierPool("constraints", in_process=False, timeout_s=60.0,
                      memory_limit_mb=memory_limit_mb) as pool:
        pid = pool._workers[0].process.pid
        gts = pool.verify_many([(MANY_WORDS, "", WORDS), ("one two", "", WORDS)])
        assert [gt.reason for gt in gts] == [reason, "ok"]
        if reason == "timeout":
            assert gts[0].details == {"limit": "memory"} and gts[0].score == 0.0
        # the MemoryError was caught inside the worker: same process, no restart
        assert pool._workers[0].process.pid == pid and pool.stats["restarts"] == 0
        assert pool.stats["timeouts"] == (reason == "timeout")


def _wait_for(condition, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_worker_killed_mid_sample_scores_it_as_a_crash_and_goes_on():
    with VerifierPool("math", num_procs=1, timeout_s=60.0) as pool:
        worker = pool._workers[0]
        out = {}
        thread = threading.Thread(target=lambda: out.setdefault("gts", pool.verify_many(
            [(TOWER, "1", None), ("\\boxed{2}", "2", None), ("\\boxed{3}", "4", None)])))
        thread.start()
        _wait_for(lambda: len(worker.inflight) > 0)
        time.sleep(0.3)  # let it start on the tower
        worker.process.kill()
        thread.join(timeout=60)
        gts = out["gts"]
        assert [gt.reason for gt in gts] == ["timeout", "ok", "wrong"]
        assert gts[0].details == {"limit": "crash", "exitcode": -9}
        assert pool.stats["restarts"] == 1 and pool._workers[0] is not worker


def test_worker_that_died_while_idle_is_replaced_without_blaming_a_sample():
    meta = {"constraints": [{"name": "no_digits"}]}
    with VerifierPool("constraints", in_process=False, timeout_s=60.0) as pool:
        assert pool.verify_many([("abc", "", meta)])[0].score == 1.0
        worker = pool._workers[0]
        worker.process.kill()
        worker.process.wait()
        gts = pool.verify_many([("abc", "", meta), ("ab1", "", meta)])
        assert [gt.reason for gt in gts] == ["ok", "wrong"]
        assert pool.stats == {"samples": 3, "timeouts": 0, "restarts": 1}
