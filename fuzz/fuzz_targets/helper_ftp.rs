//! The ftp helper on arbitrary input: see `ctrack_fuzz::helpers::ftp`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ctrack_fuzz::helpers::ftp(data);
});
