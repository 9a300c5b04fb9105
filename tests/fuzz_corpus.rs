//! The fuzz corpus replayed on stable: every file of fuzz/corpus/<target>/
//! goes through the same entry point as the cargo-fuzz target of that name
//! (`rpcgate::fuzzing`), so the seeds, and every input a fuzz run
//! once failed on, stay fixed without a nightly toolchain. The fuzzing itself
//! is `scripts/fuzz` (and briefly in scripts/test when nightly is there).

// Test code: its helpers are no API, and a failed unwrap is a failed test
// (the product's lints in Cargo.toml are for src/).
#![allow(unreachable_pub, clippy::unwrap_used)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rpcgate::fuzzing::TARGETS;

/// Replays one target's corpus; names the files that fail.
fn replay(target: &str) {
    let (_, run) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz entry point named {target}"));
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "{}: only {} seeds",
        dir.display(),
        files.len()
    );
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = std::fs::read(file).unwrap();
            catch_unwind(AssertUnwindSafe(|| run(&data))).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target}: failing inputs: {failed:#?}");
}

#[test]
fn every_target_has_a_corpus_and_a_test() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut named: Vec<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    named.sort();
    assert_eq!(on_disk, named);
    // And a cargo-fuzz target of each name.
    for name in &named {
        let target = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/fuzz_targets")
            .join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&target).unwrap();
        assert!(
            text.contains(&format!("rpcgate::fuzzing::{name}(")),
            "{}",
            target.display()
        );
    }
}

#[test]
fn envelope_corpus() {
    replay("envelope");
}

#[test]
fn block_args_corpus() {
    replay("block_args");
}

#[test]
fn cache_key_corpus() {
    replay("cache_key");
}

#[test]
fn config_corpus() {
    replay("config");
}

#[test]
fn ws_messages_corpus() {
    replay("ws_messages");
}
