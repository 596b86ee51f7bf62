#!/usr/bin/env bash
# The main job on a fresh machine, no GPUs needed:
#   build the tools → launch the simulated cluster → concurrency sweep of a collocated
#   baseline and of one PD configuration → comparison plots → shut the cluster down.
#
# Usage: bash scripts/quickstart.sh [--port PORT]
# Environment: QUICKSTART_CONC (default "4,8,16,32"), QUICKSTART_ITL (5000), QUICKSTART_OTL (250).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="bm_results"
port="${QUICKSTART_PORT:-18000}"
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "quickstart: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
conc="${QUICKSTART_CONC:-4,8,16,32}"
itl="${QUICKSTART_ITL:-5000}"
otl="${QUICKSTART_OTL:-250}"
record="$root/.pd-lab/quickstart-deployment.toml"
export PD_LAB_DEPLOYMENT="$record"

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "quickstart: FAILED: $*" >&2; exit 1; }

cleanup() {
  if [ -f "$record" ] && [ -x "$bin/launch-gptoss" ]; then
    "$bin/launch-gptoss" shutdown >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT INT TERM

step "Building the tools (release)"
cargo build --release --locked --quiet || fail "cargo build"
bin="$root/target/release"

run_config() {
  local exp="$1"; shift
  step "Launching the simulated cluster: $*"
  "$bin/launch-gptoss" --backend sim --port "$port" "$@" || fail "launch-gptoss $*"
  step "Smoke test"
  "$bin/run-bm" --smoke >/dev/null || fail "run-bm --smoke ($exp)"
  step "Concurrency sweep $conc for $exp (ITL $itl, OTL $otl)"
  "$bin/run-bm" -e "$exp" -t concurrency -c "$conc" --itl "$itl" --otl "$otl" || fail "run-bm sweep ($exp)"
  step "Shutting the deployment down"
  "$bin/launch-gptoss" shutdown || fail "launch-gptoss shutdown ($exp)"
}
dir_name() { echo "gptoss_itl${itl}_otl${otl}_mixed_$1"; }

run_config quickstart_baseline_4xtp2 --mode collocated --tp 2 --num-replicas 4
run_config quickstart_pd_p1xtp2-d2xtp2 --mode pd-pack --p-num 1 --p-tp 2 --d-num 2 --d-tp 2

step "Plotting the comparison"
"$bin/viz" --compare-dirs "$out/$(dir_name quickstart_baseline_4xtp2)" "$out/$(dir_name quickstart_pd_p1xtp2-d2xtp2)" \
  --plot-path plots/quickstart || fail "viz"

echo
echo "Done."
echo "  results: $out/$(dir_name quickstart_baseline_4xtp2)/"
echo "           $out/$(dir_name quickstart_pd_p1xtp2-d2xtp2)/"
echo "  plots:   plots/quickstart/"
