"""A tiny untrained Llama folder (char tokenizer) shared by the reward-model tests."""
import pytest


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory):
    from rlvr.models.tiny import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny_lm"), hidden_size=32, num_layers=1, num_heads=1,
                                intermediate_size=64, seed=0))
