//! Fuzz target `ws_messages`: see `rpcgate::fuzzing::ws_messages` for the input and the invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rpcgate::fuzzing::ws_messages(data));
