//! SSH hosts (`@HOST[:PORT]`, `USER@HOST[:PORT]`): compiles go through the user's own `ssh` (its
//! config, agent, keys and known hosts apply) to a homccd that may listen on the server's
//! loopback only. One master connection per host (`ControlMaster`, kept `ssh_control_persist`
//! seconds after its last use) forwards a unix socket in homcc's state dir (the user's own, mode
//! 0700; the socket 0600) to `127.0.0.1:PORT` on the server (`-L SOCKET:127.0.0.1:PORT`, as the
//! Python homcc forwards a port, but no other local user can connect to it). Each compile is one
//! connection to that socket: no ssh process and no handshake per compile, one SSH channel. The
//! first homcc process that finds no forward sets it up (starts the master, `ssh -M -N -f`, or
//! adds the forward to it, `ssh -O forward`) holding a lock; the others wait for the lock and
//! then connect. `BatchMode=yes`: ssh never prompts inside a build; a key it would ask for fails
//! instead.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{net::UnixStream, process::Command};

use crate::hosts::{Host, Transport};

/// What the `ssh_*` settings say, and where the control sockets go.
#[derive(Debug, Clone)]
pub struct SshSettings {
    /// `ssh_executable`.
    pub executable: String,
    /// `ssh_control_persist`: seconds a master stays after its last stream.
    pub control_persist: u64,
    /// `ssh_options`, before the host.
    pub options: Vec<String>,
    /// homcc's state dir (`None`: no master connection is shared; each compile connects).
    pub dir: Option<PathBuf>,
}

/// Why an SSH host could not be reached: one line with ssh's own first error line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    #[error("ssh failed: {0}")]
    Failed(String),
    #[error("cannot run {executable}: {error} (ssh_executable)")]
    Spawn { executable: String, error: String },
    #[error("timed out: establish_connection_timeout expired while starting the SSH connection")]
    TimedOut,
}

/// The SSH side of one host.
#[derive(Debug)]
pub struct Ssh<'a> {
    settings: &'a SshSettings,
    host: &'a Host,
}

impl<'a> Ssh<'a> {
    /// `host`'s SSH side; `None` for a host that is not reached through SSH.
    pub fn of(settings: &'a SshSettings, host: &'a Host) -> Option<Ssh<'a>> {
        matches!(host.transport, Transport::Ssh { .. }).then_some(Ssh { settings, host })
    }

    /// `user@name` or `name`, as ssh takes it.
    fn destination(&self) -> String {
        match &self.host.transport {
            Transport::Ssh { user: Some(user) } => format!("{user}@{}", self.host.name),
            _ => self.host.name.clone(),
        }
    }

    /// The master's control socket: short (a socket path has at most 107 bytes), one per user,
    /// host and ssh settings.
    fn control_path(&self) -> Option<PathBuf> {
        let mut key = blake3::Hasher::new();
        key.update(self.destination().as_bytes());
        key.update(self.settings.executable.as_bytes());
        for option in &self.settings.options {
            key.update(b"\0");
            key.update(option.as_bytes());
        }
        let name = &key.finalize().to_hex()[..16];
        Some(self.settings.dir.as_ref()?.join(format!("ssh-{name}")))
    }

    /// `ssh` with homcc's options (first: ssh takes the first value of an option), the user's
    /// `ssh_options`, and then `args` and the destination.
    fn command(&self, master: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.settings.executable);
        cmd.args([
            "-o",
            "BatchMode=yes",
            "-o",
            &format!("ControlMaster={master}"),
        ]);
        match self.control_path() {
            Some(path) => {
                let persist = self.settings.control_persist;
                cmd.arg("-o").arg(format!("ControlPersist={persist}"));
                cmd.arg("-o").arg(format!("ControlPath={}", path.display()));
            }
            None => {
                cmd.args(["-o", "ControlPath=none"]);
            }
        }
        cmd.args(&self.settings.options).args(args).arg("--");
        cmd.arg(self.destination());
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }

    /// Whether a master connection runs: its control socket takes a connection (a master that
    /// died leaves its socket, refusing).
    pub fn master_is_up(&self) -> bool {
        let Some(path) = self.control_path() else {
            return false;
        };
        std::os::unix::net::UnixStream::connect(path).is_ok()
    }

    /// The unix socket the master forwards to homccd on the server.
    fn forward_path(&self) -> Option<PathBuf> {
        let control = self.control_path()?;
        Some(control.with_extension(self.host.port.to_string()))
    }

    /// A connection to homccd through the master connection, set up first (within `timeout`)
    /// unless another process does it (this one then waits for it).
    pub async fn connect(&self, timeout: Duration) -> Result<UnixStream, SshError> {
        let (Some(control), Some(forward)) = (self.control_path(), self.forward_path()) else {
            return Err(SshError::Failed(
                "homcc has no state dir for the SSH connection's sockets ($XDG_RUNTIME_DIR or the cache dir)".into(),
            ));
        };
        if let Ok(stream) = UnixStream::connect(&forward).await {
            return Ok(stream);
        }
        let deadline = Instant::now() + timeout;
        let lock = std::fs::File::create(control.with_extension("lock"))
            .map_err(|e| SshError::Failed(format!("cannot lock {}: {e}", control.display())))?;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(std::fs::TryLockError::WouldBlock) => return Err(SshError::TimedOut),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(SshError::Failed(format!(
                        "cannot lock {}: {e}",
                        control.display()
                    )))
                }
            }
        }
        // Another process may have set it up while this one waited.
        if let Ok(stream) = UnixStream::connect(&forward).await {
            return Ok(stream);
        }
        // What a master that died left behind refuses connections and keeps ssh from binding.
        let _ = std::fs::remove_file(&forward);
        let target = format!("{}:127.0.0.1:{}", forward.display(), self.host.port);
        let run = match self.master_is_up() {
            true => self.command("no", &["-O", "forward", "-L", &target]),
            false => {
                let _ = std::fs::remove_file(&control);
                self.command("yes", &["-N", "-f", "-L", &target])
            }
        };
        self.run_until(run, &control.with_extension("log"), deadline)
            .await?;
        UnixStream::connect(&forward)
            .await
            .map_err(|e| SshError::Failed(format!("cannot connect to {}: {e}", forward.display())))
    }

    /// Runs `cmd` to its end (at most until `deadline`), its stderr in `log` (a master keeps the
    /// stderr it inherits: a pipe would never close); its first line when it fails.
    async fn run_until(
        &self,
        mut cmd: Command,
        log: &Path,
        deadline: Instant,
    ) -> Result<(), SshError> {
        let log_file = std::fs::File::create(log)
            .map_err(|e| SshError::Failed(format!("cannot write {}: {e}", log.display())))?;
        cmd.stdout(Stdio::null()).stderr(log_file);
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(e))?;
        let left = deadline.saturating_duration_since(Instant::now());
        let status = match tokio::time::timeout(left, child.wait()).await {
            Ok(status) => status.map_err(|e| SshError::Failed(e.to_string()))?,
            Err(_) => return Err(SshError::TimedOut),
        };
        match status.success() {
            true => Ok(()),
            false => Err(SshError::Failed(first_line(
                &std::fs::read(log).unwrap_or_default(),
            ))),
        }
    }

    fn spawn_error(&self, error: std::io::Error) -> SshError {
        SshError::Spawn {
            executable: self.settings.executable.clone(),
            error: error.to_string(),
        }
    }
}

/// The first line ssh wrote that says something (not its warnings about adding host keys).
fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = (text.lines().map(str::trim))
        .find(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .unwrap_or("no message");
    homcc_proto::text::shown(line, 300)
}

/// The state dir's place for control sockets, made private.
pub fn prepare_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
