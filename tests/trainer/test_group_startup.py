"""TrainerGroup start-up: ranks start at once without a rendezvous task, report where their
start-up time went, and a rank that fails to start fails the group naming it; DeepSpeed's
Muon import no longer drags torch's compiler stack into every rank."""
import subprocess
import sys
import time

import pytest

import rlvr.trainer.group as group_mod
from rlvr.trainer import TrainerGroup, TrainerGroupError

TRAINER = dict(zero_stage=0, micro_batch_size=4, lr=1e-3)
PHASES = ["imports", "process group", "model", "deepspeed", "reference"]


class _NoTask:
    def options(self, **_):
        raise AssertionError("rank 0 is on the driver's node: no task should ask for its address")


@pytest.mark.e2e
def test_ranks_start_concurrently_and_report_their_phases(ray_cluster, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(group_mod, "_master_address", _NoTask())
    created = time.time()
    group = TrainerGroup(2, tiny_model_dir, TRAINER, dict(kl_coef=0.0), num_cpus_per_rank=0.5, wait=False,
                         num_threads=2)  # cluster.threads_per_actor, apart from the logical CPUs
    returned = time.time()
    try:
        assert len(group.actors) == 2 and group.startup == []
        group.wait_ready()
        group.wait_ready()  # idempotent
        assert len(group.startup) == 2
        for info in group.startup:
            assert [name for name, _ in info["phases"]] == PHASES
            assert created <= info["init_start"] <= info["ready"]
        # wait=False returned before any rank was ready: the caller can start other actors meanwhile
        assert returned < min(info["ready"] for info in group.startup)
        assert group.state_digests()[0] == group.state_digests()[1]
        assert [info["num_threads"] for info in group.ping()] == [2, 2]  # each rank runs with what it was given
    finally:
        group.shutdown()


@pytest.mark.e2e
def test_a_rank_failing_to_start_fails_the_group_naming_it(ray_cluster, tmp_path):
    group = TrainerGroup(2, str(tmp_path / "no_model_here"), TRAINER, dict(kl_coef=0.0),
                         num_cpus_per_rank=0.5, wait=False)
    with pytest.raises(TrainerGroupError, match=r"(?s)trainer rank [01] failed during start: .*no_model_here"):
        group.wait_ready()
    assert group.actors == []  # the group is down: no rank left waiting in a collective


def test_muon_import_defers_torch_compile():
    # a fresh interpreter: this one may have imported torch's compiler stack already
    code = (
        "import sys, torch, deepspeed\n"
        "from deepspeed.runtime import compiler\n"
        "from rlvr.trainer.deepspeed_setup import defer_deepspeed_muon_compile\n"
        "defer_deepspeed_muon_compile()\n"
        "from deepspeed.runtime.zero.muon import original_muon\n"
        "from deepspeed.runtime.zero.muon.muon_optimizer import MuonWithAuxAdam\n"
        "assert compiler.compile() is torch.compile, 'compiler.compile not restored'\n"
        "assert 'torch._inductor' not in sys.modules, 'the Muon import compiled its kernels'\n"
        "fn = original_muon.zeropower_via_newtonschulz5\n"
        "assert fn.__wrapped__.__name__ == 'zeropower_via_newtonschulz5'\n"
        "G = torch.randn(4, 3)\n"  # compiled on this first call; the same math as the plain one (bf16 inside)
        "assert torch.allclose(fn(G, 2).float(), fn.__wrapped__(G, 2).float(), atol=5e-2)\n"
        "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
