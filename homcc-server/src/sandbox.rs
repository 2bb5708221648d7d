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

use caps::{CapSet, Capability};
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

    /// Confines the calling thread, and every process it starts from then on.
    fn restrict_self(self) -> io::Result<()> {
        let status = self.ruleset.restrict_self().map_err(io::Error::other)?;
        if status.ruleset == RulesetStatus::NotEnforced {
            return Err(io::Error::other("Landlock did not confine the compiler"));
        }
        Ok(())
    }
}

/// Runs `start` (which starts the compiler) on a thread of its own that first gives up every
/// capability and the means to regain one (`no_new_privs`), and then, with a `sandbox`, confines
/// itself with Landlock. Both hold for that thread and every process it starts, and for no other
/// thread of homccd. Without capabilities a compiler that runs as root cannot write through a
/// file's read-only mode, so the cache's blobs, hard-linked into the job root, stay as they are
/// whatever file the compiler writes (docs/security.md).
pub fn run_confined<T: Send + 'static>(
    sandbox: Option<Sandbox>,
    start: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let confined = std::thread::spawn(move || {
        drop_capabilities()?;
        if let Some(sandbox) = sandbox {
            sandbox.restrict_self()?;
        }
        start()
    });
    confined
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the confined thread panicked")))
}

/// Gives up, on the calling thread, every capability: from the bounding set where it may (with
/// `CAP_SETPCAP`), and from the others that hold any; `no_new_privs` keeps a program it runs from gaining any
/// (root's are otherwise granted again at `execve`).
fn drop_capabilities() -> io::Result<()> {
    let failed = |e: caps::errors::CapsError| {
        io::Error::other(format!("cannot give up the compiler's capabilities: {e}"))
    };
    nix::sys::prctl::set_no_new_privs().map_err(io::Error::from)?;
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP).map_err(failed)? {
        caps::clear(None, CapSet::Bounding).map_err(failed)?;
    }
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        // Only a set that holds some: with none to give up (homccd.service grants none) the
        // call is not made, so a seccomp filter that forbids capset(2) does not stop compiles.
        if !caps::read(None, set).map_err(failed)?.is_empty() {
            caps::clear(None, set).map_err(failed)?;
        }
    }
    Ok(())
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
        let cat = run_confined(Some(sandbox), move || {
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

    /// A process started by `run_confined` has no capability, so a read-only file binds it
    /// also when homccd runs as root; the calling thread keeps its own.
    #[test]
    fn a_confined_process_has_no_capabilities_and_cannot_write_a_read_only_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("blob");
        std::fs::write(&file, "cached\n").unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o444))
            .unwrap();
        let script = format!(
            "grep -q '^CapEff:[[:space:]]*0*$' /proc/self/status && ! (echo x > {}) 2>/dev/null",
            file.display()
        );
        let shell = run_confined(None, move || {
            Command::new("/bin/sh").args(["-c", &script]).status()
        });
        assert!(
            shell.unwrap().success(),
            "the shell had capabilities or wrote the file"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "cached\n");
        let before = caps::read(None, CapSet::Effective).unwrap();
        assert_eq!(nix::unistd::geteuid().is_root(), !before.is_empty());
    }
}
