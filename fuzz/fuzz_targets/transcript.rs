#![no_main]
//! The transcript parser and segmenter never panic, whatever the bytes and the format.

use grader::transcript::{Format, Roles, pairs_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let format = [None, Some(Format::Text), Some(Format::Vtt), Some(Format::Srt), Some(Format::Json)][selector as usize % 5];
    let _ = pairs_of("fuzz", text, format, &Roles::default());
});
