//! The compiler's view of the system, with Linux Landlock (the `landlock` crate, which uses
//! every right the running kernel has): it may read and run the system's programs and libraries
//! (`/usr`, `/lib*`, `/bin`, the allowed compilers' install dirs, a few files of `/etc`), and read
//! and write only its own job; any other path (`#include "/etc/passwd"`, `.incbin`, another job,
//! the cache) is denied by the kernel, and so are TCP connections and signals to processes
//! outside the compile. Without Landlock (an old or a restricted kernel) homccd says so once at
//! start and runs compilers unconfined.

use std::{
    io,
    path::{Path, PathBuf},
};

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, LandlockStatus, PathBeneath, PathFd, Ruleset,
    RulesetAttr, RulesetCreated, RulesetCreatedAttr, RulesetError, RulesetStatus, Scope, ABI,
};

/// The newest Landlock ABI whose rights homccd asks for: file system rights up to ioctl on
/// devices, TCP bind and connect, and scopes (abstract unix sockets, signals). On an older
/// kernel the crate leaves out what it lacks (best effort).
const WANTED: ABI = ABI::V6;

/// What the compiler may read besides its job: system dirs and files, when they exist.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/proc",
    "/dev/urandom",
    "/dev/zero",
];

/// A rule set for one compiler (see [`Sandbox::run_confined`]).
#[derive(Debug)]
pub struct Sandbox {
    ruleset: RulesetCreated,
}

/// Every access the rule set handles: what no rule allows is denied.
fn ruleset() -> Result<RulesetCreated, RulesetError> {
    Ruleset::default()
        .handle_access(AccessFs::from_all(WANTED))?
        .handle_access(AccessNet::from_all(WANTED))?
        .scope(Scope::from_all(WANTED))?
        .create()
}

impl Sandbox {
    /// Whether this kernel confines processes with Landlock, and its ABI if so: a throwaway
    /// thread restricts itself and reads the outcome.
    pub fn available() -> Option<ABI> {
        let probe = std::thread::spawn(|| {
            let status = ruleset().ok()?.restrict_self().ok()?;
            match (status.ruleset, status.landlock) {
                (RulesetStatus::NotEnforced, _) => None,
                (_, LandlockStatus::Available { effective_abi, .. }) => Some(effective_abi),
                _ => None,
            }
        });
        probe.join().ok().flatten()
    }

    /// Rules for one compile: read the system dirs and `extra_read` (the compilers' install
    /// dirs), read and write `job` (its root and temporary dir), write `/dev/null`.
    pub fn for_job(job: &Path, extra_read: &[PathBuf]) -> io::Result<Sandbox> {
        let read = AccessFs::from_read(WANTED);
        let mut ruleset = ruleset().map_err(io::Error::other)?;
        let system = SYSTEM_READ.iter().map(PathBuf::from);
        for path in system.chain(extra_read.iter().cloned()) {
            ruleset = allow(ruleset, &path, read)?;
        }
        let read_write = AccessFs::ReadFile | AccessFs::WriteFile;
        ruleset = allow(ruleset, Path::new("/dev/null"), read_write)?;
        ruleset = allow(ruleset, job, AccessFs::from_all(WANTED))?;
        Ok(Sandbox { ruleset })
    }

    /// Runs `start` (which starts the compiler) on a thread of its own that first confines
    /// itself: Landlock confines the calling thread and every process it starts from then on,
    /// and no other thread of homccd.
    pub fn run_confined<T: Send + 'static>(
        self,
        start: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let confined = std::thread::spawn(move || {
            let status = self.ruleset.restrict_self().map_err(io::Error::other)?;
            if status.ruleset == RulesetStatus::NotEnforced {
                return Err(io::Error::other("Landlock did not confine the compiler"));
            }
            start()
        });
        confined
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the confined thread panicked")))
    }
}

/// `ruleset` with `access` allowed beneath `path`; a path that does not exist is skipped, a file
/// gets only the rights that apply to files.
fn allow(
    ruleset: RulesetCreated,
    path: &Path,
    access: BitFlags<AccessFs>,
) -> io::Result<RulesetCreated> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(ruleset);
    };
    let access = match meta.is_dir() {
        true => access,
        false => access & AccessFs::from_file(WANTED),
    };
    let fd = PathFd::new(path).map_err(io::Error::other)?;
    (ruleset.add_rule(PathBeneath::new(fd, access))).map_err(io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// Runs `cat path` confined to a job dir; whether it could read it.
    fn can_read(job: &Path, path: &Path) -> bool {
        let sandbox = Sandbox::for_job(job, &[]).unwrap();
        let path = path.to_owned();
        let cat = sandbox.run_confined(move || {
            Command::new("/bin/cat")
                .arg(path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
        });
        cat.unwrap().success()
    }

    #[test]
    fn a_confined_process_reads_its_job_and_the_system_only() {
        assert!(
            Sandbox::available().is_some(),
            "this kernel has no Landlock: homccd would run compilers unconfined (it says so at start)"
        );
        let job = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(job.path().join("mine.h"), "int mine;\n").unwrap();
        std::fs::write(outside.path().join("secret"), "secret\n").unwrap();
        assert!(can_read(job.path(), &job.path().join("mine.h")));
        assert!(can_read(job.path(), Path::new("/usr/include/stdio.h")));
        assert!(!can_read(job.path(), &outside.path().join("secret")));
        assert!(!can_read(job.path(), Path::new("/etc/passwd")));
        // The thread that ran the confined ones is not confined.
        assert!(std::fs::read(outside.path().join("secret")).is_ok());
    }
}
