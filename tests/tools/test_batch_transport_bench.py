"""tools/bench/batch_transport.py: its batch has the quickstart's shape, its torch arm really
pickles torch tensors, and a short run prints all three arms and their ratio."""
import pickle

import pytest


def test_the_torch_arm_pickles_torch_storages_and_the_batch_does_not(load_tool):
    bench = load_tool("bench/batch_transport.py")
    batch = bench.quickstart_batch(16)
    assert tuple(batch.input_ids.shape)[0] == 16 and batch.response_mask.sum() == 16 * 6
    assert b"torch._utils" in pickle.dumps(bench.TorchPickled(batch).tensors)  # _rebuild_tensor_v2
    assert b"torch._utils" not in pickle.dumps(batch)


@pytest.mark.e2e
def test_a_short_run_prints_every_arm_and_the_ratio(load_tool, capsys):
    bench = load_tool("bench/batch_transport.py")
    assert bench.main(["--rows", "16", "--calls", "2"]) == 0
    out = capsys.readouterr().out
    for arm in ("empty call", "TrainBatch (numpy buffers)", "same tensors, torch pickling"):
        assert arm in out
    assert "numpy buffers / torch pickling = " in out
