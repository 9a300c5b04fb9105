//! Fuzz target `block_args`: see `rpcgate::fuzzing::block_args` for the input and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpcgate::fuzzing::block_args(data));
