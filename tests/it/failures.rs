//! What happens when a remote compile cannot run: every failure before the compiler's verdict
//! ends in a local compile with identical outputs and one `homcc:` line naming the host and the
//! reason; the server never leaves a compiler or a job root behind.

use std::{
    process::{Output, Stdio},
    time::Duration,
};

use homcc_client::compiler;
use homcc_proto::{Refusal, RefusalReason, ServerMessage, PROTOCOL_VERSION};
use homcc_tests::raw::{
    connect, gxx_identity, hold_place, raw_request, runtime, send_bytes, send_request,
};
use homcc_tests::{
    assert_same_as_local, back_off_files, homcc_lines, job_roots, os, processes_in,
    slow_cxx_source, stuck_cxx_source, wait_for, wait_for_no_process_in, wait_for_running_compile,
    Daemon, Project, TestServer,
};

/// A quick compile with a warning, so that the compiler's own stderr is not empty.
const QUICK_SOURCE: &str = "int main() { int unused; return 0; }\n";
const QUICK_ARGS: &[&str] = &["-Wall", "-c", "quick.cpp", "-o", "quick.o"];
const QUICK_OUTPUTS: &[&str] = &["quick.o"];

/// `slow_cxx_source(120)` takes g++ -O2 about 2.1 s on an idle 2-core machine.
const SLOW_FUNCTIONS: usize = 120;
const SLOW_ARGS: &[&str] = &["-O2", "-c", "slow.cpp", "-o", "slow.o"];
const SLOW_OUTPUTS: &[&str] = &["slow.o"];

/// How long a compile or a cleanup may take on a loaded machine.
const LIMIT: Duration = Duration::from_secs(60);
/// How long SIGKILLed compiler processes may take to disappear: far less than the second or more
/// that `slow.cpp` still needs one second into its compile.
const KILLED: Duration = Duration::from_millis(500);

/// How long a killed stuck compile may take to be gone, well below its natural 40 s.
const STUCK_KILLED: Duration = Duration::from_secs(10);

fn quick_project() -> Project {
    let project = Project::new();
    project.write("quick.cpp", QUICK_SOURCE);
    project
}

fn slow_project() -> Project {
    let project = Project::new();
    project.write("slow.cpp", &slow_cxx_source(SLOW_FUNCTIONS));
    project
}

/// What a plain local compile did.
struct Local {
    out: Output,
    files: Vec<Option<Vec<u8>>>,
}

/// Runs `compiler args` locally in the project and takes its outputs.
/// homcc compiling the slow source against `host`, in the background, its output captured.
fn spawn_slow_homcc(project: &Project, host: &str) -> std::process::Child {
    project
        .homcc_command(&["--host", host], "g++", SLOW_ARGS)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn compile_locally(project: &Project, compiler: &str, args: &[&str], outputs: &[&str]) -> Local {
    project.take(outputs);
    let out = project.local(compiler, args);
    assert!(
        out.status.success(),
        "local {compiler} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = project.take(outputs);
    assert!(
        files.iter().all(Option::is_some),
        "local {compiler} {args:?} wrote no {outputs:?}"
    );
    Local { out, files }
}

fn assert_same_files(project: &Project, local: &Local, outputs: &[&str]) {
    for (name, (l, r)) in outputs
        .iter()
        .zip(local.files.iter().zip(project.take(outputs)))
    {
        assert!(
            *l == r,
            "{name} differs (local {:?} bytes, homcc {:?} bytes)",
            l.as_ref().map(Vec::len),
            r.as_ref().map(Vec::len)
        );
    }
}

/// Asserts that homcc compiled locally, exactly as `local`, after one `homcc:` line that contains
/// every one of `mentions` and ends in `; compiling locally`. Returns that line.
/// homcc's quick compile on `server` alone, which stays full for its whole request timeout of
/// `seconds`: it compiles locally, saying each of `says`.
fn assert_stays_full(
    project: &Project,
    local: &Local,
    server: &TestServer,
    seconds: u32,
    says: &[&str],
) {
    let (host, timeout) = (server.host(), seconds.to_string());
    let homcc_args = ["--host", &host, "--compilation-request-timeout", &timeout];
    let out = project.homcc(&homcc_args, "g++", QUICK_ARGS);
    assert_fell_back(project, local, &out, QUICK_OUTPUTS, says);
}

fn assert_fell_back(
    project: &Project,
    local: &Local,
    homcc: &Output,
    outputs: &[&str],
    mentions: &[&str],
) -> String {
    let stderr = String::from_utf8_lossy(&homcc.stderr);
    let lines = homcc_lines(&homcc.stderr);
    assert_eq!(
        lines.len(),
        1,
        "expected one homcc: line, stderr:\n{stderr}"
    );
    let line = lines[0].clone();
    for m in mentions {
        assert!(line.contains(m), "{line:?} does not mention {m:?}");
    }
    assert!(line.ends_with("; compiling locally"), "{line:?}");
    assert_eq!(
        homcc.status.code(),
        local.out.status.code(),
        "stderr:\n{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&homcc.stdout),
        String::from_utf8_lossy(&local.out.stdout)
    );
    assert_eq!(
        stderr,
        format!("{line}\n{}", String::from_utf8_lossy(&local.out.stderr))
    );
    assert_same_files(project, local, outputs);
    line
}

/// Asserts that homcc compiled remotely (no line of its own) with the local compile's result.
fn assert_compiled_remotely(project: &Project, local: &Local, homcc: &Output, outputs: &[&str]) {
    let stderr = String::from_utf8_lossy(&homcc.stderr);
    assert_eq!(
        homcc_lines(&homcc.stderr),
        Vec::<String>::new(),
        "stderr:\n{stderr}"
    );
    assert_eq!(
        homcc.status.code(),
        local.out.status.code(),
        "stderr:\n{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&homcc.stdout),
        String::from_utf8_lossy(&local.out.stdout)
    );
    assert_eq!(stderr, String::from_utf8_lossy(&local.out.stderr));
    assert_same_files(project, local, outputs);
}

/// `127.0.0.1:PORT` with nothing listening (a port that was just free).
fn unreachable_host() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

// --- The tests. ---

#[test]
fn unreachable_host_compiles_locally() {
    let project = quick_project();
    let local = compile_locally(&project, "g++", QUICK_ARGS, QUICK_OUTPUTS);
    let host = unreachable_host();
    let out = project.homcc(&["--host", &host], "g++", QUICK_ARGS);
    assert_fell_back(
        &project,
        &local,
        &out,
        QUICK_OUTPUTS,
        &[&host, "unreachable"],
    );
}

#[test]
fn a_host_that_stays_busy_is_asked_again_then_left_without_back_off() {
    // One place and no queue: the raw holder, whose upload never comes, fills the server.
    let server = TestServer::fresh(|c| {
        c.limit = 1;
        c.queue = Some(0);
    });
    let project = quick_project();
    let local = compile_locally(&project, "g++", QUICK_ARGS, QUICK_OUTPUTS);
    let rt = runtime();
    let holder = hold_place(&rt, server.addr, project.path());

    let host = server.host();
    assert_stays_full(
        &project,
        &local,
        &server,
        2,
        &[
            "every host stayed full for compilation_request_timeout of 2 s",
            &format!("{host} busy: all 1 compile slots and the 0 places of the queue are taken"),
        ],
    );
    // The holder's session is still open, so every record is of the busy answers.
    let refused = server.wait_for_records(2);
    assert!(
        refused
            .iter()
            .all(|r| r.outcome.starts_with("refused: busy")),
        "{refused:?}"
    );
    assert_eq!(back_off_files(project.client_cache.path()), 0);

    // Once the holder goes away, the same user's next compile runs there at once: no back-off.
    {
        let _context = rt.enter();
        drop(holder);
    }
    wait_for("the server to drop the holder's session", LIMIT, || {
        server
            .records()
            .iter()
            .any(|r| r.outcome.starts_with("lost:"))
    });
    assert_same_as_local(&project, &server, "g++", QUICK_ARGS, QUICK_OUTPUTS);
}

/// The server refuses a frame it has no memory for now from its first bytes (busy) and then
/// reads it no faster than 1 MiB/s; homcc, which reads while it uploads, hears the refusal
/// mid-upload and asks again until its request timeout (once a second: each refusal waits a
/// second), then compiles locally, naming it. Before, it went on writing 20 MiB into a server
/// that was not reading and heard one refusal in 10 s. A frame larger than all the memory is
/// a limit: local at once.
#[test]
fn an_upload_the_server_has_no_memory_for_is_refused_mid_upload() {
    let server = TestServer::fresh(|c| c.max_frame_memory = 24 << 20);
    let project = Project::new();
    // 20 MiB of letters no compression shrinks below the server's 1 MiB, skipped by cc1.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut big = String::from("#if 0\n");
    for _ in 0..(20 << 20) / 101 {
        let line = (0..100).map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        });
        big.extend(line.chain(['\n']));
    }
    big.push_str("#endif\n");
    project.write("big.h", &big);
    project.write("quick.cpp", &format!("#include \"big.h\"\n{QUICK_SOURCE}"));
    let local = compile_locally(&project, "g++", QUICK_ARGS, QUICK_OUTPUTS);
    // Another client's half-sent 16 MiB frame holds 16 of the 24 MiB.
    let rt = runtime();
    let holder = rt.block_on(async {
        let mut conn = connect(server.addr).await;
        send_bytes(&mut conn, &(16u32 << 20).to_be_bytes())
            .await
            .unwrap();
        conn
    });
    assert_stays_full(
        &project,
        &local,
        &server,
        10,
        &[
            "every host stayed full",
            "does not fit now (max_frame_memory)",
        ],
    );
    let refused = (server.records().into_iter())
        .filter(|r| r.outcome.contains("(max_frame_memory)"))
        .count();
    assert!(refused >= 3, "{refused} refusals in 10 s");

    let small = TestServer::fresh(|c| c.max_frame_memory = 1 << 20);
    let host = small.host();
    let out = project.homcc(&["--host", &host], "g++", QUICK_ARGS);
    let beyond =
        "is more than the 1048576 bytes of memory for all frames being read (max_frame_memory)";
    assert_fell_back(&project, &local, &out, QUICK_OUTPUTS, &[&host, beyond]);
    let _context = rt.enter();
    drop(holder);
}

#[test]
fn compiler_mismatch_is_refused_and_compiles_locally() {
    let server = TestServer::fresh(|_| {});
    let project = quick_project();

    // The server side, with a version no compiler has.
    let mut identity = gxx_identity();
    identity.version = "0.0.0".into();
    let (_conn, reply) = runtime().block_on(send_request(
        server.addr,
        raw_request(project.path(), PROTOCOL_VERSION, identity),
    ));
    match reply {
        ServerMessage::Refused(Refusal {
            reason: RefusalReason::CompilerMismatch,
            detail,
        }) => {
            assert!(detail.contains("not available there"), "{detail}")
        }
        other => panic!("expected a CompilerMismatch refusal, got {other:?}"),
    }

    // The same gcc with another assembler (binutils) is another compiler: it writes the object.
    let mut identity = gxx_identity();
    assert!(
        identity.build.contains("; GNU assembler"),
        "{}",
        identity.build
    );
    identity.build = identity.build.replace("GNU assembler", "GNU assembler 0.1");
    let (_conn, reply) = runtime().block_on(send_request(
        server.addr,
        raw_request(project.path(), PROTOCOL_VERSION, identity),
    ));
    match reply {
        ServerMessage::Refused(Refusal {
            reason: RefusalReason::CompilerMismatch,
            detail,
        }) => assert!(detail.contains("built differently there"), "{detail}"),
        other => panic!("expected a CompilerMismatch refusal, got {other:?}"),
    }

    // Through homcc: a compiler name the client has (a link to g++) and the server's PATH lacks.
    let bin = tempfile::tempdir().unwrap();
    let linked = bin.path().join("homcc-test-g++");
    std::os::unix::fs::symlink(compiler::resolve(os("g++")).unwrap(), &linked).unwrap();
    let linked = linked.to_str().unwrap();
    let local = compile_locally(&project, linked, QUICK_ARGS, QUICK_OUTPUTS);
    let out = project.homcc(&["--host", &server.host()], linked, QUICK_ARGS);
    assert_fell_back(
        &project,
        &local,
        &out,
        QUICK_OUTPUTS,
        &[&server.host(), "homcc-test-g++", "not available there"],
    );
}

#[test]
fn wrong_protocol_version_is_refused() {
    let server = TestServer::fresh(|_| {});
    let project = Project::new();
    let (_conn, reply) = runtime().block_on(send_request(
        server.addr,
        raw_request(project.path(), 999, gxx_identity()),
    ));
    match reply {
        ServerMessage::Refused(Refusal {
            reason: RefusalReason::Version {
                server: PROTOCOL_VERSION,
            },
            detail,
        }) => {
            assert!(detail.contains("999"), "{detail}")
        }
        other => panic!("expected a Version refusal, got {other:?}"),
    }
}

#[test]
fn killed_server_mid_compile_compiles_locally() {
    let cache = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(cache.path(), &[]);
    let project = slow_project();
    let local = compile_locally(&project, "g++", SLOW_ARGS, SLOW_OUTPUTS);

    let homcc = spawn_slow_homcc(&project, &daemon.host());
    wait_for_running_compile(cache.path());
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    let out = homcc.wait_with_output().unwrap();
    assert_fell_back(
        &project,
        &local,
        &out,
        SLOW_OUTPUTS,
        &[&daemon.host(), "connection lost"],
    );

    // The killed daemon's compiler (its own process group) runs on to its end: let it finish
    // before the cache dir goes.
    wait_for_no_process_in(cache.path(), LIMIT);
}

#[test]
fn compile_time_limit_kills_and_compiles_locally() {
    let cache = tempfile::tempdir().unwrap();
    let server = TestServer::start(cache.path(), |c| c.compile_timeout = Duration::from_secs(1));
    let project = slow_project();
    let local = compile_locally(&project, "g++", SLOW_ARGS, SLOW_OUTPUTS);

    let homcc = spawn_slow_homcc(&project, &server.host());
    wait_for_running_compile(cache.path());
    // At the limit the server kills the compiler's process group, then removes the job root; a
    // compiler left alive would run on for another second or more.
    wait_for("the job root to be removed", LIMIT, || {
        job_roots(cache.path()) == 0
    });
    wait_for_no_process_in(cache.path(), KILLED);

    let out = homcc.wait_with_output().unwrap();
    assert_fell_back(
        &project,
        &local,
        &out,
        SLOW_OUTPUTS,
        &[&server.host(), "time limit"],
    );
    let record = server.next_record();
    assert!(
        record.outcome.starts_with("refused:") && record.outcome.contains("time limit"),
        "server: {}",
        record.outcome
    );
}

#[test]
fn client_disconnect_kills_the_compile() {
    let cache = tempfile::tempdir().unwrap();
    let server = TestServer::start(cache.path(), |_| {});
    let project = Project::new();
    project.write("stuck.cpp", &stuck_cxx_source());

    let mut homcc = project
        .homcc_command(
            &["--host", &server.host()],
            "g++",
            &["-c", "stuck.cpp", "-o", "stuck.o"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_running_compile(cache.path());
    assert!(
        !processes_in(cache.path()).is_empty(),
        "no compiler runs in the cache dir"
    );
    homcc.kill().unwrap();
    homcc.wait().unwrap();

    // Well before the compile could end on its own.
    wait_for("the job root to be removed", STUCK_KILLED, || {
        job_roots(cache.path()) == 0
    });
    wait_for_no_process_in(cache.path(), STUCK_KILLED);
    wait_for("the server to record the session", LIMIT, || {
        !server.records().is_empty()
    });
    let record = server.next_record();
    assert!(
        record.outcome.starts_with("lost:"),
        "server: {}",
        record.outcome
    );
}

#[test]
fn no_local_compilation_fails_with_the_reason() {
    let project = quick_project();
    let host = unreachable_host();
    let by_flag = project.homcc(
        &["--host", &host, "--no-local-compilation"],
        "g++",
        QUICK_ARGS,
    );
    let by_env = project
        .homcc_command(&["--host", &host], "g++", QUICK_ARGS)
        .env("HOMCC_NO_LOCAL_COMPILATION", "1")
        .output()
        .unwrap();
    for (how, out) in [("flag", by_flag), ("environment", by_env)] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(100), "{how}: stderr:\n{stderr}");
        let lines = homcc_lines(&out.stderr);
        assert_eq!(lines.len(), 1, "{how}: stderr:\n{stderr}");
        let line = &lines[0];
        assert!(
            line.contains(&host) && line.contains("not compiling locally"),
            "{how}: {line:?}"
        );
        assert_eq!(stderr, format!("{line}\n"), "{how}");
        assert!(
            out.stdout.is_empty(),
            "{how}: stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            !project.path().join("quick.o").exists(),
            "{how}: an object file was written"
        );
    }
}

#[test]
fn no_hosts_compiles_locally() {
    let project = quick_project();
    let local = compile_locally(&project, "g++", QUICK_ARGS, QUICK_OUTPUTS);
    let out = project.homcc(&[], "g++", QUICK_ARGS);
    assert_fell_back(&project, &local, &out, QUICK_OUTPUTS, &["no build hosts"]);
}

#[test]
fn graceful_shutdown_lets_running_compiles_finish() {
    let cache = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(cache.path(), &[]);
    let project = slow_project();
    let local = compile_locally(&project, "g++", SLOW_ARGS, SLOW_OUTPUTS);

    let homcc = spawn_slow_homcc(&project, &daemon.host());
    wait_for_running_compile(cache.path());
    let pid = libc::pid_t::try_from(daemon.child.id()).unwrap();
    // SAFETY: kill(2) on the daemon this test started; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = homcc.wait_with_output().unwrap();
    assert_compiled_remotely(&project, &local, &out, SLOW_OUTPUTS);
    let status = daemon.child.wait().unwrap();
    assert!(status.success(), "homccd after SIGTERM: {status}");
}
