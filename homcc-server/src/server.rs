//! The listener: accepts connections (one task each), holds the state they share (cache, compile
//! slots and their queue, compilers, statistics) and shuts down gracefully, letting running
//! compiles finish.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use homcc_proto::{codec::FrameMemory, AuthToken, Refusal, RefusalReason};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    access::{AllowedNetworks, PerClient},
    cache::Cache,
    compilers::{AllowedCompilers, Compilers, DEFAULT_COMPILER_DIR},
    conn::Conn,
    environments::Environments,
    queue::Scheduler,
    results::Results,
    session,
    tree::Pool,
};

/// Everything homccd needs to run, resolved from flags and environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Concurrent compiles; more wait in the queue.
    pub limit: usize,
    /// Compiles admitted beyond `limit` to upload and wait for a slot; more are refused as busy.
    /// `None`: as many as `limit`.
    pub queue: Option<usize>,
    /// The longest a compile waits in the queue for a slot before it is refused as busy.
    pub queue_timeout: Duration,
    pub cache_dir: PathBuf,
    pub max_cache_bytes: u64,
    /// The largest frame accepted from a client (one request or one uploaded file).
    pub max_frame: usize,
    /// Bounds on what one compile may bring and produce.
    pub limits: Limits,
    /// A compile running longer is killed.
    pub compile_timeout: Duration,
    /// The most bytes a compile may write to stdout, and to stderr; more kills it.
    pub max_compiler_output: usize,
    /// The address space (`RLIMIT_AS`) of each compiler process, in bytes; 0: unbounded.
    pub max_compiler_memory: u64,
    /// Bytes per second an upload must average from `idle_timeout` (at most 10 s) after the
    /// server asked for files; a slower one is refused, so that it cannot hold its place for
    /// long. 0: any rate that keeps within `idle_timeout`.
    pub min_upload_rate: u64,
    /// The memory every client's frame being read (and every upload being unpacked) may take
    /// together; a frame that does not fit is refused as busy.
    pub max_frame_memory: usize,
    pub heartbeat_interval: Duration,
    /// The longest silence from a client (not a single byte) before its compile starts; a large
    /// upload on a thin link may take longer as long as bytes keep arriving.
    pub idle_timeout: Duration,
    /// How long running compiles may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// The schroot profiles and docker containers offered for compiles (checked at start).
    pub schroot_profiles: Vec<String>,
    pub docker_containers: Vec<String>,
    /// The compilers it may run. `None`: [`AllowedCompilers::load`] with no configured compiler
    /// and the default compiler directory, when the server starts.
    pub compilers: Option<AllowedCompilers>,
    /// The client networks served; other peers are closed at once.
    pub allow: AllowedNetworks,
    /// The most connections one client address holds at once (each compile is one); `None`:
    /// [`default_per_client`].
    pub max_connections_per_client: Option<usize>,
    /// The shared secret every client must prove it holds before its request is read (`auth`);
    /// `None`: no authentication.
    pub auth: Option<AuthToken>,
    /// Whether compiles the server has run are recorded and answered again (`results`).
    pub result_cache: bool,
    /// The share of result-cache hits compiled again and compared with their record.
    pub verify_results: f64,
}

/// Bounds on one compile; passing one refuses it with `RefusalReason::Limit` naming the bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Files in the manifest.
    pub manifest_entries: usize,
    /// The size of one file of the manifest.
    pub file_size: u64,
    /// The files the client must upload, together.
    pub upload_size: u64,
    /// One output file.
    pub output_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            manifest_entries: 200_000,
            file_size: 256 << 20,
            upload_size: 2 << 30,
            output_size: 512 << 20,
        }
    }
}

/// Every compile slot and queue place: one client alone may use the whole server (the queue
/// shares it fairly when others come), and no more connections than that.
pub fn default_per_client(limit: usize, queue: usize) -> usize {
    limit + queue
}

impl Settings {
    /// The defaults, with the given cache directory.
    pub fn new(cache_dir: PathBuf) -> Self {
        Settings {
            limit: default_limit(),
            queue: None,
            queue_timeout: Duration::from_secs(120),
            cache_dir,
            max_cache_bytes: 10 << 30,
            max_frame: homcc_proto::codec::DEFAULT_MAX_CLIENT_FRAME,
            limits: Limits::default(),
            compile_timeout: Duration::from_secs(300),
            max_compiler_output: 16 << 20,
            max_compiler_memory: 4 << 30,
            min_upload_rate: 16 << 10,
            max_frame_memory: 512 << 20,
            heartbeat_interval: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(60),
            compilers: None,
            schroot_profiles: Vec::new(),
            docker_containers: Vec::new(),
            allow: AllowedNetworks::default(),
            max_connections_per_client: None,
            auth: None,
            result_cache: true,
            verify_results: 0.0,
        }
    }
}

/// Number of CPUs + 2, as the Python homccd.
pub fn default_limit() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) + 2
}

/// What one connection did, kept for `Stats` (and the tests that read it).
#[derive(Debug, Clone, Default)]
pub struct Record {
    pub peer: Option<SocketAddr>,
    pub compiler: String,
    /// The compile's first output (its object file).
    pub output: String,
    /// The compression the client asked for (its uploads', and the outputs' returned).
    pub compression: String,
    /// Where the compiler ran: `server`, or the environment (`docker container 'box'`).
    pub environment: String,
    pub outcome: String,
    pub files: usize,
    pub chunks_in: usize,
    pub blobs_in: usize,
    /// Bytes read from the client, framing included.
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// How long the compiler ran.
    pub compile_ms: u64,
    /// How long the compile waited in the queue for a slot.
    pub queued_ms: u64,
    /// When it took its compile slot.
    pub started: Option<std::time::Instant>,
    /// Where the session's time went, phase by phase (homccd logs it at debug).
    pub phases: Vec<(&'static str, std::time::Duration)>,
    /// When the phase under way began.
    pub phase_began: Option<std::time::Instant>,
    /// How long it waited for uploads (its client's, or another client's of the same file).
    pub upload_wait: std::time::Duration,
    /// Answered from the result cache.
    pub cached: bool,
    /// A hit compiled again (`verify_results`): whether the result had its record's bytes.
    pub verified: Option<bool>,
}

impl Record {
    /// Ends phase `name`; the next begins now.
    pub fn phase(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        let began = self.phase_began.replace(now).unwrap_or(now);
        self.phases.push((name, now - began));
    }

    /// The phases as `name=1.23ms` words.
    pub fn shown_phases(&self) -> String {
        let words: Vec<String> = (self.phases.iter())
            .map(|(name, took)| format!("{name}={:.2}ms", took.as_secs_f64() * 1000.0))
            .collect();
        words.join(" ")
    }
}

/// What the server did and does: its finished connections, and (from its scheduler) the
/// compiles running now.
#[derive(Debug)]
pub struct Stats {
    records: Mutex<Vec<Record>>,
    scheduler: Arc<Scheduler>,
}

impl Stats {
    /// How many sessions hold a compile slot now.
    pub fn running(&self) -> usize {
        self.scheduler.running()
    }

    /// The most sessions that held a compile slot at the same moment.
    pub fn peak_running(&self) -> usize {
        self.scheduler.peak_running()
    }

    /// Every finished connection, oldest first.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }

    pub(crate) fn record(&self, record: Record) {
        let mut records = self.records.lock().unwrap();
        if records.len() >= 10_000 {
            records.remove(0);
        }
        records.push(record);
    }
}

/// State shared by every session.
#[derive(Debug)]
pub struct State {
    pub config: Settings,
    pub cache: Cache,
    pub compilers: Compilers,
    /// The schroot profiles and docker containers compiles may also run in.
    pub environments: Environments,
    /// Admission, compile slots and the fair queue.
    pub scheduler: Arc<Scheduler>,
    pub jobs_dir: PathBuf,
    pub stats: Arc<Stats>,
    pub shutdown: CancellationToken,
    /// Whether compilers run confined by Landlock (`sandbox`): the kernel has it and the
    /// configuration does not turn it off.
    pub sandbox: bool,
    /// Connections per client address, and the most one may hold.
    pub per_client: Arc<PerClient>,
    pub max_per_client: usize,
    /// What all clients' frames being read, and uploads being unpacked, may take together.
    pub frame_memory: Arc<FrameMemory>,
    /// The roots of finished compiles, each kept for its client's next compile.
    pub roots: Pool,
    /// Compiles run before, answered again; `None`: off (`no_result_cache`).
    pub results: Option<Arc<Results>>,
}

/// A bound homccd, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
}

impl Server {
    /// Opens the cache and binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr, config: Settings) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        Server::with_listener(listener, config).await
    }

    /// Uses an already bound listener.
    pub async fn with_listener(listener: TcpListener, config: Settings) -> anyhow::Result<Server> {
        let cache = Cache::open(&config.cache_dir, config.max_cache_bytes)
            .with_context(|| format!("cannot open the cache in {}", config.cache_dir.display()))?;
        let jobs_dir = config.cache_dir.join("jobs");
        empty_jobs_dir(&jobs_dir)
            .with_context(|| format!("cannot empty the old job roots in {}", jobs_dir.display()))?;
        // Clients' sources live here: readable by homccd's user only.
        for dir in [&config.cache_dir, &jobs_dir] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot make {} private", dir.display()))?;
        }
        tracing::info!(blobs = cache.len(), bytes = cache.total_bytes(), dir = %config.cache_dir.display(), "cache opened");
        let compilers = match &config.compilers {
            Some(allowed) => allowed.clone(),
            None => AllowedCompilers::load(&[], DEFAULT_COMPILER_DIR.as_ref())?,
        };
        tracing::info!(networks = %config.allow, "serving clients from");
        if config.auth.is_some() {
            tracing::info!("clients must authenticate with the token of auth_token_file");
        }
        let queue = config.queue.unwrap_or(config.limit);
        let max_per_client = (config.max_connections_per_client)
            .unwrap_or_else(|| default_per_client(config.limit, queue))
            .max(1);
        tracing::info!(limit = config.limit, queue, max_per_client, "compile slots");
        let sandbox = match crate::sandbox::Sandbox::available() {
            Some(abi) => {
                tracing::info!(
                    landlock_abi = abi as i32,
                    "compilers see only their job and the system's files"
                );
                true
            }
            None => {
                tracing::warn!("this kernel has no Landlock: compilers can read any file homccd's user can (see docs/security.md)");
                false
            }
        };
        let environments = Environments::offer(
            &config.schroot_profiles,
            &config.docker_containers,
            &jobs_dir,
        )
        .await;
        let results = match config.result_cache {
            true => Some(Results::open(
                &config.cache_dir,
                cache.clone(),
                config.verify_results,
            )?),
            false => None,
        };
        let scheduler = Scheduler::new(config.limit, queue);
        let state = State {
            results,
            frame_memory: FrameMemory::new(config.max_frame_memory),
            roots: Pool::new(config.limit + queue),
            sandbox,
            per_client: Arc::default(),
            max_per_client,
            stats: Arc::new(Stats {
                records: Mutex::default(),
                scheduler: scheduler.clone(),
            }),
            scheduler,
            config,
            cache,
            compilers: Compilers::new(compilers),
            environments,
            jobs_dir,
            shutdown: CancellationToken::new(),
        };
        Ok(Server {
            listener,
            state: Arc::new(state),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn stats(&self) -> Arc<Stats> {
        self.state.stats.clone()
    }

    /// Serves until `shutdown` is cancelled, then stops accepting and waits (at most the grace
    /// period) for running compiles. Needs a multi-threaded tokio runtime: sessions do their
    /// file work (hard links, copies, directories) in place on a worker that blocks for it.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tracker = TaskTracker::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        if !self.state.config.allow.allows(peer.ip()) {
                            tracing::warn!(%peer, "closed: not in the allowed networks (--allow)");
                            continue;
                        }
                        let _ = stream.set_nodelay(true);
                        // A client whose link went away mid-compile: what homccd sends (heartbeats,
                        // the result) stays unacknowledged, and the kernel ends the connection
                        // after the idle timeout, which stops the compile and frees its job.
                        let idle = self.state.config.idle_timeout;
                        let _ = socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(idle));
                        let state = self.state.clone();
                        match state.per_client.enter(peer.ip(), state.max_per_client) {
                            Some(held) => tracker.spawn(async move {
                                session::serve(stream, peer, state).await;
                                drop(held);
                            }),
                            None => {
                                let max = state.max_per_client;
                                tracing::warn!(%peer, max, "refused: too many connections from this address");
                                let conn = Conn::new(stream, 1 << 16, Duration::from_secs(1), Duration::MAX);
                                tracker.spawn(conn.refuse_at_once(Refusal {
                                    reason: RefusalReason::Busy,
                                    detail: format!("busy: this address already has {max} connections (max_connections_per_client)"),
                                }))
                            }
                        };
                    }
                    Err(e) => tracing::warn!(error = %e, "accept failed"),
                },
            }
        }
        drop(self.listener);
        self.state.shutdown.cancel();
        tracker.close();
        let running = tracker.len();
        if running > 0 {
            tracing::info!(running, "waiting for running compiles");
        }
        if tokio::time::timeout(self.state.config.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "running compiles did not finish within the grace period; stopping anyway"
            );
        }
        Ok(())
    }
}

/// Makes `jobs` an empty directory: the job roots of a last run are removed, the directory itself
/// kept, so that a bind mount of it (into a container or chroot that compiles) still shows it.
fn empty_jobs_dir(jobs: &std::path::Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(jobs) {
        Ok(meta) if meta.is_dir() => {
            for entry in std::fs::read_dir(jobs)? {
                let entry = entry?;
                match entry.file_type()?.is_dir() {
                    true => std::fs::remove_dir_all(entry.path())?,
                    false => std::fs::remove_file(entry.path())?,
                }
            }
            Ok(())
        }
        Ok(_) => {
            std::fs::remove_file(jobs)?;
            std::fs::create_dir(jobs)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(jobs),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn the_jobs_dir_is_emptied_in_place() {
        let cache = tempfile::tempdir().unwrap();
        let jobs = cache.path().join("jobs");
        empty_jobs_dir(&jobs).unwrap();
        let inode = std::fs::metadata(&jobs).unwrap().ino();
        std::fs::create_dir_all(jobs.join("old/root/usr")).unwrap();
        std::fs::write(jobs.join("old/root/usr/x.h"), "").unwrap();
        std::fs::write(jobs.join("stray"), "").unwrap();
        empty_jobs_dir(&jobs).unwrap();
        assert_eq!(std::fs::read_dir(&jobs).unwrap().count(), 0);
        assert_eq!(
            std::fs::metadata(&jobs).unwrap().ino(),
            inode,
            "the same directory"
        );
        std::fs::remove_dir(&jobs).unwrap();
        std::fs::write(&jobs, "a file where the directory was").unwrap();
        empty_jobs_dir(&jobs).unwrap();
        assert!(jobs.is_dir());
    }
}
