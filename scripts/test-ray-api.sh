#!/usr/bin/env bash
# Real-Ray test of launch-gptoss's Ray backend (no vLLM, no GPU needed).
#
# Creates (or reuses) a venv with ray[serve]==2.60.0 + pyarrow under
# ${PD_LAB_CACHE:-$HOME/.cache/pd-lab}/venv-ray, starts a Ray head on loopback with two
# fake GPUs (its own --temp-dir and ports; see docs/RAY-SERVE-API.md), then checks
# with the launch-gptoss binary:
#   1. pre-flight and --dry-run on the real node data (Ray version, node IP, GPU count);
#   2. infeasible deploys are refused before any PUT (Serve is never even started);
#   3. a real deploy of ray.serve.llm:build_openai_app fails at import (no vLLM here) and is
#      reported with Ray's message, removed again, and another app ("hello") is kept;
#   4. status / shutdown on a record: removes only our app; shutdown is idempotent;
#      an unreachable cluster is an error that keeps the record.
# Then stops the head by the pids of its own session (never `ray stop`, which kills every Ray
# on the machine).
#
# Env: LAUNCH_GPTOSS=path/to/binary (default: cargo build -p launch-gptoss, debug),
#      PD_LAB_CACHE, RAY_API_DASHBOARD_PORT (28265), RAY_API_SERVE_PORT (28000),
#      RAY_API_GCS_PORT (26379), KEEP_WORK=1 keeps the scratch folder.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

CACHE="${PD_LAB_CACHE:-$HOME/.cache/pd-lab}"
VENV="$CACHE/venv-ray"
DASH_PORT="${RAY_API_DASHBOARD_PORT:-28265}"
SERVE_PORT="${RAY_API_SERVE_PORT:-28000}"
GCS_PORT="${RAY_API_GCS_PORT:-26379}"
DASH="http://127.0.0.1:$DASH_PORT"
SERVE="http://127.0.0.1:$SERVE_PORT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pdlab-rayapi.XXXXXX")
T0=$(date +%s)
RAY_SID=""
passed=0
failed=0

log() { printf '[test-ray-api %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
ok() { passed=$((passed + 1)); log "ok: $*"; }
bad() { failed=$((failed + 1)); log "FAILED: $*"; }
check() { # check DESCRIPTION COMMAND...
  local what="$1"; shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}

ray_pids() { # every process of our Ray session (the setsid'd `ray start --block`)
  [ -n "$RAY_SID" ] || return 0
  ps -eo pid=,sid= | awk -v s="$RAY_SID" '$2 == s { print $1 }'
}

wait_gone() { # wait_gone SECONDS: until no process of our session is left
  for _ in $(seq 1 $(( $1 * 2 ))); do
    [ -z "$(ray_pids)" ] && return 0
    sleep 0.5
  done
  return 1
}

stop_ray() {
  [ -n "$RAY_SID" ] || return 0
  local pids t0
  pids=$(ray_pids | tr '\n' ' ')
  if [ -n "${pids// /}" ]; then
    log "stopping our Ray head (session $RAY_SID, $(echo $pids | wc -w) processes: $pids)"
    t0=$(date +%s)
    # `ray start --block` (the session leader) stops the processes it started on SIGTERM.
    kill -TERM "$RAY_SID" 2>/dev/null || true
    if ! wait_gone 45; then
      pids=$(ray_pids | tr '\n' ' ')
      log "left after 45 s, SIGTERM: $pids"
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
      if ! wait_gone 15; then
        pids=$(ray_pids | tr '\n' ' ')
        log "left after 60 s, SIGKILL: $pids"
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        wait_gone 10 || log "WARNING: processes still alive: $(ray_pids | tr '\n' ' ')"
      fi
    fi
    log "Ray head stopped in $(( $(date +%s) - t0 )) s"
  fi
  wait "$RAY_SID" 2>/dev/null || true
  RAY_SID=""
}

cleanup() {
  local rc=$?
  stop_ray
  if [ "${KEEP_WORK:-0}" = 1 ]; then log "scratch kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v curl >/dev/null || { echo "test-ray-api: curl is required" >&2; exit 1; }
for p in "$DASH_PORT" "$SERVE_PORT" "$GCS_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "test-ray-api: port $p on 127.0.0.1 is already in use (set RAY_API_*_PORT)" >&2
    exit 1
  fi
done

# ---- venv (reused when complete) ------------------------------------------------------
if [ ! -f "$VENV/.pd-lab-complete" ]; then
  log "creating $VENV (ray[serve]==2.60.0 + pyarrow)"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q "ray[serve]==2.60.0" pyarrow
  echo "ray[serve]==2.60.0 pyarrow" > "$VENV/.pd-lab-complete"
  log "venv ready"
else
  log "reusing $VENV"
fi
PY="$VENV/bin/python"

# ---- the binary ------------------------------------------------------------------------
if [ -n "${LAUNCH_GPTOSS:-}" ]; then
  LG="$LAUNCH_GPTOSS"
else
  log "building launch-gptoss (debug)"
  cargo build -q -p launch-gptoss --locked
  LG="${CARGO_TARGET_DIR:-$ROOT/target}/debug/launch-gptoss"
fi
[ -x "$LG" ] || { echo "test-ray-api: no binary at $LG" >&2; exit 1; }
export PD_LAB_DEPLOYMENT="$WORK/deployment.toml"
unset RAY_ADDRESS PD_LAB_BACKEND UCX_TLS
LGA=(--backend ray --ray-address "$DASH" --serve-url "$SERVE")

# ---- Ray head on loopback with 2 fake GPUs ---------------------------------------------
log "starting a Ray head on 127.0.0.1 (dashboard $DASH_PORT, 2 fake GPUs, temp dir $WORK/ray)"
t_start=$(date +%s)
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 setsid "$VENV/bin/ray" start --head --block \
  --node-ip-address 127.0.0.1 --port "$GCS_PORT" --num-cpus 2 --num-gpus 2 \
  --resources '{"accelerator_type:H100": 1}' \
  --dashboard-host 127.0.0.1 --dashboard-port "$DASH_PORT" --include-dashboard true \
  --ray-client-server-port $((GCS_PORT + 1)) --dashboard-agent-listen-port $((DASH_PORT + 1)) \
  --disable-usage-stats --temp-dir "$WORK/ray" >"$WORK/ray-start.log" 2>&1 &
RAY_SID=$!
for _ in $(seq 1 240); do
  curl -fsS "$DASH/api/version" >/dev/null 2>&1 && break
  if ! kill -0 "$RAY_SID" 2>/dev/null; then
    cat "$WORK/ray-start.log" >&2
    echo "test-ray-api: ray start exited" >&2
    exit 1
  fi
  sleep 0.5
done
curl -fsS "$DASH/api/version" >/dev/null || { cat "$WORK/ray-start.log" >&2; exit 1; }
log "dashboard up in $(( $(date +%s) - t_start )) s: $(curl -fsS "$DASH/api/version")"

serve_json() { curl -fsS "$DASH/api/serve/applications/"; }
jq_py() { # jq_py 'python expression over j' < json
  "$PY" -c "import json,sys; j=json.load(sys.stdin); print($1)"
}
alive_nodes() { curl -fsS "$DASH/api/v0/nodes" | jq_py 'sum(1 for n in j["data"]["result"]["result"] if n["state"] == "ALIVE")' 2>/dev/null || echo 0; }
for _ in $(seq 1 60); do
  [ "$(alive_nodes)" -ge 1 ] && break
  sleep 0.5
done
outside=$(pgrep -f -- "$WORK/ray" | grep -vxF -f <(ray_pids; echo $$) || true)
[ -z "$outside" ] || log "WARNING: Ray processes outside our session: $(echo $outside)"
log "Ray head ready in $(( $(date +%s) - t_start )) s ($(alive_nodes) alive node, $(ray_pids | wc -l) processes in our session)"

# ---- 1. pre-flight / dry run on real node data -----------------------------------------
out="$WORK/dry.json"; err="$WORK/dry.err"
if "$LG" "${LGA[@]}" --mode pd-pack --p-num 1 --p-tp 1 --d-num 1 --d-tp 1 --dry-run >"$out" 2>"$err"; then
  ok "dry run against the live cluster exits 0"
else
  bad "dry run against the live cluster"; cat "$err"
fi
cat "$err"
check "dry run saw Ray 2.60.0 and the node 127.0.0.1 with 2 GPUs" \
  grep -q "Ray 2.60.0, 1 node(s): 127.0.0.1 ALIVE 2 GPU (head)" "$err"
check "dry run pins bundles with node:127.0.0.1 and uses the Ray 2.60 PD args" \
  test "$(jq_py 'sorted(j["applications"][0]["args"].keys()) == ["decode_config","ingress_deployment_config","prefill_config"] and "node:127.0.0.1" in j["applications"][0]["args"]["decode_config"]["placement_group_config"]["bundles"][0]' <"$out")" = True
check "dry run wrote no record" test ! -e "$PD_LAB_DEPLOYMENT"

# ---- 2. infeasible deploys refused before any PUT --------------------------------------
if "$LG" "${LGA[@]}" --mode pd-pack --p-num 2 --p-tp 1 --d-num 1 --d-tp 2 >"$WORK/o" 2>"$err"; then
  bad "pd-pack needing 4 GPUs on a 2-GPU node was accepted"
else
  cat "$err"
  check "pd-pack needing 4 GPUs is refused by the pre-flight" grep -q "pre-flight check failed: pd-pack needs one node with 2×TP1 + 1×TP2 = 4 GPUs" "$err"
fi
if "$LG" "${LGA[@]}" --mode pd-spread --p-num 1 --p-tp 1 --d-num 1 --d-tp 1 >"$WORK/o" 2>"$err"; then
  bad "pd-spread on a one-node cluster was accepted"
else
  cat "$err"
  check "pd-spread on one node is refused" grep -q "only one alive GPU node: 127.0.0.1 (2 GPUs)" "$err"
fi
check "nothing was PUT (Serve not started, no applications)" \
  test "$(serve_json | jq_py 'j["applications"] == {} and not j["controller_info"]')" = True

# ---- 3. another app, then a real ray.serve.llm deploy that fails at import -------------
mkdir -p "$WORK/app"
cat >"$WORK/app/hello.py" <<'PYEOF'
from ray import serve
@serve.deployment(ray_actor_options={"num_cpus": 0.1})
class Hello:
    async def __call__(self, request):
        return "ok"
app = Hello.bind()
PYEOF
cat >"$WORK/hello.json" <<JSONEOF
{"http_options": {"host": "127.0.0.1", "port": $SERVE_PORT},
 "applications": [{"name": "hello", "route_prefix": "/hello", "import_path": "hello:app",
                   "runtime_env": {"working_dir": "local://$WORK/app"}}]}
JSONEOF
t=$(date +%s)
curl -fsS -X PUT -H 'Content-Type: application/json' --data @"$WORK/hello.json" "$DASH/api/serve/applications/" >/dev/null
for _ in $(seq 1 120); do
  [ "$(serve_json | jq_py 'j["applications"].get("hello",{}).get("status")')" = RUNNING ] && break
  sleep 1
done
check "helper app 'hello' RUNNING ($(( $(date +%s) - t )) s after its PUT)" \
  test "$(serve_json | jq_py 'j["applications"].get("hello",{}).get("status")')" = RUNNING

t=$(date +%s)
if "$LG" "${LGA[@]}" --mode collocated --tp 1 --num 1 --ingress-replicas 1 --timeout 180 >"$WORK/o" 2>"$err"; then
  bad "a ray.serve.llm deploy without vLLM succeeded?"
else
  rc=$?
  log "failed deploy took $(( $(date +%s) - t )) s (exit $rc)"
  grep -v '^  ' "$err" | head -n 20
  tail -n 3 "$err"
  check "Ray's import error is reported" grep -q "Neither vLLM nor SGLang is installed" "$err"
  check "progress lines were shown" grep -q "PUT accepted; waiting for RUNNING" "$err"
  check "our app was removed after the failure" grep -q "removed application 'gptoss' after the failure" "$err"
fi
check "after the failure: 'gptoss' gone, 'hello' kept and RUNNING" \
  test "$(serve_json | jq_py '"gptoss" not in j["applications"] and j["applications"].get("hello",{}).get("status") == "RUNNING"')" = True
check "no record after a failed deploy" test ! -e "$PD_LAB_DEPLOYMENT"

# ---- 4. status / shutdown on a record ---------------------------------------------------
t=$(date +%s)
if "$LG" "${LGA[@]}" --mode collocated --tp 1 --num 1 --ingress-replicas 1 --timeout 180 --keep-on-failure >"$WORK/o" 2>"$err"; then
  bad "keep-on-failure deploy succeeded?"
fi
log "kept failed deploy took $(( $(date +%s) - t )) s"
check "--keep-on-failure left 'gptoss' DEPLOY_FAILED next to 'hello'" \
  test "$(serve_json | jq_py 'j["applications"].get("gptoss",{}).get("status") == "DEPLOY_FAILED" and "hello" in j["applications"]')" = True
write_record() {
  cat >"$PD_LAB_DEPLOYMENT" <<TOMLEOF
format_version = 1
backend = "ray"
base_url = "$SERVE"
served_model_name = "gptoss"
label = "1xtp1"
total_gpus = 1
gpus_per_node = 2
nodes = ["127.0.0.1"]
command = ["launch-gptoss", "--mode", "collocated", "--tp", "1"]
tool_version = "test"
created_at = "2026-01-01T00:00:00+00:00"

[spec]
mode = "collocated"
model_id = "gptoss"
model_source = "openai/gpt-oss-120b"
gpu = "other"

[spec.collocated]
num = 1
tp = 1

[stop]
kind = "ray"
address = "$DASH"
app_name = "gptoss"
TOMLEOF
}
write_record
if "$LG" status >"$WORK/o" 2>"$err"; then bad "status of a DEPLOY_FAILED app exited 0"; else
  cat "$WORK/o"
  check "status shows DEPLOY_FAILED and Ray's message, exits non-zero" grep -q "DEPLOY_FAILED" "$WORK/o"
fi
t=$(date +%s)
if "$LG" shutdown 2>"$err"; then
  cat "$err"
  ok "shutdown removed our app ($(( $(date +%s) - t )) s)"
else
  bad "shutdown"; cat "$err"
fi
check "after shutdown: 'gptoss' gone, 'hello' still RUNNING, record removed" \
  test "$(serve_json | jq_py '"gptoss" not in j["applications"] and j["applications"].get("hello",{}).get("status") == "RUNNING"')-$([ -e "$PD_LAB_DEPLOYMENT" ] && echo rec || echo norec)" = True-norec
write_record
check "shutdown again (app absent) succeeds" "$LG" shutdown
check "shutdown without a record succeeds" "$LG" shutdown

# ---- 5. unreachable cluster ------------------------------------------------------------
stop_ray
write_record
if "$LG" shutdown 2>"$err"; then bad "shutdown with the cluster down exited 0"; else
  cat "$err"
  check "shutdown with the cluster down: clear error, record kept" \
    test "$(grep -c 'cannot reach the Ray dashboard' "$err")-$([ -e "$PD_LAB_DEPLOYMENT" ] && echo rec)" = 1-rec
fi
rm -f "$PD_LAB_DEPLOYMENT"

left=$(pgrep -f -- "$WORK/ray" || true)
check "no Ray process of ours left after the stop" test -z "$left"
log "total $(( $(date +%s) - T0 )) s"
echo "test-ray-api: $passed passed, $failed failed"
[ "$failed" = 0 ]
