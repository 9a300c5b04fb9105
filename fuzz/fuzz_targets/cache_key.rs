//! Fuzz target `cache_key`: see `rpcgate::fuzzing::cache_key` for the input and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpcgate::fuzzing::cache_key(data));
