#!/usr/bin/env bash
# Real two-node pd-spread test on one CPU-only machine (how and why: docs/REAL-STACK.md):
# a Ray head and a second raylet on two loopback addresses (distinct `node:<ip>` resources,
# each with its own CPU and fake GPU), the NIXL transfer probe between them, then
# launch-gptoss --mode pd-spread with prefill on one node and decode on the other, NIXL over
# UCX forced onto TCP, and run-bm through the Serve ingress with the KV-correctness check.
#
#   1. venv and tiny model: shared with scripts/test-real-stack.sh (cached, reused);
#   2. the correctness reference: greedy completions of the collocated tiny model, recorded
#      by test-real-stack.sh next to the model (pd-lab-reference.json); when missing, this
#      script deploys collocated once and records it;
#   3. a Ray head on 127.0.0.2 and a worker raylet on 127.0.0.3 (own sessions, temp dir and
#      ports; 1 CPU and 1 fake GPU each);
#   4. launch-gptoss probe (UCX/TCP and LIBFABRIC, pack and spread, host memory) as a Ray job:
#      bandwidth between the two raylets; LIBFABRIC is not available here and must be
#      reported as such; viz --probe shows the file;
#   5. launch-gptoss --mode pd-spread 1×TP1 + 1×TP1 --use-ucx (UCX_TLS=tcp): prefill and
#      decode replicas on different nodes (checked through the Serve and State APIs);
#   6. run-bm -s with --reference (streams, then greedy completions identical to collocated);
#      a deliberately corrupted reference must fail with "PD transfer corrupts outputs";
#      a small sweep with --check-correctness;
#   7. shutdown, stop both raylets by the pids of their sessions (never `ray stop`), nothing
#      of ours left running.
#
# Needs ~8.5 GiB of free memory and both cores for ~8–10 minutes with the venv cached: run
# nothing else heavy meanwhile.
#
# Env: PD_LAB_CACHE (default ~/.cache/pd-lab), LAUNCH_GPTOSS / RUN_BM / VIZ (binaries;
#      default: cargo build, debug), REAL_SPREAD_DASHBOARD_PORT (30265), REAL_SPREAD_SERVE_PORT (30000),
#      REAL_SPREAD_GCS_PORT (26579), REAL_SPREAD_HEAD_IP (127.0.0.2), REAL_SPREAD_WORKER_IP
#      (127.0.0.3), REAL_SPREAD_TIMEOUT (readiness, s; 900), KEEP_WORK=1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RS_NAME=test-real-spread

DASH_PORT="${REAL_SPREAD_DASHBOARD_PORT:-30265}"
SERVE_PORT="${REAL_SPREAD_SERVE_PORT:-30000}"
GCS_PORT="${REAL_SPREAD_GCS_PORT:-26579}"
HEAD_IP="${REAL_SPREAD_HEAD_IP:-127.0.0.2}"
WORKER_IP="${REAL_SPREAD_WORKER_IP:-127.0.0.3}"
READY_TIMEOUT="${REAL_SPREAD_TIMEOUT:-900}"
DASH="http://127.0.0.1:$DASH_PORT"
SERVE="http://127.0.0.1:$SERVE_PORT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pdlab-spread.XXXXXX")
PRIV="$WORK/priv"
HEAD_SID=""
WORKER_SID=""
REFERENCE="$RS_MODEL/pd-lab-reference.json"

stop_cluster() {
  rs_stop_session "$WORKER_SID" "the worker raylet ($WORKER_IP)"; WORKER_SID=""
  rs_stop_session "$HEAD_SID" "the Ray head ($HEAD_IP)"; HEAD_SID=""
}
cleanup() {
  local rc=$?
  if [ -n "${LG:-}" ] && [ -f "${PD_LAB_DEPLOYMENT:-/nonexistent}" ] && [ -n "$HEAD_SID" ]; then
    "$LG" shutdown >/dev/null 2>&1 || true
  fi
  stop_cluster
  rs_clean_shm "$WORK/shm.before"
  if [ "${KEEP_WORK:-0}" = 1 ]; then rs_log "scratch kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- preconditions ------------------------------------------------------------------------
rs_shm_snapshot "$WORK/shm.before"
rs_preconditions 85 "$DASH_PORT" "$SERVE_PORT" "$GCS_PORT" $((GCS_PORT + 1)) $((DASH_PORT + 1)) $((DASH_PORT + 2))
for ip in "$HEAD_IP" "$WORKER_IP"; do
  python3 -c "import socket,sys; s=socket.socket(); s.bind((sys.argv[1], 0)); s.close()" "$ip" 2>/dev/null ||
    rs_die "cannot bind $ip (loopback aliases 127.0.0.0/8 are needed; set REAL_SPREAD_*_IP)"
done
[ "$HEAD_IP" != "$WORKER_IP" ] || rs_die "the two nodes need different IPs"
tmp_ray_before=$( [ -e /tmp/ray ] && echo yes || echo no )

# ---- 1./2. venv, model, binaries, reference -------------------------------------------------
rs_ensure_venv
mkdir -p "$PRIV"/{vllm-cache,torch,hf,tmp}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME="$PRIV/hf"
rs_ensure_model
rs_binaries
export PD_LAB_DEPLOYMENT="$WORK/deployment.toml"
unset RAY_ADDRESS PD_LAB_BACKEND UCX_TLS OPENAI_API_KEY

# ---- 3. two raylets on two loopback addresses ------------------------------------------------
# 127.0.0.1 cannot be a node IP here: Ray replaces it by the host's address unless
# RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, which forbids worker nodes (docs/REAL-STACK.md).
t=$(date +%s)
rs_log "starting a Ray head on $HEAD_IP and a worker raylet on $WORKER_IP (1 CPU, 1 fake GPU each)"
HEAD_SID=$(rs_start_ray_node "$WORK/head.log" --head --node-ip-address "$HEAD_IP" --port "$GCS_PORT" \
  --num-cpus 1 --num-gpus 1 --object-store-memory 500000000 \
  --dashboard-host 127.0.0.1 --dashboard-port "$DASH_PORT" --include-dashboard true \
  --ray-client-server-port $((GCS_PORT + 1)) --dashboard-agent-listen-port $((DASH_PORT + 1)) \
  --temp-dir "$WORK/ray")
for _ in $(seq 1 240); do
  curl -fsS "$DASH/api/version" >/dev/null 2>&1 && break
  kill -0 "$HEAD_SID" 2>/dev/null || { cat "$WORK/head.log" >&2; rs_die "ray start (head) exited"; }
  sleep 0.5
done
WORKER_SID=$(rs_start_ray_node "$WORK/worker.log" --address "$HEAD_IP:$GCS_PORT" \
  --node-ip-address "$WORKER_IP" --num-cpus 1 --num-gpus 1 --object-store-memory 500000000 \
  --dashboard-agent-listen-port $((DASH_PORT + 2)))
for _ in $(seq 1 240); do
  [ "$(rs_alive_nodes "$DASH")" = 2 ] && break
  kill -0 "$WORKER_SID" 2>/dev/null || { cat "$WORK/worker.log" >&2; rs_die "ray start (worker) exited"; }
  sleep 0.5
done
curl -fsS "$DASH/api/v0/nodes" >"$WORK/nodes.json"
rs_check "two alive nodes, $HEAD_IP (head) and $WORKER_IP, each with its node:<ip> resource ($(( $(date +%s) - t )) s)" \
  "$PY" - "$WORK/nodes.json" "$HEAD_IP" "$WORKER_IP" <<'PYEOF'
import json, sys
nodes = json.load(open(sys.argv[1]))["data"]["result"]["result"]
alive = {n["node_ip"]: n for n in nodes if n["state"] == "ALIVE"}
ok = set(alive) == {sys.argv[2], sys.argv[3]}
ok = ok and all(alive[ip]["resources_total"].get("node:" + ip) == 1.0 for ip in alive)
ok = ok and alive[sys.argv[2]]["is_head_node"] and not alive[sys.argv[3]]["is_head_node"]
print({ip: n["resources_total"] for ip, n in alive.items()})
sys.exit(0 if ok else 1)
PYEOF

# ---- 4. the NIXL transfer probe (a Ray job) ---------------------------------------------------
t=$(date +%s)
set +e
UCX_TLS=tcp "$LG" probe --ray-address "$DASH" --memory dram --placement pack,spread \
  --nixl ucx,libfabric --block-size 32KiB --blocks 256 --iterations 10 --timeout 600 \
  --out "$WORK/probe.json" 2>&1 | tee "$WORK/probe.out"
probe_rc=${PIPESTATUS[0]}
set -e
rs_check "probe: exit 3, UCX measured and LIBFABRIC reported unavailable ($(( $(date +%s) - t )) s)" test "$probe_rc" = 3
rs_check "probe: UCX over TCP between the two raylets and within one, every slice intact" \
  "$PY" - "$WORK/probe.json" "$HEAD_IP" "$WORKER_IP" <<'PYEOF'
import json, sys
f = json.load(open(sys.argv[1]))
ok = f["format"] == "pd-lab-nixl-probe" and f["backend"] == "ray"
by = {(r["placement"], r["nixl_backend"]): r for r in f["results"]}
for pl in ("pack", "spread"):
    r = by[(pl, "ucx")]
    print(pl, "ucx", r["p_node"], "->", r["d_node"], "bandwidth", r["bandwidth_gbps"], "GB/s",
          "latency", r["latency_us"], "us", "first", r["first_transfer_ms"], "ms", "corrupt", r["corrupt_slices"])
    ok = ok and r["error"] is None and r["bandwidth_gbps"] > 0 and r["corrupt_slices"] == 0
    ok = ok and r["slices_checked"] == 256 and r["link"] == "UCX_TLS=tcp"
ok = ok and by[("spread", "ucx")]["p_node"] == sys.argv[2] and by[("spread", "ucx")]["d_node"] == sys.argv[3]
ok = ok and by[("pack", "ucx")]["p_node"] == by[("pack", "ucx")]["d_node"]
for pl in ("pack", "spread"):
    e = by[(pl, "libfabric")]["error"] or ""
    print(pl, "libfabric:", e)
    ok = ok and "LIBFABRIC is not available" in e
sys.exit(0 if ok else 1)
PYEOF
rs_check "viz --probe shows the result (table and plot)" bash -c \
  "'$VZ' --probe '$WORK/probe.json' --plot-path '$WORK/plots' --format svg >'$WORK/viz.out' \
   && grep -q 'spread ucx P1:D1 32KiB×256' '$WORK/viz.out' && test -s '$WORK/plots/probe_nixl_probe.svg'" 

# ---- overrides: CPU engines, prefill on the head, decode on the worker ------------------------
LGA=(--backend ray --ray-address "$DASH" --serve-url "$SERVE" --model-source "$RS_MODEL"
     --max-model-len 4096 --ingress-replicas 1 --timeout "$READY_TIMEOUT")
rs_common_overrides "$PRIV" "$HEAD_IP" >"$WORK/collocated.toml"
{
  rs_common_overrides "$PRIV"
  cat <<TOMLEOF

[engine_kwargs.kv_transfer_config]
kv_buffer_device = "cpu"

[prefill.runtime_env.env_vars]
VLLM_HOST_IP = "$HEAD_IP"
VLLM_NIXL_SIDE_CHANNEL_HOST = "$HEAD_IP"
VLLM_NIXL_SIDE_CHANNEL_PORT = "$((SERVE_PORT + 100))"
VLLM_CPU_OMP_THREADS_BIND = "0"

[decode.runtime_env.env_vars]
VLLM_HOST_IP = "$WORKER_IP"
VLLM_NIXL_SIDE_CHANNEL_HOST = "$WORKER_IP"
VLLM_NIXL_SIDE_CHANNEL_PORT = "$((SERVE_PORT + 101))"
VLLM_CPU_OMP_THREADS_BIND = "1"
TOMLEOF
} >"$WORK/spread.toml"

if [ ! -s "$REFERENCE" ]; then
  t=$(date +%s)
  rs_log "no correctness reference at $REFERENCE: deploying collocated once to record it"
  "$LG" "${LGA[@]}" --mode collocated --tp 1 --num 1 --overrides "$WORK/collocated.toml" ||
    rs_die "collocated deploy for the reference failed"
  "$RB" -s -u "$SERVE" -m gptoss --timeout 300 --record-reference "$REFERENCE" ||
    { rm -f "$REFERENCE"; rs_die "recording the reference failed"; }
  "$LG" shutdown
  rs_log "reference recorded in $(( $(date +%s) - t )) s"
fi
rs_log "correctness reference: $REFERENCE"

# ---- 5. pd-spread over the Serve REST API ------------------------------------------------------
t=$(date +%s)
rs_log "launch-gptoss --mode pd-spread --p-num 1 --p-tp 1 --d-num 1 --d-tp 1 --use-ucx (UCX_TLS=tcp)"
if UCX_TLS=tcp "$LG" "${LGA[@]}" --mode pd-spread --p-num 1 --p-tp 1 --d-num 1 --d-tp 1 --use-ucx \
    --overrides "$WORK/spread.toml" 2>&1 | tee "$WORK/launch.err"; then
  rs_ok "pd-spread deployed and ready in $(( $(date +%s) - t )) s"
else
  rs_bad "pd-spread deploy (after $(( $(date +%s) - t )) s)"
fi
rs_check "the plan put prefill on $HEAD_IP and decode on $WORKER_IP" \
  grep -q "picked node $HEAD_IP (1 GPUs) for prefill and node $WORKER_IP (1 GPUs) for decode" "$WORK/launch.err"
curl -fsS "$DASH/api/serve/applications/" >"$WORK/serve.json" || true
curl -fsS "$DASH/api/v0/actors?limit=10000" >"$WORK/actors.json" || true
rs_check "placement (Serve and State APIs): the prefill replica runs on $HEAD_IP, the decode replica on $WORKER_IP" \
  "$PY" - "$WORK/serve.json" "$WORK/actors.json" "$WORK/nodes.json" "$HEAD_IP" "$WORKER_IP" <<'PYEOF'
import json, sys
serve, actors, nodes = (json.load(open(p)) for p in sys.argv[1:4])
head, worker = sys.argv[4], sys.argv[5]
deps = serve["applications"]["gptoss"]["deployments"]
where = {}
for name, d in deps.items():
    where[name] = sorted(r.get("node_ip") for r in d["replicas"] if r["state"] == "RUNNING")
print("Serve API:", where)
pre = [n for n in where if n.lower().startswith("prefill")]
dec = [n for n in where if n.lower().startswith("decode")]
ok = len(pre) == 1 and len(dec) == 1 and where[pre[0]] == [head] and where[dec[0]] == [worker]
ip_of = {n["node_id"]: n["node_ip"] for n in nodes["data"]["result"]["result"]}
state = {}
for a in actors["data"]["result"]["result"]:
    name = a.get("name") or ""
    if a.get("state") == "ALIVE" and name.startswith("SERVE_REPLICA::gptoss#"):
        state.setdefault(name.split("#")[1], set()).add(ip_of.get(a.get("node_id"), "?"))
print("State API:", {k: sorted(v) for k, v in state.items()})
ok = ok and state.get(pre[0]) == {head} and state.get(dec[0]) == {worker}
sys.exit(0 if ok else 1)
PYEOF

# ---- 6. run-bm through the ingress: smoke + correctness, a corrupted reference, a sweep ------
t=$(date +%s)
smoke=0
for attempt in 1 2 3; do
  if "$RB" -s -u "$SERVE" -m gptoss --timeout 300 --reference "$REFERENCE" \
      >"$WORK/smoke.out" 2>&1; then smoke=1; break; fi
  rs_log "smoke attempt $attempt failed: $(tail -n 3 "$WORK/smoke.out" | tr '\n' ' ')"
  grep -q "corrupts outputs" "$WORK/smoke.out" && break
  sleep 5
done
tail -n 9 "$WORK/smoke.out"
rs_check "run-bm -s through the ingress: streamed, and the greedy completions equal collocated ones ($(( $(date +%s) - t )) s)" \
  bash -c "test $smoke = 1 && grep -q 'Correctness check passed: 4 of 4' '$WORK/smoke.out'"

"$PY" - "$REFERENCE" "$WORK/corrupted-reference.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["completions"][-1]
c["text"] = c["text"][: len(c["text"]) // 2] + " (zeroed KV blocks would continue differently)"
json.dump(r, open(sys.argv[2], "w"), indent=2)
PYEOF
set +e
"$RB" -s -u "$SERVE" -m gptoss --timeout 300 --reference "$WORK/corrupted-reference.json" \
  >"$WORK/smoke-corrupted.out" 2>&1
corrupted_rc=$?
set -e
grep -E "DIFFERS|FAILED" "$WORK/smoke-corrupted.out" || true
rs_check "a deliberately corrupted reference fails the smoke test (exit 1, 'PD transfer corrupts outputs')" \
  bash -c "test $corrupted_rc = 1 && grep -q 'Smoke test FAILED: PD transfer corrupts outputs: 1 of 4' '$WORK/smoke-corrupted.out'"

t=$(date +%s)
dir="$WORK/bm/spread"
if "$RB" -e realspread -t concurrency -c 1,2 --itl 128 --otl 16 --num-prompts 4 \
    --vocab-size "$RB_VOCAB" --timeout 300 --check-correctness --reference "$REFERENCE" \
    --result-dir "$dir" >"$WORK/sweep.out" 2>&1; then
  rs_ok "run-bm sweep (c=1,2) with --check-correctness in $(( $(date +%s) - t )) s"
else
  rs_bad "run-bm sweep"; tail -n 20 "$WORK/sweep.out"
fi
rs_check "every sweep point completed all 4 requests; the manifest records the passed check" \
  "$PY" - "$dir" <<'PYEOF'
import glob, json, sys
files = sorted(glob.glob(sys.argv[1] + "/conc*.json"))
ok = len(files) == 2
for f in files:
    j = json.load(open(f))
    print(f, "completed", j.get("completed"), "failed", j.get("failed"), "output_throughput", j.get("output_throughput"))
    ok = ok and j.get("completed") == 4 and not j.get("failed")
m = json.load(open(sys.argv[1] + "/manifest.json"))
print("manifest correctness:", m.get("correctness"))
ok = ok and m.get("correctness", {}).get("passed") is True
sys.exit(0 if ok else 1)
PYEOF

# ---- 7. shutdown, stop, nothing left -----------------------------------------------------------
t=$(date +%s)
if "$LG" shutdown; then rs_ok "shutdown in $(( $(date +%s) - t )) s"; else rs_bad "shutdown"; fi
rs_check "record removed" test ! -e "$PD_LAB_DEPLOYMENT"
rs_check "application gone" test -z "$(curl -fsS "$DASH/api/serve/applications/" | grep -o '"gptoss"' || true)"
stop_cluster
left=$(pgrep -f -- "$WORK/ray" || true)
rs_check "no process of our two raylets left" test -z "$left"
if [ "$tmp_ray_before" = no ]; then
  rs_check "nothing written to /tmp/ray (both raylets used our temp dir)" test ! -e /tmp/ray
fi
rs_log "total $(( $(date +%s) - RS_T0 )) s"
echo "test-real-spread: $RS_PASSED passed, $RS_FAILED failed"
[ "$RS_FAILED" = 0 ]
