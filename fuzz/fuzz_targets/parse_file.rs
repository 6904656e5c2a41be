//! The import parser and validator on arbitrary bytes: see `check_parse_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcpgateway_fuzz::check_parse_file(data));
