//! The credential decoder: the first byte picks arbitrary text, arbitrary blob bytes, or
//! a round trip of credentials made from the rest (see `mcpgateway_fuzz::decrypt`).
#![no_main]

use mcpgateway_fuzz::decrypt;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => decrypt::any_text(&String::from_utf8_lossy(rest)),
        1 => decrypt::any_blob(rest),
        _ => decrypt::round_trip(rest),
    }
});
