from rlvr.controller.prompts import PromptSampler, split_round_robin
from rlvr.tasks import Prompt


def test_sampler_covers_each_epoch_once_and_is_deterministic():
    prompts = [Prompt(str(i), str(i), str(i)) for i in range(10)]
    sampler = PromptSampler(prompts, seed=1)
    epoch = [p.id for step in (1, 2) for p in sampler.batch(step, 5)]
    assert sorted(epoch) == sorted(p.id for p in prompts)
    assert [p.id for p in PromptSampler(prompts, seed=1).batch(3, 5)] == [p.id for p in sampler.batch(3, 5)]
    assert [p.id for p in sampler.batch(1, 5)] != [p.id for p in PromptSampler(prompts, seed=2).batch(1, 5)]
    assert [sampler.epoch(step, 5) for step in (1, 2, 3, 4, 5)] == [0, 0, 1, 1, 2]
    # a new epoch is a new order of the same prompts
    assert sorted(p.id for s in (3, 4) for p in sampler.batch(s, 5)) == sorted(epoch)


def test_each_epoch_has_an_order_of_its_own():
    # a shuffle seeded without the epoch repeats epoch 0's order forever; resume tests compare two
    # runs that share such a bug, so only this catches it
    prompts = [Prompt(str(i), str(i), str(i)) for i in range(12)]
    sampler = PromptSampler(prompts, seed=5)
    order = lambda epoch: [p.id for s in range(3 * epoch + 1, 3 * epoch + 4) for p in sampler.batch(s, 4)]  # noqa: E731
    assert [sampler.epoch(s, 4) for s in (1, 3, 4, 6, 7)] == [0, 0, 1, 1, 2]
    assert sorted(order(0)) == sorted(order(1)) == sorted(order(2))
    assert order(1) != order(0) and order(2) != order(1) and order(2) != order(0)


def test_an_epoch_is_shuffled_once_and_stays_a_pure_function_of_seed_and_step(monkeypatch):
    import random

    prompts = [Prompt(str(i), str(i), str(i)) for i in range(12)]
    fresh = lambda step: [p.id for p in PromptSampler(prompts, seed=5).batch(step, 4)]  # noqa: E731
    expected = {step: fresh(step) for step in range(1, 10)}
    shuffles = []
    real = random.Random.shuffle
    monkeypatch.setattr(random.Random, "shuffle", lambda self, x: (shuffles.append(1), real(self, x))[1])
    sampler = PromptSampler(prompts, seed=5)
    # as the overlap loop asks: each step, then the next (which may be of the next epoch), then an earlier one
    asked = [s for step in range(1, 9) for s in (step, step + 1)] + [1, 9]
    for step in asked:
        assert [p.id for p in sampler.batch(step, 4)] == expected[step]
    # epochs 0, 1, 2 once each while stepping; then epoch 0 and epoch 2 again, each after it was let go
    assert len(shuffles) == 3 + 2


def test_split_round_robin():
    assert split_round_robin([1, 2, 3, 4, 5], 2) == [[1, 3, 5], [2, 4]]
