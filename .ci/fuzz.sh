#!/usr/bin/env bash
# cargo-fuzz targets (fuzz/), each for a bounded time: FUZZ_SECONDS (default 20) apiece.
# Not part of .ci/run: building the targets with sanitizers takes longer than CI allows.
# cargo-fuzz needs nightly flags (-Z sanitizer); RUSTC_BOOTSTRAP=1 lets a stable toolchain
# accept them. A crash leaves its input under fuzz/artifacts/TARGET/ and fails the script;
# keep each finding as a unit test in the main crate once fixed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

FUZZ_SECONDS=${FUZZ_SECONDS:-20}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz

for target in $(cargo fuzz list); do
  printf '\n== cargo fuzz run %s (%ss)\n' "$target" "$FUZZ_SECONDS"
  cargo fuzz run -O "$target" -- -max_total_time="$FUZZ_SECONDS" -max_len=4096
done
