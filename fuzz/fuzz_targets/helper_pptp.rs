//! The pptp helper on arbitrary input: see `ctrack_fuzz::helpers::pptp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ctrack_fuzz::helpers::pptp(data);
});
