"""StepRunner.rl_step in-process: stand-in rollout workers and trainer, real reward workers.

The stand-ins have the actors' method names; `.remote(...)` runs the call at once and
`ray.get` (patched) returns the values, so the loop's own code runs unchanged. The reward
design is one where the proxy differs from the ground truth, so training on the wrong one
shows up in the advantages the trainer receives.
"""
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from rlvr.config import RecipeConfig
from rlvr.controller.actors import ActorPool
from rlvr.controller.prompts import PromptSampler
from rlvr.controller.step import StepRunner
from rlvr.controller.weight_sync import ObjectStoreSync
from rlvr.rewards.seeded import seeded_uniform
from rlvr.rewards.worker import RewardWorker
from rlvr.rollout.generation import Generation
from rlvr.tasks import Prompt

G = 4
# Every prompt's G responses, the same at every step. incorrect_only rewards a wrong answer
# (1) and gives 0 to a correct answer or to no answer.
RESPONSES = {
    "1+1=": ["2;", "3;", "x", "4;"],    # gt [1, 0, 0, 0]  proxy [0, 1, 0, 1]
    "2+2=": ["5;", "6;", "x", "y"],     # gt [0, 0, 0, 0]  proxy [1, 1, 0, 0]
}
PROMPTS = [Prompt("p-a", "1+1=", "2"), Prompt("p-b", "2+2=", "4")]
S = 0.5 / (1 / 3) ** 0.5  # 0.866: +-0.5 over the unbiased std sqrt(1/3) of two 1s and two 0s
PROXY_ADVANTAGES = {"p-a": [-S, S, -S, S], "p-b": [S, S, -S, -S]}
# What the ground truth would give: gt [1, 0, 0, 0] -> mean 0.25, std 0.5; p-b's gt is flat.
GT_ADVANTAGES = {"p-a": [1.5, -0.5, -0.5, -0.5], "p-b": [0.0] * 4}
# Hand-labelled (rlvr.rewards.categorize): p-a's correct answer is suppressed and its wrong
# answers hack (both harmful); p-b's gt is flat (all wrong), but the gold answer is y*: its rewarded
# wrong answers get positive advantages and hack too.
CATEGORIES = {"p-a": ["harmful", "harmful", "none", "harmful"],
              "p-b": ["harmful", "harmful", "none", "none"]}


class Remote:
    """obj.method.remote(*a) calls obj.method(*a) now; the patched ray.get returns the value."""

    def __init__(self, obj):
        self._obj = obj

    def __getattr__(self, name):
        return SimpleNamespace(remote=getattr(self._obj, name))


class FakeTokenizer:
    eos_token_id, pad_token_id = 1, 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}


class FakeRollout:
    def __init__(self):
        self.version, self.calls = 0, []

    def generate(self, prompts, n, max_new_tokens, temperature, top_p, seed, stop_token_ids):
        self.calls.append(len(prompts))
        groups = []
        for ids in prompts:
            texts = RESPONSES["".join(map(chr, ids))][:n]
            groups.append([Generation([ord(c) for c in t], [-0.1 * (k + 1)] * len(t), t, "stop")
                           for k, t in enumerate(texts)])
        return {"generations": groups, "policy_version": self.version,
                "num_tokens": sum(len(g.token_ids) for grp in groups for g in grp)}

    def update_weights(self, state_ref, version):
        self.version = version


class ReversingRewardWorker(RewardWorker):
    """A real reward worker that answers in reverse order: the controller must re-sort."""

    def score(self, records, scores_only=False):
        return super().score(records, scores_only)[::-1]


class FakeTrainer:
    def __init__(self):
        self.batches = []

    def train_step(self, batch, temperature=1.0, broadcast_version=None, wait=True):
        assert broadcast_version is None  # the object-store sync is never fused into train_step
        self.batches.append(batch)
        return {"loss": 0.0} if wait else [{"loss": 0.0}]

    def collect(self, what, refs):
        return refs

    def train_metrics(self, refs):  # TrainerGroup's: the ranks' results combined (one rank here)
        return self.collect("train_step", refs)[0]

    def sequence_kl(self, batch, temperature=1.0):
        self.kl_temperature = temperature
        return [0.1 * b for b in range(len(batch))]  # per-sequence KL, row b -> 0.1 b

    def full_state_dict_ref(self):
        return "weights"


@pytest.fixture()
def controller(monkeypatch):
    import ray

    monkeypatch.setattr(ray, "get", lambda refs, **_: list(refs) if isinstance(refs, list) else refs)
    monkeypatch.setattr(ray, "wait", lambda refs, num_returns=1, **_: (list(refs)[:num_returns], list(refs)[num_returns:]))
    base = RecipeConfig()

    def make(design, reward_workers=2, rollout_workers=2):
        cfg = replace(base, seed=3,
                      rollout=replace(base.rollout, samples_per_prompt=G, prompts_per_step=2),
                      reward=replace(base.reward, verifier="arithmetic", design=design),
                      algorithm=replace(base.algorithm, normalize_std=True))
        c = StepRunner(cfg, ActorPool(cfg), tokenizer=None)
        c.tokenizer = FakeTokenizer()
        c.actors.rollout = [Remote(FakeRollout()) for _ in range(rollout_workers)]
        c.actors.reward = [Remote(ReversingRewardWorker("arithmetic", design)) for _ in range(reward_workers)]
        c.actors.trainer = FakeTrainer()
        c.actors.weight_sync = ObjectStoreSync(c.actors.trainer, c.actors.rollout)
        made.append(c)
        return c

    made = []
    yield make
    for c in made:
        for w in c.actors.reward:
            w._obj.close()


def _by_prompt(samples, key):
    out = {}
    for s in samples:
        out.setdefault(s["prompt_id"], []).append(s[key])
    return out


def test_trainer_gets_the_proxy_advantages_across_an_epoch_boundary(controller):
    c = controller({"name": "incorrect_only"})
    sampler = PromptSampler(PROMPTS, seed=0)  # two prompts, two per step: step 2 is epoch 1
    for step in (1, 2):
        epoch = sampler.epoch(step, 2)
        assert epoch == step - 1
        batch_prompts = sampler.batch(step, 2)
        metrics, samples = c.rl_step(step, batch_prompts, epoch)
        order = [p.id for p in batch_prompts]
        batch = c.actors.trainer.batches[-1]
        # Rows are prompt-major, samples in order j = 0..G-1, each with its proxy advantage.
        expected = [a for pid in order for a in PROXY_ADVANTAGES[pid]]
        assert batch.advantages.tolist() == pytest.approx(expected, abs=1e-5)
        gt_based = [a for pid in order for a in GT_ADVANTAGES[pid]]
        assert batch.advantages.tolist() != pytest.approx(gt_based, abs=1e-3)
        # Row b holds the response of sample b: its tokens and behaviour log-probs.
        responses = [r for pid in order for r in RESPONSES[{p.id: p.text for p in PROMPTS}[pid]]]
        for b, text in enumerate(responses):
            mask = batch.response_mask[b].bool()
            assert batch.input_ids[b][mask].tolist() == [ord(ch) for ch in text]
            assert batch.old_logprobs[b][mask].tolist() == pytest.approx([-0.1 * (b % G + 1)] * len(text))
        assert [s["prompt_id"] for s in samples] == [pid for pid in order for _ in range(G)]
        assert _by_prompt(samples, "sample_index") == {pid: [epoch * G + j for j in range(G)] for pid in order}
        advantages = _by_prompt(samples, "advantage")
        for pid in order:
            assert advantages[pid] == pytest.approx(PROXY_ADVANTAGES[pid], abs=1e-5)
        assert _by_prompt(samples, "category") == CATEGORIES
        assert _by_prompt(samples, "proxy") == {"p-a": [0, 1, 0, 1], "p-b": [1, 1, 0, 0]}
        assert _by_prompt(samples, "gt") == {"p-a": [1, 0, 0, 0], "p-b": [0, 0, 0, 0]}
        assert all(s["step"] == step and s["policy_version"] == step - 1 for s in samples)
        # Hand numbers: 8 samples, 1 correct; proxy passes 4; false positives are wrong answers
        # the proxy passes (4 of 7 failures), false negatives correct ones it fails (1 of 1).
        assert metrics["gt/accuracy"] == pytest.approx(1 / 8)
        assert metrics["proxy/reward_mean"] == pytest.approx(4 / 8)
        assert metrics["reward/false_positive_rate"] == pytest.approx(4 / 7)
        assert metrics["reward/false_negative_rate"] == 1.0
        assert metrics["reward/error_rate"] == pytest.approx(5 / 8)
        assert metrics["reward/gt_flat_proxy_varied_groups"] == 0.5
        assert metrics["policy/version"] == step - 1
        assert metrics["response/length_mean"] == pytest.approx(sum(map(len, responses)) / 8)
        assert metrics["reward/verifier_error_rate"] == 0.0
    # each step's prompts were split over both rollout workers; weights synced after each step
    assert [w._obj.calls for w in c.actors.rollout] == [[1, 1], [1, 1]]
    assert [w._obj.version for w in c.actors.rollout] == [2, 2]


def test_flip_noise_is_keyed_by_epoch_times_g_plus_j(controller):
    """A flip design draws per (prompt id, epoch * G + j): a prompt seen again in epoch 1
    gets fresh draws, and those are the ones the trainer's advantages come from."""
    design = {"name": "flip", "fp_rate": 0.5, "seed": 17}
    c = controller(design, reward_workers=1, rollout_workers=1)
    prompt = [Prompt("p-b", "2+2=", "4")]  # all four answers are wrong: proxy = flip draws only
    seen = []
    for step, epoch in ((1, 0), (2, 1)):
        _, samples = c.rl_step(step, prompt, epoch)
        expected = [1.0 if seeded_uniform(17, "p-b", epoch * G + j) < 0.5 else 0.0 for j in range(G)]
        assert [s["proxy"] for s in samples] == expected
        assert [s["gt"] for s in samples] == [0.0] * G
        proxy = torch.tensor([expected])
        adv = (proxy - proxy.mean()) / (proxy.std() + 1e-6) if len(set(expected)) > 1 else proxy * 0
        assert c.actors.trainer.batches[-1].advantages.tolist() == pytest.approx(adv.flatten().tolist(), abs=1e-5)
        seen.append(expected)
    assert seen[0] != seen[1]  # seed 17 draws differ between the epochs (pinned in test_seeded)


def test_kl_in_reward_subtracts_kl_coef_times_sequence_kl_before_advantages(controller):
    from rlvr.algorithms import compute_advantages

    c = controller({"name": "incorrect_only"})
    c.cfg = replace(c.cfg, algorithm=replace(c.cfg.algorithm, kl_coef=0.5, kl_in="reward", name="rloo"))
    prompts = PromptSampler(PROMPTS, seed=0).batch(1, 2)
    metrics, samples = c.rl_step(1, prompts, 0)
    proxy = torch.tensor([s["proxy"] for s in samples], dtype=torch.float64).view(2, G)
    shaped = proxy - 0.5 * 0.1 * torch.arange(2 * G, dtype=torch.float64).view(2, G)
    expected = compute_advantages("rloo", shaped).flatten().tolist()
    assert c.actors.trainer.batches[-1].advantages.tolist() == pytest.approx(expected, abs=1e-5)
    assert [s["advantage"] for s in samples] == pytest.approx(expected, abs=1e-5)
    assert expected != pytest.approx(compute_advantages("rloo", proxy).flatten().tolist(), abs=1e-3)
    assert metrics["reward/kl_penalty_mean"] == pytest.approx(0.5 * 0.1 * sum(range(2 * G)) / (2 * G))


class InProcessTrainer(FakeTrainer):
    """rollout.in_trainer's rank: train_step(broadcast_version) loads the engine in its process."""

    def __init__(self, engine):
        super().__init__()
        self.engine, self.broadcasts = engine, []

    def train_step(self, batch, temperature=1.0, broadcast_version=None, wait=True):
        self.batches.append(batch)
        self.broadcasts.append(broadcast_version)
        self.engine.version = broadcast_version
        return [{"loss": 0.0, "perf/weight_broadcast_s": 0.25}]


def test_engine_in_trainer_takes_the_weights_inside_train_step_and_generates_without_receiving(controller):
    from rlvr.controller.engine_in_trainer import EngineInTrainer
    from rlvr.controller.weight_sync import InProcessSync

    c = controller({"name": "ground_truth"}, reward_workers=1, rollout_workers=1)
    engine = FakeRollout()  # its generate takes no receive_version: a broadcast to receive would fail it

    class Rank:  # the trainer rank actor: engine_call.remote(name, ...) runs the engine's method
        engine_call = SimpleNamespace(remote=lambda name, *a, **k: getattr(engine, name)(*a, **k))

    c.actors.rollout = [EngineInTrainer(Rank())]
    c.actors.trainer = InProcessTrainer(engine)
    c.actors.weight_sync = InProcessSync(c.actors.trainer)
    c.follow(lambda step: (PROMPTS, 0), generate_until=3)
    for step in (1, 2, 3):
        metrics, samples = c.rl_step(step, PROMPTS, 0)
        assert {s["policy_version"] for s in samples} == {step - 1}  # step 2 sampled from update 1
        assert metrics["perf/weight_sync_s"] == 0.25  # the load's seconds, from train_step
    assert c.actors.trainer.broadcasts == [1, 2, 3] and engine.version == 3
    assert engine.calls == [2, 2, 2]  # one generate per step, none for a separate sync
