#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite: unit and property
# tests, the conntrack core without DPDK, the end-to-end tests that drive the
# ctrack binary over real DPDK virtual devices (and, as root, real Linux
# traffic between network namespaces), and the fuzz targets' seed tests.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
# The namespace tests (run as root) use ip, ethtool, ping, curl and python3, and
# the Linux reference router nft and tcpdump; the flow export tests read what
# ctrack exports with nfdump's collector and tshark (which also checks the
# packets the firewall generates); the pktgen test checks its Lua script
# with luac; the REST client test installs requests and rosrestpy into a venv.
if [ "$(id -u)" = 0 ]; then
    ctrack_need_packages ip ethtool ping curl python3 python3-venv nfdump tshark luac nft tcpdump
else
    ctrack_need_packages
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() { "$@" 2>&1 | tee -a "$log"; }

# The sans-io core (its own crate) and the worker must build and pass
# without DPDK.
run cargo test -p ctrack-core
run cargo test -p dataplane --no-default-features
# Everything else, with DPDK (dataplane ran above). The end-to-end tests run
# the ctrack binary, built first.
cargo build -p control --bins
run cargo test --workspace --exclude dataplane --exclude ctrack-core
# The fuzz targets' own tests (seeds and fixed mutations, without libFuzzer):
# keeps the separate fuzz crate building against the dataplane API.
run cargo test --release --manifest-path fuzz/Cargo.toml

# One line for the whole suite.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
