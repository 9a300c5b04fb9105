//! Where the anvil binary is found, decided when it is needed, not when the harness is
//! compiled: a binary built in one checkout and run in another must find the anvil of the
//! one it runs in.
//!
//! The order:
//! 1. `$RPCGATE_ANVIL`, if set and not empty. A set variable is the only place looked
//!    at: a wrong override is an error, not a reason to run some other anvil.
//! 2. [`INSTALLED_ANVIL`] (where `scripts/install-anvil` puts it) under the current
//!    directory and each of its ancestors: tests run in the package directory, scripts
//!    in the checkout.
//! 3. The same under the directory of the running executable and each of its ancestors,
//!    so `target/release/rpcgate-demo` (or a test binary in `target/debug/deps`) finds
//!    its checkout's `.tools` from any working directory.
//! 4. `anvil` on `PATH`.
//!
//! The inputs (environment, directories) are a plain struct, so the order is tested on a
//! temporary tree without touching the process environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::FleetError;

/// Environment variable that overrides where the anvil binary is found.
pub const ANVIL_ENV: &str = "RPCGATE_ANVIL";

/// Where `scripts/install-anvil` puts the pinned binary, relative to the checkout.
pub const INSTALLED_ANVIL: &str =
    ".tools/anvil/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";

/// Finds the anvil binary for this process (see the module docs for the order).
pub fn anvil_binary() -> Result<PathBuf, FleetError> {
    Search::of_this_process().find()
}

/// What a lookup looks at.
#[derive(Debug, Default)]
struct Search {
    /// The value of [`ANVIL_ENV`], if set.
    env: Option<OsString>,
    current_dir: Option<PathBuf>,
    /// The running executable.
    exe: Option<PathBuf>,
    /// The value of `PATH`.
    path: Option<OsString>,
}

impl Search {
    fn of_this_process() -> Self {
        Self {
            env: std::env::var_os(ANVIL_ENV),
            current_dir: std::env::current_dir().ok(),
            exe: std::env::current_exe().ok(),
            path: std::env::var_os("PATH"),
        }
    }

    fn find(&self) -> Result<PathBuf, FleetError> {
        if let Some(path) = self.env.as_ref().filter(|v| !v.is_empty()) {
            let path = PathBuf::from(path);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(FleetError::AnvilNotFound {
                    looked_at: format!("${ANVIL_ENV}={}", path.display()),
                })
            };
        }
        let mut looked_at = Vec::new();
        let starts = [
            ("the current directory", self.current_dir.as_deref()),
            (
                "the executable's directory",
                self.exe.as_deref().and_then(Path::parent),
            ),
        ];
        for (what, start) in starts {
            let Some(start) = start else {
                looked_at.push(format!("{INSTALLED_ANVIL} under {what} (unknown)"));
                continue;
            };
            if let Some(found) = installed_under(start) {
                return Ok(found);
            }
            looked_at.push(format!(
                "{INSTALLED_ANVIL} under {} and its ancestors",
                start.display()
            ));
        }
        let dirs: Vec<PathBuf> = self.path.iter().flat_map(std::env::split_paths).collect();
        if let Some(found) = dirs
            .iter()
            .map(|dir| dir.join("anvil"))
            .find(|candidate| candidate.is_file())
        {
            return Ok(found);
        }
        let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        looked_at.push(format!("anvil on PATH ({})", dirs.join(":")));
        Err(FleetError::AnvilNotFound {
            looked_at: looked_at.join("; "),
        })
    }
}

/// The installed binary under `start` or the nearest of its ancestors that has one.
fn installed_under(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(INSTALLED_ANVIL))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary tree: `checkout/` and `other/` each with an installed anvil (made
    /// on demand), `checkout/a/b` as a working directory below it, `elsewhere/` with
    /// nothing, `bin/` for PATH.
    struct Tree {
        root: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Self {
            let root = tempfile::tempdir().expect("a temp dir");
            for dir in ["checkout/a/b", "other/target/release", "elsewhere", "bin"] {
                std::fs::create_dir_all(root.path().join(dir)).expect("a dir");
            }
            Self { root }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.root.path().join(rel)
        }

        /// Writes a fake executable at `rel` and returns its path.
        fn fake(&self, rel: &str) -> PathBuf {
            let path = self.path(rel);
            std::fs::create_dir_all(path.parent().expect("a parent")).expect("a dir");
            std::fs::write(&path, "#!/bin/sh\n").expect("a fake anvil");
            path
        }

        fn install_in(&self, checkout: &str) -> PathBuf {
            self.fake(&format!("{checkout}/{INSTALLED_ANVIL}"))
        }

        /// Run in `checkout/a/b`, as `other/target/release/rpcgate-demo`, PATH `bin/`.
        fn search(&self) -> Search {
            Search {
                env: None,
                current_dir: Some(self.path("checkout/a/b")),
                exe: Some(self.path("other/target/release/rpcgate-demo")),
                path: Some(self.path("bin").into_os_string()),
            }
        }
    }

    fn not_found(search: &Search) -> String {
        match search.find() {
            Err(e @ FleetError::AnvilNotFound { .. }) => e.to_string(),
            other => panic!("expected AnvilNotFound, got {other:?}"),
        }
    }

    #[test]
    fn the_variable_comes_first_and_is_not_second_guessed() {
        let tree = Tree::new();
        tree.install_in("checkout");
        let chosen = tree.fake("mine/anvil");
        let mut search = tree.search();
        search.env = Some(chosen.clone().into_os_string());
        assert_eq!(search.find().unwrap(), chosen);

        search.env = Some(tree.path("missing/anvil").into_os_string());
        let message = not_found(&search);
        assert!(message.contains("$RPCGATE_ANVIL="), "{message}");
        assert!(message.contains("missing/anvil"), "{message}");

        // Set but empty is unset.
        search.env = Some(OsString::new());
        assert_eq!(
            search.find().unwrap(),
            tree.path(&format!("checkout/{INSTALLED_ANVIL}"))
        );
    }

    #[test]
    fn the_working_directory_and_its_ancestors_come_before_the_executable() {
        let tree = Tree::new();
        let in_checkout = tree.install_in("checkout");
        tree.install_in("other");
        tree.fake("bin/anvil");
        assert_eq!(tree.search().find().unwrap(), in_checkout);
    }

    #[test]
    fn the_executable_and_its_ancestors_come_before_path() {
        let tree = Tree::new();
        let in_other = tree.install_in("other");
        tree.fake("bin/anvil");
        let mut search = tree.search();
        search.current_dir = Some(tree.path("elsewhere"));
        assert_eq!(search.find().unwrap(), in_other);
    }

    #[test]
    fn path_comes_last() {
        let tree = Tree::new();
        let on_path = tree.fake("bin/anvil");
        assert_eq!(tree.search().find().unwrap(), on_path);
    }

    #[test]
    fn the_error_says_where_it_looked() {
        let tree = Tree::new();
        let message = not_found(&tree.search());
        for place in [
            tree.path("checkout/a/b"),
            tree.path("other/target/release"),
            tree.path("bin"),
        ] {
            let place = place.display().to_string();
            assert!(message.contains(&place), "{place} missing from: {message}");
        }
        assert!(message.contains(INSTALLED_ANVIL), "{message}");
        assert!(message.contains("PATH"), "{message}");
    }
}
