//! Several hosts and several homcc processes: limits hold across processes (measured at the
//! server), failed hosts are skipped by every process for the back-off period (busy ones are
//! not: that is load), a killed homcc
//! frees its slot, a silent host costs the connect timeout once; hosts files and the `--show-*`
//! commands.

use std::{
    net::TcpListener,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use homcc_tests::{
    back_off_files, bin, homcc_lines, isolate, raw, slow_cxx_source, wait_for, Project, TestServer,
};

/// A port on 127.0.0.1 where nothing listens.
fn stopped_host() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Writes the user's hosts file (`~/.homcc/hosts`; the project's cache dir is homcc's home).
fn write_hosts_file(project: &Project, text: &str) {
    let dir = project.client_cache.path().join(".homcc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hosts"), text).unwrap();
}

/// `homcc ARGS` in the project, with no setting but the project's own files.
fn homcc(project: &Project, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin("homcc"));
    isolate(&mut cmd, project.client_cache.path())
        .args(args)
        .current_dir(project.path());
    cmd
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Sources `s0.c` ... with a shared header; returns their objects compiled locally.
fn sources(project: &Project, count: usize) -> Vec<Vec<u8>> {
    project.write("common.h", "#define TWICE(x) ((x) * 2)\n");
    (0..count)
        .map(|i| {
            let name = format!("s{i}.c");
            let text =
                format!("#include \"common.h\"\nint f{i}(int x) {{ return TWICE(x) + {i}; }}\n");
            project.write(&name, &text);
            let out = project.local("gcc", &["-O2", "-c", &name, "-o", &format!("s{i}.o")]);
            assert!(out.status.success());
            project.take(&[&format!("s{i}.o")]).remove(0).unwrap()
        })
        .collect()
}

fn wait_all(children: Vec<Child>) -> Vec<Output> {
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[test]
fn forty_processes_use_the_healthy_host_within_its_limit() {
    const COMPILES: usize = 40;
    const LIMIT: usize = 2;
    // The healthy server would take 8 at once: only the clients' limit keeps it at 2.
    let healthy = TestServer::fresh(|c| c.limit = 8);
    // Full: its one place is held, and it has no queue.
    let busy = TestServer::fresh(|c| {
        c.limit = 1;
        c.queue = Some(0);
    });
    let stopped = stopped_host();
    let project = Project::new();
    let local = sources(&project, COMPILES);
    let runtime = raw::runtime();
    let holder = raw::hold_place(&runtime, busy.addr, project.path());
    write_hosts_file(
        &project,
        &format!(
            "# three build servers\n{stopped}/{LIMIT}\n{}/{LIMIT} # busy\n{}/{LIMIT},lzo\n",
            busy.host(),
            healthy.host()
        ),
    );

    let started = std::time::Instant::now();
    let children: Vec<Child> = (0..COMPILES)
        .map(|i| {
            let (src, obj) = (format!("s{i}.c"), format!("s{i}.o"));
            homcc(
                &project,
                &["--verbose", "gcc", "-O2", "-c", &src, "-o", &obj],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let outputs = wait_all(children);
    let took = started.elapsed();

    let mut stopped_tries = 0;
    for (i, out) in outputs.iter().enumerate() {
        let lines = homcc_lines(&out.stderr);
        assert!(out.status.success(), "compile {i}: {lines:?}");
        assert!(
            !lines.iter().any(|l| l.contains("compiling locally")),
            "compile {i} ran locally: {lines:?}"
        );
        stopped_tries += lines.iter().filter(|l| l.contains(&stopped)).count();
        let object = project.take(&[&format!("s{i}.o")]).remove(0);
        assert!(
            object.as_ref() == Some(&local[i]),
            "s{i}.o differs from a local compile"
        );
    }
    let records = healthy.wait_for_records(COMPILES);
    assert_eq!(records.len(), COMPILES, "every compile on the healthy host");
    assert!(records.iter().all(|r| r.outcome == "exit 0"), "{records:?}");
    let peak = healthy.stats.peak_running();
    assert!(
        (1..=LIMIT).contains(&peak),
        "the healthy host ran {peak} compiles at once; its limit is {LIMIT}"
    );
    // Nothing listens there: one process tries it, then every one skips it for the quick
    // back-off (a restarted server would be back), and one tries it again after each.
    let back_offs = (took.as_secs_f64() / homcc_client::slots::QUICK_BACKOFF.as_secs_f64()).ceil();
    assert!(
        stopped_tries as f64 <= 1.0 + back_offs,
        "the stopped host was tried {stopped_tries} times in {took:?}"
    );
    // Busy is load, not failure: the host is asked again now and then (each answer makes the
    // others ask the healthy host first for a second), and nothing ran there.
    let refused = busy.records();
    assert!(
        refused
            .iter()
            .all(|r| r.outcome.starts_with("refused: busy")),
        "{refused:?}"
    );
    assert!(
        refused.len() <= COMPILES / 4,
        "the busy host was asked {} times",
        refused.len()
    );
    assert_eq!(
        back_off_files(project.client_cache.path()),
        1,
        "the stopped host's"
    );
    let _context = runtime.enter();
    drop(holder);
}

#[test]
fn a_killed_homcc_frees_its_slot_at_once() {
    let server = TestServer::fresh(|c| c.limit = 4);
    let project = Project::new();
    project.write("slow.cpp", &slow_cxx_source(400));
    project.write("quick.c", "int quick(void) { return 1; }\n");
    let host = format!("{}/1", server.host());
    let mut slow = homcc(&project, &["--host", &host, "g++", "-O2", "-c", "slow.cpp"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the slow compile to run on the server",
        Duration::from_secs(60),
        || server.stats.running() == 1,
    );
    slow.kill().unwrap();
    slow.wait().unwrap();

    // The host's only slot is free again at once: no wait (bounded here by 20 s), no fallback.
    let out = homcc(
        &project,
        &[
            "--compilation-request-timeout",
            "20",
            "--host",
            &host,
            "gcc",
            "-c",
            "quick.c",
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    assert_eq!(homcc_lines(&out.stderr), Vec::<String>::new());
    wait_for(
        "the quick compile's record",
        Duration::from_secs(10),
        || {
            server
                .records()
                .iter()
                .any(|r| r.output.ends_with("quick.o") && r.outcome == "exit 0")
        },
    );
}

/// Lines of `out` naming `host` and a timeout.
fn timeout_lines(out: &Output, host: &str) -> Vec<String> {
    homcc_lines(&out.stderr)
        .into_iter()
        .filter(|l| l.contains(host) && l.contains("timeout"))
        .collect()
}

#[test]
fn a_silent_host_costs_the_connect_timeout_once() {
    // Accepts connections (the kernel completes them) and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_host = silent.local_addr().unwrap().to_string();
    let healthy = TestServer::fresh(|_| {});
    let project = Project::new();
    let local = sources(&project, 2);
    // The silent host has more free slots, so it is picked first.
    let args = |src: &str, obj: &str| -> Vec<String> {
        [
            "--verbose",
            "--establish-connection-timeout",
            "2",
            "--host",
            &format!("{silent_host}/4"),
            "--host",
            &format!("{}/2", healthy.host()),
            "gcc",
            "-O2",
            "-c",
            src,
            "-o",
            obj,
        ]
        .map(String::from)
        .to_vec()
    };
    let run = |i: usize| {
        let args = args(&format!("s{i}.c"), &format!("s{i}.o"));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let out = homcc(&project, &args).output().unwrap();
        assert!(out.status.success());
        let object = project.take(&[&format!("s{i}.o")]).remove(0);
        assert!(object.as_ref() == Some(&local[i]), "s{i}.o differs");
        (out, started.elapsed())
    };

    let (first, took) = run(0);
    assert_eq!(
        timeout_lines(&first, &silent_host).len(),
        1,
        "{:?}",
        homcc_lines(&first.stderr)
    );
    assert!(
        timeout_lines(&first, &silent_host)[0].contains(
            "establish_connection_timeout of 2 s expired waiting for the server's first answer"
        ),
        "{:?}",
        homcc_lines(&first.stderr)
    );
    // Neither the 30 s heartbeat nor the 240 s request timeout was waited for.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(
        healthy.wait_for_records(1).len(),
        1,
        "compiled on the healthy host"
    );

    // The next process skips the silent host without waiting.
    let (second, _) = run(1);
    assert_eq!(timeout_lines(&second, &silent_host), Vec::<String>::new());
    assert_eq!(healthy.wait_for_records(2).len(), 2);
    drop(silent);
}

#[test]
fn a_silent_only_host_ends_in_a_local_compile_naming_the_timeout() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let host = silent.local_addr().unwrap().to_string();
    let project = Project::new();
    let local = sources(&project, 1);
    let out = homcc(
        &project,
        &[
            "--establish-connection-timeout",
            "1",
            "--host",
            &host,
            "gcc",
            "-O2",
            "-c",
            "s0.c",
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    assert_eq!(
        homcc_lines(&out.stderr),
        [format!(
            "homcc: {host} timed out: establish_connection_timeout of 1 s expired waiting for \
             the server's first answer; compiling locally"
        )]
    );
    assert_eq!(project.take(&["s0.o"]).remove(0).as_ref(), Some(&local[0]));
}

#[test]
fn no_local_compilation_with_no_reachable_host_fails_in_every_form() {
    let project = Project::new();
    sources(&project, 1);
    let stopped = stopped_host();
    let conf_dir = project.client_cache.path().join(".config/homcc");
    // (flag, variable, whether homcc.conf says it)
    type Form<'a> = (&'a str, Option<(&'a str, &'a str)>, bool);
    let forms: [Form; 3] = [
        ("--no-local-compilation", None, false),
        (
            "--verbose",
            Some(("HOMCC_NO_LOCAL_COMPILATION", "True")),
            false,
        ),
        ("--verbose", None, true),
    ];
    for (flag, variable, in_file) in forms {
        let _ = std::fs::remove_dir_all(&conf_dir);
        if in_file {
            std::fs::create_dir_all(&conf_dir).unwrap();
            std::fs::write(
                conf_dir.join("homcc.conf"),
                "[homcc]\nno_local_compilation = true\n",
            )
            .unwrap();
        }
        let mut cmd = homcc(&project, &[flag, "--host", &stopped, "gcc", "-c", "s0.c"]);
        if let Some((name, value)) = variable {
            cmd.env(name, value);
        }
        let out = cmd.output().unwrap();
        let form = format!("{flag} {variable:?} file={in_file}");
        assert_eq!(out.status.code(), Some(100), "{form}");
        let lines = homcc_lines(&out.stderr);
        let fallback: Vec<_> = lines
            .iter()
            .filter(|l| l.contains("not compiling locally"))
            .collect();
        assert_eq!(fallback.len(), 1, "{form}: {lines:?}");
        assert!(
            fallback[0].contains(&stopped) && fallback[0].contains("unreachable"),
            "{form}"
        );
        assert!(
            !project.path().join("s0.o").exists(),
            "{form}: nothing compiled"
        );
        // The next form must find the host again, not its back-off.
        let _ = std::fs::remove_dir_all(project.client_cache.path().join("homcc/run"));
    }
}

#[test]
fn show_commands_print_what_homcc_would_use() {
    let project = Project::new();
    write_hosts_file(
        &project,
        "# build servers\nlocalhost/3\nbuild-1.lan:4000/8,lzma # the big one\n[::1]/4,lzo\nbuild-2/2,ZStd\nalice@ssh-host\n",
    );
    let show = |flag: &str| stdout(&homcc(&project, &[flag]).output().unwrap());
    assert_eq!(
        show("--show-hosts"),
        "localhost limit=3 transport=local\n\
         build-1.lan:4000 limit=8 compression=lzma transport=tcp\n\
         [::1]:3126 limit=4 compression=lzo transport=tcp\n\
         build-2:3126 limit=2 compression=zstd transport=tcp\n\
         alice@ssh-host limit=2 compression=zstd transport=ssh as alice master=down\n"
    );
    assert_eq!(show("-j"), "16\n", "the remote hosts' limits, SSH ones too");
    assert_eq!(show("--show-concurrency"), "16\n");
    let vars = stdout(
        &homcc(&project, &["--show-variables"])
            .env("HOMCC_VERBOSE", "1")
            .env("HOMCC_COMPRESSION", "zstd")
            .env("HOMCC_UNRELATED", "x")
            .output()
            .unwrap(),
    );
    assert_eq!(vars, "HOMCC_COMPRESSION=zstd\nHOMCC_VERBOSE=1\n");
}

#[test]
fn a_bad_hosts_file_is_one_line_naming_file_and_line() {
    let project = Project::new();
    sources(&project, 1);
    write_hosts_file(&project, "good-host\n\nbad-host:99999\n");
    let file = project.client_cache.path().join(".homcc/hosts");
    let want = format!(
        "homcc: {}:3: bad port '99999' in 'bad-host:99999': use a number from 1 to 65535",
        file.display()
    );
    let out = homcc(&project, &["--show-hosts"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(homcc_lines(&out.stderr), std::slice::from_ref(&want));
    // A compile still happens, locally, saying why.
    let out = homcc(&project, &["gcc", "-c", "s0.c"]).output().unwrap();
    assert!(out.status.success());
    let bad_setting = want.replace("homcc: ", "homcc: bad setting: ") + "; compiling locally";
    assert_eq!(homcc_lines(&out.stderr), [bad_setting]);
    assert!(project.path().join("s0.o").exists());
}

#[test]
fn a_waiting_compile_takes_the_first_slot_that_frees() {
    let server = TestServer::fresh(|c| c.limit = 4);
    let project = Project::new();
    let local = sources(&project, 1);
    let host = format!("{}/1", server.host());
    // This user's only slot on the host is held by a running compile.
    project.write("slow.cpp", &slow_cxx_source(120));
    let slow = homcc(&project, &["--host", &host, "g++", "-O2", "-c", "slow.cpp"])
        .spawn()
        .unwrap();
    wait_for("the slow compile to run", Duration::from_secs(60), || {
        server.stats.running() == 1
    });
    let out = homcc(
        &project,
        &["--verbose", "--host", &host, "gcc", "-O2", "-c", "s0.c"],
    )
    .output()
    .unwrap();
    let lines = homcc_lines(&out.stderr);
    assert!(out.status.success(), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains("waiting for one")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("compiling locally")),
        "{lines:?}"
    );
    assert!(wait_all(vec![slow])[0].status.success());
    assert_eq!(server.stats.peak_running(), 1);
    assert_eq!(project.take(&["s0.o"]).remove(0).as_ref(), Some(&local[0]));
}

#[test]
fn with_localhost_listed_a_full_host_leaves_the_compile_to_this_machine() {
    let server = TestServer::fresh(|c| c.limit = 4);
    let project = Project::new();
    let local = sources(&project, 1);
    project.write("slow.cpp", &slow_cxx_source(120));
    let hosts = format!("localhost/2 {}/1", server.host());
    let slow = homcc(&project, &["g++", "-O2", "-c", "slow.cpp"])
        .env("HOMCC_HOSTS", &hosts)
        .spawn()
        .unwrap();
    wait_for("the slow compile to run", Duration::from_secs(60), || {
        server.stats.running() == 1
    });
    let out = homcc(&project, &["--verbose", "gcc", "-O2", "-c", "s0.c"])
        .env("HOMCC_HOSTS", &hosts)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        homcc_lines(&out.stderr),
        ["homcc: compiling locally: every remote slot is taken and localhost has a free one"]
    );
    assert_eq!(project.take(&["s0.o"]).remove(0).as_ref(), Some(&local[0]));
    assert!(wait_all(vec![slow])[0].status.success());
    assert_eq!(
        server.wait_for_records(1).len(),
        1,
        "only the slow compile went to the server"
    );
}
