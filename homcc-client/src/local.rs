//! What runs on this machine, and why: the user's compiler command (`Invocation`), run exactly
//! as asked (homcc replaces itself with it, in a local slot); `Instead`, why a command that was
//! meant for a host runs here; and the fallback, which says so in one line.

use std::{
    ffi::{OsStr, OsString},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{
    cli::Cli,
    config::Settings,
    slots::{Slot, Slots},
};

/// The compiler command: the name as invoked (its identity on servers), the binary it resolves
/// to (never homcc itself), its arguments as given, and this machine's slots for running it.
#[derive(Debug)]
pub struct Invocation<'a> {
    pub name: &'a OsStr,
    pub binary: PathBuf,
    pub args: &'a [OsString],
    /// The state dir's slots and the local limit, once the settings are known.
    pub local_slots: Option<(Slots, u32)>,
}

impl Invocation<'_> {
    /// Runs the compiler locally, as the user asked, in a local slot that the compiler holds
    /// until it exits.
    pub fn local(&self) -> u8 {
        if let Some(slot) = self.take_local_slot() {
            slot.keep_across_exec();
        }
        exec(&self.binary, self.args)
    }

    /// A local slot, once one is free; `None` without a state dir.
    pub fn take_local_slot(&self) -> Option<Slot> {
        let (slots, limit) = self.local_slots.as_ref()?;
        slots.take_local(*limit)
    }
}

/// Why a job (and so its whole command) runs locally instead of remotely.
#[derive(Debug)]
pub enum Instead {
    /// Quietly: the compiler will speak for itself (a failed dependency scan) or remote output
    /// could differ (`--verbose` said why).
    Local,
    /// After a failure before the compiler's verdict: say this (or exit, if local compilation
    /// is disabled).
    Fallback(String),
    /// The verdict's files could not be written for want of disk space: say this and exit 1,
    /// as the compiler does when it cannot write its output (a local compile would fail too).
    Failed(String),
}

impl Instead {
    /// Runs the command locally, saying why when it is a fallback (or exits, if disabled).
    pub fn run(self, settings: &Settings, cmd: &Invocation<'_>) -> u8 {
        match self {
            Instead::Local => cmd.local(),
            Instead::Fallback(reason) => fallback(settings.no_local, cmd, &reason),
            Instead::Failed(reason) => {
                eprintln!("homcc: error: {reason}");
                1
            }
        }
    }
}

/// After a failure before the compiler's verdict: compile locally, or (fallback disabled) exit.
pub fn fallback(no_local: bool, cmd: &Invocation<'_>, reason: &str) -> u8 {
    if no_local {
        eprintln!("homcc: {reason}; not compiling locally (local compilation is disabled)");
        return crate::EXIT_HOMCC_FAILED;
    }
    eprintln!("homcc: {reason}; compiling locally");
    cmd.local()
}

/// Whether local compilation is off when the settings themselves are unusable: the flag, or
/// the variable if it reads as true.
pub fn no_local_anyway(cli: &Cli) -> bool {
    let variable = std::env::var("HOMCC_NO_LOCAL_COMPILATION").unwrap_or_default();
    cli.no_local_compilation
        || ["1", "true", "yes", "on"].contains(&variable.to_ascii_lowercase().as_str())
}

/// Execs the compiler `binary` (resolved, so never homcc itself) with `args`; returns only if
/// that fails, with the exit code to use.
pub fn exec(binary: &Path, args: &[OsString]) -> u8 {
    let err = Command::new(binary).args(args).exec();
    eprintln!("homcc: cannot run {}: {err}", binary.display());
    if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}
