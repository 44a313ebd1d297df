//! The parser alone: `parse_ip`, `parse_ethernet` and `quoted_tuple` on the
//! raw input, with the FlowRepr checked for consistency and the same packet
//! re-parsed behind Ethernet, VLAN and QinQ headers, with padding and cut to
//! its IP length. See `ctrack_fuzz::parse`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ctrack_fuzz::parse::run(data);
});
