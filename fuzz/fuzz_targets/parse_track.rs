//! Parse + track: a sequence of (time step, frame) records through
//! `parse_ethernet` / `parse_ip` into a small `Shard`, with expiry, settings
//! changes and management calls in between, and the table's invariants
//! asserted after every step. See `ctrack_fuzz::track` for the input format.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ctrack_fuzz::track::run(data);
});
