//! What the EAL tests share (each test binary is its own process: one EAL).

use dpdk::Eal;

/// The EAL without hugepages, PCI or shared config, on lcore 0 with 256 MB:
/// enough for the library tests (tables, a small mbuf pool).
pub fn small_eal() -> Eal {
    Eal::init(&[
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "-l",
        "0",
        "--log-level=error",
    ])
    .expect("rte_eal_init")
}
