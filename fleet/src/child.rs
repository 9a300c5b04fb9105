//! Child processes of the tests: the harness's own die with their parent, and tests
//! signal the gateway processes they start ([`signal`]).
//!
//! This is the workspace's only `unsafe` and its only direct use of libc; both stay out
//! of the product crate, which starts no child processes.

/// A signal a test sends to a process it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: a graceful shutdown.
    Terminate,
    /// SIGHUP: reload the config.
    Hangup,
    /// SIGSTOP: freeze (a server that accepts but never answers).
    Stop,
    /// SIGCONT: thaw a stopped process.
    Continue,
}

/// Sends `signal` to the process `pid` (e.g. [`std::process::Child::id`]).
pub fn signal(pid: u32, signal: Signal) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    let signal = match signal {
        Signal::Terminate => libc::SIGTERM,
        Signal::Hangup => libc::SIGHUP,
        Signal::Stop => libc::SIGSTOP,
        Signal::Continue => libc::SIGCONT,
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of this process.
    if unsafe { libc::kill(pid, signal) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Has the kernel kill a child process when the thread that started it goes.
/// A test run killed from outside never drops its fleet, so without this its
/// anvil and redis-server processes would outlive it (for a test, the thread
/// is its runtime's).
pub fn die_with_parent(command: &mut tokio::process::Command) {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
