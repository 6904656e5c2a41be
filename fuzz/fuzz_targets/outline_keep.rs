//! The import wizard's outline, entity selection and pointer mapping: see `check_outline_keep`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcpgateway_fuzz::check_outline_keep(data));
