//! RouterOS scripts on arbitrary input: parse, export and re-parse, compile,
//! evaluate against the linear walk. See `ctrack_fuzz::rules`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = ctrack_fuzz::rules::run(data);
});
