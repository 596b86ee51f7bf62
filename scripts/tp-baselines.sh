#!/usr/bin/env bash
# Step 1 of the methodology: collocated baselines at several TP degrees, 8 GPUs each
# (TP2 ×4, TP4 ×2, TP8 ×1; add TP1 ×8 with --tps 1,2,4,8 — GPT-OSS-120B does not fit
# one 80 GB H100 with a useful KV cache, so TP1 is only meaningful on H200).
#
# Usage: bash scripts/tp-baselines.sh [--backend ray|sim] [--quick] [--tps 2,4,8]
#        [--itl N] [--otl N] [-c LIST] [--gpu h100|h200 (sim)] [--prefix NAME] [--port PORT]
set -euo pipefail
tps="2,4,8"
gpu_args=()
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tps) tps="$2"; shift 2 ;;
    --gpu) gpu_args=(--gpu "$2"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
source "$(dirname "$0")/lib.sh"
parse_common_args "${args[@]+"${args[@]}"}"
[ "$backend" = sim ] || gpu_args=()

IFS=',' read -ra tp_list <<<"$tps"
for tp in "${tp_list[@]}"; do
  num=$(( 8 / tp ))
  run_config "baseline_${num}xtp${tp}" --mode collocated --tp "$tp" --num-replicas "$num" "${gpu_args[@]+"${gpu_args[@]}"}"
done
compare tp-baselines
