"""`rlvr submit`: run a recipe on a running Ray cluster as a Ray job.

    rlvr submit RECIPE.yaml [key=value ...] [--address URL] [--wait] [--env KEY=VALUE ...]

The recipe is checked here first (a bad key, a missing data file or wandb without a key for the
job fails before anything is uploaded: rlvr/controller/preflight.py). The job's
working dir is this repository (minus .git, virtual environments, run folders, caches and
files over 50 MiB); its entrypoint is `PYTHON -m rlvr.cli train RECIPE cluster.address=auto
key=value ...`, where PYTHON is this interpreter unless `--python` names the one on the
cluster. The address is --address, else $RAY_ADDRESS, else http://127.0.0.1:8265 (the
dashboard of a head started here). A Ray 2.60 head with token auth on refuses clients
without RAY_AUTH_MODE=token: when that is unset and a token is at hand ($RAY_AUTH_TOKEN,
$RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token), the client sets it and sends the token.
With --wait the job's logs are streamed until it ends; the exit status is 0 only if it
SUCCEEDED.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
# gitignore syntax, relative to the working dir (Ray also honours .gitignore and .rayignore).
EXCLUDES = [".git", ".venv", "venv", ".env", "__pycache__", "*.pyc", ".pytest_cache", "*.egg-info",
            "/runs/", "/outputs/", "wandb/", ".ipynb_checkpoints"]
_SKIP_DIRS = {".git", ".venv", "venv", ".env", "__pycache__", ".pytest_cache", "wandb", ".ipynb_checkpoints"}
_SKIP_TOP_DIRS = {"runs", "outputs"}  # anchored at the working dir, as in EXCLUDES
LARGE_FILE_BYTES = 50 * 2**20  # Ray stores the upload in its GCS (512 MiB cap); big files belong on shared storage
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


class SubmitError(ValueError):
    """A submission cannot be made; the message says what to change."""


def resolve_address(address: Optional[str], environ: Mapping[str, str]) -> str:
    """--address, else $RAY_ADDRESS, else the dashboard of a head on this machine."""
    return address or environ.get("RAY_ADDRESS") or DEFAULT_ADDRESS


def token_source(environ: Mapping[str, str], home: Path) -> Optional[str]:
    """Where a Ray auth token is available to this client (None = nowhere)."""
    if environ.get("RAY_AUTH_TOKEN"):
        return "$RAY_AUTH_TOKEN"
    path = environ.get("RAY_AUTH_TOKEN_PATH")
    if path and Path(path).is_file():
        return path
    default = home / ".ray" / "auth_token"
    return str(default) if default.is_file() else None


def enable_token_auth(environ=os.environ, home: Optional[Path] = None) -> Optional[str]:
    """Set RAY_AUTH_MODE=token in `environ` when unset and a token exists; the token's source.

    Ray reads the mode when it is first imported; if it already was, its config is refreshed.
    """
    if "RAY_AUTH_MODE" in environ:
        return None
    source = token_source(environ, home or Path.home())
    if source is None:
        return None
    environ["RAY_AUTH_MODE"] = "token"
    if environ is os.environ and "ray._raylet" in sys.modules:
        from ray._raylet import Config  # the mode is cached in Ray's config at import

        Config.initialize("")
    return source


def default_working_dir() -> Path:
    """The checkout that holds the running rlvr package, else the current directory."""
    import rlvr

    root = Path(rlvr.__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def path_in_working_dir(path: str, working_dir: Path, what: str) -> str:
    """`path` as the job sees it: relative to the working dir (POSIX), or an error."""
    full = Path(path).resolve()
    try:
        return full.relative_to(working_dir.resolve()).as_posix()
    except ValueError:
        raise SubmitError(f"{what} {path} is outside the uploaded working dir {working_dir}: "
                          "move it there or pass --working-dir") from None


def job_entrypoint(python: str, recipe: str, overrides: Sequence[str]) -> str:
    """The shell command the job runs; the user's overrides come after cluster.address=auto."""
    return shlex.join([python, "-m", "rlvr.cli", "train", recipe, "cluster.address=auto", *overrides])


def large_files(working_dir: Path, limit: int = LARGE_FILE_BYTES) -> List[str]:
    """Files over `limit` bytes under the working dir (outside always-excluded folders), POSIX-relative."""
    found = []
    for root, dirs, files in os.walk(working_dir):
        top = Path(root) == Path(working_dir)
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")
                   and not (top and d in _SKIP_TOP_DIRS)]
        for name in files:
            path = Path(root) / name
            try:
                if path.is_file() and not path.is_symlink() and path.stat().st_size > limit:
                    found.append(path.relative_to(working_dir).as_posix())
            except OSError:
                continue
    return sorted(found)


def job_excludes(working_dir: Path, output_dir: str, extra: Sequence[str] = (),
                 big: Sequence[str] = ()) -> List[str]:
    """EXCLUDES + the recipe's output_dir when it lies in the working dir + big files + `extra`."""
    out = list(EXCLUDES)
    out_path = Path(output_dir) if Path(output_dir).is_absolute() else working_dir / output_dir
    try:
        rel = out_path.resolve().relative_to(working_dir.resolve()).as_posix()
        if rel != ".":
            out.append(f"/{rel}/")
    except ValueError:
        pass
    out += [f"/{p}" for p in big]
    out += list(extra)
    return list(dict.fromkeys(out))


def parse_env(pairs: Sequence[str]) -> Dict[str, str]:
    """--env KEY=VALUE pairs as a dict."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SubmitError(f"--env {pair!r} must look like KEY=VALUE")
        env[key] = value
    return env


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rlvr submit",
        description="Submit `rlvr train RECIPE cluster.address=auto ...` to a running Ray cluster "
                    "as a Ray job, with this repository as its working dir.")
    p.add_argument("recipe", help="recipe YAML inside the working dir (see recipes/)")
    p.add_argument("overrides", nargs="*", help="dotlist overrides, e.g. trainer.lr=1e-6 output_dir=/shared/runs")
    p.add_argument("--address", help=f"Ray dashboard URL (default: $RAY_ADDRESS, else {DEFAULT_ADDRESS})")
    p.add_argument("--wait", action="store_true",
                   help="stream the job's logs until it ends; exit 0 only if it succeeded")
    p.add_argument("--python", default=sys.executable,
                   help="interpreter on the cluster that has rlvr's dependencies (default: this one, "
                        "%(default)s)")
    p.add_argument("--working-dir", type=Path, default=None,
                   help="folder uploaded as the job's working dir (default: this rlvr checkout)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="environment variable for the job and its actors (repeatable), e.g. HF_TOKEN=...")
    p.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="extra gitignore-style pattern left out of the upload (repeatable)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the entrypoint and runtime env, submit nothing")
    return p


def build_job(args: argparse.Namespace) -> Tuple[str, Dict, List[str]]:
    """(entrypoint, runtime_env, large files left out) for parsed arguments; checks the recipe."""
    from rlvr.config import RecipeError, load_recipe

    working_dir = (args.working_dir or default_working_dir()).resolve()
    if not working_dir.is_dir():
        raise SubmitError(f"--working-dir {working_dir} is not a folder")
    if not Path(args.recipe).is_file():
        raise SubmitError(f"recipe file {args.recipe} does not exist")
    recipe = path_in_working_dir(args.recipe, working_dir, "recipe")
    overrides = ["cluster.address=auto", *args.overrides]
    try:
        cfg = load_recipe(args.recipe, overrides)
    except RecipeError as err:
        raise SubmitError(str(err)) from None
    big = large_files(working_dir)
    runtime_env: Dict = {"working_dir": str(working_dir),
                         "excludes": job_excludes(working_dir, cfg.output_dir, args.exclude, big)}
    env = parse_env(args.env)
    if env:
        runtime_env["env_vars"] = env
    from rlvr.controller.preflight import Where, report, run_checks

    # The job's own environment is the head's plus --env: wandb's key must come with the job.
    problems = run_checks(cfg, Where(environ={**os.environ, **env}, base_dir=working_dir, submit=True))
    if problems:
        raise SubmitError(report(problems, args.recipe).removeprefix("error: "))
    if not Path(cfg.output_dir).is_absolute():
        print(f"note: output_dir={cfg.output_dir} is relative: the run folder is written inside the "
              "job's copy of the working dir on the head node (under Ray's temp dir); pass "
              "output_dir=/shared/path to keep it", file=sys.stderr)
    return job_entrypoint(args.python, recipe, args.overrides), runtime_env, big


def follow_commands(job_id: str, address: str, token_auth: bool) -> str:
    """The three commands that follow, query and stop a job (Ray's CLI needs RAY_AUTH_MODE=token too)."""
    ray = "RAY_AUTH_MODE=token ray" if token_auth else "ray"
    return (f"  follow: {ray} job logs -f {job_id} --address {address}\n"
            f"  status: {ray} job status {job_id} --address {address}\n"
            f"  stop:   {ray} job stop {job_id} --address {address}")


def _connect(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as err:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ...
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        text = (lines[0] if lines else type(err).__name__).rstrip(".")  # Ray appends a page of advice
        hint = ("start a head (`ray start --head`) or pass --address / set RAY_ADDRESS to its "
                "dashboard URL (port 8265)")
        if "ray[default]" in text:
            hint = "install the jobs client: pip install -e \".[cluster]\" (ray[default])"
        elif "uthentication" in text or "401" in text or "403" in text:
            hint = ("the cluster requires its token: copy the head's ~/.ray/auth_token here "
                    "(or set RAY_AUTH_TOKEN) and set RAY_AUTH_MODE=token")
        raise SubmitError(f"cannot use the Ray jobs API at {address} ({text[:200]}): {hint}") from None


def _stream_logs(client, job_id: str) -> bool:
    """Print the job's logs as they come until it ends; False if the stream broke."""
    import asyncio

    async def tail():
        async for lines in client.tail_job_logs(job_id):
            print(lines, end="", flush=True)

    try:
        asyncio.run(tail())
        return True
    except Exception as err:  # noqa: BLE001 - fall back to polling the status
        print(f"note: log stream ended ({err}); polling the job status", file=sys.stderr)
        return False


def wait_for(client, job_id: str, poll_s: float = 2.0, stream: bool = True) -> str:
    """Block until the job is terminal (streaming its logs); its final status name."""
    if stream:
        _stream_logs(client, job_id)
    while True:
        status = client.get_job_status(job_id)
        status = str(getattr(status, "value", status))
        if status in TERMINAL:
            return status
        time.sleep(poll_s)


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_intermixed_args(argv)  # options may come between the overrides
    try:
        entrypoint, runtime_env, big = build_job(args)
    except SubmitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in big:
        print(f"note: {path} is over {LARGE_FILE_BYTES // 2**20} MiB: left out of the upload "
              "(put large files on storage the cluster reads)", file=sys.stderr)
    address = resolve_address(args.address, os.environ)
    if args.dry_run:
        import json

        print(f"address: {address}\nentrypoint: {entrypoint}\nruntime_env: {json.dumps(runtime_env)}")
        return 0
    source = enable_token_auth()
    if source:
        print(f"Ray token auth: RAY_AUTH_MODE=token, token from {source}", file=sys.stderr)
    try:
        client = _connect(address)
        job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env,
                                   metadata={"rlvr_recipe": args.recipe})
    except SubmitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - the upload or the request failed: say so in one line
        print(f"error: submitting to {address} failed: {' '.join(str(err).split())[:500]}", file=sys.stderr)
        return 1
    token_auth = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    print(f"submitted job {job_id} to {address}\n  entrypoint: {entrypoint}\n"
          f"{follow_commands(job_id, address, token_auth)}", flush=True)
    if not args.wait:
        return 0
    try:
        status = wait_for(client, job_id)
    except KeyboardInterrupt:
        print(f"\nstopped following; job {job_id} keeps running\n{follow_commands(job_id, address, token_auth)}",
              file=sys.stderr)
        return 130
    if status == "SUCCEEDED":
        print(f"job {job_id} SUCCEEDED")
        return 0
    message = (client.get_job_info(job_id).message or "").strip().splitlines()  # may embed the whole log
    tail = client.get_job_logs(job_id).splitlines()[-20:]
    print(f"job {job_id} {status}: {message[0] if message else ''}\nlast log lines:\n" + "\n".join(tail),
          file=sys.stderr)
    return 1
