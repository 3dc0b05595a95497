"""Where every actor runs: recipe resources -> placement-group bundles (pure; no Ray here).

Two layouts, both one placement group:

    separate (cluster.colocate=false)   [trainer rank 0..M-1][engine shards 0..N*T-1][reward 0..R-1]
        each trainer rank a bundle {CPU: 1, GPU: t}; each engine shard a bundle {GPU: r} (the
        engine actor's own CPU in its first shard's bundle); Ray may pack fractional bundles
        onto one card (trainer 0.5 + engine 0.4 fit one GPU).
    colocate (cluster.colocate=true)    [GPU 0..G-1][reward 0..R-1],  G = max(M, N*T)
        each bundle one whole GPU; trainer rank i takes t of GPU i, engine shard k takes r of
        GPU k: trainer and rollout share cards, and ranks and shards sit on distinct cards.
    engine in trainer (rollout.in_trainer=true)   [trainer rank 0..M-1][reward 0..R-1]
        the one hf engine runs in trainer rank 0's process: no bundle and no resources of its own.

An engine with tensor_parallel_size T > 1 runs vLLM's Ray executor: the engine actor takes no
GPU itself and vLLM starts one worker per shard in the shard bundles (VLLM_RAY_BUNDLE_INDICES).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence

from rlvr.config.errors import RecipeError

EPS = 1e-9  # float slack when adding GPU fractions


class ResourceError(RecipeError):
    """The cluster cannot hold the recipe's actors; the message names the resource and the keys."""


@dataclass(frozen=True)
class Slot:
    """One actor's place: its bundle index and the resources the actor itself asks for."""

    bundle: int
    num_cpus: float
    num_gpus: float


@dataclass(frozen=True)
class EngineSlot(Slot):
    """A rollout engine: the actor's slot plus one bundle per tensor-parallel shard."""

    shard_bundles: tuple = ()
    gpus_per_shard: float = 0.0
    in_trainer: bool = False  # rollout.in_trainer: the engine runs in trainer rank 0's process


@dataclass(frozen=True)
class Layout:
    bundles: List[Dict[str, float]]  # placement-group bundles, in index order
    trainer: List[Slot]  # [M] one per trainer rank (rank i in bundle i)
    rollout: List[EngineSlot]  # [N] one per rollout engine
    reward: List[Slot]  # [R] one per reward worker
    gpus: int  # whole GPUs the layout needs (fractional bundles packed onto cards)

    @property
    def cpus(self) -> float:
        return sum(b.get("CPU", 0.0) for b in self.bundles)

    def describe(self) -> str:
        """One line for progress output: what goes where."""
        t = self.trainer[0].num_gpus if self.trainer else 0
        r = self.rollout[0].gpus_per_shard if self.rollout else 0
        tp = len(self.rollout[0].shard_bundles) if self.rollout else 1
        if self.rollout and self.rollout[0].in_trainer:
            return (f"{len(self.bundles)} bundles: {len(self.trainer)} trainer rank(s) x {t:g} GPU, the rollout "
                    f"engine inside rank 0, {len(self.reward)} reward worker(s); {self.gpus} GPU and "
                    f"{self.cpus:g} CPU in all")
        return (f"{len(self.bundles)} bundles: {len(self.trainer)} trainer rank(s) x {t:g} GPU, "
                f"{len(self.rollout)} rollout engine(s) x {tp} shard(s) x {r:g} GPU, "
                f"{len(self.reward)} reward worker(s); {self.gpus} GPU and {self.cpus:g} CPU in all")


def _bundle(cpus: float, gpus: float) -> Dict[str, float]:
    out: Dict[str, float] = {}
    if cpus:
        out["CPU"] = float(cpus)
    if gpus:
        out["GPU"] = float(gpus)
    return out


def pack_gpus(fractions: Sequence[float]) -> int:
    """Whole GPUs needed to hold GPU fractions (each <= 1) that may share cards: first-fit
    decreasing, which is what Ray's packing of fractional bundles can at best achieve."""
    cards: List[float] = []
    for f in sorted((f for f in fractions if f > 0), reverse=True):
        for i, used in enumerate(cards):
            if used + f <= 1.0 + EPS:
                cards[i] += f
                break
        else:
            cards.append(f)
    return len(cards)


def plan_layout(num_ranks: int, gpus_per_rank: float, num_engines: int, gpus_per_shard: float,
                tensor_parallel_size: int, num_reward_workers: int, colocate: bool,
                gpus_per_reward_worker: float = 0.0, engine_in_trainer: bool = False) -> Layout:
    """The placement-group bundles and each actor's slot (see the module docstring).

    gpus_per_shard is rollout.num_gpus_per_worker: the share of a GPU each of an engine's
    tensor_parallel_size shards takes. Every actor takes 1 logical CPU. gpus_per_reward_worker
    (reward.num_gpus_per_worker) gives each reward worker's bundle a GPU share (a learned reward
    model's); in the colocate layout reward worker k shares card k % G when the trainer's and
    engine's shares there leave room, else gets a bundle (and a card) of its own.
    `engine_in_trainer` (rollout.in_trainer): the engine's slot is trainer rank 0's bundle, and
    it asks for nothing there (the rank's own CPU and GPU share serve both).
    """
    M, N, T, R = num_ranks, num_engines, tensor_parallel_size, num_reward_workers
    t, r = float(gpus_per_rank), float(gpus_per_shard)
    # With T > 1 the engine actor is a driver: vLLM's shard workers hold the GPUs.
    actor_gpus = r if T == 1 else 0.0
    bundles: List[Dict[str, float]] = []
    if engine_in_trainer:
        bundles = [_bundle(1.0, t) for _ in range(M)]
        trainer = [Slot(i, 1.0, t) for i in range(M)]
        rollout = [EngineSlot(0, 0.0, 0.0, (0,), 0.0, in_trainer=True) for _ in range(N)]
        gpus = pack_gpus([b.get("GPU", 0.0) for b in bundles])
    elif colocate:
        G = max(M, N * T)
        cpus = [0.0] * G
        for i in range(M):
            cpus[i] += 1
        for j in range(N):
            cpus[j * T] += 1
        bundles = [_bundle(cpus[g], 1.0) for g in range(G)]
        trainer = [Slot(i, 1.0, t) for i in range(M)]
        rollout = [EngineSlot(j * T, 1.0, actor_gpus, tuple(range(j * T, (j + 1) * T)), r)
                   for j in range(N)]
        gpus = G
    else:
        bundles = [_bundle(1.0, t) for _ in range(M)]
        trainer = [Slot(i, 1.0, t) for i in range(M)]
        rollout = []
        for j in range(N):
            first = len(bundles)
            bundles += [_bundle(1.0 if k == 0 else 0.0, r) for k in range(T)]
            rollout.append(EngineSlot(first, 1.0, actor_gpus, tuple(range(first, first + T)), r))
        gpus = pack_gpus([b.get("GPU", 0.0) for b in bundles])
    g = float(gpus_per_reward_worker)
    reward: List[Slot] = []
    if colocate and g:
        # A reward worker joins card k % G when what already sits there leaves room for its share.
        used = [0.0] * G
        for i in range(M):
            used[i] += t
        for j in range(N):
            for k in range(T):
                used[j * T + k] += r
        for k in range(R):
            card = k % G
            if used[card] + g <= 1.0 + EPS:
                used[card] += g
                bundles[card]["CPU"] = bundles[card].get("CPU", 0.0) + 1.0
                reward.append(Slot(card, 1.0, g))
            else:
                reward.append(Slot(len(bundles), 1.0, g))
                bundles.append(_bundle(1.0, g))
        gpus = G + pack_gpus([b.get("GPU", 0.0) for b in bundles[G:]])
    else:
        reward = [Slot(len(bundles) + k, 1.0, g) for k in range(R)]
        bundles += [_bundle(1.0, g) for _ in range(R)]
        if g:
            gpus = pack_gpus([b.get("GPU", 0.0) for b in bundles])
    return Layout(bundles, trainer, rollout, reward, gpus)


def pin_roles(layout: Layout, custom: Mapping[str, Mapping[str, float]]) -> Layout:
    """`layout` with each role's custom resources (cluster.custom_resources: {role: {name: amount}})
    added to the bundles its actors sit in, engine shards included; a bundle two roles share
    (cluster.colocate) asks for the larger amount of each."""
    if not any(custom.values()):
        return layout
    bundles = [dict(b) for b in layout.bundles]
    used = {"trainer": [s.bundle for s in layout.trainer], "reward": [s.bundle for s in layout.reward],
            "rollout": [b for s in layout.rollout for b in (s.shard_bundles or (s.bundle,))]}
    for role, resources in custom.items():
        for index in set(used[role]):
            for name, amount in (resources or {}).items():
                bundles[index][name] = max(bundles[index].get(name, 0.0), float(amount))
    return Layout(bundles, layout.trainer, layout.rollout, layout.reward, layout.gpus)


def layout_for(cfg) -> Layout:
    """plan_layout for a RecipeConfig, with its roles' custom resources (pin_roles)."""
    layout = plan_layout(cfg.trainer.num_ranks, cfg.trainer.num_gpus_per_rank, cfg.rollout.num_workers,
                         cfg.rollout.num_gpus_per_worker, cfg.rollout.tensor_parallel_size,
                         cfg.reward.num_workers, cfg.cluster.colocate, cfg.reward.num_gpus_per_worker,
                         cfg.rollout.in_trainer)
    return pin_roles(layout, cfg.cluster.custom_resources)


# How to shrink each resource's request, for the error message.
_FIX = {
    "GPU": "lower trainer.num_gpus_per_rank / rollout.num_gpus_per_worker / reward.num_gpus_per_worker, trainer.num_ranks / "
           "rollout.num_workers / rollout.tensor_parallel_size, set cluster.colocate=true, or add GPUs",
    "CPU": "lower trainer.num_ranks / rollout.num_workers / reward.num_workers (one CPU each), "
           "or add CPUs",
}


def check_fits(layout: Layout, cluster: Mapping[str, float], nodes: Sequence[Mapping[str, float]] = (),
               strategy: str = "PACK") -> None:
    """Raise ResourceError naming the first resource the cluster lacks.

    cluster: ray.cluster_resources(); nodes: each alive node's resources (only used for
    STRICT_PACK, where every bundle must land on one node).
    """
    need = {"GPU": float(layout.gpus), "CPU": layout.cpus}
    for name in ("GPU", "CPU"):
        have = float(cluster.get(name, 0.0))
        if need[name] > have + EPS:
            raise ResourceError(f"the run needs {need[name]:g} {name} ({layout.describe()}), the Ray "
                                f"cluster has {have:g}: {_FIX[name]}")
    custom: Dict[str, float] = {}
    for bundle in layout.bundles:
        for name, amount in bundle.items():
            if name not in ("CPU", "GPU"):
                custom[name] = custom.get(name, 0.0) + amount
    for name, amount in sorted(custom.items()):
        have = float(cluster.get(name, 0.0))
        if amount > have + EPS:
            raise ResourceError(f"the run needs {amount:g} of the custom resource {name} "
                                f"(cluster.custom_resources), the Ray cluster has {have:g}: start nodes "
                                f"that declare it (ray start --resources '{{\"{name}\": {amount:g}}}')")
    if strategy == "STRICT_PACK" and nodes:
        best = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("CPU", 0.0)))
        for name in ("GPU", "CPU"):
            if need[name] > float(best.get(name, 0.0)) + EPS:
                raise ResourceError(
                    f"cluster.placement_strategy = STRICT_PACK puts every actor on one node, but the "
                    f"run needs {need[name]:g} {name} and the largest node has {best.get(name, 0.0):g}: "
                    f"use PACK or SPREAD, or {_FIX[name]}")
