//! Fuzz target `envelope`: see `rpcgate::server::fuzzing::envelope` for the input and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpcgate::server::fuzzing::envelope(data));
