//! Fuzz target `config`: see `rpcgate::fuzzing::config` for the input and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpcgate::fuzzing::config(data));
