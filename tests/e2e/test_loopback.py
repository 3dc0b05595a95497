"""A local run (cluster.address=local) listens on loopback only: Ray's ports, the trainer
ranks' torch.distributed rendezvous and gloo sockets, and the weight-sync group's store."""
import psutil
import pytest

from rlvr.controller.loop import Controller, train

from .test_quickstart import short_run


@pytest.mark.e2e
def test_a_local_run_listens_on_loopback_only(tmp_path, monkeypatch):
    from tests.controller.test_cluster_lifetime import is_loopback, listening

    seen = []
    real_step = Controller.rl_step

    def step_and_look(self, step, *args):
        out = real_step(self, step, *args)
        if step == 2:  # trainer group, rollout engine and weight-sync group all up
            me = psutil.Process()
            seen.extend(listening([me, *me.children(recursive=True)]))
        return out

    monkeypatch.setattr(Controller, "rl_step", step_and_look)
    summary = train(short_run(tmp_path, "steps=2", "trainer.num_ranks=2", "rollout.weight_sync=collective",
                              "eval.audit_prompts=0"))
    assert summary["status"] == "finished"
    names = {name for name, _, _ in seen}
    assert {"raylet", "gcs_server"} <= names and any(n.startswith("ray::PolicyTrainer") for n in names), names
    assert all(is_loopback(ip) for _, ip, _ in seen), sorted(s for s in seen if not is_loopback(s[1]))
