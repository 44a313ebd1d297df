#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite: unit and property
# tests, the conntrack core without DPDK, and the end-to-end tests that drive
# the ctrack binary over real DPDK virtual devices.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
ctrack_need_packages

# The conntrack core must build and pass without DPDK.
cargo test -p dataplane --no-default-features
# Everything, with DPDK. The end-to-end tests run the ctrack binary, built first.
cargo build -p control --bins
cargo test --workspace
