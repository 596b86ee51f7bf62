# Shared helpers of the experiment scripts (sourced, not run).
#
# Every script accepts:
#   --backend ray|sim   where to deploy (default: $PD_LAB_BACKEND, else ray)
#   --quick             short sweeps (concurrency 4,16; ITL 2000; OTL 100) for a fast check
#   --itl N --otl N     workload (default 5000 / 250, as in the methodology)
#   -c LIST             concurrency list (default all = 4,8,16,32,48,64)
#   --prefix NAME       experiment name prefix (default: the script's name)
#   --port PORT         simulator port (default 8000)
#   -h|--help
# Tools are taken from $PD_LAB_BIN (default target/release, built if missing).

set -euo pipefail
PD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$PD_ROOT"

backend="${PD_LAB_BACKEND:-ray}"
quick=0
itl=5000
otl=250
conc=all
port=8000
prefix="$(basename "$0" .sh)"
failed_configs=()
done_dirs=()

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; }

parse_common_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --backend) backend="$2"; shift 2 ;;
      --quick) quick=1; shift ;;
      --itl) itl="$2"; shift 2 ;;
      --otl) otl="$2"; shift 2 ;;
      -c|--concurrency) conc="$2"; shift 2 ;;
      --prefix) prefix="$2"; shift 2 ;;
      --port) port="$2"; shift 2 ;;
      -h|--help) usage; exit 0 ;;
      *) echo "$(basename "$0"): unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
  done
  case "$backend" in ray|sim) ;; *) echo "--backend must be ray or sim" >&2; exit 2 ;; esac
  if [ "$quick" = 1 ]; then
    conc="${QUICK_CONC:-4,16}"; itl="${QUICK_ITL:-2000}"; otl="${QUICK_OTL:-100}"
  fi
  BIN="${PD_LAB_BIN:-$PD_ROOT/target/release}"
  if [ ! -x "$BIN/launch-gptoss" ] || [ ! -x "$BIN/run-bm" ] || [ ! -x "$BIN/viz" ]; then
    echo "==> building the tools (release)"
    cargo build --release --locked --quiet
    BIN="$PD_ROOT/target/release"
  fi
  export PD_LAB_DEPLOYMENT="$PD_ROOT/.pd-lab/${prefix}-deployment.toml"
  trap 'shutdown_quietly' EXIT INT TERM
}

shutdown_quietly() {
  if [ -f "$PD_LAB_DEPLOYMENT" ]; then "$BIN/launch-gptoss" shutdown >/dev/null 2>&1 || true; fi
}

result_dir() { echo "bm_results/gptoss_itl${itl}_otl${otl}_mixed_$1"; }

# run_config EXP_NAME [launch-gptoss flags...]: deploy, sweep, shut down.
# A failing configuration is reported and skipped; the script goes on with the others.
run_config() {
  local exp="${prefix}_$1"; shift
  local extra=()
  [ "$backend" = sim ] && extra=(--port "$port")
  echo
  echo "==> [$exp] launch-gptoss --backend $backend $*"
  if ! "$BIN/launch-gptoss" --backend "$backend" "${extra[@]}" "$@"; then
    echo "!! [$exp] deployment failed; skipping" >&2
    failed_configs+=("$exp"); return 0
  fi
  echo "==> [$exp] run-bm -e $exp -t concurrency -c $conc --itl $itl --otl $otl"
  if ! "$BIN/run-bm" -e "$exp" -t concurrency -c "$conc" --itl "$itl" --otl "$otl"; then
    echo "!! [$exp] benchmark failed" >&2
    failed_configs+=("$exp")
  else
    done_dirs+=("$(result_dir "$exp")")
  fi
  "$BIN/launch-gptoss" shutdown || { echo "!! [$exp] shutdown failed" >&2; failed_configs+=("$exp"); }
}

# compare PLOT_NAME: viz over every configuration that completed.
compare() {
  local name="$1"
  if [ ${#done_dirs[@]} -eq 0 ]; then
    echo "!! no configuration completed; nothing to plot" >&2; exit 1
  fi
  echo
  echo "==> viz --compare-dirs ${done_dirs[*]}"
  "$BIN/viz" --compare-dirs "${done_dirs[@]}" --plot-path "plots/$name"
  echo
  echo "results: ${done_dirs[*]}"
  echo "plots:   plots/$name/"
  if [ ${#failed_configs[@]} -gt 0 ]; then
    echo "failed configurations: ${failed_configs[*]}" >&2
    exit 1
  fi
}
