//! Shared-secret authentication end to end: a homccd with a token compiles only for clients that
//! answer its challenge with the right proof; homcc without the token, or with another one,
//! compiles locally with one line saying why; raw clients that replay a proof or skip `Auth` are
//! refused before their request is read.

use std::{net::SocketAddr, path::PathBuf, process::Output, time::Duration};

use futures_util::{SinkExt, StreamExt};
use homcc_proto::{
    codec::DEFAULT_MAX_SERVER_FRAME, AuthToken, ClientCodec, ClientMessage, CompileRequest,
    Refusal, RefusalReason, ServerMessage, PROTOCOL_VERSION,
};
use homcc_tests::{
    assert_same_as_local, bin, homcc_lines,
    raw::{gxx_identity, raw_request, runtime},
    Daemon, Project, TestServer,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const TOKEN: &str = "s3cret";
const SOURCE: &str = "int main() { int unused; return 0; }\n";
const ARGS: &[&str] = &["-Wall", "-c", "quick.cpp", "-o", "quick.o"];
const OUTPUTS: &[&str] = &["quick.o"];
/// The detail of a refusal for a missing `Auth` frame (homcc-server's `auth::REQUIRED`).
const REQUIRED: &str =
    "this server requires authentication: set auth_token_file in [homcc] to the server's token";

fn token(text: &str) -> AuthToken {
    AuthToken::from_bytes(text.as_bytes()).unwrap()
}

/// A server whose token is [`TOKEN`].
fn guarded_server() -> TestServer {
    TestServer::fresh(|c| c.auth = Some(token(TOKEN)))
}

fn quick_project() -> Project {
    let project = Project::new();
    project.write("quick.cpp", SOURCE);
    project
}

/// Writes `content` to a token file beside the project's client cache; its path.
fn token_file(project: &Project, content: &str) -> PathBuf {
    let path = project.client_cache.path().join("token");
    std::fs::write(&path, content).unwrap();
    path
}

/// What a plain local compile printed, and its object.
fn local(project: &Project) -> (Output, Vec<Option<Vec<u8>>>) {
    project.take(OUTPUTS);
    let out = project.local("g++", ARGS);
    assert!(out.status.success(), "{out:?}");
    (out, project.take(OUTPUTS))
}

/// Asserts that homcc compiled locally, exactly as the plain compile, after one `homcc:` line
/// that mentions each of `mentions` and ends in `; compiling locally`.
fn assert_fell_back(project: &Project, homcc: &Output, mentions: &[&str]) {
    let written = project.take(OUTPUTS);
    let (local, objects) = local(project);
    assert_eq!(written, objects, "the object of a local compile");
    let stderr = String::from_utf8_lossy(&homcc.stderr);
    let lines = homcc_lines(&homcc.stderr);
    assert_eq!(lines.len(), 1, "one homcc: line, stderr:\n{stderr}");
    for m in mentions {
        assert!(
            lines[0].contains(m),
            "{:?} does not mention {m:?}",
            lines[0]
        );
    }
    assert!(lines[0].ends_with("; compiling locally"), "{}", lines[0]);
    let compiler_stderr = String::from_utf8_lossy(&local.stderr);
    assert_eq!(stderr, format!("{}\n{compiler_stderr}", lines[0]));
    assert_eq!(homcc.status.code(), Some(0));
}

/// Asserts that no connection the server recorded ran a compiler.
fn assert_nothing_compiled(server: &TestServer) {
    for record in server.records() {
        assert!(!record.outcome.starts_with("exit"), "{record:?}");
        assert_eq!(
            record.compiler, "",
            "the request was never read: {record:?}"
        );
    }
}

#[test]
fn the_right_token_compiles_remotely_as_a_local_compile_does() {
    let server = guarded_server();
    let project = quick_project();
    // From homcc.conf in the client's home (homcc's environment is cleared)...
    let file = token_file(&project, &format!("{TOKEN}\n"));
    let conf = project.client_cache.path().join(".homcc/homcc.conf");
    std::fs::create_dir_all(conf.parent().unwrap()).unwrap();
    let setting = format!("[homcc]\nauth_token_file = \"{}\"\n", file.display());
    std::fs::write(&conf, setting).unwrap();
    assert_same_as_local(&project, &server, "g++", ARGS, OUTPUTS);
    assert_eq!(server.latest().outcome, "exit 0");

    // ... and from the flag, with other whitespace around the same token.
    std::fs::remove_file(&conf).unwrap();
    let file = token_file(&project, &format!("\t {TOKEN} \r\n\n"));
    let (local, objects) = local(&project);
    let flag = ["--host", &server.host(), "--auth-token-file"];
    let out = project.homcc(
        &[&flag[..], &[file.to_str().unwrap()]].concat(),
        "g++",
        ARGS,
    );
    assert_eq!(homcc_lines(&out.stderr), Vec::<String>::new(), "{out:?}");
    assert_eq!((out.status.code(), &out.stderr), (Some(0), &local.stderr));
    assert_eq!(project.take(OUTPUTS), objects);
    let record = server.next_record();
    assert_eq!(record.outcome, "exit 0");
    assert!(record.compiler.starts_with("g++ "), "{record:?}");
}

#[test]
fn without_a_token_homcc_compiles_locally_and_says_the_host_wants_one() {
    let server = guarded_server();
    let project = quick_project();
    let out = project.homcc(&["--host", &server.host()], "g++", ARGS);
    assert_fell_back(
        &project,
        &out,
        &[&server.host(), "requires authentication", "auth_token_file"],
    );
    let record = server.next_record();
    assert_eq!(record.outcome, format!("refused: {REQUIRED}"));
    assert_nothing_compiled(&server);

    // The host's fault: this user's homcc processes skip it for a while, without asking.
    let out = project.homcc(&["--host", &server.host()], "g++", ARGS);
    assert_fell_back(
        &project,
        &out,
        &["skipped for", "after: requires authentication"],
    );
    assert_eq!(server.records().len(), 1, "not asked again");
}

#[test]
fn a_wrong_token_compiles_locally_and_the_server_refuses_it() {
    let server = guarded_server();
    let project = quick_project();
    let file = token_file(&project, "not the secret\n");
    let out = project.homcc(
        &[
            "--host",
            &server.host(),
            "--auth-token-file",
            file.to_str().unwrap(),
        ],
        "g++",
        ARGS,
    );
    assert_fell_back(
        &project,
        &out,
        &[&server.host(), "refused: authentication failed"],
    );
    let record = server.next_record();
    assert!(
        record
            .outcome
            .starts_with("refused: authentication failed: "),
        "{record:?}"
    );
    assert_nothing_compiled(&server);
}

#[test]
fn a_token_for_a_server_that_has_none_costs_the_connect_timeout() {
    let server = TestServer::fresh(|_| {});
    let project = quick_project();
    let file = token_file(&project, TOKEN);
    let out = project.homcc(
        &[
            "--host",
            &server.host(),
            "--auth-token-file",
            file.to_str().unwrap(),
            "--establish-connection-timeout",
            "0.5",
        ],
        "g++",
        ARGS,
    );
    assert_fell_back(
        &project,
        &out,
        &["establish_connection_timeout", "authentication challenge"],
    );
    assert_nothing_compiled(&server);
}

#[test]
fn an_unusable_token_file_is_a_bad_setting_on_both_sides() {
    let project = quick_project();
    let empty = token_file(&project, " \n");
    let empty = empty.to_str().unwrap();
    // homcc: a bad setting compiles locally, with the one line naming the file.
    let out = project.homcc(
        &["--host", "127.0.0.1:1", "--auth-token-file", empty],
        "g++",
        ARGS,
    );
    assert_fell_back(
        &project,
        &out,
        &["bad setting", empty, "the token is empty"],
    );
    // homccd does not start: one line, exit 2, as for any bad setting.
    let cache = tempfile::tempdir().unwrap();
    for (file, why) in [
        (empty, "the token is empty"),
        ("/nonexistent/t", "cannot read it"),
    ] {
        let out = std::process::Command::new(bin("homccd"))
            .args(["--no-config", "--listen", "127.0.0.1", "--port", "0"])
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["--auth-token-file", file])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        let want = format!("homccd: auth_token_file {file}: {why}");
        assert!(stderr.starts_with(&want), "{stderr}");
    }
}

#[test]
fn the_homccd_binary_takes_its_token_from_the_flag() {
    let project = quick_project();
    let server_token = project.client_cache.path().join("server-token");
    std::fs::write(&server_token, format!("{TOKEN}\n")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        cache.path(),
        &["--auth-token-file", server_token.to_str().unwrap()],
    );
    let out = project.homcc(&["--host", &daemon.host()], "g++", ARGS);
    assert_fell_back(&project, &out, &[&daemon.host(), "requires authentication"]);
    // A new client (no back-off state) with the token compiles there: no line of homcc's own.
    let project = quick_project();
    let file = token_file(&project, TOKEN);
    let (local, objects) = local(&project);
    let out = project.homcc(
        &[
            "--host",
            &daemon.host(),
            "--auth-token-file",
            file.to_str().unwrap(),
        ],
        "g++",
        ARGS,
    );
    assert_eq!((out.status.code(), &out.stderr), (Some(0), &local.stderr));
    assert_eq!(project.take(OUTPUTS), objects);
}

// --- Raw clients: what homcc never sends. ---

type Raw = Framed<TcpStream, ClientCodec>;

async fn connect(addr: SocketAddr) -> Raw {
    let stream = TcpStream::connect(addr).await.expect("connect to homccd");
    Framed::new(stream, ClientCodec::new(DEFAULT_MAX_SERVER_FRAME))
}

/// The server's next frame (60 s at most).
async fn next(conn: &mut Raw) -> ServerMessage {
    tokio::time::timeout(Duration::from_secs(60), conn.next())
        .await
        .expect("a frame in time")
        .expect("a frame before the connection closed")
        .expect("a frame that decodes")
}

/// The nonce of the challenge the server must open with.
async fn challenge(conn: &mut Raw) -> [u8; 32] {
    match next(conn).await {
        ServerMessage::Challenge { nonce } => nonce,
        other => panic!("expected a Challenge first, got {other:?}"),
    }
}

async fn send(conn: &mut Raw, message: ClientMessage) {
    conn.send(message).await.expect("send a frame");
}

fn compile(request: CompileRequest) -> ClientMessage {
    ClientMessage::Compile(Box::new(request))
}

/// Asserts that `message` is an `AuthFailed` refusal whose detail starts with `detail`.
fn assert_auth_failed(message: ServerMessage, detail: &str) {
    match message {
        ServerMessage::Refused(Refusal {
            reason: RefusalReason::AuthFailed,
            detail: got,
        }) => assert!(got.starts_with(detail), "{got}"),
        other => panic!("expected an AuthFailed refusal, got {other:?}"),
    }
}

#[test]
fn a_replayed_proof_is_refused() {
    let server = guarded_server();
    let project = Project::new();
    let request = || raw_request(project.path(), PROTOCOL_VERSION, gxx_identity());
    let rt = runtime();
    rt.block_on(async {
        // A client with the token: its proof of the first nonce opens the first connection.
        let mut first = connect(server.addr).await;
        let nonce = challenge(&mut first).await;
        let proof = token(TOKEN).proof(&nonce);
        send(&mut first, ClientMessage::Auth { proof }).await;
        send(&mut first, compile(request())).await;
        assert!(matches!(next(&mut first).await, ServerMessage::Need(_)));
        drop(first);

        // Someone who recorded that proof replays it on a connection of their own.
        let mut replay = connect(server.addr).await;
        let other_nonce = challenge(&mut replay).await;
        assert_ne!(other_nonce, nonce, "a fresh nonce per connection");
        send(&mut replay, ClientMessage::Auth { proof }).await;
        send(&mut replay, compile(request())).await;
        assert_auth_failed(next(&mut replay).await, "authentication failed: ");
    });
    let records = server.wait_for_records(2);
    let replayed = records
        .iter()
        .find(|r| r.outcome.starts_with("refused:"))
        .expect("the replay's record");
    assert!(
        replayed
            .outcome
            .starts_with("refused: authentication failed: "),
        "{replayed:?}"
    );
    assert_eq!(replayed.compiler, "", "its request was not read");
    assert!(records.iter().all(|r| !r.outcome.starts_with("exit")));
}

#[test]
fn a_request_without_auth_is_refused_before_it_is_read() {
    let server = guarded_server();
    let project = Project::new();
    // A request of over 1 MiB: the server reads its length header, not its body.
    let mut request = raw_request(project.path(), PROTOCOL_VERSION, gxx_identity());
    request
        .args
        .push(format!("-DBIG=\"{}\"", "x".repeat(1 << 20)).into());
    runtime().block_on(async {
        let mut conn = connect(server.addr).await;
        send(&mut conn, compile(request)).await;
        challenge(&mut conn).await;
        assert_auth_failed(next(&mut conn).await, REQUIRED);
    });
    let record = server.next_record();
    assert_eq!(record.outcome, format!("refused: {REQUIRED}"));
    assert_eq!(record.compiler, "", "the request was not read");
    assert!(record.bytes_in < 64 << 10, "read {} bytes", record.bytes_in);
}

#[test]
fn silence_after_the_challenge_is_refused_at_the_idle_timeout() {
    let server = TestServer::fresh(|c| {
        c.auth = Some(token(TOKEN));
        c.idle_timeout = Duration::from_secs(1);
    });
    runtime().block_on(async {
        let mut conn = connect(server.addr).await;
        challenge(&mut conn).await;
        assert_auth_failed(next(&mut conn).await, REQUIRED);
    });
    assert_eq!(server.next_record().outcome, format!("refused: {REQUIRED}"));
}

#[test]
fn a_server_without_a_token_sends_no_challenge_and_refuses_auth() {
    let server = TestServer::fresh(|_| {});
    let project = Project::new();
    runtime().block_on(async {
        // homcc's conversation, unchanged: the request first, and the first answer is Need.
        let mut conn = connect(server.addr).await;
        let request = raw_request(project.path(), PROTOCOL_VERSION, gxx_identity());
        send(&mut conn, compile(request)).await;
        assert!(matches!(next(&mut conn).await, ServerMessage::Need(_)));

        let mut conn = connect(server.addr).await;
        let proof = token(TOKEN).proof(&[0; 32]);
        send(&mut conn, ClientMessage::Auth { proof }).await;
        match next(&mut conn).await {
            ServerMessage::Refused(Refusal {
                reason: RefusalReason::InvalidRequest,
                detail,
            }) => assert!(detail.contains("must be a Compile request"), "{detail}"),
            other => panic!("expected an InvalidRequest refusal, got {other:?}"),
        }
    });
}
