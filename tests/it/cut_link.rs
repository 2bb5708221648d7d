//! A network link that goes away in the middle of a remote compile: homcc runs in one network
//! namespace and homccd in another, joined by a veth pair that the test takes down (`ip link set
//! veth-c down`, a pulled cable: neither end is told) during the upload, during the compile, or
//! during the result's download. The compile ends correctly within homcc's heartbeat timeout (30
//! s): locally, identical to a local compile, with one line. homccd notices within its idle
//! timeout (2 s here): it kills the compiler and deletes the job root. Once the link is back, it
//! serves the client again. Needs root and iproute2 (`ip netns`, `tc`, `ss`), as CI has.

use std::{
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use homcc_tests::{
    bin, homcc_lines, incompressible_source, isolate, job_roots,
    netns::{listen_in, Link, LINK_SERVER},
    spinning_cxx_source, wait_for, wait_for_no_process_in, wait_for_running_compile, Project,
    TestServer,
};

/// homccd's idle timeout, and so the time it gives an unacknowledged send (TCP_USER_TIMEOUT).
const IDLE: Duration = Duration::from_secs(2);
/// homcc's fixed heartbeat timeout, plus the local compile and a loaded machine's slack.
const CLIENT_ENDS: Duration = Duration::from_secs(30 + 40);
/// How long homccd may take to free the job after the cut: the idle timeout, a heartbeat, and
/// the slack of a loaded machine.
const SERVER_FREES: Duration = Duration::from_secs(20);

/// homccd in the server namespace of `link`, and what a client needs to reach it.
struct Setup {
    link: Link,
    cache: tempfile::TempDir,
    server: TestServer,
    host: String,
    project: Project,
}

impl Setup {
    fn new(purpose: &str, to_server: Option<&str>, to_client: Option<&str>) -> Setup {
        let link = Link::new(purpose, to_server, to_client);
        let cache = tempfile::tempdir().unwrap();
        let server = TestServer::start_on(listen_in(&link.server), cache.path(), |c| {
            c.idle_timeout = IDLE;
            c.heartbeat_interval = Duration::from_millis(500);
            c.result_cache = false;
        });
        let host = format!("{LINK_SERVER}:{}", server.addr.port());
        Setup {
            link,
            cache,
            server,
            host,
            project: Project::new(),
        }
    }

    /// homcc compiling `args` with gcc from the client namespace, with the client state in
    /// `client`, its output captured.
    fn spawn_homcc(&self, client: &std::path::Path, compiler: &str, args: &[&str]) -> Child {
        let mut cmd = self.link.client.command(&bin("homcc"));
        isolate(&mut cmd, client)
            // Uncompressed: the time goes to the link, not to LZO in a debug build.
            .args(["--compression", "none", "--host", &self.host, compiler])
            .args(args)
            .current_dir(self.project.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Compiles `args` locally for the reference object, then through homcc; once `underway`
    /// holds, cuts the link. Asserts that homcc ends in time with the local object and one line,
    /// and that homccd frees the job; then mends the link and asserts that the next compile
    /// runs remotely again.
    fn cut_when(
        &self,
        compiler: &str,
        args: &[&str],
        object: &str,
        underway: impl FnMut() -> bool,
    ) {
        let dir = self.project.path();
        let local = self.project.local_output(dir, &[], compiler, args, object);
        let client = tempfile::tempdir().unwrap();
        let homcc = self.spawn_homcc(client.path(), compiler, args);
        wait_for(
            "the phase to cut the link in",
            Duration::from_secs(60),
            underway,
        );
        self.link.cut();
        let cut = Instant::now();

        wait_for("homccd to free the job", SERVER_FREES, || {
            job_roots(self.cache.path()) == 0
        });
        wait_for_no_process_in(self.cache.path(), SERVER_FREES);
        let out = homcc.wait_with_output().unwrap();
        assert!(
            cut.elapsed() < CLIENT_ENDS,
            "homcc took {:?} after the cut",
            cut.elapsed()
        );
        let lines = homcc_lines(&out.stderr);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            lines.len() == 1 && lines[0].ends_with("; compiling locally"),
            "{lines:?}"
        );
        assert!(
            self.project.take(&[object])[0] == Some(local.clone()),
            "{object} differs"
        );
        let refused = self.server.records().len();

        self.link.mend();
        let fresh = tempfile::tempdir().unwrap();
        let out = self
            .spawn_homcc(fresh.path(), compiler, args)
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success() && homcc_lines(&out.stderr).is_empty(),
            "after mending: {out:?}"
        );
        assert!(
            self.project.take(&[object])[0] == Some(local),
            "{object} differs after mending"
        );
        self.server.wait_for_records(refused + 1);
    }
}

#[test]
fn a_link_cut_during_the_upload() {
    // 4 MB that LZO cannot shrink, at 4 Mbit/s: an upload of about 8 s.
    let setup = Setup::new("cut-up", Some("4mbit"), None);
    setup
        .project
        .write("big.c", &incompressible_source(4 << 20));
    let client = &setup.link.client;
    setup.cut_when(
        "gcc",
        &["-O0", "-c", "big.c", "-o", "big.o"],
        "big.o",
        || Link::send_queue(client) > 256 << 10,
    );
}

#[test]
fn a_link_cut_during_the_compile() {
    // About 6 s of constant evaluation: the compile outlasts homccd's 2 s to notice.
    let setup = Setup::new("cut-cc", None, None);
    setup.project.write("spin.cpp", &spinning_cxx_source(5));
    let cache = setup.cache.path().to_owned();
    setup.cut_when("g++", &["-c", "spin.cpp", "-o", "spin.o"], "spin.o", || {
        wait_for_running_compile(&cache);
        true
    });
}

#[test]
fn a_link_cut_during_the_download() {
    // An object of about 1.4 MB of random data, at 4 Mbit/s back to the client: about 3 s.
    let setup = Setup::new("cut-dn", None, Some("4mbit"));
    setup
        .project
        .write("big.c", &incompressible_source(4 << 20));
    let server = &setup.link.server;
    setup.cut_when(
        "gcc",
        &["-O0", "-c", "big.c", "-o", "big.o"],
        "big.o",
        || Link::send_queue(server) > 256 << 10,
    );
}
