//! Fuzz target `cache_key`: see `rpcgate::server::fuzzing::cache_key` for the input and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpcgate::server::fuzzing::cache_key(data));
