#!/bin/sh
# The measured runs recorded in fuzz/README.md: sequential, one job each. The binaries
# are run directly (not `cargo fuzz run`), so that a crash does not make cargo-fuzz
# rebuild everything to reproduce it. Usage: fuzz/run-all.sh (after the install steps of README.md).
set -x
cd "$(dirname "$0")"
nice -n 15 cargo +nightly fuzz build -s none || exit 1
BIN=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release
run() { # target seconds max_len dict corpus-dirs...
  t=$1; s=$2; l=$3; d=$4; shift 4
  mkdir -p "corpus/$t" "artifacts/$t"
  nice -n 15 "$BIN/$t" -artifact_prefix="artifacts/$t/" -max_len="$l" -max_total_time="$s" \
    -jobs=1 -workers=1 -print_final_stats=1 $d "corpus/$t" "$@"
  mkdir -p logs && mv fuzz-0.log "logs/run-$t.log"
}
run parse_file 1200 65536 -dict=export.dict seeds/parse_file ../fixtures/contextforge ../fixtures/fuzz-regressions
run decrypt 420 4096 "" seeds/decrypt
run outline_keep 900 65536 -dict=export.dict seeds/parse_file ../fixtures/contextforge ../fixtures/fuzz-regressions
echo ALL DONE
