# Sourced by the other scripts: makes sure the build and test dependencies are
# installed. As root it installs what is missing with apt-get; otherwise it
# prints the exact command to run and stops.

export PATH="$HOME/.cargo/bin:$PATH"

ctrack_need_packages() {
    local missing=()
    pkg-config --exists libdpdk 2>/dev/null || missing+=(libdpdk-dev pkg-config)
    command -v clang >/dev/null 2>&1 || missing+=(clang)
    ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing+=(libclang-dev)
    command -v dpdk-testpmd >/dev/null 2>&1 || missing+=(dpdk-dev)
    # dpdk-hugepages.py and dpdk-devbind.py, for scripts/setup-host.sh.
    command -v dpdk-devbind.py >/dev/null 2>&1 || missing+=(dpdk)
    command -v cc >/dev/null 2>&1 || missing+=(gcc)
    command -v c++ >/dev/null 2>&1 || missing+=(g++)
    for extra in "$@"; do
        case "$extra" in
            tcpdump) command -v tcpdump >/dev/null 2>&1 || missing+=(tcpdump) ;;
            conntrack) command -v conntrack >/dev/null 2>&1 || missing+=(conntrack) ;;
            nft) command -v nft >/dev/null 2>&1 || missing+=(nftables) ;;
            ip) command -v ip >/dev/null 2>&1 || missing+=(iproute2) ;;
            python3) command -v python3 >/dev/null 2>&1 || missing+=(python3) ;;
            # The REST client test's virtual environment (pip from PyPI).
            python3-venv) python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv) ;;
            curl) command -v curl >/dev/null 2>&1 || missing+=(curl) ;;
            ethtool) command -v ethtool >/dev/null 2>&1 || missing+=(ethtool) ;;
            ping) command -v ping >/dev/null 2>&1 || missing+=(iputils-ping) ;;
            valgrind) command -v valgrind >/dev/null 2>&1 || missing+=(valgrind) ;;
            nfdump) command -v nfcapd >/dev/null 2>&1 || missing+=(nfdump) ;;
            tshark) command -v tshark >/dev/null 2>&1 || missing+=(tshark) ;;
            luac) command -v luac5.3 >/dev/null 2>&1 || missing+=(lua5.3) ;;
            prometheus) command -v promtool >/dev/null 2>&1 || missing+=(prometheus) ;;
        esac
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            echo "ctrack: installing ${missing[*]}" >&2
            DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        else
            echo "ctrack: missing packages; run: sudo apt-get install ${missing[*]}" >&2
            exit 1
        fi
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "ctrack: Rust is missing: install Rust 1.85 or newer (https://rustup.rs), then re-run" >&2
        exit 1
    fi
}
