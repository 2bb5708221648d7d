//! Runs the compiler in a job root: its own process group, a clean environment, confined to its
//! job's files and the system's (`sandbox`), stdout and stderr
//! collected up to a bound, killed (the whole group) when it runs too long, writes too much, or
//! the caller gives up on it.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Stdio,
    sync::OnceLock,
    time::Duration,
};

use homcc_proto::FORWARDED_ENV;

use crate::{
    environments::{clear_started, done_marker, first_line, Compile, Runner, Stamp},
    sandbox::{self, Sandbox},
};

/// What the compiler did.
#[derive(Debug)]
pub struct Finished {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Finished {
    /// Whether the compiler failed for want of disk space on the filesystem of `job` (its job
    /// root and temporary files): it says so in the C library's words for `ENOSPC` or `EDQUOT`,
    /// or (in a language of the client's locale) that filesystem is nearly full. Either way the
    /// client compiles locally, where a real error in the source shows again.
    pub fn ran_out_of_disk(&self, job: &Path) -> bool {
        let says_so = || {
            [nix::errno::Errno::ENOSPC, nix::errno::Errno::EDQUOT]
                .iter()
                .any(|e| crate::jobroot::find(&self.stderr, e.desc().as_bytes()).is_some())
        };
        let nearly_full =
            || crate::cache::space(job).is_some_and(|(free, size)| nearly_full(free, size));
        self.exit_code != 0 && (says_so() || nearly_full())
    }
}

/// Whether a filesystem of `size` bytes with `free` left is nearly full: less than 64 MiB, or
/// than a sixteenth of a small one, is left.
fn nearly_full(free: u64, size: u64) -> bool {
    free < (64 << 20).min(size / 16)
}

/// Why a compile produced no verdict.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("cannot start {compiler}: {source}")]
    Spawn {
        compiler: PathBuf,
        source: std::io::Error,
    },
    #[error("compile exceeded the server's time limit of {} s and was killed", .0.as_secs())]
    TimedOut(Duration),
    #[error("waiting for the compiler failed: {0}")]
    Wait(std::io::Error),
    #[error(
        "the compiler wrote more than {max} bytes to {stream} and was killed (max_compiler_output)"
    )]
    OutputTooLarge { stream: &'static str, max: usize },
    #[error("the compiler ran out of the {0} bytes of memory a compile may take here (max_compiler_memory)")]
    OutOfMemory(u64),
    #[error("{environment} could not start the compile: {why}")]
    Environment {
        environment: homcc_proto::Environment,
        why: String,
    },
}

/// What gcc (`xmalloc`) and clang (LLVM) say when an allocation fails.
const OUT_OF_MEMORY: &[&str] = &[
    "virtual memory exhausted",
    "out of memory allocating",
    "LLVM ERROR: out of memory",
    "std::bad_alloc",
];

/// What one compile may take.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Its running time.
    pub time: Duration,
    /// The bytes it writes to stdout, and to stderr.
    pub output: usize,
    /// The address space (`RLIMIT_AS`) of each of its processes; 0: unbounded.
    pub memory: u64,
}

/// One compiler invocation.
#[derive(Debug)]
pub struct Invocation<'a> {
    pub compiler: &'a Path,
    pub args: Vec<OsString>,
    /// `R/<client cwd>`.
    pub cwd: PathBuf,
    /// A directory inside the root for the compiler's temporary files.
    pub tmp: PathBuf,
    /// The client's variables; only names in `FORWARDED_ENV` are used.
    pub env: &'a [(String, String)],
    /// The file system the compiler may see, when the kernel can confine it (on the server
    /// itself, not inside an environment).
    pub sandbox: Option<Sandbox>,
    /// The environment it runs in; `None`: the server itself.
    pub inside: Option<Inside<'a>>,
}

/// A compile inside an environment.
#[derive(Debug)]
pub struct Inside<'a> {
    pub runner: &'a Runner,
    /// Where the compile writes its process id when it starts (outside the root, in the job).
    pub started: PathBuf,
    /// What the compiler was when homccd probed it: a changed one does not run.
    pub stamp: Option<&'a Stamp>,
}

/// Runs the compile to its end or to its time bound, keeping at most `bounds.output` bytes of its
/// stdout and of its stderr (both drained while it runs, so it never blocks on a full pipe; more
/// is an error), each of its processes limited to `bounds.memory` (a compile that fails for
/// it is an error, not a verdict). Dropping the returned future kills the compiler's whole
/// process group (the driver and `cc1`, `as`, ...).
pub async fn run(inv: Invocation<'_>, bounds: Bounds) -> Result<Finished, CompileError> {
    let (limit, max_output) = (bounds.time, bounds.output);
    let spawn_error = |source| CompileError::Spawn {
        compiler: inv.compiler.to_owned(),
        source,
    };
    let mut env: Vec<(OsString, OsString)> = vec![("TMPDIR".into(), inv.tmp.clone().into())];
    env.extend(
        (inv.env.iter())
            .filter(|(k, _)| FORWARDED_ENV.contains(&k.as_str()))
            .map(|(k, v)| (k.into(), v.into())),
    );
    let (mut child, inside) = match &inv.inside {
        None => {
            let mut cmd = limited(inv.compiler, bounds.memory, prlimit());
            cmd.args(&inv.args)
                .current_dir(&inv.cwd)
                .env_clear()
                .env(
                    "PATH",
                    std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
                )
                .envs(env);
            let sandbox = inv.sandbox;
            (confined(cmd, sandbox).await.map_err(spawn_error)?, None)
        }
        Some(inside) => {
            clear_started(&inside.started).map_err(spawn_error)?;
            let mut cmd = inside.runner.compile(Compile {
                compiler: inv.compiler,
                args: &inv.args,
                cwd: &inv.cwd,
                env: &env,
                started: &inside.started,
                memory: bounds.memory,
                stamp: inside.stamp,
            });
            // The launcher (docker, schroot) keeps homccd's rights: schroot needs them to enter.
            let child = piped(&mut cmd).spawn().map_err(spawn_error)?;
            (child, Some(InsideKill(Some(inside))))
        }
    };
    let group = GroupKill(child.id());
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let work = async {
        tokio::try_join!(
            read_capped(stdout, "stdout", max_output),
            read_capped(stderr, "stderr", max_output),
            async { child.wait().await.map_err(CompileError::Wait) },
        )
    };
    let (stdout, stderr, status) = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| CompileError::TimedOut(limit))??;
    group.disarm();
    let exit_code = match inside.and_then(InsideKill::disarm) {
        Some(inside) => inside_verdict(inside, status, &stderr)?,
        None => homcc_proto::sys::exit_code(status),
    };
    let said = |marker: &str| stderr.windows(marker.len()).any(|w| w == marker.as_bytes());
    if bounds.memory > 0 && exit_code != 0 && OUT_OF_MEMORY.iter().any(|m| said(m)) {
        return Err(CompileError::OutOfMemory(bounds.memory));
    }
    Ok(Finished {
        exit_code,
        stdout,
        stderr,
    })
}

/// The exit code of the compiler that ran `inside`, as its wrapper wrote it; the environment's
/// failure when it wrote none (it stopped before the compiler, or its launcher ended first).
fn inside_verdict(
    inside: &Inside<'_>,
    launcher: std::process::ExitStatus,
    stderr: &[u8],
) -> Result<i32, CompileError> {
    let failed = |why| CompileError::Environment {
        environment: inside.runner.environment.clone(),
        why,
    };
    if !inside.started.exists() {
        return Err(failed(first_line(stderr)));
    }
    let done = std::fs::read_to_string(done_marker(&inside.started)).unwrap_or_default();
    done.trim().parse().map_err(|_| {
        failed(format!(
            "the compile ended without its exit status (launcher {launcher}): {}",
            first_line(stderr)
        ))
    })
}

/// `cmd` with no stdin, its stdout and stderr piped, in a process group of its own, killed when
/// dropped.
fn piped(cmd: &mut tokio::process::Command) -> &mut tokio::process::Command {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
}

/// Starts `cmd` from a thread that has given up its capabilities (and, with a sandbox, confined
/// itself): the compiler can write no file its mode forbids, also as root.
async fn confined(
    mut cmd: tokio::process::Command,
    sandbox: Option<Sandbox>,
) -> std::io::Result<tokio::process::Child> {
    piped(&mut cmd);
    let runtime = tokio::runtime::Handle::current();
    let start = move || {
        let _in_runtime = runtime.enter();
        cmd.spawn()
    };
    tokio::task::spawn_blocking(move || sandbox::run_confined(sandbox, start))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// The command that starts `compiler` with an address space (`RLIMIT_AS`) of `memory` bytes
/// (0: as homccd's). With `prlimit` (util-linux's, which sets the limit and then becomes the
/// compiler) homccd starts it by `posix_spawn` and never forks itself: a fork copies homccd's
/// page tables, which made each compile 30 ms slower while homccd held 500 MiB of clients'
/// frames. Without it, the limit is set in a forked child before it runs the compiler.
fn limited(compiler: &Path, memory: u64, prlimit: Option<&Path>) -> tokio::process::Command {
    match (memory, prlimit) {
        (0, _) => tokio::process::Command::new(compiler),
        (memory, Some(prlimit)) => {
            let mut cmd = tokio::process::Command::new(prlimit);
            cmd.arg(format!("--as={memory}")).arg("--").arg(compiler);
            cmd
        }
        (memory, None) => {
            let mut cmd = tokio::process::Command::new(compiler);
            let limit_memory = move || {
                use nix::sys::resource::{setrlimit, Resource};
                setrlimit(Resource::RLIMIT_AS, memory, memory).map_err(std::io::Error::from)
            };
            // SAFETY: runs in the forked child before exec; setrlimit(2) is async-signal-safe
            // and the closure allocates nothing.
            unsafe {
                cmd.pre_exec(limit_memory);
            }
            cmd
        }
    }
}

/// util-linux's `prlimit`, if this system has it (see [`limited`]).
fn prlimit() -> Option<&'static Path> {
    static PRLIMIT: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = || {
        ["/usr/bin/prlimit", "/bin/prlimit"]
            .into_iter()
            .map(PathBuf::from)
            .find(|path| path.is_file())
    };
    PRLIMIT.get_or_init(found).as_deref()
}

/// Everything `pipe` gives until it closes, or an error once it passes `max` bytes.
async fn read_capped(
    pipe: Option<impl tokio::io::AsyncRead + Unpin>,
    stream: &'static str,
    max: usize,
) -> Result<Vec<u8>, CompileError> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let Some(pipe) = pipe else {
        return Ok(out);
    };
    // One byte more than allowed tells "exactly max" from "too much".
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    pipe.take(limit)
        .read_to_end(&mut out)
        .await
        .map_err(CompileError::Wait)?;
    match out.len() > max {
        true => Err(CompileError::OutputTooLarge { stream, max }),
        false => Ok(out),
    }
}

/// Kills a compile inside its environment when dropped, unless disarmed.
struct InsideKill<'a, 'b>(Option<&'b Inside<'a>>);

impl<'a, 'b> InsideKill<'a, 'b> {
    fn disarm(mut self) -> Option<&'b Inside<'a>> {
        self.0.take()
    }
}

impl Drop for InsideKill<'_, '_> {
    fn drop(&mut self) {
        if let Some(inside) = self.0 {
            inside.runner.kill_inside(&inside.started);
        }
    }
}

/// Kills a process group when dropped, unless disarmed.
struct GroupKill(Option<u32>);

impl GroupKill {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) with a negative pid signals that process group; it has no memory effects.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed compile counts as one that ran out of disk when the job's filesystem is nearly
    /// full, whatever language the compiler said it in.
    #[test]
    fn nearly_full_is_64_mib_or_a_sixteenth_of_a_small_filesystem() {
        const MIB: u64 = 1 << 20;
        assert!(nearly_full(63 * MIB, 500_000 * MIB));
        assert!(!nearly_full(65 * MIB, 500_000 * MIB));
        assert!(nearly_full(MIB, 24 * MIB));
        assert!(!nearly_full(2 * MIB, 24 * MIB));
    }

    /// What `ulimit -v` (KiB) says in a shell started with `memory` bytes, through `prlimit`.
    async fn address_space(memory: u64, prlimit: Option<&Path>) -> String {
        let mut cmd = limited(Path::new("/bin/sh"), memory, prlimit);
        let out = cmd
            .args(["-c", "ulimit -v; ulimit -H -v"])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[tokio::test]
    async fn the_compiler_memory_bound_holds_with_and_without_prlimit() {
        let prlimit = prlimit().expect("util-linux's prlimit (Debian: essential)");
        for way in [Some(prlimit), None] {
            assert_eq!(
                address_space(1 << 30, way).await,
                "1048576\n1048576\n",
                "{way:?}"
            );
        }
        let own = address_space(0, None).await;
        assert!(!own.starts_with("1048576"), "{own}");
    }
}
