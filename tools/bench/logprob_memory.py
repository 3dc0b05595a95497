# Run: OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python tools/bench/logprob_memory.py [--rows 512 --vocab 151936]
"""Peak memory and time of the trainer's per-token log-prob + entropy, old vs chunked, side by side.

"old": `token_logprobs` + `entropy_from_logits` (each upcasts the whole [rows, V] logits to
float32 and keeps log-softmax outputs for backward). "chunked": `token_logprobs_and_entropy`
(one float32 chunk of rows at a time, softmax recomputed per chunk in backward). Each runs
forward + backward of `sum(a * logprob + b * entropy)` over bf16 logits in a fresh process;
peak memory is the process's peak RSS above its RSS once the inputs exist (Linux VmHWM, reset
through /proc/self/clear_refs), on CPU; `torch.cuda.max_memory_allocated` with --device cuda.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def _rss_mib(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} missing from /proc/self/status")


def measure(method: str, rows: int, vocab: int, device: str, chunk_elements: int) -> dict:
    """Peak extra MiB and seconds of one forward + backward of `method` (in this process)."""
    import torch

    from rlvr.algorithms.grpo import entropy_from_logits, token_logprobs, token_logprobs_and_entropy

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, vocab, generator=gen).to(device, torch.bfloat16).requires_grad_(True)
    targets = torch.randint(0, vocab, (rows,), generator=gen).to(device)
    a, b = torch.randn(rows, generator=gen).to(device), torch.randn(rows, generator=gen).to(device)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        base = _rss_mib("VmRSS")
    start = time.perf_counter()
    if method == "old":
        lp, ent = token_logprobs(logits, targets), entropy_from_logits(logits)
    else:
        lp, ent = token_logprobs_and_entropy(logits, targets, chunk_elements=chunk_elements)
    (a * lp + b * ent).sum().backward()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = _rss_mib("VmHWM")
    return {"method": method, "peak_extra_mib": peak - base, "seconds": time.perf_counter() - start,
            "fp32_copy_mib": rows * vocab * 4 / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512, help="batch x time rows of logits")
    parser.add_argument("--vocab", type=int, default=151936, help="vocabulary size (Qwen2: 151936)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--chunk-elements", type=int, default=1 << 24)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.rows, args.vocab, args.device, args.chunk_elements)))
        return
    results = {}
    for method in ("old", "chunked"):  # a fresh process each: peaks never mix
        out = subprocess.run([sys.executable, __file__, "--child", method, "--rows", str(args.rows),
                              "--vocab", str(args.vocab), "--device", args.device,
                              "--chunk-elements", str(args.chunk_elements)],
                             capture_output=True, text=True, check=True, env={**os.environ})
        results[method] = json.loads(out.stdout.strip().splitlines()[-1])
    old, new = results["old"], results["chunked"]
    copy = old["fp32_copy_mib"]
    print(f"logits [{args.rows}, {args.vocab}] bf16 on {args.device}; one fp32 copy = {copy:.0f} MiB")
    print(f"{'':>22} {'old':>10} {'chunked':>10} {'old/chunked':>12}")
    print(f"{'peak extra MiB':>22} {old['peak_extra_mib']:>10.0f} {new['peak_extra_mib']:>10.0f} "
          f"{old['peak_extra_mib'] / max(new['peak_extra_mib'], 1e-9):>12.2f}")
    print(f"{'in fp32 copies':>22} {old['peak_extra_mib'] / copy:>10.2f} {new['peak_extra_mib'] / copy:>10.2f}")
    print(f"{'fwd+bwd seconds':>22} {old['seconds']:>10.3f} {new['seconds']:>10.3f} "
          f"{old['seconds'] / max(new['seconds'], 1e-9):>12.2f}")


if __name__ == "__main__":
    main()
