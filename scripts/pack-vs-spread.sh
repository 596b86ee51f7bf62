#!/usr/bin/env bash
# Step 3 of the methodology: first the NIXL transfer probe (what the KV link can do, pack
# and spread, UCX as is and forced onto TCP), then the same PD layout (1 P at TP4 + 1 D at
# TP4) packed on one node vs spread over two nodes, over a good network (UCX on EFA/IB) and a
# bad one (UCX forced to TCP with UCX_TLS=tcp).
#
# Usage: bash scripts/pack-vs-spread.sh [--backend ray|sim] [--quick] [--itl N] [--otl N]
#        [-c LIST] [--prefix NAME] [--port PORT]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
parse_common_args "$@"

# The probe first (nothing deployed): bandwidth and latency of the KV link per placement.
probes=()
for tls in "" tcp; do
  out="bm_results/nixl-probe/${prefix}${tls:+_$tls}.json"
  echo "==> launch-gptoss probe --backend $backend --placement pack,spread --shape 4:4${tls:+ (UCX_TLS=$tls)}"
  if UCX_TLS="${tls:-${UCX_TLS:-}}" "$BIN/launch-gptoss" probe --backend "$backend" \
      --placement pack,spread --shape 4:4 --out "$out"; then
    probes+=("$out")
  else
    echo "!! probe${tls:+ (UCX_TLS=$tls)}: some configurations were not measured (see above)" >&2
    [ -f "$out" ] && probes+=("$out")
  fi
done
[ ${#probes[@]} -gt 0 ] && "$BIN/viz" --probe "${probes[@]}" --plot-path "plots/pack-vs-spread" --name "${prefix}_probe"

run_config pack_p1xtp4-d1xtp4 --mode pd-pack --p-num 1 --p-tp 4 --d-num 1 --d-tp 4 --use-ucx
run_config spread_p1xtp4-d1xtp4 --mode pd-spread --p-num 1 --p-tp 4 --d-num 1 --d-tp 4 --use-ucx
# The bad network: UCX over TCP. The real stack honours UCX_TLS from the environment, and
# so does the simulator.
UCX_TLS=tcp run_config spread_tcp_p1xtp4-d1xtp4 --mode pd-spread --p-num 1 --p-tp 4 --d-num 1 --d-tp 4 --use-ucx
compare pack-vs-spread
