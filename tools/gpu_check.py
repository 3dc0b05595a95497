# Run: bash tools/gpu_check.sh   (or, with deepspeed importable: PYTHONPATH=$PWD python tools/gpu_check.py [--cpu])
"""Check the GPU-only parts of rlvr on one GPU without Ray, vLLM or omegaconf; print a table.

Each case runs in a fresh process (DeepSpeed keeps global state; peak memory is per case):
a bf16 HF engine on the device generates G samples per prompt, a one-rank PolicyTrainer
(DeepSpeed bf16, ZeRO-2 or ZeRO-3 + gradient checkpointing, NCCL with world size 1)
recomputes old log-probs and takes a GRPO step, and the new weights are handed over on the
same device: to the generating engine in the same process as a state dict through host memory
(object_store's way, and rollout.in_trainer's: the hf engine beside the rank in one process),
and to a second engine in another process by CUDA IPC handles, bucket by bucket
(rollout.weight_sync = ipc: rlvr/comm/tensor_handles.py, the functions IpcSync runs under Ray).
Columns: generation tokens/s; the engine-vs-trainer log-prob gap (mean / max per token, the
`policy/logprob_mismatch_*` metrics); |ratio_mean - 1| (0 when old log-probs are recomputed);
median step seconds; seconds of each hand-over; the gap after each (per token, engine score vs
trainer); peak device memory during the train steps and over the whole case (host RSS with
--cpu; the ipc engine's process is not counted). With --cpu the ipc hand-over goes through
/dev/shm, the twin CI runs.

A second table ("components", its own fresh process) shows: the collective weight sender's
peak device memory over five syncs of a multi-bucket model (world size 1: NCCL on a GPU, gloo on
CPU), which must stay within two buckets (rlvr/comm/weight_group.py double-buffers); and the
HF engine's generation tokens/s eager and with CUDA graphs (static cache, which transformers
compiles with torch.compile "reduce-overhead"; skipped on CPU, where there are none).

With no CUDA (or --cpu) it runs the same cases on CPU with gloo and a tiny model, so the
script itself is tested where no GPU is (tests/tools/test_gpu_check.py).
"""
from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import types
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
RESULT_TAG = "GPU_CHECK_RESULT "
CASES = {"zero2": dict(zero_stage=2, gradient_checkpointing=False),
         "zero3+ckpt": dict(zero_stage=3, gradient_checkpointing=True)}
# Model sizes: "base" has a real 150k vocabulary (Qwen2's) so the chunked log-prob path and
# the logits' memory are exercised; the char tokenizer only emits ids < 100, which is fine.
SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
                 vocab_size=None),
    "base": dict(hidden_size=1024, num_hidden_layers=8, num_attention_heads=16, intermediate_size=2816,
                 vocab_size=151936),
}
# What gpu_check.sh unpacks when missing or too old: (import name, distribution, minimum version).
# pydantic 2.14 needs typing_extensions >= 4.16 (newer than torch's); the unpacked copy shadows it.
WHEEL_MODULES = [("deepspeed", "deepspeed", None), ("einops", "einops", None), ("hjson", "hjson", None),
                 ("msgpack", "msgpack", None), ("ninja", "ninja", None), ("psutil", "psutil", None),
                 ("cpuinfo", "py_cpuinfo", None), ("annotated_types", "annotated_types", None),
                 ("typing_inspection", "typing_inspection", None), ("pydantic_core", "pydantic_core", None),
                 ("pydantic", "pydantic", "2.0"), ("typing_extensions", "typing_extensions", "4.16.0")]


# ---- emulating / preparing the bare GPU machine ------------------------------------------------

class _Blocker(importlib.abc.MetaPathFinder):
    """Make `import X` fail for the given top-level names (emulates a machine without them)."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise ImportError(f"{fullname} is blocked (--block-imports)")
        return None


def block_imports(names: List[str]) -> None:
    if names:
        sys.meta_path.insert(0, _Blocker(names))


def unpack_wheels(wheel_dir: Path, site: Path, modules=WHEEL_MODULES) -> List[str]:
    """Unpack into `site` each wheel of `modules` whose module is missing here (or too old).

    Unpacking a wheel is installing it minus scripts; no pip or network needed. Binary
    wheels are chosen by this interpreter's tags (the folder holds cp310..cp314 builds).
    """
    from packaging.tags import sys_tags
    from packaging.utils import parse_wheel_filename

    from importlib.metadata import PackageNotFoundError, version
    from packaging.version import Version

    supported = list(sys_tags())
    rank = {tag: i for i, tag in enumerate(supported)}
    site.mkdir(parents=True, exist_ok=True)
    installed = []
    for module, dist, minimum in modules:
        if (site / module).exists() or (site / f"{module}.py").exists():
            continue  # unpacked by an earlier run
        if importlib.util.find_spec(module) is not None:
            try:
                if minimum is None or Version(version(dist)) >= Version(minimum):
                    continue
            except PackageNotFoundError:
                continue  # importable without metadata: take it as it is
        best = None
        for wheel in sorted(wheel_dir.glob("*.whl")):
            name, _, _, tags = parse_wheel_filename(wheel.name)
            if name.replace("-", "_") != dist:
                continue
            score = min((rank[t] for t in tags if t in rank), default=None)
            if score is not None and (best is None or score < best[0]):
                best = (score, wheel)
        if best is None:
            raise SystemExit(f"gpu_check: {module} is not installed and {wheel_dir} has no wheel of "
                             f"{dist} for this Python; run `bash tools/gpu_check.sh --fetch-wheels` "
                             "on a machine with network and copy .gpu_wheels/ here")
        with zipfile.ZipFile(best[1]) as zf:
            zf.extractall(site)
        installed.append(best[1].name)
    return installed


def _import_hf_engine():
    """HFEngine without running rlvr.rollout's __init__ (it imports Ray's actor module)."""
    try:
        from rlvr.rollout.hf_engine import HFEngine
    except ImportError:
        package = types.ModuleType("rlvr.rollout")
        package.__path__ = [str(ROOT / "rlvr" / "rollout")]
        sys.modules["rlvr.rollout"] = package
        from rlvr.rollout.hf_engine import HFEngine
    return HFEngine


# ---- the model ---------------------------------------------------------------------------------

def build_model(out_dir: Path, size: str) -> int:
    """A random Llama-architecture model + char tokenizer in `out_dir`; returns its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlvr.models.tiny import build_char_tokenizer

    tok = build_char_tokenizer(out_dir)
    spec = dict(SIZES[size])
    spec["vocab_size"] = spec["vocab_size"] or len(tok)
    config = LlamaConfig(num_key_value_heads=spec["num_attention_heads"], max_position_embeddings=512,
                         tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id, **spec)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return sum(p.numel() for p in model.parameters())


def _prompts(tokenizer, count: int, seed: int = 0) -> List[List[int]]:
    import random

    rng = random.Random(seed)
    texts = [f"{rng.randint(10, 99)}+{rng.randint(10, 99)}=" for _ in range(count)]
    return [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


# ---- one case (child process) ------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM restarts from the current RSS


def _peak_gib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 2**20


IPC_BUCKET_MB = 64.0  # several buckets for the base model: the buffer is really reused


def _ipc_engine_process(conn, model_dir: str, device_name: str, blocked: List[str]) -> None:
    """The ipc receiver in its own process (CUDA IPC cannot open memory in the process that made it):
    an HF engine that loads buckets by handle and scores sequences, driven over `conn`."""
    block_imports(blocked)
    try:
        engine = _import_hf_engine()(model_dir, dtype="bfloat16", device=device_name)
        conn.send(("ready", None))
        while True:
            what, *args = conn.recv()
            if what == "stop":
                break
            if what == "open":
                reply = engine.open_ipc_sync(*args)
            elif what == "bucket":
                reply = engine.load_ipc_bucket(*args)  # returns once the buffer may be rewritten
            else:  # "score": summed log-probs of (prompt, response) pairs
                reply = [sum(engine.score(p, r)) for p, r in zip(*args)]
            conn.send(("ok", reply))
    except Exception as err:  # noqa: BLE001 - reported by the case
        conn.send(("error", f"ipc engine: {type(err).__name__}: {err}".splitlines()[0]))


class IpcEngine:
    """The parent's side of `_ipc_engine_process`: call(what, *args) -> reply, raising its errors."""

    def __init__(self, model_dir: str, device_name: str, blocked: List[str]):
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # a CUDA context does not survive fork
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(target=_ipc_engine_process, daemon=True,
                                       args=(child_conn, model_dir, device_name, blocked))
        self.process.start()

    def call(self, what: str, *args):
        if what != "ready":
            self.conn.send((what, *args))
        status, reply = self.conn.recv()
        if status == "error":
            raise RuntimeError(reply)
        return reply

    def close(self) -> None:
        try:
            self.conn.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()


def run_case(name: str, model_dir: str, device_name: str, steps: int, prompts: int, samples: int,
             new_tokens: int, micro_batch: int, blocked: Optional[List[str]] = None) -> Dict[str, float]:
    """Generate, train (bf16, recomputed old log-probs), hand weights over; returns the row."""
    ipc_engine = IpcEngine(model_dir, device_name, blocked or [])  # starts while the trainer does
    try:
        return _run_case(name, model_dir, device_name, steps, prompts, samples, new_tokens, micro_batch, ipc_engine)
    finally:
        ipc_engine.close()


def _run_case(name: str, model_dir: str, device_name: str, steps: int, prompts: int, samples: int,
              new_tokens: int, micro_batch: int, ipc_engine: IpcEngine) -> Dict[str, float]:
    import torch

    from rlvr.algorithms.grpo import group_advantages
    from rlvr.comm.tensor_handles import share
    from rlvr.trainer.batch import make_train_batch
    from rlvr.trainer.policy_trainer import PolicyTrainer

    HFEngine = _import_hf_engine()
    device = torch.device(device_name)
    if device.type == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    engine = HFEngine(model_dir, dtype="bfloat16", device=device_name)
    trainer = PolicyTrainer(0, 1, "127.0.0.1", _free_port(), model_dir,
                            {"micro_batch_size": micro_batch, "lr": 1e-5, **CASES[name]}, {},
                            local_rank=0, num_threads=max(1, os.cpu_count() or 1) if device.type == "cuda" else 1,
                            dtype="bfloat16")
    prompt_ids = _prompts(engine.tokenizer, prompts)
    ipc_engine.call("ready")
    plan = trainer.open_ipc_sync("bfloat16", IPC_BUCKET_MB)  # the buffer every bucket passes through
    ipc_engine.call("open", plan["buckets"], "bfloat16")
    rng = torch.Generator().manual_seed(0)
    gen_rates, step_times, gaps, gap_maxes, ratios, sync_times, ipc_times = [], [], [], [], [], [], []
    peak_gib, train_peak_gib = 0.0, 0.0
    for step in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        groups = engine.generate(prompt_ids, samples, new_tokens, temperature=1.0, seed=step)
        _sync(device)
        tokens = sum(len(g.token_ids) for group in groups for g in group)
        gen_rates.append(tokens / (time.perf_counter() - t0))
        rewards = torch.rand(prompts, samples, generator=rng).round()  # stand-in 0/1 rewards
        batch = make_train_batch([p for p in prompt_ids for _ in range(samples)],
                                 [g.token_ids for group in groups for g in group],
                                 [g.logprobs for group in groups for g in group],
                                 group_advantages(rewards).flatten().tolist(), pad_id=trainer.pad_id)
        peak_gib = max(peak_gib, _peak_gib(device))
        _reset_peak(device)  # the trainer's own peak (logits of a 150k vocabulary, optimizer)
        t0 = time.perf_counter()
        metrics = trainer.train_step(batch)
        _sync(device)
        step_times.append(time.perf_counter() - t0)
        train_peak_gib = max(train_peak_gib, _peak_gib(device))
        _reset_peak(device)
        gaps.append(metrics["policy/logprob_mismatch_mean"])
        gap_maxes.append(metrics["policy/logprob_mismatch_max"])
        ratios.append(abs(metrics["policy/ratio_mean"] - 1.0))
        t0 = time.perf_counter()
        engine.load_weights(trainer.full_state_dict())  # via host memory, as object_store, in_process
        _sync(device)
        sync_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        loaded = [ipc_engine.call("bucket", index, share(flat)) for index, flat in trainer.ipc_buckets()]
        if loaded[-1] is not True:
            raise RuntimeError(f"ipc engine did not complete the sync: {loaded}")
        ipc_times.append(time.perf_counter() - t0)

    # After the hand-over the engine scores sequences as the trainer does (bf16 noise only).
    responses = [g.token_ids for group in groups for g in group][:4]
    rows = [p for p in prompt_ids for _ in range(samples)][:4]
    trainer_sums = trainer.sequence_logprobs(rows, responses)
    count = max(1, sum(len(r) for r in responses))
    post_gap = sum(abs(t - sum(engine.score(p, r))) for t, p, r in zip(trainer_sums, rows, responses)) / count
    ipc_gap = sum(abs(t - s) for t, s in zip(trainer_sums, ipc_engine.call("score", rows, responses))) / count
    trainer.close_ipc_sync()
    timed = step_times[1:] or step_times  # the first step includes warm-up
    return {"gen_tokens_per_s": statistics.median(gen_rates), "gap_mean": statistics.mean(gaps),
            "gap_max": max(gap_maxes), "ratio_off": max(ratios), "step_s": statistics.median(timed),
            "sync_s": statistics.median(sync_times[1:] or sync_times),
            "ipc_s": statistics.median(ipc_times[1:] or ipc_times), "post_sync_gap": post_gap, "ipc_gap": ipc_gap,
            "ipc_buckets": len(plan["buckets"]),
            "peak_gib": max(peak_gib, train_peak_gib, _peak_gib(device)), "train_peak_gib": train_peak_gib}


# ---- components: sync sender memory, CUDA-graph generation (child process) -------------------------

COMPONENTS = "components"  # the --case name of the component checks
# The sender check's model: SYNC_LAYERS tensors of SYNC_TENSOR_MB in bf16, buckets of SYNC_BUCKET_MB
# (several tensors a bucket): one buffer per bucket would hold the whole model, double-buffering two buckets.
SYNC_SIZES = {"cuda": dict(layers=24, tensor_mb=16.0, bucket_mb=32.0), "cpu": dict(layers=24, tensor_mb=0.0625,
                                                                                    bucket_mb=0.125)}


def check_sender_memory(device_name: str, syncs: int = 5) -> Dict[str, object]:
    """Peak memory the collective sender adds over `syncs` syncs of a multi-bucket model, against
    two buckets. On CUDA: torch.cuda.max_memory_allocated over the model's baseline; on CPU: the
    bytes of the sender's buffers (host peaks are too noisy)."""
    import torch

    from rlvr.comm.weight_group import WeightGroup, host_store, plan_tensor_buckets, send_weights

    device = torch.device(device_name)
    size = SYNC_SIZES[device.type]
    rows = int(size["tensor_mb"] * 2**20 / 2 / 1024)  # bf16: 2 bytes per element, 1024 columns
    tensors = {f"layers.{i}.weight": torch.randn(rows, 1024, device=device, dtype=torch.bfloat16)
               for i in range(size["layers"])}
    buckets = plan_tensor_buckets([(n, tuple(t.shape)) for n, t in tensors.items()], "bfloat16", size["bucket_mb"])
    largest = max(sum(t.numel() for t in (tensors[n] for n, _ in b)) for b in buckets) * 2
    store, _, _ = host_store(120)
    group = WeightGroup(0, 1, "nccl" if device.type == "cuda" else "gloo", store=store, timeout_s=120)
    try:
        _sync(device)
        base = torch.cuda.memory_allocated() if device.type == "cuda" else 0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        held = 0
        for version in range(syncs):
            send_weights(group, version, buckets, ([tensors[n] for n, _ in b] for b in buckets), torch.bfloat16)
            held = max(held, group.send_buffer_bytes)
        _sync(device)
        peak = (torch.cuda.max_memory_allocated() - base) if device.type == "cuda" else held
        allocated = group.send_buffers_allocated
    finally:
        group.close()
    bound = 2 * largest + (2**20 if device.type == "cuda" else 0)  # two buckets (+ the control messages' blocks)
    model_bytes = sum(t.numel() for t in tensors.values()) * 2
    return {"value": peak / 2**20, "bound": bound / 2**20, "buckets": len(buckets),
            "buffers_allocated": allocated, "model_mib": model_bytes / 2**20,
            "ok": peak <= bound and allocated <= 2}


def check_generation_speed(model_dir: str, device_name: str, prompts: int, samples: int, new_tokens: int,
                           cuda_graphs: bool, calls: int = 3) -> Dict[str, object]:
    """Median generation tokens/s of the HF engine over `calls` calls after one warm-up call (which
    compiles and captures the graphs when `cuda_graphs`)."""
    import torch

    HFEngine = _import_hf_engine()
    device = torch.device(device_name)
    engine = HFEngine(model_dir, dtype="bfloat16", device=device_name, cuda_graphs=cuda_graphs)
    prompt_ids = _prompts(engine.tokenizer, prompts)
    t0 = time.perf_counter()
    engine.generate(prompt_ids, samples, new_tokens, seed=0)  # warm-up: compilation, graph capture
    warmup_s = time.perf_counter() - t0
    rates = []
    for call in range(calls):
        _sync(device)
        t0 = time.perf_counter()
        groups = engine.generate(prompt_ids, samples, new_tokens, seed=1 + call)
        _sync(device)
        rates.append(sum(len(g.token_ids) for group in groups for g in group) / (time.perf_counter() - t0))
    del engine
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"value": statistics.median(rates), "warmup_s": warmup_s, "ok": True}


def run_components(model_dir: str, device_name: str, prompts: int, samples: int, new_tokens: int) -> Dict[str, Dict]:
    """Each component check's row: {"value", "ok", ...} or {"error"} or {"skipped": reason}."""
    rows: Dict[str, Dict] = {}
    checks = [("sync sender peak MiB (5 syncs)", lambda: check_sender_memory(device_name)),
              ("hf generate tok/s, eager", lambda: check_generation_speed(
                  model_dir, device_name, prompts, samples, new_tokens, cuda_graphs=False))]
    if device_name.startswith("cuda"):
        checks.append(("hf generate tok/s, CUDA graphs", lambda: check_generation_speed(
            model_dir, device_name, prompts, samples, new_tokens, cuda_graphs=True)))
    else:
        checks.append(("hf generate tok/s, CUDA graphs", lambda: {"skipped": "CUDA graphs need a GPU"}))
    for name, check in checks:
        try:
            rows[name] = check()
        except Exception as err:  # noqa: BLE001 - reported in the table
            import traceback

            traceback.print_exc()
            rows[name] = {"error": f"{type(err).__name__}: {err}".splitlines()[0]}
    return rows


def format_components(rows: Dict[str, Dict]) -> str:
    """The component table: check | status | value | detail."""
    header, lines = ["component", "status", "value", "detail"], []
    for name, row in rows.items():
        if "error" in row:
            lines.append([name, "FAIL", "", row["error"][:80]])
        elif "skipped" in row:
            lines.append([name, "skipped", "", row["skipped"]])
        else:
            detail = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in row.items() if k not in ("value", "ok"))
            lines.append([name, "ok" if row["ok"] else "FAIL", f"{row['value']:.2f}", detail])
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in lines])


# ---- the parent: build, run cases, print the table -----------------------------------------------

COLUMNS = [("gen tok/s", "gen_tokens_per_s", "{:.0f}"), ("lp gap mean", "gap_mean", "{:.2e}"),
           ("lp gap max", "gap_max", "{:.2e}"), ("|ratio-1|", "ratio_off", "{:.1e}"),
           ("step s", "step_s", "{:.3f}"), ("sync s", "sync_s", "{:.3f}"), ("ipc s", "ipc_s", "{:.4f}"),
           ("gap after sync", "post_sync_gap", "{:.2e}"), ("gap after ipc", "ipc_gap", "{:.2e}"),
           ("train peak GiB", "train_peak_gib", "{:.2f}"),
           ("peak GiB", "peak_gib", "{:.2f}")]


def format_table(results: Dict[str, Dict], memory: str) -> str:
    header = ["case", "status"] + [c[0].replace("GiB", f"{memory} GiB") for c in COLUMNS]
    rows = []
    for case, res in results.items():
        if "error" in res:
            rows.append([case, "FAIL: " + res["error"][:60]] + [""] * len(COLUMNS))
        else:
            rows.append([case, "ok"] + [fmt.format(res[key]) for _, key, fmt in COLUMNS])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def _versions() -> str:
    import torch
    import transformers

    from importlib.metadata import PackageNotFoundError, version

    try:  # metadata only: importing deepspeed here would cost the parent seconds
        ds = version("deepspeed")
    except PackageNotFoundError:
        ds = "missing"
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers "
            f"{transformers.__version__}, deepspeed {ds}, {gpu}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run on CPU (gloo) even if CUDA is present")
    parser.add_argument("--size", choices=sorted(SIZES), default=None, help="model (default: base on GPU, tiny on CPU)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {list(CASES)}")
    parser.add_argument("--steps", type=int, default=None, help="GRPO steps per case (default 4 GPU, 2 CPU)")
    parser.add_argument("--prompts", type=int, default=None, help="prompts per step (default 32 GPU, 4 CPU)")
    parser.add_argument("--samples", type=int, default=None, help="samples per prompt (default 8 GPU, 2 CPU)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens per response (default 64 GPU, 4 CPU)")
    parser.add_argument("--case-timeout", type=float, default=200.0, help="seconds per case")
    parser.add_argument("--no-components", action="store_true", help="skip the component table (sync sender "
                        "memory, generation with and without CUDA graphs)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--block-imports", default="", help="comma-separated modules to make unimportable "
                        "(emulates the bare GPU machine; the test passes ray,omegaconf,vllm)")
    parser.add_argument("--unpack-wheels", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--site", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--device", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--micro-batch", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    blocked = [m for m in args.block_imports.split(",") if m]
    block_imports(blocked)

    if args.unpack_wheels:
        for wheel in unpack_wheels(Path(args.unpack_wheels), Path(args.site)):
            print(f"[gpu_check] unpacked {wheel}", flush=True)
        return 0
    if args.case == COMPONENTS:  # child: the component checks, one JSON line
        result = run_components(args.model_dir, args.device, args.prompts, args.samples, args.new_tokens)
        print(RESULT_TAG + json.dumps(result), flush=True)
        return 0
    if args.case:  # child: one case, one JSON line
        try:
            result = run_case(args.case, args.model_dir, args.device, args.steps, args.prompts,
                              args.samples, args.new_tokens, args.micro_batch, blocked)
        except Exception as err:  # noqa: BLE001 - reported in the table
            import traceback

            traceback.print_exc()
            result = {"error": f"{type(err).__name__}: {err}".splitlines()[0]}
        print(RESULT_TAG + json.dumps(result), flush=True)
        return 0

    import torch

    on_gpu = torch.cuda.is_available() and not args.cpu
    size = args.size or ("base" if on_gpu else "tiny")
    steps = args.steps or (4 if on_gpu else 2)
    prompts = args.prompts or (32 if on_gpu else 4)
    samples = args.samples or (8 if on_gpu else 2)
    new_tokens = args.new_tokens or (64 if on_gpu else 4)
    micro_batch = 64 if on_gpu else 4
    cases = [c for c in args.cases.split(",") if c]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"--cases: unknown {unknown}; choose from {list(CASES)}")
    print(f"[gpu_check] {_versions()}", flush=True)
    started = time.perf_counter()
    results: Dict[str, Dict] = {}
    with tempfile.TemporaryDirectory(prefix="rlvr_gpu_check_") as tmp:
        params = build_model(Path(tmp), size)
        print(f"[gpu_check] model {size}: {params / 1e6:.1f}M parameters; {steps} steps of "
              f"{prompts} prompts x {samples} samples x {new_tokens} tokens per case", flush=True)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in os.environ.get(
            "PYTHONPATH", "").split(os.pathsep) if p])}
        if not on_gpu:
            env.update(CUDA_VISIBLE_DEVICES="", DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1")
        for case in cases:
            command = [sys.executable, str(Path(__file__).resolve()), "--case", case, "--model-dir", tmp,
                       "--device", "cuda" if on_gpu else "cpu", "--steps", str(steps),
                       "--prompts", str(prompts), "--samples", str(samples),
                       "--new-tokens", str(new_tokens), "--micro-batch", str(micro_batch),
                       "--block-imports", ",".join(blocked)]
            t0 = time.perf_counter()
            print(f"[gpu_check] case {case} ...", flush=True)
            try:
                out = subprocess.run(command, env=env, capture_output=True, text=True,
                                     timeout=args.case_timeout)
                lines = [ln for ln in out.stdout.splitlines() if ln.startswith(RESULT_TAG)]
                if lines:
                    results[case] = json.loads(lines[-1][len(RESULT_TAG):])
                else:
                    results[case] = {"error": f"exit {out.returncode}, no result"}
                if "error" in results[case]:
                    sys.stderr.write(out.stderr[-4000:])
            except subprocess.TimeoutExpired:
                results[case] = {"error": f"timed out after {args.case_timeout:.0f} s"}
            print(f"[gpu_check] case {case}: {time.perf_counter() - t0:.0f} s", flush=True)
        components: Dict[str, Dict] = {}
        if not args.no_components:
            t0 = time.perf_counter()
            print("[gpu_check] components ...", flush=True)
            command = [sys.executable, str(Path(__file__).resolve()), "--case", COMPONENTS, "--model-dir", tmp,
                       "--device", "cuda" if on_gpu else "cpu", "--prompts", str(prompts),
                       "--samples", str(samples), "--new-tokens", str(new_tokens),
                       "--block-imports", ",".join(blocked)]
            try:
                out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.case_timeout)
                lines = [ln for ln in out.stdout.splitlines() if ln.startswith(RESULT_TAG)]
                components = (json.loads(lines[-1][len(RESULT_TAG):]) if lines
                              else {"components": {"error": f"exit {out.returncode}, no result"}})
                if any("error" in row for row in components.values()):
                    sys.stderr.write(out.stderr[-4000:])
            except subprocess.TimeoutExpired:
                components = {"components": {"error": f"timed out after {args.case_timeout:.0f} s"}}
            print(f"[gpu_check] components: {time.perf_counter() - t0:.0f} s", flush=True)
    print()
    print(format_table(results, "GPU" if on_gpu else "host"))
    if components:
        print()
        print(format_components(components))
    print(f"\n{_versions()}; {'cuda' if on_gpu else 'cpu'}; total {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"versions": _versions(), "device": "cuda" if on_gpu else "cpu",
                                               "size": size, "results": results, "components": components},
                                              indent=2))
    failed = any("error" in r for r in results.values()) or any(
        "error" in r or r.get("ok") is False for r in components.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
