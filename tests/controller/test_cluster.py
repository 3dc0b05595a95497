"""Layouts placed on a real local Ray cluster that declares 2 GPUs on this CPU machine:
fractional shares, tensor-parallel shards and colocation land where the layout says, and a
request the cluster cannot hold fails at once, naming the resource."""
import time

import pytest

from rlvr.config import load_recipe
from rlvr.controller.layout import ResourceError, plan_layout


@pytest.mark.e2e
def test_layouts_place_on_declared_gpus_and_an_impossible_one_fails_fast():
    import ray
    from ray.util.placement_group import placement_group_table, remove_placement_group

    from rlvr.controller.cluster import reserve, slot_strategy, start_ray

    @ray.remote
    def gpu_ids():
        return ray.get_gpu_ids()

    def probe(group, bundle, gpus):
        """The GPU ids a task asking for `gpus` in `bundle` is given (tasks reuse workers: fast)."""
        return gpu_ids.options(num_cpus=0, num_gpus=gpus, scheduling_strategy=slot_strategy(group, bundle)).remote()

    cluster = load_recipe(None, ["cluster.num_cpus=4", "cluster.num_gpus=2", "trainer.num_gpus_per_rank=0.5"]).cluster
    start_ray(cluster, 4, uses_gpus=True)
    try:
        assert ray.cluster_resources()["GPU"] == 2
        # Colocated: 2 ranks x 0.5 GPU and one TP-2 engine x 0.4 GPU per shard on 2 cards.
        layout = plan_layout(2, 0.5, 1, 0.4, 2, 1, colocate=True)
        group = reserve(layout, "PACK", timeout_s=60, log=lambda _: None)
        rank_gpus = ray.get([probe(group, s.bundle, s.num_gpus) for s in layout.trainer])
        shard_gpus = ray.get([probe(group, b, layout.rollout[0].gpus_per_shard)
                              for b in layout.rollout[0].shard_bundles])
        assert all(len(g) == 1 for g in rank_gpus + shard_gpus)
        assert rank_gpus[0] != rank_gpus[1]  # ranks on distinct cards
        assert shard_gpus == rank_gpus  # shard i shares card i with rank i
        remove_placement_group(group)

        # Separate bundles: trainer 0.5 + engine 0.4 + reward worker, 1 GPU asked.
        layout = plan_layout(1, 0.5, 1, 0.4, 1, 1, colocate=False)
        assert layout.gpus == 1
        group = reserve(layout, "PACK", timeout_s=60, log=lambda _: None)
        placed = ray.get([probe(group, s.bundle, s.num_gpus) for s in layout.trainer + layout.rollout])
        assert all(len(g) == 1 for g in placed)
        remove_placement_group(group)

        # 2 ranks x 1 GPU + 1 engine x 1 GPU: 3 GPUs on a 2-GPU cluster fails before any placement group.
        groups_before = len(placement_group_table())
        start = time.monotonic()
        with pytest.raises(ResourceError, match=r"needs 3 GPU .*the Ray cluster has 2: lower trainer.num_gpus_per_rank"):
            reserve(plan_layout(2, 1.0, 1, 1.0, 1, 1, colocate=False), "PACK", timeout_s=600,
                    log=lambda _: None)
        assert time.monotonic() - start < 5
        assert len(placement_group_table()) == groups_before
    finally:
        ray.shutdown()
