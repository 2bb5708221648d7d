//! homcc over a thin link: homccd and homcc run in a network namespace of this test's own whose
//! loopback is limited to 8 Mbit/s, and homccd drops a client after 1 s of silence. A cold
//! compile whose upload takes several seconds still runs remotely: timeouts measure silence, not
//! the size of a frame. Needs root and iproute2 (`ip netns`, `tc`), as CI has.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Stdio},
};

use homcc_tests::{bin, homcc_lines, incompressible_source, isolate, netns::NetNs, Project};

/// A network namespace whose loopback is limited to `rate`.
fn thin_net(rate: &str) -> NetNs {
    // tbf drops packets larger than its burst: the MTU keeps them smaller.
    let net = NetNs::new("thin", 1500);
    net.exec_ok(&[
        "tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", rate, "burst", "16kb", "latency",
        "200ms",
    ]);
    net
}

#[test]
fn a_slow_upload_is_not_an_idle_client() {
    let net = thin_net("8mbit");
    let cache = tempfile::tempdir().unwrap();
    let mut daemon: Child = net
        .command(&bin("homccd"))
        .args([
            "--listen",
            "127.0.0.1",
            "--port",
            "0",
            "--idle-timeout",
            "1",
            "--cache-dir",
        ])
        .arg(cache.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(daemon.stderr.take().unwrap()).lines();
    let host = loop {
        let line = log.next().expect("homccd exited before listening").unwrap();
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_owned();
        }
    };
    std::thread::spawn(move || log.for_each(drop));

    let project = Project::new();
    project.write("big.c", &incompressible_source(4 << 20));
    let args = ["-O0", "-c", "big.c", "-o", "big.o"];
    let local = project.local("gcc", &args);
    assert!(local.status.success());
    let local_object = project.take(&["big.o"]);

    let mut homcc = net.command(&bin("homcc"));
    let out = isolate(&mut homcc, project.client_cache.path())
        // Uncompressed, so that the time goes to the link, not to LZO in a debug build.
        .args(["--verbose", "--compression", "none", "--host", &host, "gcc"])
        .args(args)
        .current_dir(project.path())
        .output()
        .unwrap();
    let _ = daemon.kill();
    let _ = daemon.wait();
    let lines = homcc_lines(&out.stderr);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lines.len(),
        1,
        "only the verbose summary, no fallback: {lines:?}"
    );
    assert!(!lines[0].contains("compiling locally"), "{}", lines[0]);
    let remote_ms: u64 = lines[0]
        .split("remote ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        remote_ms > 2500,
        "the link was meant to be slow: {}",
        lines[0]
    );
    assert_eq!(
        project.take(&["big.o"]),
        local_object,
        "object differs from the local one"
    );
}
