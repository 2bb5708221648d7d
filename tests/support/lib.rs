//! Test support: a real homccd (in-process on 127.0.0.1:0, or the `homccd` binary), the `homcc`
//! binary, plain compiler runs, and the comparison of a remote compile with a local one.

use std::{
    ffi::OsStr,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

pub mod disk;
pub mod netns;
pub mod raw;

use homcc_proto::identity::ASSEMBLER_NAME_ARG;
use homcc_server::{server::Record, Server, Settings, Stats};
use tokio_util::sync::CancellationToken;

/// A built binary of the workspace (`homcc`, `homccd`), next to the test executable's directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` before the tests",
        path.display()
    );
    path
}

/// Whether `program` can be run (clang may be missing on a bare machine).
pub fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `condition` every 10 ms until it holds; panics with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, condition: impl FnMut() -> bool) {
    assert!(
        wait_for_or(limit, condition),
        "timed out waiting for {what}"
    );
}

/// Polls `condition` every 10 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_for_or(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// homccd running in this process (the library's `Server::run`) on its own runtime thread.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    pub cache_dir: PathBuf,
    /// The cache's temporary directory, when the server owns it ([`TestServer::fresh`]).
    _owned_cache: Option<tempfile::TempDir>,
    /// Records already handed out by `last` or a comparison.
    observed: std::sync::atomic::AtomicUsize,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server on 127.0.0.1:0 with a cache in `cache_dir`, after `adjust` changes the
    /// default configuration.
    pub fn start(cache_dir: &Path, adjust: impl FnOnce(&mut Settings)) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind homccd");
        TestServer::start_on(listener, cache_dir, adjust)
    }

    /// As [`TestServer::start`], serving `listener` (e.g. one in a network namespace).
    pub fn start_on(
        listener: std::net::TcpListener,
        cache_dir: &Path,
        adjust: impl FnOnce(&mut Settings),
    ) -> TestServer {
        let mut config = Settings::new(cache_dir.to_owned());
        config.limit = 4;
        // Every test client is 127.0.0.1: only a test of the per-client limit sets one.
        config.max_connections_per_client = Some(usize::MAX);
        adjust(&mut config);
        let shutdown = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let token = shutdown.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                listener.set_nonblocking(true).unwrap();
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let server = Server::with_listener(listener, config)
                    .await
                    .expect("start homccd");
                tx.send((server.local_addr(), server.stats())).unwrap();
                server.run(token).await.unwrap();
            });
        });
        let (addr, stats) = rx.recv().expect("homccd started");
        TestServer {
            addr,
            stats,
            cache_dir: cache_dir.to_owned(),
            observed: Default::default(),
            _owned_cache: None,
            shutdown,
            thread: Some(thread),
        }
    }

    /// A server with a cache of its own in a temporary directory.
    pub fn fresh(adjust: impl FnOnce(&mut Settings)) -> TestServer {
        let cache = tempfile::tempdir().unwrap();
        let mut server = TestServer::start(cache.path(), adjust);
        server._owned_cache = Some(cache);
        server
    }

    /// `127.0.0.1:PORT`, for `--host`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn records(&self) -> Vec<Record> {
        self.stats.records()
    }

    /// The record of the next connection not handed out yet (by this or a comparison). homccd
    /// records a connection after its reply (the record counts the reply's bytes), so a client
    /// may finish first: this waits.
    pub fn next_record(&self) -> Record {
        let observed = self.observed.load(std::sync::atomic::Ordering::SeqCst);
        self.wait_for_records(observed + 1);
        let records = self.records();
        self.observed
            .store(records.len(), std::sync::atomic::Ordering::SeqCst);
        records.last().unwrap().clone()
    }

    /// The newest record already there (e.g. of a compile a comparison has waited for).
    pub fn latest(&self) -> Record {
        self.records()
            .pop()
            .expect("the server recorded a connection")
    }

    /// Waits (10 s at most) until the server has recorded `count` connections.
    pub fn wait_for_records(&self, count: usize) -> Vec<Record> {
        wait_for(
            &format!("{count} connections recorded by the server"),
            Duration::from_secs(10),
            || self.records().len() >= count,
        );
        self.records()
    }

    /// Stops the server and waits for it (running compiles finish first).
    pub fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The real `homccd` binary, started with `--port 0`; its address read from its stderr.
#[derive(Debug)]
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    /// What it logged before it listened (its start: compilers, environments, ...).
    pub logged: Vec<String>,
    /// What it logged since.
    pub log: Arc<std::sync::Mutex<Vec<String>>>,
    cache_dir: PathBuf,
    extra: Vec<String>,
}

impl Daemon {
    pub fn start(cache_dir: &Path, extra: &[&str]) -> Daemon {
        Daemon::start_as(None, cache_dir, extra)
    }

    /// As [`Daemon::start`], as user and group `user` when given (the caller must be root).
    pub fn start_as(user: Option<u32>, cache_dir: &Path, extra: &[&str]) -> Daemon {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        Daemon::spawn(user, cache_dir, 0, extra)
    }

    fn spawn(user: Option<u32>, cache_dir: &Path, port: u16, extra: Vec<String>) -> Daemon {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(bin("homccd"));
        if let Some(id) = user {
            command.uid(id).gid(id);
        }
        let mut child = command
            .args(["--no-config", "--listen", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--cache-dir")
            .arg(cache_dir)
            .args(&extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start homccd");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut logged = Vec::new();
        let addr = loop {
            let line = lines
                .next()
                .expect("homccd exited before listening")
                .unwrap();
            match line.strip_prefix("listening on ") {
                Some(addr) => break addr.parse().unwrap(),
                None => logged.push(line),
            }
        };
        // Keep draining its log so that it never blocks on a full pipe.
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = Arc::clone(&log);
        std::thread::spawn(move || {
            lines
                .map_while(Result::ok)
                .for_each(|l| kept.lock().unwrap().push(l))
        });
        Daemon {
            child,
            addr,
            logged,
            log,
            cache_dir: cache_dir.to_owned(),
            extra,
        }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Stops homccd with SIGTERM, which must end it with status 0 (after its running compiles),
    /// then starts it again on the same port, cache and arguments.
    pub fn restart(mut self) -> Daemon {
        self.terminate();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "homccd after SIGTERM: {status}");
        let extra = std::mem::take(&mut self.extra);
        Daemon::spawn(None, &self.cache_dir, self.addr.port(), extra)
    }

    /// How many compiles it has logged as done (a result sent, the compiler's or the result
    /// cache's).
    pub fn compiles_done(&self) -> usize {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|l| l.contains(" compile ") && l.contains("result=exit"))
            .count()
    }

    fn terminate(&self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }

    /// Stops homccd as a service manager does: SIGTERM (it ends its schroot sessions, after its
    /// running compiles), then SIGKILL if it is still there after 10 s. Dropping it kills it at
    /// once.
    pub fn stop(mut self) {
        self.terminate();
        wait_for_or(Duration::from_secs(10), || {
            self.child.try_wait().is_ok_and(|s| s.is_some())
        });
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A project directory with sources, and the client's own cache dir beside it.
#[derive(Debug)]
pub struct Project {
    pub dir: tempfile::TempDir,
    pub client_cache: tempfile::TempDir,
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Project {
    pub fn new() -> Project {
        Project {
            dir: tempfile::tempdir().unwrap(),
            client_cache: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `content` at `rel`, creating directories.
    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        self
    }

    /// `compiler args` run plainly in the project.
    pub fn local(&self, compiler: &str, args: &[&str]) -> Output {
        Command::new(compiler)
            .args(args)
            .current_dir(self.path())
            .output()
            .unwrap()
    }

    /// `compiler args` run plainly in `cwd` with `env`, which must succeed; the project file
    /// `output` it wrote, taken away.
    pub fn local_output(
        &self,
        cwd: &Path,
        env: &[(&str, &str)],
        compiler: &str,
        args: &[&str],
        output: &str,
    ) -> Vec<u8> {
        let out = Command::new(compiler)
            .args(args)
            .envs(env.iter().copied())
            .current_dir(cwd)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{compiler} {args:?}: {stderr}");
        self.take(&[output]).remove(0).expect(output)
    }

    /// `homcc [homcc_args] compiler args` in the project, with no setting from the environment:
    /// no `HOMCC_*` variable, a home without homcc files, and slot state of its own.
    pub fn homcc(&self, homcc_args: &[&str], compiler: &str, args: &[&str]) -> Output {
        self.homcc_command(homcc_args, compiler, args)
            .output()
            .unwrap()
    }

    pub fn homcc_command(&self, homcc_args: &[&str], compiler: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("homcc"));
        cmd.args(homcc_args)
            .arg(compiler)
            .args(args)
            .current_dir(self.path());
        isolate(&mut cmd, self.client_cache.path());
        cmd
    }

    /// Reads and removes the project files `outputs` (absent ones as `None`).
    pub fn take(&self, outputs: &[&str]) -> Vec<Option<Vec<u8>>> {
        outputs
            .iter()
            .map(|o| {
                let path = self.path().join(o);
                let bytes = std::fs::read(&path).ok();
                let _ = std::fs::remove_file(&path);
                bytes
            })
            .collect()
    }
}

/// What a compile did: exit code, stdout, stderr, output files.
#[derive(Debug, PartialEq, Eq)]
pub struct Observed {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub files: Vec<Option<Vec<u8>>>,
}

impl Observed {
    fn new(out: Output, files: Vec<Option<Vec<u8>>>) -> Self {
        Observed {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            files,
        }
    }
}

/// Runs `compiler args` locally and then through homcc against `server`, in the same directory,
/// and asserts that exit code, stdout, stderr and every file of `outputs` are identical and that
/// the server ran the compile. Returns what the local compile did.
pub fn assert_same_as_local(
    project: &Project,
    server: &TestServer,
    compiler: &str,
    args: &[&str],
    outputs: &[&str],
) -> Observed {
    assert_same_as_local_with(project, server, compiler, args, outputs, 1)
}

/// As [`assert_same_as_local`], for a command that is `remote_compiles` remote compiles (one per
/// source).
pub fn assert_same_as_local_with(
    project: &Project,
    server: &TestServer,
    compiler: &str,
    args: &[&str],
    outputs: &[&str],
    remote_compiles: usize,
) -> Observed {
    project.take(outputs);
    let local = Observed::new(project.local(compiler, args), project.take(outputs));
    let before = server.records().len();
    let remote = Observed::new(
        project.homcc(&["--host", &server.host()], compiler, args),
        project.take(outputs),
    );
    let expected = before + remote_compiles;
    wait_for_or(Duration::from_secs(10), || {
        server.records().len() >= expected
    });
    let records = server.records();
    assert_eq!(
        records.len(),
        expected,
        "{compiler} {args:?}: the server saw {} compiles, not {remote_compiles}; homcc's stderr: {}",
        records.len() - before,
        remote.stderr
    );
    server
        .observed
        .store(records.len(), std::sync::atomic::Ordering::SeqCst);
    for record in &records[before..] {
        assert!(
            record.outcome.starts_with("exit "),
            "{compiler} {args:?}: server: {}",
            record.outcome
        );
    }
    for (name, (l, r)) in outputs.iter().zip(local.files.iter().zip(&remote.files)) {
        assert!(
            l == r,
            "{compiler} {args:?}: {name} differs (local {:?} bytes, remote {:?} bytes)",
            l.as_ref().map(Vec::len),
            r.as_ref().map(Vec::len)
        );
    }
    assert_eq!(local, remote, "{compiler} {args:?}");
    local
}

/// Polls until a process of the compiler runs in a job root of `cache_dir` (its `tmp` dir has
/// files: cc1 writes its assembly there).
pub fn wait_for_running_compile(cache_dir: &Path) {
    wait_for(
        "a compiler running in a job root",
        Duration::from_secs(60),
        || job_tmp_files(cache_dir) > 0,
    );
}

/// Job roots currently in `cache_dir`.
pub fn job_roots(cache_dir: &Path) -> usize {
    std::fs::read_dir(cache_dir.join("jobs")).map_or(0, |d| d.count())
}

fn job_tmp_files(cache_dir: &Path) -> usize {
    let Ok(jobs) = std::fs::read_dir(cache_dir.join("jobs")) else {
        return 0;
    };
    jobs.flatten()
        .map(|j| std::fs::read_dir(j.path().join("tmp")).map_or(0, |d| d.count()))
        .sum()
}

/// Every regular file under `dir` (none if it does not exist).
fn files_below(dir: &Path) -> Vec<std::fs::DirEntry> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(t) if t.is_dir() => files.extend(files_below(&entry.path())),
            Ok(t) if t.is_file() => files.push(entry),
            _ => {}
        }
    }
    files
}

/// Total bytes of the files under `dir`.
pub fn disk_usage(dir: &Path) -> u64 {
    (files_below(dir).iter())
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

/// How many back-off records (`failed` files, see homcc-client's `slots.rs`) there are below
/// `dir`, a client's home or state dir.
pub fn back_off_files(dir: &Path) -> usize {
    (files_below(dir).iter())
        .filter(|e| e.file_name() == "failed")
        .count()
}

/// A C++ source that takes the compiler a few seconds at -O2 (for tests that need a compile to
/// be running): many distinct template instantiations.
pub fn slow_cxx_source(functions: usize) -> String {
    let mut s = String::from(
        "#include <map>\n#include <string>\n#include <vector>\n#include <algorithm>\n",
    );
    for i in 0..functions {
        s.push_str(&format!(
            "std::map<std::string, std::vector<int>> f{i}(int n) {{ std::map<std::string, std::vector<int>> m; \
             for (int k = 0; k < n; ++k) {{ auto& v = m[std::to_string(k * {i})]; v.push_back(k); std::sort(v.begin(), v.end()); }} return m; }}\n"
        ));
    }
    s
}

/// A C++ source whose compile runs about 40 s (32 constant evaluations of about 1.3 s each; gcc's
/// default `-fconstexpr-ops-limit` allows each), for a compile that must be killed, not finish.
pub fn stuck_cxx_source() -> String {
    spinning_cxx_source(32)
}

/// A C++ source whose compile spends about 1.3 s in each of `spins` constant evaluations.
pub fn spinning_cxx_source(spins: usize) -> String {
    let mut s = String::from(
        "constexpr long spin(long n) { long x = 0; for (long i = 0; i < n; ++i) for (long j = 0; j < 1000; ++j) x += i ^ j; return x; }\n",
    );
    for k in 0..spins {
        s.push_str(&format!("constexpr long spun{k} = spin({});\n", 1500 + k));
    }
    s
}

/// A C source of `bytes` size that LZO cannot shrink much (an array of pseudo-random numbers),
/// whose object is incompressible too.
pub fn incompressible_source(bytes: usize) -> String {
    let mut s = String::from("const unsigned data[] = {\n");
    let mut x: u32 = 2463534242;
    while s.len() < bytes {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        s.push_str(&format!("{x}u,"));
        if s.len() % 120 < 12 {
            s.push('\n');
        }
    }
    s.push_str("0};\nunsigned first(void) { return data[0]; }\n");
    s
}

/// Makes `cmd` (homcc, or a tool that runs it) see no homcc setting of the machine: no
/// `HOMCC_*` variable, `client_cache` as home and cache (so no hosts file or homcc.conf there),
/// and so slot and back-off state of its own.
pub fn isolate<'a>(cmd: &'a mut Command, client_cache: &Path) -> &'a mut Command {
    cmd.env("XDG_CACHE_HOME", client_cache)
        .env("HOME", client_cache)
        .env_remove("XDG_RUNTIME_DIR");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HOMCC") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Lines homcc itself wrote to stderr.
pub fn homcc_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("homcc:"))
        .map(str::to_owned)
        .collect()
}

/// `OsStr` helper for commands.
pub fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// Compiler wrappers first on homcc's `PATH` that log every run of `gcc`, `g++`, `clang` and
/// `clang++` before they become the real one: how many times homcc ran the compiler.
#[derive(Debug)]
pub struct Counting {
    bin: PathBuf,
    log: PathBuf,
}

impl Counting {
    pub fn new(at: &Path) -> Counting {
        let (bin, log) = (at.join("bin"), at.join("runs.log"));
        std::fs::create_dir_all(&bin).unwrap();
        for name in ["gcc", "g++", "clang", "clang++"] {
            let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
                .unwrap_or_else(|| panic!("no {name} on PATH"));
            let script = format!(
                "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
                log.display(),
                real.display()
            );
            let wrapper = bin.join(name);
            std::fs::write(&wrapper, script).unwrap();
            std::fs::set_permissions(
                &wrapper,
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
        }
        Counting { bin, log }
    }

    /// homcc's `PATH`: the wrappers, then the test's.
    pub fn path(&self) -> std::ffi::OsString {
        let rest = std::env::split_paths(&std::env::var_os("PATH").unwrap()).collect::<Vec<_>>();
        std::env::join_paths(std::iter::once(self.bin.clone()).chain(rest)).unwrap()
    }

    /// The runs logged, but the compiler's probes (on `/dev/null`, and for its assembler: run
    /// once per compiler binary, which the wrappers are).
    pub fn runs(&self) -> Vec<String> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let probe = |run: &str| run.contains("/dev/null") || run == ASSEMBLER_NAME_ARG;
        (log.lines())
            .filter(|run| !probe(run))
            .map(str::to_owned)
            .collect()
    }
}

/// Processes (pid and name) whose working directory is under `dir` (a compiler in a job root).
pub fn processes_in(dir: &Path) -> Vec<(u32, String)> {
    let dir = dir.canonicalize().unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
            let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            cwd.starts_with(&dir).then(|| (pid, name.trim().to_owned()))
        })
        .collect()
}

/// Polls until no process runs under `dir`; after `limit`, panics naming those that still do.
pub fn wait_for_no_process_in(dir: &Path, limit: Duration) {
    if !wait_for_or(limit, || processes_in(dir).is_empty()) {
        panic!(
            "after {limit:?}, still running in {}: {:?}",
            dir.display(),
            processes_in(dir)
        );
    }
}
