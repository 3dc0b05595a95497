#!/usr/bin/env bash
# Submit an rlvr run to a running Ray cluster: a thin wrapper over `rlvr submit` (docs/cluster.md).
#
#   RAY_ADDRESS=http://HEAD:8265 bash cluster/submit.sh recipes/gpu_math.yaml output_dir=/shared/runs --wait
#
# Uses this checkout's .venv when it has one, else `rlvr` from PATH. All arguments go to
# `rlvr submit` (see `rlvr submit --help`: --address, --wait, --python, --env, --exclude).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
rlvr="$root/.venv/bin/rlvr"
[ -x "$rlvr" ] || rlvr="$(command -v rlvr || true)"
[ -n "$rlvr" ] || { echo "error: no rlvr found: run bash tools/install.sh or activate rlvr's environment" >&2; exit 2; }
exec "$rlvr" submit "$@"
