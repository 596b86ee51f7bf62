#!/usr/bin/env bash
# Plan first: the methodology's P:D-ratio question (step 2, one 8-GPU node: which PD split
# and TPs beat the collocated baselines?) answered by the planner in virtual time, then the
# planner's top 3 verified on the simulator's real-time server with run-bm, the way they
# would be verified on a real cluster (launch-gptoss, run-bm, launch-gptoss shutdown).
#
# Usage: bash scripts/plan-pd-ratio.sh [--quick] [--itl N] [--otl N] [-c LIST]
#        [--prefix NAME] [--port PORT] [--slo-ttft MS] [--slo-tpot MS]
#   --quick         short sweeps (concurrency 4,16; ITL 2000; OTL 100)
#   --slo-ttft MS   objective on the median TTFT (default 1000)
#   --slo-tpot MS   objective on the median TPOT (default 20)
# Expert-parallel variants are left out (the simulator's server has no EP switch).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

slo_ttft=1000
slo_tpot=20
common=()
while [ $# -gt 0 ]; do
  case "$1" in
    --slo-ttft) slo_ttft="$2"; shift 2 ;;
    --slo-tpot) slo_tpot="$2"; shift 2 ;;
    --backend) echo "plan-pd-ratio.sh verifies on the simulator only (--backend sim)" >&2; exit 2 ;;
    *) common+=("$1"); shift ;;
  esac
done
parse_common_args --backend sim "${common[@]+"${common[@]}"}"

plan_out="bm_results/${prefix}-plan"
plan_json=".pd-lab/${prefix}-plan.json"
mkdir -p .pd-lab
echo "==> launch-gptoss plan --gpus 8 --layouts collocated,pd-pack --no-ep --itl $itl --otl $otl -c $conc --slo-ttft $slo_ttft --slo-tpot $slo_tpot --top 3"
"$BIN/launch-gptoss" plan --gpus 8 --gpus-per-node 8 --gpu h100 --layouts collocated,pd-pack \
  --no-ep --itl "$itl" --otl "$otl" -c "$conc" --slo-ttft "$slo_ttft" --slo-tpot "$slo_tpot" \
  --top 3 --out "$plan_out" --no-progress
"$BIN/launch-gptoss" plan --gpus 8 --gpus-per-node 8 --gpu h100 --layouts collocated,pd-pack \
  --no-ep --itl "$itl" --otl "$otl" -c "$conc" --slo-ttft "$slo_ttft" --slo-tpot "$slo_tpot" \
  --top 3 --out "$plan_out" --no-progress --json > "$plan_json"

# The top 3: layout name, then the launch-gptoss (simulator) and run-bm argument vectors.
mapfile -t top < <(python3 - "$plan_json" <<'PY'
import json, shlex, sys
plan = json.load(open(sys.argv[1]))
for l in plan["layouts"]:
    if l.get("rank") and l["rank"] <= 3 and l.get("commands"):
        c = l["commands"]
        print("\t".join([l["layout"], shlex.join(c["launch_sim"][1:]), shlex.join(c["run_bm"][1:])]))
PY
)
if [ ${#top[@]} -eq 0 ]; then
  echo "!! no layout meets the objectives; relax --slo-ttft/--slo-tpot" >&2
  exit 1
fi

for line in "${top[@]}"; do
  IFS=$'\t' read -r layout launch_args runbm_args <<<"$line"
  eval "launch=($launch_args)"
  eval "runbm=($runbm_args)"
  # run-bm's experiment name: this script's prefix, so the measured directories sit next
  # to (not on top of) the planner's simulated ones
  for i in "${!runbm[@]}"; do
    if [ "${runbm[$i]}" = "-e" ]; then runbm[$((i + 1))]="${prefix}_${layout}"; fi
  done
  echo
  echo "==> [$layout] launch-gptoss ${launch[*]} --port $port"
  if ! "$BIN/launch-gptoss" "${launch[@]}" --port "$port"; then
    echo "!! [$layout] deployment failed; skipping" >&2
    failed_configs+=("$layout"); continue
  fi
  echo "==> [$layout] run-bm ${runbm[*]}"
  if "$BIN/run-bm" "${runbm[@]}"; then
    done_dirs+=("$(result_dir "${prefix}_${layout}")")
  else
    echo "!! [$layout] benchmark failed" >&2
    failed_configs+=("$layout")
  fi
  "$BIN/launch-gptoss" shutdown || { echo "!! [$layout] shutdown failed" >&2; failed_configs+=("$layout"); }
done

echo
echo "==> planned (virtual time) vs measured by run-bm on the simulator's server"
python3 - "$plan_json" "${done_dirs[@]+"${done_dirs[@]}"}" <<'PY'
import json, os, sys
plan = json.load(open(sys.argv[1]))
dirs = sys.argv[2:]
print(f"{'layout':<28} {'point':>6} {'planned tok/s/GPU':>18} {'measured':>9} {'diff':>7}")
worst = 0.0
for l in plan["layouts"]:
    if not l.get("rank") or l["rank"] > 3:
        continue
    best = l["best"]
    c = int(best["x"])
    match = [d for d in dirs if d.endswith("_" + l["layout"])]
    if not match:
        print(f"{l['layout']:<28} {'C=' + str(c):>6} {best['throughput_per_gpu']:>18.1f} {'-':>9}")
        continue
    r = json.load(open(os.path.join(match[0], f"conc{c}.json")))
    measured = r["output_throughput"] / l["gpus"]
    diff = (measured - best["throughput_per_gpu"]) / best["throughput_per_gpu"] * 100
    worst = max(worst, abs(diff))
    print(f"{l['layout']:<28} {'C=' + str(c):>6} {best['throughput_per_gpu']:>18.1f} {measured:>9.1f} {diff:>+6.1f}%")
print(f"largest difference: {worst:.1f}% (the same engine in virtual and in real time)")
PY

compare "$prefix"
