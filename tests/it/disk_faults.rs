//! Faults of the disk: homccd's disk full during a build, the client's disk full when the
//! outputs come back, and a cached file damaged on disk while homccd runs and across a restart.
//! Every compile still ends as a local one would, and the cache never holds or hands out a file
//! that is not what its name says. The full disks are tmpfs mounts of the test's own (root, as
//! CI has).

use std::{
    path::Path,
    process::{Command, Output},
    time::Duration,
};

use homcc_proto::Digest;
use homcc_tests::{
    assert_same_as_local, disk::Tmpfs, homcc_lines, isolate, job_roots, wait_for, Project,
    TestServer,
};

/// A header of about `bytes` bytes that is mostly comments: its own file for `n` (so its own
/// blob), quick to preprocess, and small on the wire (LZO shrinks the repeated text).
fn comment_header(n: usize, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 100);
    let mut line = 0;
    while s.len() < bytes {
        s.push_str(&format!(
            "/* header {n}, line {line}: text that only takes room on the server's disk */\n"
        ));
        line += 1;
    }
    s.push_str(&format!("static const int header_{n} = {n};\n"));
    s
}

/// Writes `s<n>.c`, which includes `big<n>.h` of `bytes`.
fn write_unit(project: &Project, n: usize, bytes: usize) {
    project.write(&format!("big{n}.h"), &comment_header(n, bytes));
    project.write(
        &format!("s{n}.c"),
        &format!("#include \"big{n}.h\"\nint value_{n}(void) {{ return header_{n}; }}\n"),
    );
}

/// Compiles `source` to `object` in `project` locally, then through homcc against `host` with
/// the client state in `client` (fresh state: no back-off from earlier compiles); asserts both
/// succeed with the same object, and returns homcc's own stderr lines.
fn compile_both(
    project: &Project,
    host: &str,
    client: &Path,
    source: &str,
    object: &str,
) -> Vec<String> {
    let args = ["-O2", "-c", source, "-o", object];
    let local = project.local_output(project.path(), &[], "gcc", &args, object);
    let mut cmd = Command::new(homcc_tests::bin("homcc"));
    cmd.args(["--host", host, "gcc"])
        .args(args)
        .current_dir(project.path());
    let out = isolate(&mut cmd, client).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "homcc gcc {args:?}: {stderr}");
    let remote = project.take(&[object]).remove(0);
    assert!(
        remote == Some(local),
        "{object} differs from the local compile's"
    );
    homcc_lines(&out.stderr)
}

/// Every file in the cache is whole: each blob hashes to its name, and no temporary file is
/// left in its `tmp` directory.
fn assert_cache_whole(cache: &Path) {
    let blobs = cache.join("blobs-v1");
    let tmp: Vec<_> = std::fs::read_dir(blobs.join("tmp"))
        .unwrap()
        .flatten()
        .collect();
    assert!(tmp.is_empty(), "temporary files left in the cache: {tmp:?}");
    for shard in std::fs::read_dir(&blobs).unwrap().flatten() {
        if shard.file_name() == "tmp" {
            continue;
        }
        for blob in std::fs::read_dir(shard.path()).unwrap().flatten() {
            let digest = Digest::of_file(&blob.path()).unwrap();
            assert_eq!(
                digest.to_hex(),
                blob.file_name().to_string_lossy(),
                "a partial or damaged blob is stored"
            );
        }
    }
}

/// homccd's cache and job roots on a 24 MB filesystem, its cache allowed 1 GB. A build whose
/// headers (36 MB) do not fit compiles remotely throughout: a store that finds the disk full
/// evicts and tries again. With the disk filled by something else, a compile whose object does
/// not fit and one whose header never could are refused as `DiskFull` and compile locally with
/// one line each, while homccd keeps serving; once space returns, compiles run remotely again,
/// with no restart.
#[test]
fn a_full_disk_on_the_server_evicts_or_refuses_and_recovers() {
    let disk = Tmpfs::new("24m");
    let cache = disk.path().join("cache");
    let server = TestServer::start(&cache, |c| {
        c.max_cache_bytes = 1 << 30;
        c.result_cache = false;
    });
    let host = server.host();
    let project = Project::new();
    let client = tempfile::tempdir().unwrap();
    const UNITS: usize = 12;
    for n in 0..UNITS {
        write_unit(&project, n, 3 << 20);
    }
    for n in 0..UNITS {
        let lines = compile_both(
            &project,
            &host,
            client.path(),
            &format!("s{n}.c"),
            &format!("s{n}.o"),
        );
        assert!(
            lines.is_empty(),
            "s{n}.c did not compile remotely: {lines:?}"
        );
    }
    server.wait_for_records(UNITS);
    assert_cache_whole(&cache);

    // Filled by another program: the next object (4 MB) cannot be written, nor can a header
    // larger than the whole filesystem ever be stored.
    disk.fill();
    project.write("data.c", "char data[4 << 20] = {1};\n");
    write_unit(&project, 99, 30 << 20);
    for (k, (source, object)) in [("data.c", "data.o"), ("s99.c", "s99.o")]
        .into_iter()
        .enumerate()
    {
        let fresh = tempfile::tempdir().unwrap();
        let lines = compile_both(&project, &host, fresh.path(), source, object);
        assert!(
            lines.len() == 1
                && lines[0].contains("disk is full")
                && lines[0].ends_with("compiling locally"),
            "{source}: {lines:?}"
        );
        let records = server.wait_for_records(UNITS + k + 1);
        let outcome = &records.last().unwrap().outcome;
        assert!(
            outcome.contains("disk is full"),
            "{source}: homccd recorded {outcome}"
        );
    }
    // A compile that fails on its own while the disk is full: whatever the language of its
    // message, homccd cannot tell it from one that ran out of space, and the client compiles
    // locally, where the compiler gives its own verdict.
    project.write("bad.c", "int x = ;\n");
    // Nearly full again (homccd has made room since): 256 KB left, room for the upload.
    let filler = disk.fill();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    file.set_len(file.metadata().unwrap().len() - (256 << 10))
        .unwrap();
    drop(file); // an open file keeps its space after it is removed
    let args = ["-c", "bad.c", "-o", "bad.o"];
    let local = project.local("gcc", &args);
    let fresh = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(homcc_tests::bin("homcc"));
    cmd.args(["--host", &host, "gcc"])
        .args(args)
        .current_dir(project.path());
    let out = isolate(&mut cmd, fresh.path()).output().unwrap();
    let lines = homcc_lines(&out.stderr);
    assert_eq!(out.status.code(), local.status.code());
    assert!(
        lines.len() == 1 && lines[0].contains("disk is full: the compiler could not write"),
        "{lines:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected expression"));
    assert_cache_whole(&cache);
    // The refused compiles' roots (the first took the root kept from the last compile) are gone.
    wait_for(
        "the refused jobs' roots to go",
        Duration::from_secs(10),
        || job_roots(&cache) == 0,
    );

    std::fs::remove_file(&filler).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let lines = compile_both(&project, &host, fresh.path(), "data.c", "data.o");
    assert!(lines.is_empty(), "after space returned: {lines:?}");
    let lines = compile_both(&project, &host, fresh.path(), "s0.c", "s0.o");
    assert!(lines.is_empty(), "after space returned: {lines:?}");
    assert_cache_whole(&cache);
}

/// The client's output directory on a full 1 MB filesystem: the remote object cannot be
/// written. homcc fails as the compiler does into a full disk (exit 1, one line naming the file
/// and the reason), and leaves nothing at the output path, nor a temporary file beside it.
#[test]
fn a_full_disk_on_the_client_fails_as_the_compiler_does() {
    let server = TestServer::fresh(|_| {});
    let project = Project::new();
    project.write("data.c", "char data[512 << 10] = {1};\n");
    let disk = Tmpfs::new("1m");
    disk.fill();
    let object = disk.path().join("data.o");
    let object = object.to_str().unwrap();
    let args = ["-c", "data.c", "-o", object];

    let local: Output = project.local("gcc", &args);
    assert_eq!(local.status.code(), Some(1), "gcc into a full disk");
    assert!(!Path::new(object).exists());

    let out = project.homcc(&["--host", &server.host()], "gcc", &args);
    let lines = homcc_lines(&out.stderr);
    assert_eq!(out.status.code(), local.status.code(), "{lines:?}");
    assert!(
        lines.len() == 1
            && lines[0].starts_with("homcc: error: cannot write ")
            && lines[0].contains(object)
            && lines[0].contains("No space left on device"),
        "{lines:?}"
    );
    server.wait_for_records(1);
    let left: Vec<_> = std::fs::read_dir(disk.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|name| name != "filler")
        .collect();
    assert!(left.is_empty(), "left in the output directory: {left:?}");
}

/// The path of the cached file of `content` in the cache at `cache`.
fn blob_of(cache: &Path, content: &str) -> std::path::PathBuf {
    let hex = Digest::of(content.as_bytes()).to_hex();
    cache.join("blobs-v1").join(&hex[..2]).join(hex)
}

/// A cached header overwritten in place while homccd runs, and another truncated while it is
/// stopped: the next compile that needs each is identical to the local one (the damaged file is
/// found by its hash, dropped and uploaded again), and the cache holds the right content again.
#[test]
fn a_damaged_cache_file_is_never_used_and_is_replaced() {
    let cache = tempfile::tempdir().unwrap();
    let project = Project::new();
    let (a, b) = (comment_header(1, 20_000), comment_header(2, 30_000));
    project.write("a.h", &a).write("b.h", &b);
    project.write(
        "main.c",
        "#include \"a.h\"\n#include \"b.h\"\nint main(void) { return header_1 + header_2; }\n",
    );
    let args = ["-O2", "-c", "main.c", "-o", "main.o"];
    let outputs = ["main.o"];
    let no_results = |c: &mut homcc_server::Settings| c.result_cache = false;

    let server = TestServer::start(cache.path(), no_results);
    assert_same_as_local(&project, &server, "gcc", &args, &outputs);
    let (a_blob, b_blob) = (blob_of(cache.path(), &a), blob_of(cache.path(), &b));
    assert_eq!(std::fs::read_to_string(&a_blob).unwrap(), a);

    // Same size, other bytes, written in place: the inode that the kept job root links too.
    let mut damaged = a.clone().into_bytes();
    damaged[..8].copy_from_slice(b"#error !");
    write_in_place(&a_blob, &damaged);
    assert_same_as_local(&project, &server, "gcc", &args, &outputs);
    assert_eq!(
        server.latest().blobs_in,
        1,
        "the damaged header was uploaded again"
    );
    assert_eq!(std::fs::read_to_string(&a_blob).unwrap(), a);

    server.stop();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&b_blob)
        .unwrap();
    file.set_len(b.len() as u64 / 2).unwrap();
    drop(file);
    let server = TestServer::start(cache.path(), no_results);
    assert_same_as_local(&project, &server, "gcc", &args, &outputs);
    assert_eq!(
        server.latest().blobs_in,
        1,
        "the truncated header was uploaded again"
    );
    assert_eq!(std::fs::read_to_string(&b_blob).unwrap(), b);
    assert!(
        job_roots(cache.path()) <= 1,
        "only the root kept for the client's next compile"
    );
}

/// Overwrites the start of the (read-only) file at `path` with `bytes`, keeping its inode.
fn write_in_place(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}
