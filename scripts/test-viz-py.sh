#!/usr/bin/env bash
# Drop-in check of the results, both ways: the original viz.py reads the same numbers from
# our files as viz does, and from the reference files.
#
#   1. venv (cached): pandas + matplotlib from PyPI (+ seaborn when VIZ_PY is given, the
#      original script imports it);
#   2. run-bm output on the simulated cluster: a concurrency sweep and a request-rate sweep
#      (tiny workload, a few seconds);
#   3. for bm_results/reference (28 directories) and for the two run-bm directories:
#      `viz --csv` (its long table <name>_points.csv) against viz.py's tables, file by file,
#      every number to 1e-9 relative (scripts/vizpy_check.py), and the comprehensive
#      figure drawn from viz.py's side.
#
# The original viz.py (anyscale/ray-serve-llm-perf-examples, prefill_decode/viz.py) is not
# part of pd-lab. Give a local copy with VIZ_PY=/path/to/viz.py to use the script itself
# (its functions build the tables, its command line draws comprehensive_analysis.png);
# without it, scripts/vizpy_check.py re-implements exactly its reading and table arithmetic.
#
# Env: PD_LAB_CACHE (default ~/.cache/pd-lab), VIZ_PY, VIZ / RUN_BM / LAUNCH_GPTOSS
#      (binaries; default: cargo build, debug), VIZPY_PORT (simulator port, 18391), KEEP_WORK=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CACHE="${PD_LAB_CACHE:-$HOME/.cache/pd-lab}"
VENV="$CACHE/venv-vizpy"
PORT="${VIZPY_PORT:-18391}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pdlab-vizpy.XXXXXX")
export PD_LAB_DEPLOYMENT="$WORK/deployment.toml"
T0=$(date +%s)
log() { printf '[test-viz-py %3ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { log "FAILED: $*"; exit 1; }

cleanup() {
  if [ -f "$PD_LAB_DEPLOYMENT" ] && [ -n "${LAUNCH_GPTOSS:-}" ]; then
    "$LAUNCH_GPTOSS" shutdown >/dev/null 2>&1 || true
  fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. venv -------------------------------------------------------------------------------
if [ ! -f "$VENV/.pd-lab-complete" ]; then
  log "creating $VENV (pandas, matplotlib)"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "pandas>=2,<3" "matplotlib>=3.7,<4"
  touch "$VENV/.pd-lab-complete"
fi
PY="$VENV/bin/python"
if [ -n "${VIZ_PY:-}" ]; then
  [ -f "$VIZ_PY" ] || die "VIZ_PY=$VIZ_PY is not a file"
  "$PY" -c 'import seaborn' 2>/dev/null || "$VENV/bin/pip" install -q "seaborn>=0.12,<1"
fi
"$PY" -c 'import pandas, matplotlib; print("pandas", pandas.__version__, "matplotlib", matplotlib.__version__)'

# ---- 2. binaries and run-bm output ----------------------------------------------------------
if [ -z "${VIZ:-}" ] || [ -z "${RUN_BM:-}" ] || [ -z "${LAUNCH_GPTOSS:-}" ]; then
  cargo build --quiet --locked -p viz -p run-bm -p launch-gptoss
fi
VIZ="${VIZ:-$ROOT/target/debug/viz}"
RUN_BM="${RUN_BM:-$ROOT/target/debug/run-bm}"
LAUNCH_GPTOSS="${LAUNCH_GPTOSS:-$ROOT/target/debug/launch-gptoss}"

log "simulated 1xtp2 on port $PORT; run-bm concurrency and request-rate sweeps"
"$LAUNCH_GPTOSS" --backend sim --port "$PORT" --mode collocated --tp 2 --num-replicas 1 >/dev/null
CONC_DIR="$WORK/results/gptoss_itl256_otl16_mixed_vizpy_conc_1xtp2"
RATE_DIR="$WORK/results/gptoss_itl256_otl16_mixed_vizpy_rate_1xtp2"
bm() { "$RUN_BM" "$@" >>"$WORK/run-bm.log" 2>&1 || { cat "$WORK/run-bm.log"; die "run-bm $*"; }; }
bm -e vizpy_conc -t concurrency -c 2,4 --itl 256 --otl 16 --result-dir "$CONC_DIR"
bm -e vizpy_rate -t request-rate -r 4,8 --num-prompts 12 --itl 256 --otl 16 --result-dir "$RATE_DIR"
"$LAUNCH_GPTOSS" shutdown >/dev/null

# ---- 3. compare ------------------------------------------------------------------------------
status=0
check() { # check NAME DIR...
  local name="$1"; shift
  log "$name: viz --csv vs viz.py on $# directories"
  "$VIZ" -q --no-plot --no-show-tables --csv "$WORK/csv" --name "$name" --compare-dirs "$@" >/dev/null
  local extra=()
  [ -n "${VIZ_PY:-}" ] && extra=(--viz-py "$VIZ_PY")
  if ! "$PY" scripts/vizpy_check.py "${extra[@]}" --points "$WORK/csv/${name}_points.csv" \
      --plot-dir "$WORK/plots-$name" "$@"; then
    status=1
  fi
}
mapfile -t REF < <(find "$ROOT/bm_results/reference" -mindepth 1 -maxdepth 1 -type d | sort)
check reference "${REF[@]}"
check run-bm "$CONC_DIR" "$RATE_DIR"
[ "$status" = 0 ] || die "viz and viz.py disagree (see FAIL lines)"
log "passed"
