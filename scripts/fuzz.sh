#!/usr/bin/env bash
# Short fuzzing run of the cargo-fuzz targets in fuzz/ (see docs/fuzzing.md).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 60); TARGETs default to every target
# (parse_track, parse_only, helper_ftp, helper_pptp, helper_tftp). Installs cargo-fuzz from crates.io if it is
# missing. First replays the seed corpus and the saved corpus with
# `cargo test` (no libFuzzer), then runs each target for SECONDS with
# AddressSanitizer. Exits non-zero on the first crash, printing the
# reproducing input in hex and the command that replays it.
#
# Environment:
#   FUZZ_SANITIZER  none (default: thousands of inputs/s, see docs/fuzzing.md) or address
#   FUZZ_JOBS       cargo build jobs (default 2)
#
# cargo-fuzz passes -Zsanitizer=address and other -Z flags. On a stable
# toolchain RUSTC_BOOTSTRAP=1 lets rustc accept them; this script sets it
# only when rustc is not a nightly. Not part of CI's time budget: run it by
# hand, or from CI with a small SECONDS.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export PATH="$HOME/.cargo/bin:$PATH"

secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(parse_track parse_only helper_ftp helper_pptp helper_tftp)
fi
case "$secs" in
    '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
sanitizer="${FUZZ_SANITIZER:-none}"
export CARGO_BUILD_JOBS="${FUZZ_JOBS:-2}"

if ! command -v c++ >/dev/null 2>&1; then
    # libfuzzer-sys compiles libFuzzer, which is C++.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "fuzz: installing g++" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
    else
        echo "fuzz: a C++ compiler is needed: sudo apt-get install g++" >&2
        exit 1
    fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

# The targets' bodies on the seeds, the saved corpus and a few thousand
# deterministic mutations, without libFuzzer: a fast check that the
# assertions hold on known inputs before fuzzing.
cargo test --release --quiet

if ! cargo fuzz build -s "$sanitizer" "${targets[@]:0:1}" >/dev/null 2>&1; then
    if [ "$sanitizer" != none ]; then
        echo "fuzz: building with -s $sanitizer failed; falling back to -s none" >&2
        sanitizer=none
    fi
fi

mkdir -p target/fuzz-logs
status=0
for t in "${targets[@]}"; do
    case "$t" in
        parse_only) max_len=512 ;;
        *) max_len=4096 ;;
    esac
    log="target/fuzz-logs/$t.log"
    echo "== fuzz: $t for ${secs}s (sanitizer: $sanitizer, log: fuzz/$log)"
    mkdir -p "corpus/$t" "artifacts/$t"
    set +e
    cargo fuzz run -s "$sanitizer" "$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len="$max_len" -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" >"$log" 2>&1
    rc=$?
    set -e
    # The last status line (execs, coverage, corpus) and the final stats.
    grep -E '^#[0-9]+' "$log" | tail -n 1 || true
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
    if [ $rc -ne 0 ]; then
        status=1
        echo "fuzz: $t FAILED (exit $rc); the panic:" >&2
        grep -E -A 12 'panicked at|ERROR: (AddressSanitizer|libFuzzer)' "$log" | head -n 30 >&2 || true
        crash="$(grep -oE 'artifacts/[^ ]+' "$log" | tail -n 1 || true)"
        if [ -n "$crash" ] && [ -f "$crash" ]; then
            echo "fuzz: input ($crash), hex:" >&2
            od -An -v -tx1 "$crash" | tr -d ' \n' >&2
            echo >&2
            echo "fuzz: replay: (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $t $crash)" >&2
        fi
        break
    fi
done
exit $status
