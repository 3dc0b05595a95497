"""score_samples and the RewardWorker: groups, record fields, designs, meta for constraints."""
import pytest

from rlvr.rewards.designs import RewardDesign, build_design
from rlvr.rewards.scoring import record_meta, score_samples
from rlvr.rewards.verifiers import VerifierPool
from rlvr.rewards.worker import RewardWorker, RewardWorkerActor


class GroupProbe(RewardDesign):
    """proxy = 100 * group size + position in group: shows how records were grouped."""

    name = "group_probe"

    def __init__(self):
        self.seen = []

    def score_group(self, group):
        self.seen.append([(s.prompt_id, s.sample_index, s.num_tokens) for s in group])
        return [100.0 * len(group) + k for k in range(len(group))]


def record(pid, k, response, gold="46", **extra):
    return {"prompt_id": pid, "sample_index": k, "response": response, "gold": gold, **extra}


@pytest.fixture()
def arithmetic_pool():
    with VerifierPool("arithmetic") as pool:
        yield pool


def test_output_fields_and_order(arithmetic_pool):
    records = [record("a", 0, "46;", num_tokens=3, policy_version=7), record("a", 1, "45;"),
               record("b", 0, "x")]
    out = score_samples(records, arithmetic_pool, build_design({"name": "ground_truth"}))
    assert [(r["gt"], r["proxy"], r["reason"], r["answer"]) for r in out] == [
        (1.0, 1.0, "ok", "46"), (0.0, 0.0, "wrong", "45"), (0.0, 0.0, "no_answer", None)]
    assert out[0]["policy_version"] == 7 and out[0]["num_tokens"] == 3
    assert "gt" not in records[0]  # inputs are not modified


def test_groups_by_prompt_id_and_step(arithmetic_pool):
    probe = GroupProbe()
    records = [record("a", 0, "46;"), record("b", 0, "46;"), record("a", 1, "1;"),
               record("a", 0, "46;", step=2)]
    out = score_samples(records, arithmetic_pool, probe)
    assert [r["proxy"] for r in out] == [200.0, 100.0, 201.0, 100.0]
    # num_tokens defaults to len(response)
    assert probe.seen[0] == [("a", 0, 3), ("a", 1, 2)]


def test_design_length_mismatch_is_an_error(arithmetic_pool):
    class Broken(RewardDesign):
        def score_group(self, group):
            return [1.0]

    with pytest.raises(ValueError, match="returned 1 rewards for a group of 2"):
        score_samples([record("a", 0, "1;"), record("a", 1, "2;")], arithmetic_pool, Broken())


def test_flip_design_is_seeded_by_prompt_and_sample(arithmetic_pool):
    records = [record(f"p{i}", k, "1;") for i in range(50) for k in range(4)]
    design = {"name": "flip", "fp_rate": 0.3, "seed": 11}
    first = [r["proxy"] for r in score_samples(records, arithmetic_pool, build_design(design))]
    again = [r["proxy"] for r in score_samples(records[::-1], arithmetic_pool, build_design(design))]
    assert first == again[::-1]
    assert 0.15 < sum(first) / len(first) < 0.45  # all wrong, about 30% flipped to 1


def test_constraints_meta_from_record_and_gt_details():
    meta = {"constraints": [{"name": "no_digits"}, {"name": "ends_with", "suffix": "!"}]}
    assert record_meta({"constraints": meta["constraints"], "meta": {"topic": "x"}}) == {
        "topic": "x", **meta}
    with VerifierPool("constraints") as pool:
        out = score_samples([record("c", 0, "hi!", gold="", meta=meta),
                             record("c", 1, "hi 2", gold="", constraints=meta["constraints"])],
                            pool, build_design({"name": "ground_truth"}))
    assert [r["gt"] for r in out] == [1.0, 0.0]
    assert out[1]["gt_details"]["constraints_held"] == [False, False]


def test_reward_worker_plain_class():
    worker = RewardWorker("arithmetic", {"name": "flip", "fn_rate": 1.0}, timeout_s=2.0)
    try:
        out = worker.score([record("a", 0, "46;"), record("a", 1, "4;")])
        assert [(r["gt"], r["proxy"]) for r in out] == [(1.0, 0.0), (0.0, 0.0)]
        assert worker.stats()["samples"] == 2
        # scores only: each record's key and what scoring added, not the response sent back
        slim = worker.score([record("a", 0, "46;"), record("a", 1, "4;")], scores_only=True)
        assert [set(r) for r in slim] == [{"prompt_id", "sample_index", "gt", "proxy", "reason", "answer",
                                           "expected_proxy", "systematic_proxy"}] * 2
        assert [{**rec, **r} for rec, r in zip([record("a", 0, "46;"), record("a", 1, "4;")], slim)] == out
    finally:
        worker.close()


def test_reward_worker_actor_wraps_the_plain_class():
    # The actor itself runs in tests/e2e; here: it is this class, with the methods the
    # controller calls on it (score each step, close at shutdown).
    assert RewardWorkerActor.__ray_actor_class__ is RewardWorker
    assert {"score", "close", "stats"} <= set(RewardWorkerActor.__ray_metadata__.method_meta.methods)
