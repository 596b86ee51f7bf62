#!/usr/bin/env bash
# Generate shell completions (bash, zsh, fish) and man pages for the three tools.
# Usage: bash scripts/gen-completions.sh [OUT_DIR]   (default target/cli-assets)
#   OUT_DIR/completions/{launch-gptoss.bash,_launch-gptoss,launch-gptoss.fish,…}
#   OUT_DIR/man/{launch-gptoss.1,launch-gptoss-shutdown.1,run-bm.1,viz.1,…}
# Install e.g.: cp OUT_DIR/completions/*.bash ~/.local/share/bash-completion/completions/
#               cp OUT_DIR/man/*.1 ~/.local/share/man/man1/
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/cli-assets}"
for tool in launch-gptoss run-bm viz; do
  cargo run --quiet --locked -p "$tool" --example "${tool//-/_}_cli_assets" -- "$out"
done
echo "completions: $out/completions/"
echo "man pages:   $out/man/"
