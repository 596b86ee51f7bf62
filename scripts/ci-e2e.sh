#!/usr/bin/env bash
# End-to-end proof run by .ci/run: the quickstart and the methodology's three experiment
# scripts on the simulated cluster, with their outputs checked and no process left behind.
set -euo pipefail
cd "$(dirname "$0")/.."

leftovers() { pgrep -f 'launch-gptoss serve-sim' || true; }
if [ -n "$(leftovers)" ]; then echo "ci-e2e: a simulator is already running: $(leftovers)" >&2; exit 1; fi

rm -rf bm_results/gptoss_itl5000_otl250_mixed_quickstart_* plots/quickstart
QUICKSTART_PORT=18100 bash scripts/quickstart.sh
python3 scripts/check-outputs.py --points 4,8,16,32 \
  --results bm_results/gptoss_itl5000_otl250_mixed_quickstart_baseline_4xtp2 \
            bm_results/gptoss_itl5000_otl250_mixed_quickstart_pd_p1xtp2-d2xtp2 \
  --plots plots/quickstart
[ -z "$(leftovers)" ] || { echo "ci-e2e: quickstart left a simulator running" >&2; exit 1; }

for s in tp-baselines pd-ratio-sweep pack-vs-spread; do
  echo
  echo "######## scripts/$s.sh --backend sim --quick"
  rm -rf "plots/$s" bm_results/gptoss_itl2000_otl100_mixed_"${s}"_*
  bash "scripts/$s.sh" --backend sim --quick --port 18101
  python3 scripts/check-outputs.py --points 4,16 --results bm_results/gptoss_itl2000_otl100_mixed_"${s}"_* --plots "plots/$s"
  [ -z "$(leftovers)" ] || { echo "ci-e2e: $s left a simulator running" >&2; exit 1; }
done
echo "ci-e2e: all checks passed"
