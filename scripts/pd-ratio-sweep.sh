#!/usr/bin/env bash
# Step 2 of the methodology: PD on one node (pd-pack) with different P:D ratios,
# decode at TP4 and at TP2, compared with the collocated 4×TP2 baseline.
#
# Usage: bash scripts/pd-ratio-sweep.sh [--backend ray|sim] [--quick] [--itl N] [--otl N]
#        [-c LIST] [--prefix NAME] [--port PORT]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
parse_common_args "$@"

run_config baseline_4xtp2 --mode collocated --tp 2 --num-replicas 4
# decode at TP4
run_config pd_p1xtp4-d1xtp4 --mode pd-pack --p-num 1 --p-tp 4 --d-num 1 --d-tp 4 --use-ucx
run_config pd_p2xtp2-d1xtp4 --mode pd-pack --p-num 2 --p-tp 2 --d-num 1 --d-tp 4 --use-ucx
# decode at TP2
run_config pd_p1xtp2-d1xtp2 --mode pd-pack --p-num 1 --p-tp 2 --d-num 1 --d-tp 2 --use-ucx
run_config pd_p1xtp2-d2xtp2 --mode pd-pack --p-num 1 --p-tp 2 --d-num 2 --d-tp 2 --use-ucx
run_config pd_p2xtp2-d1xtp2 --mode pd-pack --p-num 2 --p-tp 2 --d-num 1 --d-tp 2 --use-ucx
if [ "$quick" = 0 ]; then
  run_config pd_p1xtp2-d3xtp2 --mode pd-pack --p-num 1 --p-tp 2 --d-num 3 --d-tp 2 --use-ucx
  run_config pd_p3xtp2-d1xtp2 --mode pd-pack --p-num 3 --p-tp 2 --d-num 1 --d-tp 2 --use-ucx
fi
compare pd-ratio-sweep
