#!/bin/bash
# Runs the fuzz targets one after the other, each for FUZZ_SECONDS
# (default 600), seeded with the recorded fail2ban replies (and, for
# guard_differential, the pickles in fuzz/seeds/), under a 2 GiB memory
# limit and a 10 s limit per input. Needs a nightly toolchain and
# cargo-fuzz (cargo install cargo-fuzz --locked). Crashes land in
# fuzz/artifacts/TARGET/; the figures in fuzz/logs/TARGET.log.
#
#   bash fuzz/run.sh                      # all three targets, 10 min each
#   FUZZ_SECONDS=60 bash fuzz/run.sh framing
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-600}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_reply framing guard_differential)
end='<F2B_END_COMMAND>'
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    for f in ../tests/fixtures/fail2ban-*/reply-*.bin; do
        name=$(basename "$(dirname "$f")")-$(basename "$f")
        if [ "$t" != framing ]; then
            # A frame: the reply without its terminator.
            head -c -${#end} "$f" > "corpus/$t/$name"
        else
            # A stream: 4 bytes choosing chunk sizes, then the reply as sent.
            { printf '\x07\x00\x40\xff'; cat "$f"; } > "corpus/$t/$name"
        fi
    done
    if [ -d "seeds/$t" ]; then
        cp seeds/"$t"/* "corpus/$t/"
    fi
    echo "== fuzzing $t for $seconds s"
    cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -timeout=10 -max_len=1048576 -print_final_stats=1 2>&1 | tee "logs/$t.log" | tail -n 25
done
