//! Router mode's sans-io parts (issue #11): neighbours (ARP, IPv6 neighbour
//! discovery). Routes (`rte_lpm`) and forwarding live in the dataplane.

pub mod neigh;
