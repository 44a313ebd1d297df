//! Router mode's sans-io parts (issue #11): neighbours (ARP, IPv6 neighbour
//! discovery) and routes (the RouterOS model, the active route per prefix, a
//! reference longest-prefix match; the fast path will use `rte_lpm`).

pub mod neigh;
pub mod route;
