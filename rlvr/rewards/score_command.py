"""`rlvr score`: score (or re-score) JSONL records offline with a verifier and a reward design.

    rlvr score IN.jsonl [IN2.jsonl | runs/RUN/samples/ ...] --verifier math \\
        [--design DESIGN.yaml] --out OUT.jsonl [--workers N] [--timeout S]

Each input record needs `response` and `gold`; `prompt_id`, `sample_index`, `num_tokens`,
`meta`, `constraints`, `step` are optional (a missing prompt_id becomes "FILE:LINE", a
missing sample_index 0, and both are written out). Every record is written back with `gt`,
`proxy`, `reason`, `answer` (and `gt_details` when the verifier gives details), scored by
the same code as training (rlvr.rewards.scoring.score_samples), plus `expected_proxy`,
`systematic_proxy` and `category`: the error's family from the one labeller (rlvr/rewards/labels.py)
on the systematic proxy within its group, as training labels it. Re-scoring a run's samples/
keeps the previous values as `gt_before`, `proxy_before` and `category_before`.

DESIGN.yaml holds a design mapping ({name: flip, fp_rate: 0.1, seed: 0}), either at top
level or under reward.design of a recipe (whose reward.verifier then is the default
--verifier); --design also takes the mapping inline. Default design: ground_truth.

Groups (for group-aware designs) are the records of one file with the same prompt_id (and
step). Malformed lines are reported on stderr as FILE:LINE and skipped; the summary counts
them and the exit status is 1 if any were skipped (2 for a usage or configuration error).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from rlvr.rewards.errors import RewardConfigError

PREVIOUS = {"gt": "gt_before", "proxy": "proxy_before", "category": "category_before"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rlvr score",
        description="Score JSONL records (or a run's samples/ folder) with a verifier and a reward design.")
    p.add_argument("inputs", nargs="+", help="JSONL files or folders of *.jsonl (e.g. runs/RUN/samples)")
    p.add_argument("--verifier", help="ground-truth verifier: arithmetic | arithmetic_graded | math | "
                   "constraints (default: reward.verifier of a recipe given as --design)")
    p.add_argument("--design", help="YAML file with a design mapping (top level or reward.design of a "
                   "recipe), or an inline mapping like '{name: flip, fp_rate: 0.1}'; default ground_truth")
    p.add_argument("--out", required=True, help="output JSONL (written atomically)")
    p.add_argument("--workers", type=int, default=max(1, min(4, os.cpu_count() or 1)),
                   help="verifier processes (default: CPU count, at most 4)")
    p.add_argument("--timeout", type=float, default=5.0, help="per-sample verifier timeout in seconds")
    p.add_argument("--memory-mb", type=int, default=1024,
                   help="how far a verifier process may grow beyond its start-up size")
    p.add_argument("--batch-size", type=int, default=4096,
                   help="records per scoring call (whole groups; bounds progress granularity)")
    return p


def load_design(arg: Optional[str]) -> Tuple[Dict[str, Any], str, Optional[str]]:
    """(design mapping, where for errors, verifier named by a recipe or None)."""
    if arg is None:
        return {"name": "ground_truth"}, "reward.design", None
    import yaml

    if os.path.exists(arg):
        with open(arg) as f:
            data, source = yaml.safe_load(f), arg
    else:
        try:
            data, source = yaml.safe_load(arg), "--design"
        except yaml.YAMLError:
            data, source = None, "--design"
        if not isinstance(data, dict):
            raise RewardConfigError(f"--design {arg!r} is neither a file nor a YAML mapping")
    if not isinstance(data, dict):
        raise RewardConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
    if isinstance(data.get("reward"), dict):
        reward = data["reward"]
        design = reward.get("design", {"name": "ground_truth"})
        return dict(design), f"{source}: reward.design", reward.get("verifier")
    if isinstance(data.get("design"), dict):
        return dict(data["design"]), f"{source}: design", None
    if "name" in data:
        return dict(data), source, None
    raise RewardConfigError(
        f"{source}: no design found; give {{name: ..., params}} at top level or under reward.design")


def expand_inputs(inputs: List[str]) -> List[Path]:
    """Files as given; folders become their *.jsonl files in natural order (step_2 < step_10)."""
    def natural(path: Path):
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]

    files: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(path.glob("*.jsonl"), key=natural)
            if not found:
                raise RewardConfigError(f"{item}: folder holds no *.jsonl files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise RewardConfigError(f"{item}: no such file or folder")
    return files


def check_record(record: Any, verifier: str) -> Optional[str]:
    """Why a parsed line cannot be scored, or None if it can."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    for key in ("response", "gold"):
        if key not in record:
            return f"missing key {key!r}"
    if not isinstance(record["response"], str):
        return f"'response' must be a string, got {type(record['response']).__name__}"
    if isinstance(record["gold"], bool) or not isinstance(record["gold"], (str, int, float)):
        return f"'gold' must be a string or number, got {type(record['gold']).__name__}"
    if record.get("meta") is not None and not isinstance(record["meta"], dict):
        return "'meta' must be an object"
    if verifier == "constraints":
        specs = record.get("constraints", (record.get("meta") or {}).get("constraints"))
        if not isinstance(specs, list) or not specs:
            return "verifier 'constraints' needs a non-empty 'constraints' list"
        from rlvr.rewards.verifiers.constraints import check_spec

        for i, spec in enumerate(specs):
            try:
                check_spec(spec, f"constraints[{i}]")
            except RewardConfigError as err:  # an unknown constraint spoils this record only
                return str(err)
    if "num_tokens" in record and not isinstance(record["num_tokens"], (int, type(None))):
        return "'num_tokens' must be an integer"
    return None


def read_records(path: Path, verifier: str, skipped: List[str]) -> List[Dict[str, Any]]:
    """The scorable records of one file; each bad line is reported and appended to `skipped`."""
    records = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                problem = f"malformed JSON ({err.msg} at column {err.colno})"
            else:
                problem = check_record(record, verifier)
            if problem:
                message = f"{path}:{lineno}: {problem}; line skipped"
                print(f"rlvr score: {message}", file=sys.stderr)
                skipped.append(message)
                continue
            record.setdefault("prompt_id", f"{path.name}:{lineno}")
            record.setdefault("sample_index", 0)
            records.append(record)
    return records


def group_batches(records: List[Dict[str, Any]], batch_size: int) -> Iterator[List[int]]:
    """Indices of records in batches of whole groups (about batch_size records each)."""
    from rlvr.rewards.scoring import group_key

    groups: Dict[Any, List[int]] = {}
    for i, record in enumerate(records):
        groups.setdefault(group_key(record), []).append(i)
    batch: List[int] = []
    for members in groups.values():
        batch.extend(members)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _previous_values(record: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(record)
    for key, before in PREVIOUS.items():
        if key in out:
            out[before] = out.pop(key)
    return out


def run(args: argparse.Namespace) -> int:
    from rlvr.rewards.designs import build_design
    from rlvr.rewards.verifiers import VerifierPool

    spec, where, recipe_verifier = load_design(args.design)
    verifier = args.verifier or recipe_verifier
    if not verifier:
        raise RewardConfigError("--verifier is required (or a recipe with reward.verifier as --design)")
    design = build_design(spec, where)
    files = expand_inputs(args.inputs)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = out_path.with_name(out_path.name + ".tmp")
    skipped: List[str] = []
    start = time.monotonic()
    try:
        with VerifierPool(verifier, num_procs=args.workers, timeout_s=args.timeout,
                          memory_limit_mb=args.memory_mb) as pool, open(tmp_path, "w") as out:
            totals = _score_files(files, verifier, pool, design, out, args.batch_size, skipped, start)
        os.replace(tmp_path, out_path)
    finally:
        tmp_path.unlink(missing_ok=True)
    elapsed = time.monotonic() - start
    scored = totals["records"]
    mean_gt, mean_proxy = (f"{totals[key] / scored:.4f}" if scored else "n/a" for key in ("gt", "proxy"))
    print(f"rlvr score: {scored} records scored from {len(files)} file(s) in {elapsed:.1f} s "
          f"({scored / max(elapsed, 1e-9):.0f}/s) with verifier {verifier!r}, design {spec.get('name')!r}; "
          f"mean gt {mean_gt}, mean proxy {mean_proxy}; {totals['timeouts']} timeout(s); "
          f"{len(skipped)} malformed line(s) skipped -> {out_path}")
    return 1 if skipped else 0


def _score_files(files, verifier, pool, design, out, batch_size, skipped, start) -> Dict[str, float]:
    """Score file by file, writing records in input order; progress at most once a second."""
    from rlvr.rewards.scoring import score_samples

    totals = {"records": 0, "gt": 0.0, "proxy": 0.0, "timeouts": 0}
    last_report = start
    for file_number, path in enumerate(files, 1):
        records = read_records(path, verifier, skipped)
        results: List[Optional[Dict[str, Any]]] = [None] * len(records)
        done = 0
        for batch in group_batches(records, batch_size):
            fresh = score_samples([_previous_values(records[i]) for i in batch], pool, design)
            for i, result in zip(batch, fresh):
                results[i] = result
            done += len(batch)
            now = time.monotonic()
            if now - last_report >= 1.0:
                last_report = now
                print(f"rlvr score: {path.name} (file {file_number}/{len(files)}): "
                      f"{done}/{len(records)} records; {totals['records'] + done} in all, "
                      f"{now - start:.1f} s", file=sys.stderr)
        label_categories(results)
        for result in results:
            out.write(json.dumps(result) + "\n")
            totals["gt"] += result["gt"]
            totals["proxy"] += result["proxy"]
            totals["timeouts"] += result["reason"] == "timeout"
        totals["records"] += len(records)
    return totals


def label_categories(records: List[Dict[str, Any]]) -> None:
    """Set each scored record's `category` (none | harmful | benign | beneficial) with the one
    labeller, per group (same prompt_id and step), on its systematic proxy, as training does."""
    from rlvr.rewards.labels import family, label_group
    from rlvr.rewards.scoring import group_key

    groups: Dict[Any, List[Dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(group_key(record), []).append(record)
    for members in groups.values():
        names = label_group([r["gt"] for r in members], [r.get("systematic_proxy", r["proxy"]) for r in members])
        for record, name in zip(members, names):
            record["category"] = name if name == "none" else family(name)


def main(argv: List[str]) -> int:
    """Entry point of `rlvr score` (argv excludes the word "score"). Exit status: 0 ok,
    1 some lines skipped, 2 usage or configuration error."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help, or a usage error argparse already printed
        return int(exit_.code or 0)
    if args.workers < 1 or args.timeout <= 0 or args.batch_size < 1:
        print("rlvr score: error: --workers and --batch-size must be >= 1, --timeout > 0", file=sys.stderr)
        return 2
    try:
        return run(args)
    except RewardConfigError as err:
        print(f"rlvr score: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
