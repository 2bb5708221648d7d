//! A full server is load, not a failure: homccd queues compiles beyond its limit and hands freed
//! slots out fairly between client addresses; homcc asks a host with room first, waits for a
//! full one (in its queue) up to `compilation_request_timeout`, and never backs off from it.
//! Real homccd servers (one in a network namespace of its own, so that two users have two
//! addresses), real gcc, outputs compared with local compiles.

use std::{
    net::IpAddr,
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use homcc_proto::{
    Blob, ClientMessage, Compression, Digest, Payload, RefusalReason, ServerMessage,
    PROTOCOL_VERSION,
};
use homcc_tests::{
    back_off_files, bin, homcc_lines, isolate,
    netns::{listen_in, NetNs},
    raw, slow_cxx_source, stuck_cxx_source, wait_for, Project, TestServer,
};

fn wait_all(children: Vec<Child>) -> Vec<Output> {
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// The records of compiles that ran (not refusals), once there are `count` of them.
fn compiles(server: &TestServer, count: usize) -> Vec<homcc_server::server::Record> {
    let ran = || {
        let records = server.records();
        records
            .into_iter()
            .filter(|r| r.outcome.starts_with("exit "))
            .collect::<Vec<_>>()
    };
    wait_for(
        &format!("{count} compiles recorded"),
        Duration::from_secs(30),
        || ran().len() >= count,
    );
    ran()
}

/// Another user's compile of `source` (C++), running on `server` (in its only slot, in these
/// tests); killed when dropped.
struct Other {
    child: Child,
    _project: Project,
}

impl Other {
    fn start(server: &TestServer, source: &str) -> Other {
        let project = Project::new();
        project.write("other.cpp", source);
        let child = project
            .homcc_command(
                &["--host", &server.host()],
                "g++",
                &["-O2", "-c", "other.cpp"],
            )
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(
            "the other user's compile to run",
            Duration::from_secs(60),
            || server.stats.running() == 1,
        );
        Other {
            child,
            _project: project,
        }
    }

    /// A compile that keeps its slot for about 40 s.
    fn stuck(server: &TestServer) -> Other {
        Other::start(server, &stuck_cxx_source())
    }

    /// Waits for it to end; whether it compiled.
    fn finish(mut self) -> bool {
        self.child.wait().unwrap().success()
    }
}

impl Drop for Other {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A C project of `count` files with a Makefile; every sixth file warns (`-Wall`), so that
/// stderr has something to compare.
pub(crate) fn c_project(project: &Project, count: usize) {
    project.write(
        "include/common.h",
        "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#define SCALE(x) ((x) * 3)\n",
    );
    for i in 0..count {
        let unused = if i % 6 == 0 { "    int unused;\n" } else { "" };
        project.write(
            &format!("src/f{i}.c"),
            &format!(
                "#include \"common.h\"\nint f{i}(const char *s) {{\n{unused}    char buf[64];\n    \
                 snprintf(buf, sizeof buf, \"%s-{i}\", s);\n    return SCALE((int)strlen(buf));\n}}\n"
            ),
        );
    }
    project.write(
        "Makefile",
        "OBJS := $(patsubst src/%.c,obj/%.o,$(wildcard src/*.c))\nall: $(OBJS)\n\
         obj/%.o: src/%.c include/common.h\n\t@mkdir -p obj\n\t$(CC) -O2 -Wall -Iinclude -c $< -o $@\n",
    );
}

/// `make -j4` with `cc`; its stderr lines (sorted: the jobs finish in any order) and objects.
pub(crate) fn make(
    project: &Project,
    cc: &str,
    env: &[(&str, &str)],
) -> (Vec<String>, Vec<Vec<u8>>) {
    let _ = std::fs::remove_dir_all(project.path().join("obj"));
    let mut cmd = Command::new("make");
    isolate(&mut cmd, project.client_cache.path())
        .args(["-j4", "--output-sync=target", &format!("CC={cc}")])
        .envs(env.iter().copied())
        .current_dir(project.path());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "make CC={cc}: {stderr}");
    let mut lines: Vec<String> = stderr.lines().map(str::to_owned).collect();
    lines.sort();
    let mut objects: Vec<_> = std::fs::read_dir(project.path().join("obj"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    objects.sort();
    (
        lines,
        objects.iter().map(|o| std::fs::read(o).unwrap()).collect(),
    )
}

#[test]
fn make_j4_on_a_server_of_limit_4_compiles_every_file_remotely() {
    const FILES: usize = 48;
    // homccd's defaults but the limit: its queue and its cap on connections per client.
    let server = TestServer::fresh(|c| {
        c.limit = 4;
        c.max_connections_per_client = None;
    });
    let project = Project::new();
    c_project(&project, FILES);
    let (local_stderr, local_objects) = make(&project, "gcc", &[]);
    assert!(
        local_stderr.iter().any(|l| l.contains("-Wunused-variable")),
        "{local_stderr:?}"
    );

    let cc = format!("{} gcc", bin("homcc").display());
    let hosts = format!("{}/4", server.host());
    let (stderr, objects) = make(&project, &cc, &[("HOMCC_HOSTS", &hosts)]);
    assert_eq!(stderr, local_stderr, "stderr is the compiler's alone");
    assert_eq!(objects.len(), FILES);
    assert!(
        objects == local_objects,
        "the objects differ from a local build"
    );
    let records = compiles(&server, FILES);
    assert_eq!(records.len(), FILES, "every file compiled remotely");
    let peak = server.stats.peak_running();
    assert!((1..=4).contains(&peak), "{peak} compiles ran at once");
    assert_eq!(back_off_files(project.client_cache.path()), 0);
}

#[test]
fn two_users_of_one_full_server_get_fair_shares_and_all_compile_remotely() {
    const EACH: usize = 20;
    // Two addresses on one loopback, so that the server sees two clients.
    let net = NetNs::new("fair", 65536);
    net.exec_ok(&["ip", "addr", "add", "127.0.0.2/32", "dev", "lo"]);
    let cache = tempfile::tempdir().unwrap();
    let server = TestServer::start_on(listen_in(&net), cache.path(), |c| {
        c.limit = 4;
        c.max_connections_per_client = None;
    });
    let port = server.addr.port();
    let users = ["127.0.0.1", "127.0.0.2"].map(|addr| (addr, Project::new()));
    let source = |i: usize| format!("{}int file_{i};\n", slow_cxx_source(4));
    let args =
        |i: usize| ["-O2", "-c", &format!("s{i}.cpp"), "-o", &format!("s{i}.o")].map(String::from);
    let (_, first) = &users[0];
    let local: Vec<Child> = (0..EACH)
        .map(|i| {
            first.write(&format!("s{i}.cpp"), &source(i));
            Command::new("g++")
                .args(args(i))
                .current_dir(first.path())
                .spawn()
                .unwrap()
        })
        .collect();
    assert!(wait_all(local).iter().all(|o| o.status.success()));
    let local: Vec<Vec<u8>> = (0..EACH)
        .map(|i| first.take(&[&format!("s{i}.o")]).remove(0).unwrap())
        .collect();

    // Both users start all their compiles at once, turn by turn.
    let mut children = Vec::new();
    for i in 0..EACH {
        for (addr, user) in &users {
            user.write(&format!("s{i}.cpp"), &source(i));
            let mut cmd = net.command(&bin("homcc"));
            isolate(&mut cmd, user.client_cache.path())
                .env("HOMCC_HOSTS", format!("{addr}:{port}/8"))
                .arg("g++")
                .args(args(i))
                .current_dir(user.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            children.push((*addr, i, cmd.spawn().unwrap()));
        }
    }
    for (addr, i, child) in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{addr} s{i}: {stderr}");
        assert_eq!(
            stderr, "",
            "{addr} s{i}: nothing but the compiler's (silent) stderr"
        );
        let user = &users.iter().find(|(a, _)| *a == addr).unwrap().1;
        let object = user.take(&[&format!("s{i}.o")]).remove(0);
        assert!(object.as_ref() == Some(&local[i]), "{addr} s{i}.o differs");
    }

    let records = compiles(&server, 2 * EACH);
    assert_eq!(records.len(), 2 * EACH, "every compile ran on the server");
    let peak = server.stats.peak_running();
    assert!((1..=4).contains(&peak), "{peak} compiles ran at once");
    // The order in which compiles took slots, by client address.
    let mut starts: Vec<_> = (records.iter())
        .map(|r| (r.started.unwrap(), r.peer.unwrap().ip()))
        .collect();
    starts.sort();
    let user_of = |(_, ip): &(_, IpAddr)| usize::from(ip.to_string() == users[1].0);
    let last_start = |user| starts.iter().rposition(|s| user_of(s) == user).unwrap();
    // Until one user has started its last compile, both were waiting.
    let both_waiting = &starts[..=last_start(0).min(last_start(1))];
    let shares = [0, 1].map(|user| both_waiting.iter().filter(|s| user_of(s) == user).count());
    let order: String = starts.iter().map(|s| ['a', 'b'][user_of(s)]).collect();
    for share in shares {
        assert!(
            3 * share >= both_waiting.len(),
            "shares {shares:?} of the {} starts while both waited; order {order}",
            both_waiting.len()
        );
    }
}

#[test]
fn a_compile_goes_to_a_free_host_at_once_not_into_a_full_ones_queue() {
    const COMPILES: usize = 5;
    // One slot, taken by another user's long compile; a queue it would take (it has a place).
    let full = TestServer::fresh(|c| c.limit = 1);
    let free = TestServer::fresh(|c| c.limit = 4);
    let stuck = Other::stuck(&full);
    let project = Project::new();
    let hosts = format!("{}/4 {}/4", full.host(), free.host());
    for i in 0..COMPILES {
        let (src, obj) = (format!("q{i}.c"), format!("q{i}.o"));
        project.write(
            &src,
            &format!("int quick_{i}(int x) {{ return x * {i}; }}\n"),
        );
        let args = ["-O2", "-c", src.as_str(), "-o", obj.as_str()];
        assert!(project.local("gcc", &args).status.success());
        let local = project.take(&[&obj]);
        // A compile stuck in the full host's queue would end in a local compile, with a line.
        let out = project
            .homcc_command(&["--compilation-request-timeout", "20"], "gcc", &args)
            .env("HOMCC_HOSTS", &hosts)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(homcc_lines(&out.stderr), Vec::<String>::new(), "q{i}");
        assert_eq!(project.take(&[&obj]), local, "q{i}.o");
    }
    assert_eq!(compiles(&free, COMPILES).len(), COMPILES);
    // The full host said so, and none of these compiles waited for its slot: the other user's
    // compile still has it.
    let asked = full.records();
    assert!(
        asked.iter().all(|r| r.outcome.starts_with("refused: busy")),
        "{asked:?}"
    );
    assert!(asked.len() <= COMPILES, "asked {} times", asked.len());
    assert_eq!(full.stats.running(), 1);
    drop(stuck);
}

#[test]
fn a_server_full_past_the_request_timeout_ends_in_one_line_naming_it() {
    // Its one slot runs another user's long compile; this compile waits in its queue.
    let server = TestServer::fresh(|c| {
        c.limit = 1;
        c.queue = Some(1);
    });
    let stuck = Other::stuck(&server);
    let project = Project::new();
    project.write("q.c", "int q(void) { return 1; }\n");
    let args = ["-c", "q.c", "-o", "q.o"];
    let local = project.local("gcc", &args);
    let local_object = project.take(&["q.o"]);
    let homcc_args = [
        "--host",
        &server.host(),
        "--compilation-request-timeout",
        "2",
    ];

    let out = project.homcc(&homcc_args, "gcc", &args);
    let lines = homcc_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(
        line.contains("compilation_request_timeout of 2 s")
            && line.ends_with("; compiling locally"),
        "{line}"
    );
    assert_eq!(out.status.code(), local.status.code());
    assert_eq!(project.take(&["q.o"]), local_object);

    let out = project
        .homcc_command(&homcc_args, "gcc", &args)
        .env("HOMCC_NO_LOCAL_COMPILATION", "1")
        .output()
        .unwrap();
    let lines = homcc_lines(&out.stderr);
    assert_eq!(out.status.code(), Some(100), "{lines:?}");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("compilation_request_timeout of 2 s"),
        "{}",
        lines[0]
    );
    assert_eq!(project.take(&["q.o"]), [None], "nothing compiled");
    assert_eq!(back_off_files(project.client_cache.path()), 0);
    assert_eq!(
        server.stats.running(),
        1,
        "the other user's compile kept its slot"
    );
    drop(stuck);
}

#[test]
fn a_queued_compile_hears_its_place_and_is_refused_as_busy_after_the_queue_timeout() {
    let server = TestServer::fresh(|c| {
        c.limit = 1;
        c.queue_timeout = Duration::from_secs(1);
    });
    let stuck = Other::stuck(&server);
    let project = Project::new();
    let runtime = raw::runtime();
    let request = raw::raw_request(project.path(), PROTOCOL_VERSION, raw::gxx_identity());
    let frames = runtime.block_on(async {
        let (mut conn, need) = raw::send_request(server.addr, request).await;
        assert!(matches!(need, ServerMessage::Need(_)), "{need:?}");
        let blob = Blob {
            digest: Digest::of(raw::HELD_SOURCE),
            payload: Payload::pack(Compression::None, raw::HELD_SOURCE),
        };
        conn.send(ClientMessage::Blob(blob)).await.unwrap();
        let mut frames = Vec::new();
        while let Some(frame) = conn.next().await {
            match frame.unwrap() {
                ServerMessage::Heartbeat => {}
                other => frames.push(other),
            }
        }
        frames
    });
    let [ServerMessage::Queued { position: 1 }, ServerMessage::Refused(refusal)] = &frames[..]
    else {
        panic!("expected Queued then Refused: {frames:?}")
    };
    assert_eq!(refusal.reason, RefusalReason::Busy);
    assert_eq!(
        refusal.detail,
        "busy: no compile slot freed within 1 s in the queue (queue_timeout)"
    );
    assert_eq!(server.stats.running(), 1);
    drop(stuck);
}

#[test]
fn a_queued_compile_runs_as_soon_as_the_slot_frees() {
    let server = TestServer::fresh(|c| c.limit = 1);
    // Another user's compile of a few seconds holds the only slot.
    let slow = Other::start(&server, &slow_cxx_source(120));
    let project = Project::new();
    project.write("q.c", "int q(int x) { return x + 1; }\n");
    let args = ["-O2", "-c", "q.c", "-o", "q.o"];
    assert!(project.local("gcc", &args).status.success());
    let local = project.take(&["q.o"]);

    let out = project.homcc(&["--verbose", "--host", &server.host()], "gcc", &args);
    let lines = homcc_lines(&out.stderr);
    assert!(out.status.success(), "{lines:?}");
    assert_eq!(lines.len(), 1, "the summary alone: {lines:?}");
    assert!(
        lines[0].contains(" (waited in its queue, place 1)") && lines[0].contains("exit 0"),
        "{}",
        lines[0]
    );
    assert_eq!(project.take(&["q.o"]), local);
    assert!(slow.finish());
    let records = compiles(&server, 2);
    let queued = records.iter().find(|r| r.output.ends_with("q.o")).unwrap();
    assert!(queued.queued_ms > 0, "{queued:?}");
    assert_eq!(server.stats.peak_running(), 1);
}

#[test]
fn with_localhost_listed_a_busy_server_leaves_the_compile_to_this_machine_at_once() {
    // Full: its one place is held by a raw client whose upload never comes, and no queue.
    let server = TestServer::fresh(|c| {
        c.limit = 1;
        c.queue = Some(0);
    });
    let project = Project::new();
    let runtime = raw::runtime();
    let holder = raw::hold_place(&runtime, server.addr, project.path());
    project.write("q.c", "int q(void) { return 2; }\n");
    let args = ["-c", "q.c", "-o", "q.o"];
    assert!(project.local("gcc", &args).status.success());
    let local = project.take(&["q.o"]);

    let out = project
        .homcc_command(&["--compilation-request-timeout", "60"], "gcc", &args)
        .env("HOMCC_HOSTS", format!("localhost/2 {}/4", server.host()))
        .output()
        .unwrap();
    assert!(out.status.success());
    // Quietly: no fallback line (which would come only after the 60 s).
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(project.take(&["q.o"]), local);
    let asked = server.wait_for_records(1);
    assert!(
        asked.iter().all(|r| r.outcome.starts_with("refused: busy")),
        "{asked:?}"
    );
    let _context = runtime.enter();
    drop(holder);
}
