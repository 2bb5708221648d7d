//! How homccd runs a program inside one of its environments: `docker exec` into a running
//! container, or `schroot -r` into a session homccd began for a profile (its own, ended when
//! homccd stops). The program runs as homccd's user and group. A compile goes through [`WRAPPER`],
//! which checks that the compiler is still the one probed ([`Stamp`]), notes it started (so that
//! a launcher's failure is never taken for the compiler's verdict), bounds its memory, gives up
//! capabilities where it runs as root with them (schroot) and leaves a process id by which the
//! compile is killed inside when homccd gives up on it.

use std::{
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use homcc_proto::Environment;

/// The `PATH` of a program run in a schroot session (a docker container has its own).
const INSIDE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A shell function: `stamp PROGRAM...` prints device, inode, modification time and size of each
/// program (found as a command would be), on one line: what homccd notes of a compiler and its
/// assembler when it probes them, and compares before each compile.
const STAMP_FN: &str = r#"stamp() { for p do q=$(command -v "$p") && stat -L -c '%d:%i:%Y:%s' "$q" || return 1; done | tr '\n' ' '; }"#;

/// Runs a compile inside: `sh -c WRAPPER homccd DIR STARTED MEMORY DROP STAMP ASSEMBLER N
/// NAME=VALUE... COMPILER ARGS...`. It exports the `N` variables (passed here, not through the
/// launcher: setuid schroot drops `TMPDIR`), enters `DIR`, limits the address space to `MEMORY`
/// KiB (0: unbounded), checks that the compiler is there and, unless `STAMP` is empty, that the
/// compiler and `ASSEMBLER` are the files homccd probed; then, with `DROP` 1, has `setpriv` give
/// up every capability for the compiler, else checks that it has none. It writes its process id
/// to `STARTED`, runs the compiler (unless `STARTED.cancel` exists) and writes its exit status to
/// `STARTED.done`. Whatever ends without `STARTED.done` (a check that fails, with its reason on
/// stderr, or a launcher that dies: a container restarted) is the environment's failure, never
/// the compiler's verdict.
const WRAPPER: &str = r#"dir=$1 started=$2 memory=$3 drop=$4 stamp=$5 as=$6 vars=$7; shift 7
while [ "$vars" -gt 0 ]; do export "$1" || exit 125; shift; vars=$((vars - 1)); done
cd "$dir" || exit 125
[ "$memory" = 0 ] || ulimit -v "$memory" || exit 125
command -v "$1" >/dev/null || { echo "no $1 in this environment" >&2; exit 127; }
if [ -n "$stamp" ] && [ "$(stamp "$1" ${as:+"$as"})" != "$stamp" ]; then
  echo "its compiler $1 changed since homccd probed it" >&2; exit 124
fi
if [ "$drop" = 1 ]; then
  command -v setpriv >/dev/null || { echo "no setpriv (util-linux) in this environment" >&2; exit 127; }
  set -- setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all -- "$@"
else
  while read -r key value; do
    case "$key:$value" in CapEff::*[!0]*)
      echo "a compiler here would have capabilities (CapEff $value), and could write the cache's files: start the container with --cap-drop ALL, or run homccd as a user of its own" >&2
      exit 125;;
    esac
  done </proc/self/status
fi
echo $$ >"$started" || exit 125
[ ! -e "$started.cancel" ] || exit 125
"$@"
status=$?
echo "$status" >"$started.done" || exit 125
exit "$status""#;

/// The longest homccd waits for `docker exec` to kill a compile inside.
const KILL_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Kills, inside a container, the process group whose leader's id is `$1` (a compile: `docker
/// exec` makes each its own group). dash's `kill` takes no `--`.
const KILL_GROUP: &str = r#"kill -9 -"$1""#;

/// What homccd noted of a compiler inside an environment when it probed it ([`STAMP_FN`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The `stamp` line of the compiler and its assembler.
    pub line: String,
    /// gcc's assembler, as `-print-prog-name=as` named it (clang has none of its own).
    pub assembler: Option<String>,
}

/// How to run programs in one environment.
#[derive(Debug, Clone)]
pub struct Runner {
    pub environment: Environment,
    /// For a schroot profile: homccd's session of it.
    session: Option<Arc<Session>>,
    /// homccd's user and group, which the programs run as.
    user: (u32, u32),
    /// Whether the compiler gives up its capabilities with `setpriv` (schroot, homccd as root:
    /// it keeps root's otherwise).
    drop_capabilities: bool,
}

/// One compile for [`Runner::compile`].
#[derive(Debug)]
pub struct Compile<'a> {
    pub compiler: &'a Path,
    pub args: &'a [OsString],
    pub cwd: &'a Path,
    pub env: &'a [(OsString, OsString)],
    pub started: &'a Path,
    pub memory: u64,
    /// What the compiler was when probed; `None`: not checked.
    pub stamp: Option<&'a Stamp>,
}

/// Runners are the same when they run in the same environment.
impl PartialEq for Runner {
    fn eq(&self, other: &Runner) -> bool {
        self.environment == other.environment
    }
}

impl Eq for Runner {}

impl Runner {
    /// A runner for the container `name`.
    pub fn docker(name: &str) -> Runner {
        Runner {
            environment: Environment::Docker(name.to_owned()),
            session: None,
            user: own_user(),
            drop_capabilities: false,
        }
    }

    /// Begins a session of the schroot profile `profile`; the runner uses it until the last clone
    /// is dropped, which ends it.
    pub fn schroot(profile: &str) -> Result<Runner, String> {
        let session = Session::begin(profile)?;
        let user = own_user();
        Ok(Runner {
            environment: Environment::Schroot(profile.to_owned()),
            session: Some(Arc::new(session)),
            drop_capabilities: user.0 == 0,
            user,
        })
    }

    /// The command that runs `program args` inside, in `/`, with `LC_ALL=C`: for probes.
    pub fn command(&self, program: &OsStr, args: &[OsString]) -> Command {
        let mut cmd = self.launcher(&[("LC_ALL".into(), "C".into())]);
        cmd.arg(program).args(args).stdin(Stdio::null());
        cmd
    }

    /// The [`Stamp`] of `compiler` and `assembler` inside, now.
    pub fn stamp(&self, compiler: &Path, assembler: Option<&str>) -> Option<Stamp> {
        let script = format!("{STAMP_FN}\nstamp \"$@\"");
        let mut args: Vec<OsString> = vec!["-c".into(), script.into(), "homccd".into()];
        args.push(compiler.into());
        args.extend(assembler.map(OsString::from));
        let out = self.command("sh".as_ref(), &args).output().ok()?;
        let line = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !line.is_empty()).then(|| Stamp {
            line,
            assembler: assembler.map(str::to_owned),
        })
    }

    /// The command that runs the compiler inside through [`WRAPPER`]: in `cwd`, with `env` (the
    /// only variables besides the environment's `PATH`), its address space bounded by `memory`
    /// bytes (0: unbounded), refused if it is no longer what `stamp` says, its process id written
    /// to `started` and its exit status to [`done_marker`].
    pub fn compile(&self, compile: Compile<'_>) -> tokio::process::Command {
        let mut cmd = self.launcher(&[]);
        let (line, assembler) = match compile.stamp {
            Some(stamp) => (stamp.line.as_str(), stamp.assembler.as_deref()),
            None => ("", None),
        };
        let vars = compile.env.iter().map(|(name, value)| {
            let mut pair = name.clone();
            pair.push("=");
            pair.push(value);
            pair
        });
        cmd.args(["sh", "-c", &format!("{STAMP_FN}\n{WRAPPER}"), "homccd"])
            .arg(compile.cwd)
            .arg(compile.started)
            .arg((compile.memory / 1024).to_string())
            .arg(if self.drop_capabilities { "1" } else { "0" })
            .args([line, assembler.unwrap_or_default()])
            .arg(compile.env.len().to_string())
            .args(vars)
            .arg(compile.compiler)
            .args(compile.args);
        cmd.into()
    }

    /// Makes sure the compile that writes its process id to `started` does not run (on): it will
    /// not start, and is killed if it has. In a schroot session the compiler is in the launcher's
    /// process group, which the caller kills; in a container it is not, and is killed there, by
    /// a `docker exec` of its own that runs on (at most [`KILL_TIME`]) while the caller goes on.
    pub fn kill_inside(&self, started: &Path) {
        let cancel = cancel_marker(started);
        if let Err(e) = std::fs::write(&cancel, "") {
            tracing::warn!(file = %cancel.display(), error = %e, "cannot cancel a compile in an environment");
        }
        let (Environment::Docker(_), Ok(pid)) =
            (&self.environment, std::fs::read_to_string(started))
        else {
            return;
        };
        let mut kill = self.launcher(&[]);
        kill.args(["sh", "-c", KILL_GROUP, "homccd", pid.trim()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut kill = tokio::process::Command::from(kill);
        kill.kill_on_drop(true);
        let (environment, pid) = (self.environment.clone(), pid.trim().to_owned());
        let killed = async move {
            let status = tokio::time::timeout(KILL_TIME, kill.status()).await;
            if !matches!(status, Ok(Ok(s)) if s.success()) {
                tracing::warn!(%environment, pid, "cannot kill a compile inside");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(killed)),
            Err(_) => {
                tracing::warn!(environment = %self.environment, "no runtime to kill a compile inside")
            }
        }
    }

    /// Begins the schroot session again if it has ended (ended from outside: `schroot -e
    /// --all-sessions`); nothing for a container.
    pub fn recover(&self) {
        if let (Environment::Schroot(profile), Some(session)) = (&self.environment, &self.session) {
            session.begin_again(profile);
        }
    }

    /// `docker exec` or `schroot -r` up to the program, with `env` inside.
    fn launcher(&self, env: &[(OsString, OsString)]) -> Command {
        let (uid, gid) = self.user;
        match (&self.environment, &self.session) {
            (Environment::Schroot(_), Some(session)) => {
                let mut cmd = Command::new("schroot");
                cmd.args(["-r", "-p", "-d", "/", "-c", &session.name, "--"])
                    .env_clear()
                    .env("PATH", INSIDE_PATH)
                    .envs(env.iter().map(|(k, v)| (k, v)));
                cmd
            }
            (_, _) => {
                let mut cmd = Command::new("docker");
                cmd.args(["exec", "-u", &format!("{uid}:{gid}")]);
                for (name, value) in env {
                    let mut pair = name.clone();
                    pair.push("=");
                    pair.push(value);
                    cmd.arg("-e").arg(pair);
                }
                cmd.arg(self.environment.name());
                cmd
            }
        }
    }
}

/// `started` with `suffix` added to its name: a file beside it for the same compile.
fn beside(started: &Path, suffix: &str) -> PathBuf {
    let mut name = started.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Where the compile that writes its process id to `started` is told not to start.
fn cancel_marker(started: &Path) -> PathBuf {
    beside(started, ".cancel")
}

/// Where the compile that writes its process id to `started` writes its exit status.
pub fn done_marker(started: &Path) -> PathBuf {
    beside(started, ".done")
}

/// Removes what a compile before left of `started` and its markers.
pub fn clear_started(started: &Path) -> std::io::Result<()> {
    for file in [
        started.to_owned(),
        cancel_marker(started),
        done_marker(started),
    ] {
        match std::fs::remove_file(file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn own_user() -> (u32, u32) {
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

/// A schroot session homccd began (`schroot -b`); ended when dropped. Its name says which homccd
/// began it (`homccd-<pid>.<start time>-<n>-<profile>`), so that a homccd that starts ends those
/// of one that died.
#[derive(Debug)]
struct Session {
    name: String,
}

/// The sessions this process began so far, for unique names.
static SESSIONS: AtomicUsize = AtomicUsize::new(0);

/// The prefix of homccd's session names.
const SESSION_PREFIX: &str = "homccd-";

impl Session {
    fn begin(profile: &str) -> Result<Session, String> {
        end_orphans();
        let n = SESSIONS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let started = process_start(pid).unwrap_or_default();
        let session = Session {
            name: format!("{SESSION_PREFIX}{pid}.{started}-{n}-{profile}"),
        };
        session.run_begin(profile)?;
        Ok(session)
    }

    fn run_begin(&self, profile: &str) -> Result<(), String> {
        let out = Command::new("schroot")
            .args(["-b", "-c", profile, "-n", &self.name])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run schroot: {e}"))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(format!(
                "schroot -b -c {profile} failed: {}",
                first_line(&out.stderr)
            )),
        }
    }

    /// Begins the session again under its name, unless it is there.
    fn begin_again(&self, profile: &str) {
        let there = Command::new("schroot")
            .args(["-i", "-c", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !there {
            match self.run_begin(profile) {
                Ok(()) => tracing::info!(session = self.name, "began the schroot session again"),
                Err(e) => tracing::warn!(session = self.name, "{e}"),
            }
        }
    }
}

/// When process `pid` started, in clock ticks after boot (`/proc/PID/stat`): with the pid, it
/// names one process even after the pid is reused.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: the fields after it are plain.
    let after = stat.rsplit_once(')')?.1;
    after.split_whitespace().nth(19)?.parse().ok()
}

impl Drop for Session {
    fn drop(&mut self) {
        end_session(&self.name);
    }
}

fn end_session(name: &str) {
    let ended = Command::new("schroot")
        .args(["-e", "-c", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !ended.is_ok_and(|s| s.success()) {
        tracing::warn!(session = name, "cannot end the schroot session");
    }
}

/// Ends the sessions that a homccd which is no longer running began (a process of that id and
/// start time is gone).
fn end_orphans() {
    let Ok(out) = Command::new("schroot")
        .args(["-l", "--all-sessions"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return;
    };
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    for name in listed.lines().filter_map(|l| l.strip_prefix("session:")) {
        let began_by = (name.strip_prefix(SESSION_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|id| id.split_once('.'))
            .and_then(|(pid, started)| {
                Some((pid.parse::<u32>().ok()?, started.parse::<u64>().ok()?))
            });
        if let Some((pid, started)) = began_by {
            if process_start(pid) != Some(started) {
                tracing::info!(
                    session = name,
                    "ending the schroot session of a homccd that stopped"
                );
                end_session(name);
            }
        }
    }
}

/// The first line of a program's output, for a message.
pub fn first_line(bytes: &[u8]) -> String {
    homcc_proto::text::first_line(bytes, &[])
}
