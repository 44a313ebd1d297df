#!/usr/bin/env bash
# Prepares a server for `ctrack run` on real NICs: checks the IOMMU and CPU
# isolation, reserves hugepages (dpdk-hugepages.py), loads vfio-pci and binds
# the given NICs to it (dpdk-devbind.py). Both tools come with Debian's `dpdk`
# package (scripts/deps.sh installs it). See docs/operations.md.
#
#   scripts/setup-host.sh [--dry-run] [--hugepages SIZE] [--pagesize 2M|1G]
#                         [--driver vfio-pci] [PCI-ADDRESS ...]
#
#   --dry-run       check and print every command it would run; change nothing
#                   (needs neither root nor a NIC: the tests run it)
#   --hugepages     hugepage memory to reserve in all, e.g. 2G (default 2G)
#   --pagesize      hugepage size: 2M (default) or 1G
#   --driver        kernel driver to bind the NICs to (default vfio-pci)
#   PCI-ADDRESS     NICs to bind, e.g. 0000:01:00.0 (dpdk-devbind.py --status
#                   lists them); none: hugepages only
#
# Exit status: 0 when done (or, with --dry-run, when the plan is complete);
# 1 when a check fails that makes DPDK unusable (no root, a NIC that carries
# an active route, a missing tool); 2 on a bad argument. Warnings (no IOMMU,
# no isolated CPUs) do not fail: DPDK runs, only slower or less safely.
set -euo pipefail

dry=0
hugemem=2G
pagesize=2M
driver=vfio-pci
nics=()

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "setup-host: error: $*" >&2; exit 1; }
bad_arg() { echo "setup-host: $*" >&2; echo "try: $0 --help" >&2; exit 2; }
warn() { echo "setup-host: warning: $*" >&2; }
note() { echo "setup-host: $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry=1 ;;
        --hugepages) [ $# -ge 2 ] || bad_arg "--hugepages needs a size"; hugemem=$2; shift ;;
        --hugepages=*) hugemem=${1#*=} ;;
        --pagesize) [ $# -ge 2 ] || bad_arg "--pagesize needs 2M or 1G"; pagesize=$2; shift ;;
        --pagesize=*) pagesize=${1#*=} ;;
        --driver) [ $# -ge 2 ] || bad_arg "--driver needs a name"; driver=$2; shift ;;
        --driver=*) driver=${1#*=} ;;
        -h|--help) usage; exit 0 ;;
        -*) bad_arg "unknown option $1" ;;
        *) nics+=("$1") ;;
    esac
    shift
done

[[ "$hugemem" =~ ^[0-9]+[KMGkmg]$ ]] || bad_arg "bad --hugepages $hugemem: expected a size such as 2G or 512M"
case "$pagesize" in 2M|1G) ;; *) bad_arg "bad --pagesize $pagesize: expected 2M or 1G" ;; esac
case "$driver" in vfio-pci|uio_pci_generic|igb_uio) ;; *) bad_arg "bad --driver $driver: expected vfio-pci, uio_pci_generic or igb_uio" ;; esac
for n in "${nics[@]}"; do
    # Full (0000:01:00.0) or short (01:00.0) PCI address.
    [[ "$n" =~ ^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]] ||
        bad_arg "bad PCI address $n: expected e.g. 0000:01:00.0"
done

# Runs a command, or with --dry-run prints it.
act() {
    if [ $dry = 1 ]; then
        echo "would run: $*"
    else
        echo "+ $*"
        "$@"
    fi
}

if [ $dry = 0 ] && [ "$(id -u)" != 0 ]; then
    die "must run as root (hugepages, modules, driver binding); try --dry-run to see the plan"
fi

# Tools from Debian's dpdk package.
tools_ok=1
for t in dpdk-hugepages.py dpdk-devbind.py; do
    if ! command -v "$t" >/dev/null 2>&1; then
        tools_ok=0
        if [ $dry = 1 ]; then
            warn "$t is missing: install Debian's dpdk package (apt-get install dpdk, or source scripts/deps.sh)"
        else
            die "$t is missing: install Debian's dpdk package (apt-get install dpdk)"
        fi
    fi
done

# --- Checks -------------------------------------------------------------
cmdline=$(cat /proc/cmdline 2>/dev/null || true)

# IOMMU: vfio-pci needs one (or the unsafe no-IOMMU mode).
if [ -d /sys/class/iommu ] && [ -n "$(ls -A /sys/class/iommu 2>/dev/null)" ]; then
    note "IOMMU: present ($(ls /sys/class/iommu | tr '\n' ' '))"
elif [[ "$cmdline" =~ (intel_iommu=on|amd_iommu=on|iommu=pt) ]]; then
    note "IOMMU: requested on the kernel command line, but no IOMMU is active (check the firmware: VT-d / AMD-Vi)"
else
    warn "no IOMMU is active: vfio-pci cannot bind without one. Enable VT-d/AMD-Vi in the firmware and add intel_iommu=on iommu=pt (Intel) or amd_iommu=on (AMD) to the kernel command line, or use --driver uio_pci_generic (no DMA protection)"
fi

# CPU isolation: the busy-polling workers want CPUs of their own.
isolated=$(cat /sys/devices/system/cpu/isolated 2>/dev/null || true)
if [ -n "$isolated" ]; then
    note "isolated CPUs: $isolated (put the EAL -l lcores of ctrack.toml on these)"
else
    warn "no isolated CPUs: the workers will share their CPUs with other tasks. Add isolcpus=2-5 nohz_full=2-5 rcu_nocbs=2-5 (your worker CPUs) to the kernel command line"
fi
nohz=$(sed -n 's/.*nohz_full=\([^ ]*\).*/\1/p' /proc/cmdline 2>/dev/null || true)
[ -z "$nohz" ] || note "nohz_full: $nohz"

# Hugepages: what is there now.
size_kb=$([ "$pagesize" = 1G ] && echo 1048576 || echo 2048)
hp_dir=/sys/kernel/mm/hugepages/hugepages-${size_kb}kB
if [ -d "$hp_dir" ]; then
    note "hugepages ($pagesize): $(cat "$hp_dir/nr_hugepages") reserved, $(cat "$hp_dir/free_hugepages") free"
else
    warn "this kernel offers no $pagesize hugepages ($hp_dir is missing)"
fi

# NICs: present, and not carrying the host's own traffic.
for n in "${nics[@]}"; do
    [[ "$n" =~ ^[0-9a-fA-F]{4}: ]] || n="0000:$n"
    dev=/sys/bus/pci/devices/$n
    if [ ! -e "$dev" ]; then
        if [ $dry = 1 ]; then
            warn "no PCI device $n on this host (the plan below binds it anyway)"
            continue
        fi
        die "no PCI device $n (dpdk-devbind.py --status lists the NICs)"
    fi
    cur=$(basename "$(readlink "$dev/driver" 2>/dev/null)" 2>/dev/null || echo none)
    ifs=$(ls "$dev/net" 2>/dev/null | tr '\n' ' ' || true)
    note "NIC $n: driver $cur${ifs:+, interfaces $ifs}"
    for i in $ifs; do
        if ip -o route show dev "$i" 2>/dev/null | grep -q .; then
            die "$n ($i) has routes: it carries this host's traffic, and binding it to $driver would cut it off. Pick another NIC, or remove its addresses first"
        fi
    done
done

# --- Actions ------------------------------------------------------------
note "plan: reserve $hugemem of $pagesize hugepages, load $driver, bind ${#nics[@]} NIC(s)"
# --setup = clear, reserve and mount (on /dev/hugepages).
act dpdk-hugepages.py -p "$pagesize" --setup "$hugemem"
if [ "$driver" = vfio-pci ] || [ "$driver" = uio_pci_generic ]; then
    act modprobe "$driver"
fi
if [ ${#nics[@]} -gt 0 ]; then
    act dpdk-devbind.py -b "$driver" "${nics[@]}"
fi
if [ $dry = 1 ]; then
    [ $tools_ok = 1 ] || note "the dpdk tools are missing: install them before a real run"
    note "dry run: nothing was changed"
else
    act dpdk-hugepages.py -s
    [ ${#nics[@]} -eq 0 ] || act dpdk-devbind.py --status-dev net
    note "done: start ctrack (systemctl start ctrack)"
fi
