//! The compiler's file system view, with Linux Landlock: it may read and run the system's
//! programs and libraries (`/usr`, `/lib*`, `/bin`, the allowed compilers' install dirs, a few
//! files of `/etc`), and read and write only its own job; any other path (`#include
//! "/etc/passwd"`, `.incbin`, another job, the cache) is denied by the kernel. Without Landlock
//! (an old or a restricted kernel) homccd says so once at start and runs compilers unconfined.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

// Landlock's ABI 1 (linux/landlock.h): the file system rights, and the two syscalls' arguments.
const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
/// Every right of ABI 1 (bits 0 to 12): all of them are handled, so what no rule allows is denied.
const ALL: u64 = (1 << 13) - 1;
const READ: u64 = EXECUTE | READ_FILE | READ_DIR;
const RULE_PATH_BENEATH: libc::c_int = 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

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

/// A rule set to apply to a compiler (see [`Sandbox::confine`]).
#[derive(Debug)]
pub struct Sandbox {
    ruleset: OwnedFd,
}

impl Sandbox {
    /// Whether this kernel has Landlock (its ABI version if so).
    pub fn available() -> Option<i64> {
        // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only returns
        // the ABI version (or an error); it reads no memory.
        let version = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                std::ptr::null::<RulesetAttr>(),
                0,
                1,
            )
        };
        (version > 0).then_some(version)
    }

    /// Rules for one compile: read the system dirs and `extra_read` (the compilers' install
    /// dirs), read and write `job` (its root and temporary dir), write `/dev/null`.
    pub fn for_job(job: &Path, extra_read: &[PathBuf]) -> io::Result<Sandbox> {
        let attr = RulesetAttr {
            handled_access_fs: ALL,
        };
        // SAFETY: `attr` is a valid ruleset attribute of the size given.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                std::mem::size_of::<RulesetAttr>(),
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the syscall returned a new file descriptor that nothing else owns.
        let sandbox = Sandbox {
            ruleset: unsafe { OwnedFd::from_raw_fd(fd as i32) },
        };
        let system = SYSTEM_READ.iter().map(PathBuf::from);
        for path in system.chain(extra_read.iter().cloned()) {
            sandbox.allow(&path, READ)?;
        }
        sandbox.allow(Path::new("/dev/null"), READ_FILE | WRITE_FILE)?;
        sandbox.allow(job, ALL)?;
        Ok(sandbox)
    }

    /// Allows `access` beneath `path`; a path that does not exist is skipped. Files get only
    /// the rights that apply to files.
    fn allow(&self, path: &Path, access: u64) -> io::Result<()> {
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        let access = match meta.is_dir() {
            true => access,
            false => access & (EXECUTE | WRITE_FILE | READ_FILE),
        };
        let name = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `name` is a NUL-terminated path.
        let fd = unsafe { libc::open(name.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: open returned a new descriptor that nothing else owns.
        let parent = unsafe { OwnedFd::from_raw_fd(fd) };
        let rule = PathBeneathAttr {
            allowed_access: access,
            parent_fd: parent.as_raw_fd(),
        };
        // SAFETY: the ruleset fd is ours and `rule` is a valid path-beneath attribute.
        let done = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.ruleset.as_raw_fd(),
                RULE_PATH_BENEATH,
                &rule as *const PathBeneathAttr,
                0,
            )
        };
        match done {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// The rule set's descriptor, for [`confine`] in a child; valid while `self` lives.
    pub fn fd(&self) -> i32 {
        self.ruleset.as_raw_fd()
    }
}

/// Restricts the calling process to the rule set `fd`; for `pre_exec`, in the forked child
/// before it becomes the compiler: two syscalls, nothing allocated.
pub fn confine(fd: i32) -> io::Result<()> {
    // SAFETY: prctl and landlock_restrict_self take plain integers; both are async-signal-safe
    // system calls.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::syscall(libc::SYS_landlock_restrict_self, fd, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs `cat path` confined to a job dir; whether it could read it.
    fn can_read(job: &Path, path: &Path) -> bool {
        use std::os::unix::process::CommandExt;
        let sandbox = Sandbox::for_job(job, &[]).unwrap();
        let fd = sandbox.fd();
        let mut cat = Command::new("/bin/cat");
        cat.arg(path).stdout(std::process::Stdio::null());
        // SAFETY: `confine` makes two syscalls and allocates nothing.
        unsafe { cat.pre_exec(move || confine(fd)) };
        cat.status().unwrap().success()
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
    }
}
