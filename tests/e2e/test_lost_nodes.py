"""Lost nodes (docs/faults.md), on Ray nodes started with `ray start` on 127.0.0.1: the trainer
rank, the rollout worker and the reward worker each sit on a worker node of their own (pinned by
cluster.custom_resources). Mid-run, one node's processes are all killed and a replacement node
with the same resources is started; the run rides through (a replaced worker, or a restart from
the last checkpoint) and ends with every non-timing metric and every sample file equal to an
uninterrupted run's on the same nodes."""
import json

import pytest

from rlvr.controller.loop import Controller, train

from .ray_nodes import LoopbackNodes
from .same_metrics import assert_same_run
from .test_quickstart import short_run

ROLES = ("trainer", "rollout", "reward")
RESOURCE = {role: f"rlvr_{role}_node" for role in ROLES}
PINS = "{" + ", ".join(f"{role}: {{{RESOURCE[role]}: 1}}" for role in ROLES) + "}"
# as tests/e2e/test_faults.py: 16 prompts, 8 per step (step 3 is epoch 1); flip draws make rewards random
ARGS = ["steps=4", "eval_every=2", "checkpoint_every=2", "task.train_size=16", "reward.design.name=flip",
        "reward.design.fp_rate=0.3", "cluster.max_restarts=1", "cluster.restart_timeout_s=120",
        f"cluster.custom_resources={PINS}"]


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    """A head with no CPUs for actors and one worker node per role, declaring that role's resource."""
    import ray

    harness = LoopbackNodes(tmp_path_factory.mktemp("nodes"))
    try:
        harness.start_head(num_cpus=0)
        ray.init(address=harness.address, log_to_driver=False)
        try:  # one at a time: three raylets registering at once can pass Ray's 30 s start limit on 2 cores
            for role in ROLES:
                harness.start_node(role, {RESOURCE[role]: 1})
        finally:
            ray.shutdown()
        yield harness
    finally:
        harness.stop()
    assert not harness.processes(), "a Ray process the test started is still running"


@pytest.fixture(scope="module")
def uninterrupted(nodes, tmp_path_factory):
    out = tmp_path_factory.mktemp("lost_nodes")
    summary = train(short_run(out, *ARGS, f"cluster.address={nodes.address}", "run_name=clean"))
    assert summary["status"] == "finished" and summary["fault_events"] == []
    return out


def _run_losing(nodes, out, monkeypatch, role: str, at_step: int, *extra: str) -> dict:
    """A run whose `role` node is killed at the start of step `at_step` (once), a replacement
    node declaring the same resource started right after; its summary.json."""
    real_step, lost = Controller.rl_step, []

    def step(self, n, *args):
        if n == at_step and not lost:
            lost.append(nodes.kill_node(role))
            nodes.add_node(role, {RESOURCE[role]: 1})
        return real_step(self, n, *args)

    monkeypatch.setattr(Controller, "rl_step", step)
    name = f"{role}_node_lost{'_' + '_'.join(extra) if extra else ''}"
    summary = train(short_run(out, *ARGS, f"cluster.address={nodes.address}", f"run_name={name}", *extra))
    assert lost and lost[0] > 1, "the node was not killed"
    assert summary["status"] == "finished", summary
    return json.loads((out / name / "summary.json").read_text())


# (role, step its node is killed at, extra overrides, what the run does). With the collective sync
# the engines take new weights inside the trainer's call (the broadcast), so a lost engine breaks
# it and every actor restarts from step 2's checkpoint; with the object-store sync it is replaced
# inside the step. A trainer rank is never replaced alone.
CASES = [("reward", 3, (), "replaced"), ("rollout", 3, (), "restarted from step_000002"),
         ("rollout", 3, ("rollout.weight_sync=object_store",), "replaced"),
         ("trainer", 4, (), "restarted from step_000002")]


@pytest.mark.e2e
@pytest.mark.parametrize("role, at_step, extra, action", CASES)
def test_a_lost_node_is_ridden_through_and_the_run_is_unchanged(nodes, uninterrupted, monkeypatch, role, at_step,
                                                                extra, action):
    summary = _run_losing(nodes, uninterrupted, monkeypatch, role, at_step, *extra)
    [event] = summary["fault_events"]
    assert (event["step"], event["actor"]) == (at_step, f"{role} {'rank' if role == 'trainer' else 'worker'} 0")
    assert action in event["action"] and event["node"] != "?", event
    run = uninterrupted / f"{role}_node_lost{'_' + '_'.join(extra) if extra else ''}"
    assert_same_run(uninterrupted / "clean", run, steps=4)
