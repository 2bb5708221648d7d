//! SSH hosts (`@HOST`, `USER@HOST`) against a real OpenSSH server that each test starts on
//! 127.0.0.1 with its own config, host key and authorized key, in front of a homccd that listens
//! on 127.0.0.1: compiles through it are remote and byte-identical to local ones, share one
//! master connection, and every SSH failure is one line with ssh's reason and a local compile.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::OnceLock,
    time::Duration,
};

use homcc_tests::{bin, homcc_lines, isolate, wait_for, Project, TestServer};

/// Installs OpenSSH when missing (once per test run).
fn openssh() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        if Path::new("/usr/sbin/sshd").exists() && Path::new("/usr/bin/ssh").exists() {
            return;
        }
        let install = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null";
        let status = Command::new("sh").args(["-c", install]).status().unwrap();
        assert!(status.success(), "cannot install openssh-server");
    });
}

/// An sshd of the test's own on 127.0.0.1, with an ssh config file that reaches it.
struct Sshd {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Sshd {
    fn start() -> Sshd {
        openssh();
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name);
        for key in ["host_key", "user_key", "other_key"] {
            let made = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(path(key))
                .status()
                .unwrap();
            assert!(made.success());
        }
        std::fs::copy(path("user_key.pub"), path("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        // A free port: the kernel's choice, given back for sshd to take at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
             PidFile {}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             AllowTcpForwarding yes\nLogLevel VERBOSE\n",
            path("host_key").display(),
            path("authorized_keys").display(),
            path("sshd.pid").display(),
        );
        std::fs::write(path("sshd_config"), config).unwrap();
        let host_key = std::fs::read_to_string(path("host_key.pub")).unwrap();
        let host_key: Vec<_> = host_key.split_whitespace().take(2).collect();
        let known = format!("[127.0.0.1]:{port} {}\n", host_key.join(" "));
        std::fs::write(path("known_hosts"), known).unwrap();
        std::fs::write(path("empty_known_hosts"), "").unwrap();
        for (name, key, known) in [
            ("ssh_config", "user_key", "known_hosts"),
            ("wrong_key_config", "other_key", "known_hosts"),
            ("unknown_host_config", "user_key", "empty_known_hosts"),
        ] {
            let config = format!(
                "Host *\n  Port {port}\n  IdentityFile {}\n  IdentitiesOnly yes\n  \
                 UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n",
                path(key).display(),
                path(known).display()
            );
            std::fs::write(path(name), config).unwrap();
        }
        let mut sshd = Sshd { dir, child: None };
        sshd.run();
        sshd
    }

    /// Runs sshd in the foreground, logging to stderr; returns once it listens (its own line).
    fn run(&mut self) {
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(self.path("sshd_config"))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut log = Vec::new();
        loop {
            let line = lines.next().expect("sshd exited before listening").unwrap();
            log.push(line.clone());
            if line.contains("Server listening on 127.0.0.1") {
                break;
            }
        }
        let log_file = self.path("sshd.log");
        std::thread::spawn(move || {
            let mut all = log;
            for line in lines.map_while(Result::ok) {
                all.push(line);
                let _ = std::fs::write(&log_file, all.join("\n"));
            }
        });
        self.child = Some(child);
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Logins sshd accepted so far (one per SSH connection).
    fn logins(&self) -> usize {
        let log = std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("Accepted publickey"))
            .count()
    }

    /// Logins sshd refused so far (a key it does not accept).
    fn failed_logins(&self) -> usize {
        let log = std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains("Failed publickey"))
            .count()
    }

    /// `ssh_options` that reach this sshd with `config` (one of the files `start` wrote).
    fn options(&self, config: &str) -> String {
        format!("-F {}", self.path(config).display())
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
        // The master connections of the tests' homcc processes end with their sshd.
    }
}

/// `homcc [--host LINE] compiler args` in `project`, with `env`.
fn homcc(
    project: &Project,
    line: &str,
    env: &[(&str, &str)],
    compiler: &str,
    args: &[&str],
) -> Output {
    let mut cmd = project.homcc_command(&["--host", line], compiler, args);
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

const C_SOURCE: &str =
    "#include <stdio.h>\nint main(void) { int unused; puts(\"hi\"); return 0; }\n";
const CXX_SOURCE: &str =
    "#include <vector>\nint main() { std::vector<int> v{1, 2}; return int(v.size()) - 2; }\n";

#[test]
fn c_and_cxx_compile_through_ssh_as_they_do_locally() {
    let sshd = Sshd::start();
    let server = TestServer::fresh(|_| {});
    let project = Project::new();
    let _masters = Masters(&project);
    project.write("a.c", C_SOURCE).write("b.cpp", CXX_SOURCE);
    let options = sshd.options("ssh_config");
    let env = [("HOMCC_SSH_OPTIONS", options.as_str())];
    for line in [
        format!("root@127.0.0.1:{}", server.addr.port()),
        format!("@127.0.0.1:{}", server.addr.port()),
    ] {
        for (compiler, args) in [
            ("gcc", ["-O2", "-g", "-Wall", "-c", "a.c", "-o", "a.o"]),
            ("g++", ["-O2", "-g", "-Wall", "-c", "b.cpp", "-o", "b.o"]),
        ] {
            let object = &args[6..];
            project.take(object);
            let local = project.local(compiler, &args);
            let local_object = project.take(object);
            let remote = homcc(&project, &line, &env, compiler, &args);
            assert_eq!(remote.status.code(), local.status.code());
            assert_eq!(
                remote.stderr,
                local.stderr,
                "{line}: {}",
                String::from_utf8_lossy(&remote.stderr)
            );
            assert!(
                project.take(object) == local_object,
                "{line} {compiler}: objects differ"
            );
            let record = server.next_record();
            assert!(record.outcome.starts_with("exit 0"), "{}", record.outcome);
        }
    }
    // One master connection per hosts line (`root@` and `@` are two destinations to ssh).
    assert_eq!(sshd.logins(), 2, "one master connection per hosts line");
    // --show-hosts says the master is up.
    let line = format!("root@127.0.0.1:{}", server.addr.port());
    let shown = show_hosts(&project, &line, &options);
    assert!(shown.contains("transport=ssh as root master=up"), "{shown}");
    end_masters(&project);
    let shown = show_hosts(&project, &line, &options);
    assert!(
        shown.contains("transport=ssh as root master=down"),
        "{shown}"
    );
}

/// `homcc --show-hosts` with `line` as the host.
fn show_hosts(project: &Project, line: &str, options: &str) -> String {
    let mut show = Command::new(bin("homcc"));
    isolate(&mut show, project.client_cache.path());
    let out = (show.args(["--host", line, "--show-hosts"]))
        .env("HOMCC_SSH_OPTIONS", options)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Ends, when dropped (also when a test fails), the master connections of a project's homcc
/// processes.
struct Masters<'a>(&'a Project);

impl Drop for Masters<'_> {
    fn drop(&mut self) {
        end_masters(self.0);
    }
}

/// Ends the master connections `project`'s homcc processes started (`ssh -O exit`).
fn end_masters(project: &Project) {
    let dir = project.client_cache.path().join("homcc/run");
    let sockets = std::fs::read_dir(dir).into_iter().flatten().flatten();
    for socket in sockets.map(|e| e.path()) {
        let name = socket.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("ssh-") && !name.contains('.') {
            let _ = Command::new("ssh")
                .arg("-o")
                .arg(format!("ControlPath={}", socket.display()))
                .args(["-O", "exit", "homcc-test"])
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[test]
fn twenty_compiles_at_once_share_one_master_connection_and_the_limit() {
    let sshd = Sshd::start();
    let server = TestServer::fresh(|_| {});
    let project = Project::new();
    let _masters = Masters(&project);
    let mut sources = Vec::new();
    for i in 0..20 {
        let name = format!("s{i}.cpp");
        project.write(
            &name,
            &format!("{CXX_SOURCE}int f{i}() {{ return {i}; }}\n"),
        );
        sources.push(name);
    }
    let line = format!("root@127.0.0.1:{}/3", server.addr.port());
    let options = sshd.options("ssh_config");
    let homccs: Vec<_> = (sources.iter())
        .map(|source| {
            let object = source.replace(".cpp", ".o");
            let args = ["-O2", "-c", source.as_str(), "-o", object.as_str()];
            let mut cmd = project.homcc_command(&["--host", &line], "g++", &args);
            cmd.env("HOMCC_SSH_OPTIONS", &options)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    for homcc in homccs {
        let out = homcc.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let records = server.wait_for_records(20);
    assert!(
        records.iter().all(|r| r.outcome.starts_with("exit 0")),
        "{records:?}"
    );
    assert_eq!(sshd.logins(), 1, "one master connection for 20 processes");
    assert!(
        server.stats.peak_running() <= 3,
        "the host's limit: {}",
        server.stats.peak_running()
    );
}

#[test]
fn an_ssh_failure_is_one_line_with_the_reason_of_ssh_and_a_local_compile() {
    let mut sshd = Sshd::start();
    let server = TestServer::fresh(|_| {});
    let project = Project::new();
    let _masters = Masters(&project);
    project.write("b.cpp", CXX_SOURCE);
    let args = ["-c", "b.cpp", "-o", "b.o"];
    let local = project.local("g++", &args);
    assert!(local.status.success());
    let local_object = project.take(&["b.o"]);
    let line = format!("root@127.0.0.1:{}", server.addr.port());
    let wrong_key = sshd.options("wrong_key_config");
    let unknown_host = sshd.options("unknown_host_config");
    let mut cases = vec![
        (wrong_key.clone(), "Permission denied (publickey)"),
        (unknown_host, "host key"),
    ];
    let run = |options: &str, no_local: bool| {
        let mut env = vec![("HOMCC_SSH_OPTIONS", options)];
        if no_local {
            env.push(("HOMCC_NO_LOCAL_COMPILATION", "true"));
        }
        homcc(&project, &line, &env, "g++", &args)
    };
    let check = |options: &str, reason: &str| {
        let out = run(options, false);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        let lines = homcc_lines(&out.stderr);
        assert!(out.status.success(), "{said}");
        assert_eq!(lines.len(), 1, "{said}");
        assert!(
            lines[0].starts_with(&format!("homcc: {line} ssh failed: ")),
            "{said}"
        );
        assert!(
            lines[0].contains(reason) && lines[0].ends_with("compiling locally"),
            "{said}"
        );
        assert!(project.take(&["b.o"]) == local_object);
        // Each case backs the host off: the next one starts afresh.
        std::fs::remove_dir_all(project.client_cache.path().join("homcc/run")).unwrap();
    };
    for (options, reason) in cases.drain(..) {
        check(&options, reason);
    }
    // Eight at once with the wrong key: one login is tried; the others take its failure.
    let homccs: Vec<_> = (0..8)
        .map(|i| {
            let object = format!("b{i}.o");
            let args = ["-c", "b.cpp", "-o", object.as_str()];
            let mut cmd = project.homcc_command(&["--host", &line], "g++", &args);
            cmd.env("HOMCC_SSH_OPTIONS", &wrong_key);
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for homcc in homccs {
        assert!(homcc.wait_with_output().unwrap().status.success());
    }
    // The wrong key above tried once (the unknown host key never reached authentication).
    wait_for(
        "sshd to log the failed logins",
        Duration::from_secs(10),
        || sshd.failed_logins() >= 2,
    );
    assert_eq!(
        sshd.failed_logins(),
        2,
        "one try for the single compile, one for the eight"
    );
    std::fs::remove_dir_all(project.client_cache.path().join("homcc/run")).unwrap();
    sshd.stop();
    check(&sshd.options("ssh_config"), "Connection refused");
    let out = run(&wrong_key, true);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ssh failed"));
    assert!(project.take(&["b.o"])[0].is_none(), "no local compile");
    assert_eq!(server.records().len(), 0, "nothing reached homccd");
}

#[test]
fn the_ssh_settings_take_effect() {
    let sshd = Sshd::start();
    let server = TestServer::fresh(|_| {});
    let project = Project::new();
    let _masters = Masters(&project);
    project.write("a.c", C_SOURCE);
    // An ssh_executable that notes each of its command lines, then runs ssh.
    let calls = project.client_cache.path().join("ssh-calls");
    let wrapper = project.client_cache.path().join("my-ssh");
    let script = format!(
        "#!/bin/sh\necho \"$*\" >> {}\nexec ssh \"$@\"\n",
        calls.display()
    );
    std::fs::write(&wrapper, script).unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // ssh_options as a shell would split them: the config file's path is one word.
    let options = format!(
        "-F '{}' -o 'ServerAliveInterval 7'",
        sshd.path("ssh_config").display()
    );
    let env = [
        ("HOMCC_SSH_EXECUTABLE", wrapper.to_str().unwrap()),
        ("HOMCC_SSH_CONTROL_PERSIST", "42"),
        ("HOMCC_SSH_OPTIONS", options.as_str()),
    ];
    let line = format!("root@127.0.0.1:{}", server.addr.port());
    let args = ["-c", "a.c", "-o", "a.o"];
    let out = homcc(&project, &line, &env, "gcc", &args);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(server.next_record().outcome.starts_with("exit 0"));
    let calls = std::fs::read_to_string(&calls).unwrap();
    let config = format!("-F {}", sshd.path("ssh_config").display());
    for (what, seen) in [
        ("the wrapper ran", !calls.is_empty()),
        ("ControlPersist", calls.contains("-o ControlPersist=42")),
        (
            "ssh_options",
            calls
                .lines()
                .all(|l| l.contains(&config) && l.contains("-o ServerAliveInterval 7")),
        ),
        (
            "BatchMode",
            calls.lines().all(|l| l.contains("-o BatchMode=yes")),
        ),
        (
            "a master that forwards to homccd",
            calls.contains("-N -f")
                && calls.contains(&format!(":127.0.0.1:{}", server.addr.port())),
        ),
    ] {
        assert!(seen, "{what}: {calls}");
    }
}
