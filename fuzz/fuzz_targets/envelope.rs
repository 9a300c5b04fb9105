//! Fuzz target `envelope`: see `rpcgate::fuzzing::envelope` for the input and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpcgate::fuzzing::envelope(data));
