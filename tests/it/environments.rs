//! homccd's compile environments with the real tools: a Debian 12 root filesystem
//! (`tests/rootfs.sh`, built once and cached) as a docker container of each test's own and as
//! schroot profiles. In it homccd may run one compiler, `g++-boxed` (a link to g++, a name the
//! host lacks); the client has the same name, a link to its own g++ (the same Debian gcc), so a
//! compile that succeeds remotely ran inside the environment, and its outputs must be the local
//! compile's, byte for byte.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        OnceLock,
    },
    time::Duration,
};

use homcc_tests::{
    bin, homcc_lines, slow_cxx_source, stuck_cxx_source, wait_for, wait_for_running_compile,
    Daemon, Project, TestServer,
};

/// The docker image and the schroot profiles `tests/rootfs.sh` makes.
const IMAGE: &str = "homcc-test:bookworm-3";
const PROFILE: &str = "homcc-test-bookworm";
/// The same root filesystem, whose sessions do not see `/tmp` (where the tests' caches are).
const BLIND_PROFILE: &str = "homcc-test-bookworm-blind";
/// The compiler only the environments have.
const BOXED: &str = "g++-boxed";

/// A source with a header of the project and of the system, and a warning, so that stderr is
/// compared too.
const SOURCE: &str = "#include <vector>\n#include \"cfg.h\"\nint main() { int unused; std::vector<int> v(SIZE); return int(v.size()) - SIZE; }\n";
const ARGS: &[&str] = &["-O2", "-g", "-Wall", "-c", "a.cpp", "-o", "a.o"];

/// How long a killed compiler may take to be gone.
const GONE: Duration = Duration::from_secs(10);

/// Builds (once, cached between runs) the root filesystem, image and profiles.
fn rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs.sh");
        let out = Command::new("bash").arg(script).output().unwrap();
        assert!(
            out.status.success(),
            "tests/rootfs.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// A container of the test image, removed when dropped.
struct Container {
    name: String,
}

/// How a test's container departs from the `docker run` line of docs/configuration.md.
#[derive(Clone, Copy, PartialEq)]
enum Unlike {
    /// As documented.
    Nothing,
    /// Without `--cap-drop ALL`: a compiler there has capabilities.
    Capabilities,
    /// Without `--read-only`: its files can change.
    Writable,
}

impl Container {
    /// Started as docs/configuration.md says, with `jobs` bind-mounted at the same path (none:
    /// not mounted), but for `unlike`.
    fn start(jobs: Option<&Path>, unlike: Unlike) -> Container {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        rootfs();
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let name = format!("homcc-test-{}-{n}", std::process::id());
        let mut run = Command::new("docker");
        run.args(["run", "-d", "--name", &name, "--init", "--network", "none"]);
        if unlike != Unlike::Writable {
            run.arg("--read-only");
        }
        if unlike != Unlike::Capabilities {
            run.args(["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]);
        }
        if let Some(jobs) = jobs {
            std::fs::create_dir_all(jobs).unwrap();
            run.arg("-v").arg(format!("{0}:{0}", jobs.display()));
        }
        let out = run.args([IMAGE, "sleep", "infinity"]).output().unwrap();
        assert!(
            out.status.success(),
            "docker run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Container { name }
    }

    /// The commands of the processes running in it (`docker top`).
    fn processes(&self) -> String {
        let out = Command::new("docker")
            .args(["top", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn runs_a_compiler(&self) -> bool {
        let top = self.processes();
        top.contains("cc1plus") || top.contains(BOXED)
    }

    fn stop(&self) {
        let out = Command::new("docker")
            .args(["stop", "-t", "1", &self.name])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}

/// Processes whose working directory is below `dir` (a compiler in a job root of its cache),
/// wherever they run.
fn working_below(dir: &Path) -> usize {
    let procs = std::fs::read_dir("/proc").unwrap().flatten();
    procs
        .filter_map(|p| std::fs::read_link(p.path().join("cwd")).ok())
        // A chrooted process's directory shows with the chroot's path before it.
        .filter(|cwd| cwd.to_string_lossy().contains(&*dir.to_string_lossy()))
        .count()
}

/// The client's side: a project, and `PATH` with `g++-boxed` (a link to this machine's g++).
struct Client {
    project: Project,
    _bin: tempfile::TempDir,
    path: OsString,
}

impl Client {
    fn new() -> Client {
        let bin = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/usr/bin/g++", bin.path().join(BOXED)).unwrap();
        let mut path = bin.path().as_os_str().to_owned();
        path.push(":");
        path.push(std::env::var_os("PATH").unwrap());
        let project = Project::new();
        project
            .write("a.cpp", SOURCE)
            .write("cfg.h", "#define SIZE 3\n");
        Client {
            project,
            _bin: bin,
            path,
        }
    }

    fn local(&self, compiler: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new(compiler);
        cmd.args(args)
            .current_dir(self.project.path())
            .env("PATH", &self.path);
        cmd.output().unwrap()
    }

    fn homcc_command(
        &self,
        host: &str,
        env: &[(&str, &str)],
        flags: &[&str],
        compiler: &str,
        args: &[&str],
    ) -> Command {
        let mut homcc_args = vec!["--host", host];
        homcc_args.extend(flags);
        let mut cmd = self.project.homcc_command(&homcc_args, compiler, args);
        cmd.env("PATH", &self.path).envs(env.iter().copied());
        cmd
    }

    /// Writes `slow.cpp` (about 2 s of g++ -O2) and compiles it locally: the arguments, and the
    /// object.
    fn slow_local(&self) -> ([&'static str; 5], Vec<Option<Vec<u8>>>) {
        self.project.write("slow.cpp", &slow_cxx_source(120));
        let slow = ["-O2", "-c", "slow.cpp", "-o", "slow.o"];
        let local = self.local(BOXED, &slow);
        assert!(local.status.success());
        (slow, self.project.take(&["slow.o"]))
    }

    /// Compiles `ARGS` with `compiler` locally and through homcc; asserts the same exit code,
    /// stdout, stderr and object. Returns homcc's stderr.
    fn same_as_local(
        &self,
        host: &str,
        env: &[(&str, &str)],
        flags: &[&str],
        compiler: &str,
    ) -> String {
        let local = self.local(compiler, ARGS);
        let local_object = self.project.take(&["a.o"]);
        assert!(
            local.status.success(),
            "{}",
            String::from_utf8_lossy(&local.stderr)
        );
        let remote = (self
            .homcc_command(host, env, flags, compiler, ARGS)
            .output())
        .unwrap();
        let remote_object = self.project.take(&["a.o"]);
        let stderr = String::from_utf8_lossy(&remote.stderr).into_owned();
        assert_eq!(remote.status.code(), local.status.code(), "{stderr}");
        assert_eq!(remote.stdout, local.stdout);
        let compiler_stderr: Vec<_> = stderr
            .lines()
            .filter(|l| !l.starts_with("homcc:"))
            .collect();
        assert_eq!(
            compiler_stderr.join("\n"),
            String::from_utf8_lossy(&local.stderr).trim_end(),
            "{stderr}"
        );
        assert!(local_object[0].is_some());
        assert!(
            remote_object == local_object,
            "the objects differ; homcc: {stderr}"
        );
        stderr
    }
}

/// A server with a cache of its own, offering `containers` (started on its jobs directory by
/// `start`) and `profiles`, with `adjust` applied.
fn server(
    containers: impl FnOnce(&Path) -> Vec<Container>,
    profiles: &[&str],
    adjust: impl FnOnce(&mut homcc_server::server::Settings),
) -> (TestServer, Vec<Container>, tempfile::TempDir) {
    rootfs();
    let cache = tempfile::tempdir().unwrap();
    let containers = containers(&cache.path().join("jobs"));
    let names: Vec<_> = containers.iter().map(|c| c.name.clone()).collect();
    let profiles: Vec<_> = profiles.iter().map(|p| p.to_string()).collect();
    let server = TestServer::start(cache.path(), |s| {
        s.docker_containers = names;
        s.schroot_profiles = profiles;
        adjust(s);
    });
    (server, containers, cache)
}

/// A server offering one container, started as documented but for `unlike`.
fn one_container(unlike: Unlike) -> (TestServer, Vec<Container>, tempfile::TempDir) {
    server(
        |jobs| vec![Container::start(Some(jobs), unlike)],
        &[],
        |_| {},
    )
}

#[test]
fn a_compile_runs_in_the_environment_it_names_with_the_bytes_of_a_local_compile() {
    let (server, containers, _cache) = server(
        |jobs| vec![Container::start(Some(jobs), Unlike::Nothing)],
        &[PROFILE],
        |_| {},
    );
    let (host, box_name) = (server.host(), containers[0].name.clone());
    let client = Client::new();
    // The variable, for a container.
    let said = client.same_as_local(
        &host,
        &[("HOMCC_DOCKER_CONTAINER", &box_name)],
        &["--verbose"],
        BOXED,
    );
    let record = server.next_record();
    assert_eq!(record.environment, format!("docker container '{box_name}'"));
    assert!(record.outcome.starts_with("exit 0"), "{}", record.outcome);
    assert!(
        said.contains(&format!("(in docker container '{box_name}')")),
        "{said}"
    );
    // The flag, for a profile.
    let said = client.same_as_local(
        &host,
        &[],
        &["--verbose", "--schroot-profile", PROFILE],
        BOXED,
    );
    assert_eq!(
        server.next_record().environment,
        format!("schroot profile '{PROFILE}'")
    );
    assert!(
        said.contains(&format!("(in schroot profile '{PROFILE}')")),
        "{said}"
    );
    // The key of homcc.conf.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("homcc.conf"),
        format!("[homcc]\nschroot_profile = \"{PROFILE}\"\n"),
    )
    .unwrap();
    let conf_dir = dir.path().to_str().unwrap();
    client.same_as_local(&host, &[("HOMCC_DIR", conf_dir)], &[], BOXED);
    assert_eq!(
        server.next_record().environment,
        format!("schroot profile '{PROFILE}'")
    );
    assert_eq!(server.records().len(), 3);
}

#[test]
fn a_compile_naming_no_environment_runs_where_its_compiler_is() {
    let (server, containers, _cache) = one_container(Unlike::Nothing);
    let client = Client::new();
    let said = client.same_as_local(&server.host(), &[], &["--verbose"], BOXED);
    let environment = format!("docker container '{}'", containers[0].name);
    assert_eq!(server.next_record().environment, environment);
    assert!(said.contains(&format!("(in {environment})")), "{said}");
    // A compiler the server has itself runs there.
    client.same_as_local(&server.host(), &[], &[], "g++");
    assert_eq!(server.next_record().environment, "server");
}

#[test]
fn a_compiler_that_changes_inside_its_environment_is_probed_again() {
    let (server, containers, _cache) = one_container(Unlike::Writable);
    let (client, host) = (Client::new(), server.host());
    let environment = format!("docker container '{}'", containers[0].name);
    client.same_as_local(&host, &[], &[], BOXED);
    assert_eq!(server.next_record().environment, environment);
    // The package manager replaces the compiler (here: a new modification time).
    let touch = Command::new("docker")
        .args(["exec", "-u", "0", &containers[0].name])
        .args(["touch", "/usr/bin/x86_64-linux-gnu-g++-12"])
        .status()
        .unwrap();
    assert!(touch.success());
    let line = refused_and_local(&client, &server, &[], &[]);
    assert!(line.contains(&format!("{environment} could not start the compile: its compiler /usr/lib/homcc/g++-boxed changed since homccd probed it")), "{line}");
    client.same_as_local(&host, &[], &[], BOXED);
    let record = server.next_record();
    assert_eq!(
        (record.environment, record.outcome),
        (environment, "exit 0".to_owned())
    );
}

#[test]
fn a_container_restarted_under_a_compile_is_its_failure_not_the_compilers_verdict() {
    let (server, containers, _cache) = one_container(Unlike::Nothing);
    let client = Client::new();
    let (slow, local_object) = client.slow_local();
    let mut cmd = client.homcc_command(&server.host(), &[], &[], BOXED, &slow);
    let homcc = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_running_compile(&server.cache_dir);
    let restart = Command::new("docker")
        .args(["restart", "-t", "0", &containers[0].name])
        .output()
        .unwrap();
    assert!(restart.status.success());
    let out = homcc.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let lines = homcc_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{said}");
    assert!(lines[0].contains("could not start the compile"), "{said}");
    assert!(lines[0].ends_with("compiling locally"), "{said}");
    assert!(client.project.take(&["slow.o"]) == local_object);
    assert!(server.next_record().outcome.starts_with("refused"));
}

#[test]
fn a_homccd_that_is_not_root_compiles_in_a_schroot_profile_as_itself() {
    rootfs();
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir(cache.path().join("jobs")).unwrap();
    for dir in [cache.path().to_owned(), cache.path().join("jobs")] {
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    }
    let homccd = Daemon::start_as(Some(65534), cache.path(), &["--schroot-profile", PROFILE]);
    let offered = homccd.logged.iter().any(|l| l.contains("offered"));
    assert!(offered, "{:#?}", homccd.logged);
    let client = Client::new();
    let (slow, local_object) = client.slow_local();
    let flags = ["--verbose", "--schroot-profile", PROFILE];
    let mut cmd = client.homcc_command(&homccd.host(), &[], &flags, BOXED, &slow);
    let homcc = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The compiler's temporary files are in the job's TMPDIR, which setuid schroot would drop
    // from its own environment.
    wait_for_running_compile(cache.path());
    let out = homcc.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains(&format!("(in schroot profile '{PROFILE}')")),
        "{said}"
    );
    assert!(client.project.take(&["slow.o"]) == local_object, "{said}");
    homccd.stop();
}

/// The one line of homcc that says why a compile ran locally; the compile's outputs are the
/// local compile's and nothing ran on the server.
fn refused_and_local(
    client: &Client,
    server: &TestServer,
    env: &[(&str, &str)],
    flags: &[&str],
) -> String {
    let host = server.host();
    let said = client.same_as_local(&host, env, flags, BOXED);
    let lines = homcc_lines(said.as_bytes());
    assert_eq!(lines.len(), 1, "{said}");
    let record = server.next_record();
    assert!(record.outcome.starts_with("refused"), "{}", record.outcome);
    // Refused before it took a compile slot, or (a stopped container) before the compiler
    // started in it.
    let before_slot = record.started.is_none() && record.files == 0;
    let not_started = record.outcome.contains("could not start the compile");
    assert!(before_slot || not_started, "{}", record.outcome);
    assert!(lines[0].ends_with("compiling locally"), "{}", lines[0]);
    lines[0].clone()
}

#[test]
fn an_environment_not_offered_or_not_running_is_refused_and_the_compile_runs_locally() {
    let (server, containers, _cache) = one_container(Unlike::Nothing);
    let offered = format!("offered: docker container '{}'", containers[0].name);
    let client = Client::new();
    let line = refused_and_local(
        &client,
        &server,
        &[("HOMCC_DOCKER_CONTAINER", "homcc-test-none")],
        &[],
    );
    assert!(
        line.contains("docker container 'homcc-test-none' is not offered there"),
        "{line}"
    );
    assert!(line.contains(&offered), "{line}");
    let line = refused_and_local(&client, &server, &[("HOMCC_SCHROOT_PROFILE", PROFILE)], &[]);
    assert!(
        line.contains(&format!("schroot profile '{PROFILE}' is not offered there")),
        "{line}"
    );
    assert!(line.contains(&offered), "{line}");
    containers[0].stop();
    let line = refused_and_local(
        &client,
        &server,
        &[],
        &["--docker-container", &containers[0].name],
    );
    assert!(
        line.contains(&format!(
            "docker container '{}' could not start the compile",
            containers[0].name
        )),
        "{line}"
    );
    assert!(line.contains("is not running"), "{line}");
    assert!(line.contains(&offered), "{line}");
}

#[test]
fn a_timeout_or_a_disconnect_leaves_no_compiler_in_the_container_or_chroot() {
    let (server, containers, _cache) = server(
        |jobs| vec![Container::start(Some(jobs), Unlike::Nothing)],
        &[PROFILE],
        |s| s.compile_timeout = Duration::from_secs(2),
    );
    let container = &containers[0];
    let client = Client::new();
    client.project.write("stuck.cpp", &stuck_cxx_source());
    let stuck = ["-c", "stuck.cpp", "-o", "stuck.o"];
    let no_local = ("HOMCC_NO_LOCAL_COMPILATION", "true");
    let jobs = server.cache_dir.join("jobs");
    let ways: [(&str, &str); 2] = [
        ("HOMCC_DOCKER_CONTAINER", &container.name),
        ("HOMCC_SCHROOT_PROFILE", PROFILE),
    ];
    let left = |way: &str| match way {
        "HOMCC_DOCKER_CONTAINER" => container.runs_a_compiler(),
        _ => working_below(&jobs) > 0,
    };
    for (way, name) in ways {
        let mut cmd =
            client.homcc_command(&server.host(), &[(way, name), no_local], &[], BOXED, &stuck);
        let out = cmd.output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("time limit of 2 s"), "{way}: {said}");
        assert!(server.next_record().outcome.contains("time limit"), "{way}");
        wait_for("the timed-out compiler to be gone", GONE, || !left(way));

        let mut cmd =
            client.homcc_command(&server.host(), &[(way, name), no_local], &[], BOXED, &stuck);
        let mut homcc: Child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_running_compile(&server.cache_dir);
        assert!(left(way), "{way}: no compiler seen running inside");
        homcc.kill().unwrap();
        homcc.wait().unwrap();
        let outcome = server.next_record().outcome;
        assert!(outcome.starts_with("lost"), "{way}: {outcome}");
        wait_for("the abandoned compiler to be gone", GONE, || !left(way));
    }
}

#[test]
fn an_environment_that_cannot_see_the_job_root_is_left_out_and_the_others_serve() {
    rootfs();
    let cache = tempfile::tempdir().unwrap();
    let jobs = cache.path().join("jobs");
    let good = Container::start(Some(&jobs), Unlike::Nothing);
    let blind = Container::start(None, Unlike::Nothing);
    let mighty = Container::start(Some(&jobs), Unlike::Capabilities);
    let flags = [
        "--docker-container",
        &good.name,
        "--docker-container",
        &blind.name,
        "--docker-container",
        &mighty.name,
        "--schroot-profile",
        PROFILE,
        "--schroot-profile",
        BLIND_PROFILE,
    ];
    let homccd = Daemon::start(cache.path(), &flags);
    let (host, logged) = (homccd.host(), &homccd.logged);
    let left_out: Vec<_> = logged.iter().filter(|l| l.contains("left out")).collect();
    assert_eq!(left_out.len(), 3, "{logged:#?}");
    let says = |name: &str, what: &str| {
        left_out
            .iter()
            .any(|l| l.contains(&format!("'{name}'")) && l.contains(what))
    };
    let unseen = format!("does not see homccd's job directory {}", jobs.display());
    assert!(says(&blind.name, &unseen), "{left_out:#?}");
    assert!(
        says(&blind.name, &format!("-v {0}:{0}", jobs.display())),
        "{left_out:#?}"
    );
    assert!(says(BLIND_PROFILE, &unseen), "{left_out:#?}");
    assert!(says(BLIND_PROFILE, "fstab"), "{left_out:#?}");
    assert!(says(&mighty.name, "--cap-drop ALL"), "{left_out:#?}");
    let offered: Vec<_> = logged.iter().filter(|l| l.contains("offered")).collect();
    assert_eq!(offered.len(), 2, "{logged:#?}");

    let client = Client::new();
    let said = client.same_as_local(
        &host,
        &[("HOMCC_DOCKER_CONTAINER", &good.name)],
        &["--verbose"],
        BOXED,
    );
    assert!(
        said.contains(&format!("(in docker container '{}')", good.name)),
        "{said}"
    );
    let said = client.same_as_local(
        &host,
        &[("HOMCC_SCHROOT_PROFILE", PROFILE)],
        &["--verbose"],
        BOXED,
    );
    assert!(
        said.contains(&format!("(in schroot profile '{PROFILE}')")),
        "{said}"
    );
    let said = client.same_as_local(
        &host,
        &[("HOMCC_DOCKER_CONTAINER", &blind.name)],
        &[],
        BOXED,
    );
    assert!(
        said.contains("left out at start: it does not see"),
        "{said}"
    );
    homccd.stop();

    // --show-compilers lists each environment's compilers, probed there.
    let out = Command::new(bin("homccd"))
        .args(["--no-config", "--show-compilers", "--cache-dir"])
        .arg(cache.path())
        .args([
            "--docker-container",
            &good.name,
            "--schroot-profile",
            BLIND_PROFILE,
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inside = table
        .split(&format!("in docker container '{}':\n", good.name))
        .nth(1)
        .expect("a section for the container");
    let first = inside.lines().next().unwrap();
    assert!(
        first.starts_with(BOXED) && first.contains("12.2.0 x86_64-linux-gnu"),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "schroot profile '{BLIND_PROFILE}': left out: it does not see"
        )),
        "{table}"
    );
}

#[test]
fn an_environment_name_that_is_no_name_is_a_bad_setting() {
    let out = Command::new(bin("homccd"))
        .args([
            "--no-config",
            "--show-compilers",
            "--docker-container=-v /:/host",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(
        said.contains("'-v /:/host' is not a schroot profile or container name"),
        "{said}"
    );
}
