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
    io::ErrorKind,
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
    /// homcc's state dir, where the master connections' sockets go ([`socket_dir`], made
    /// ready only when an SSH host is used); `None`: SSH hosts fail with a line saying so.
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
    /// The master's control socket ([`Ssh::control_path`]); `None`: no private place for it.
    control: Option<PathBuf>,
}

impl<'a> Ssh<'a> {
    /// `host`'s SSH side; `None` for a host that is not reached through SSH.
    pub fn of(settings: &'a SshSettings, host: &'a Host) -> Option<Ssh<'a>> {
        let Transport::Ssh { .. } = host.transport else {
            return None;
        };
        let mut ssh = Ssh {
            settings,
            host,
            control: None,
        };
        ssh.control = ssh.control_path();
        Some(ssh)
    }

    /// `user@name` or `name`, as ssh takes it.
    fn destination(&self) -> String {
        match &self.host.transport {
            Transport::Ssh { user: Some(user) } => format!("{user}@{}", self.host.name),
            _ => self.host.name.clone(),
        }
    }

    /// The master's control socket, one per destination (user and host) and ssh settings:
    /// hosts lines for other ports of the same host share it. Short: ssh binds it first under a
    /// name 17 bytes longer, and a socket path has at most 107 bytes.
    fn control_path(&self) -> Option<PathBuf> {
        let mut key = blake3::Hasher::new();
        key.update(self.destination().as_bytes());
        key.update(self.settings.executable.as_bytes());
        for option in &self.settings.options {
            key.update(b"\0");
            key.update(option.as_bytes());
        }
        let name = &key.finalize().to_hex()[..16];
        let dir = socket_dir(self.settings.dir.as_ref()?)?;
        Some(dir.join(format!("ssh-{name}")))
    }

    /// `ssh` with homcc's options (first: ssh takes the first value of an option), the user's
    /// `ssh_options`, defaults they may override (a master whose peer is gone ends within a
    /// minute), and then `args` and the destination.
    fn command(&self, control: &Path, master: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.settings.executable);
        let persist = self.settings.control_persist;
        // Quoted, and `%` doubled: ssh splits and expands an option's value.
        let path = control.display().to_string().replace('%', "%%");
        cmd.args([
            "-o",
            "BatchMode=yes",
            "-o",
            &format!("ControlMaster={master}"),
        ])
        .args(["-o", &format!("ControlPersist={persist}")])
        .args(["-o", &format!("ControlPath=\"{path}\"")])
        .args(["-o", "StreamLocalBindMask=0177"])
        .args(&self.settings.options)
        .args([
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=3",
        ])
        .args(args)
        .arg("--")
        .arg(self.destination());
        cmd.stdin(Stdio::null()).kill_on_drop(true);
        cmd
    }

    /// Whether a master connection runs: its control socket takes a connection (a master that
    /// died leaves its socket, refusing).
    pub fn master_is_up(&self) -> bool {
        (self.control.as_ref())
            .is_some_and(|path| std::os::unix::net::UnixStream::connect(path).is_ok())
    }

    /// A connection to homccd through the master connection, set up first (within `timeout`)
    /// unless another process does it (this one then waits for it, and takes its failure).
    pub async fn connect(&self, timeout: Duration) -> Result<UnixStream, SshError> {
        let Some(control) = &self.control else {
            return Err(SshError::Failed(
                "homcc has no private state dir for the SSH connection's sockets ($XDG_RUNTIME_DIR/homcc, or homcc's cache dir)".into(),
            ));
        };
        // The unix socket the master forwards to homccd on the server.
        let forward = control.with_extension(self.host.port.to_string());
        let deadline = Instant::now() + timeout;
        if let Some(stream) = connect_forward(&forward, deadline).await? {
            return Ok(stream);
        }
        let waiting_since = std::time::SystemTime::now();
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
        // Another process may have set it up while this one waited, or failed to: its failure
        // is this one's too (a wrong key is not tried once per waiting compile).
        if let Some(stream) = connect_forward(&forward, deadline).await? {
            return Ok(stream);
        }
        let failed = control.with_extension("failed");
        let recent = std::fs::metadata(&failed)
            .and_then(|m| m.modified())
            .is_ok_and(|when| when >= waiting_since);
        if recent {
            let said = std::fs::read_to_string(&failed).unwrap_or_default();
            return Err(SshError::Failed(said));
        }
        let set_up = self.set_up(control, &forward, deadline).await;
        match &set_up {
            Err(SshError::Failed(said)) => {
                let _ = std::fs::write(&failed, said);
            }
            _ => {
                let _ = std::fs::remove_file(&failed);
            }
        }
        set_up?;
        connect_forward(&forward, deadline)
            .await?
            .ok_or_else(|| SshError::Failed(format!("ssh made no socket {}", forward.display())))
    }

    /// Starts the master with the forward to homccd, or adds the forward to the running master
    /// (again: a forward whose socket was lost is cancelled first).
    async fn set_up(
        &self,
        control: &Path,
        forward: &Path,
        deadline: Instant,
    ) -> Result<(), SshError> {
        // What a master that died left behind refuses connections and keeps ssh from binding.
        let _ = std::fs::remove_file(forward);
        let target = format!("{}:127.0.0.1:{}", forward.display(), self.host.port);
        let log = control.with_extension("log");
        if !self.master_is_up() {
            let _ = std::fs::remove_file(control);
            let start = self.command(control, "yes", &["-N", "-f", "-L", &target]);
            return self.run_until(start, &log, deadline).await;
        }
        let cancel = self.command(control, "no", &["-O", "cancel", "-L", &target]);
        let _ = self.run_until(cancel, &log, deadline).await;
        let add = self.command(control, "no", &["-O", "forward", "-L", &target]);
        self.run_until(add, &log, deadline).await
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
    homcc_proto::text::first_line(bytes, &["Warning: Permanently added"])
}

/// A connection to the forward socket `path`: `None` when there is none to connect to (no
/// socket, or one that refuses: its master is gone); one whose queue is full is tried again
/// until `deadline`.
async fn connect_forward(path: &Path, deadline: Instant) -> Result<Option<UnixStream>, SshError> {
    loop {
        match UnixStream::connect(path).await {
            Ok(stream) => return Ok(Some(stream)),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
                return Ok(None)
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err(_) => return Err(SshError::TimedOut),
        }
    }
}

/// The longest state dir whose sockets fit a unix socket path (107 bytes, less ssh's 17-byte
/// suffix for a master's socket being set up, less `/ssh-` and 16 hex digits and `.PORT`).
const MAX_DIR_LEN: usize = 107 - 17 - 27;

/// Where the SSH sockets go: homcc's state dir `dir` if it is short enough, else
/// `/tmp/homcc-UID`; made the user's own and private (0700), or `None` if it cannot be.
pub fn socket_dir(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let uid = nix::unistd::geteuid().as_raw();
    let dir = match dir.as_os_str().len() <= MAX_DIR_LEN {
        true => dir.to_owned(),
        false => std::env::temp_dir().join(format!("homcc-{uid}")),
    };
    let made = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir);
    let meta = made.and_then(|()| std::fs::symlink_metadata(&dir)).ok()?;
    if !meta.is_dir() || meta.uid() != uid {
        return None;
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok()?;
    Some(dir)
}
