//! homccd's result cache through homcc (issue 16): a rebuild is answered from the records with
//! nothing uploaded; each input of a compile, changed alone, misses and compiles the changed
//! tree correctly; the time macros are not cached unless SOURCE_DATE_EPOCH fixes them; equal
//! compiles at once run once; and `verify_results` catches a record that was tampered with.

use std::path::Path;

use homcc_server::server::Record;
use homcc_tests::{bin, homcc_lines, slow_cxx_source, wait_for, Project, TestServer};

use crate::load::{c_project, make};

/// The records of compiles (not refusals), once there are `count`.
fn compiles(server: &TestServer, count: usize) -> Vec<Record> {
    let ran = || {
        (server.records().into_iter())
            .filter(|r| r.outcome.starts_with("exit "))
            .collect::<Vec<_>>()
    };
    wait_for(
        &format!("{count} compiles recorded"),
        std::time::Duration::from_secs(30),
        || ran().len() >= count,
    );
    ran()
}

#[test]
fn a_rebuild_after_make_clean_is_answered_from_the_records_with_nothing_uploaded() {
    const FILES: usize = 40;
    let server = TestServer::fresh(|c| c.limit = 4);
    let project = Project::new();
    c_project(&project, FILES);
    // With dependency files, as real builds have: the first build's compiles are listed by the
    // include closure (the server writes each .d), the rebuild's by the scan cache (homcc
    // writes it): the two forms share a record.
    project.write(
        "Makefile",
        "OBJS := $(patsubst src/%.c,obj/%.o,$(wildcard src/*.c))\nall: $(OBJS)\n\
         obj/%.o: src/%.c include/common.h\n\t@mkdir -p obj\n\t$(CC) -O2 -Wall -MMD -MP -Iinclude -c $< -o $@\n",
    );
    let (local_stderr, local_objects) = make(&project, "gcc", &[]);
    assert_eq!(
        local_objects.len(),
        2 * FILES,
        "objects and dependency files"
    );
    let cc = format!("{} gcc", bin("homcc").display());
    let hosts = format!("{}/4", server.host());
    for build in 0..2 {
        // `make` starts from an empty obj/: a `make clean` before each build.
        let (stderr, objects) = make(&project, &cc, &[("HOMCC_HOSTS", &hosts)]);
        assert_eq!(
            stderr, local_stderr,
            "build {build}: the compiler's stderr alone"
        );
        assert!(
            objects == local_objects,
            "build {build}: objects differ from local"
        );
    }
    let records = compiles(&server, 2 * FILES);
    let (first, second) = records.split_at(FILES);
    assert!(first.iter().all(|r| !r.cached), "the first build compiles");
    assert!(
        second
            .iter()
            .all(|r| r.cached && r.blobs_in == 0 && r.chunks_in == 0),
        "every compile of the rebuild is a cached result with nothing uploaded: {:?}",
        second
            .iter()
            .map(|r| (r.cached, r.blobs_in))
            .collect::<Vec<_>>()
    );
}

/// A compile through homcc with `--verbose`, which must succeed: its summary line and `t.o`.
fn through_homcc(
    p: &Project,
    server: &TestServer,
    env: &[(&str, &str)],
    args: &[&str],
) -> (String, Vec<u8>) {
    let mut cmd = p.homcc_command(&["--verbose", "--host", &server.host()], "gcc", args);
    cmd.env("HOMCC_NO_LOCAL_COMPILATION", "1")
        .envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = homcc_lines(&out.stderr);
    let summary = lines.last().cloned().unwrap_or_default();
    (summary, p.take(&["t.o"]).remove(0).expect("t.o"))
}

fn local(p: &Project, cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Vec<u8> {
    p.local_output(cwd, env, "gcc", args, "t.o")
}

#[test]
fn each_input_changed_alone_misses_and_compiles_the_changed_compile() {
    let server = TestServer::fresh(|_| ());
    let p = Project::new();
    p.write("a/h.h", "#define WHICH 1\n")
        .write("b/h.h", "#define WHICH 2\n")
        .write("inc/v.h", "static const int version = 1;\n")
        .write(
            "t.c",
            "#include \"h.h\"\n#include \"v.h\"\nint which(void) { return WHICH * V + version; }\n",
        );
    let args = [
        "-O2", "-Ia", "-Ib", "-Iinc", "-DV=3", "-c", "t.c", "-o", "t.o",
    ];
    let cached = |summary: &str| summary.contains("(cached result)");
    let check = |args: &[&str], want_cached: bool, what: &str| {
        let (summary, object) = through_homcc(&p, &server, &[], args);
        assert_eq!(cached(&summary), want_cached, "{what}: {summary}");
        assert!(
            object == local(&p, p.path(), &[], args),
            "{what}: differs from local"
        );
    };
    check(&args, false, "first compile");
    check(&args, true, "the same again");
    p.write("inc/v.h", "static const int version = 2;\n");
    check(&args, false, "a header's content changed");
    check(&args, true, "the changed header again");
    let other_define = [
        "-O2", "-Ia", "-Ib", "-Iinc", "-DV=4", "-c", "t.c", "-o", "t.o",
    ];
    check(&other_define, false, "another -D value");
    let swapped = [
        "-O2", "-Ib", "-Ia", "-Iinc", "-DV=3", "-c", "t.c", "-o", "t.o",
    ];
    check(&swapped, false, "the include directories' order");

    // The same command from another directory: the cwd is part of the key.
    std::fs::create_dir_all(p.path().join("sub")).unwrap();
    let from_sub = [
        "-O2", "-I../a", "-I../b", "-I../inc", "-DV=3", "-c", "../t.c", "-o", "../t.o",
    ];
    let mut cmd = p.homcc_command(&["--verbose", "--host", &server.host()], "gcc", &from_sub);
    let out = cmd.current_dir(p.path().join("sub")).output().unwrap();
    assert!(out.status.success());
    let summary = homcc_lines(&out.stderr).pop().unwrap_or_default();
    assert!(!cached(&summary), "another cwd: {summary}");
    let object = p.take(&["t.o"]).remove(0).unwrap();
    assert!(object == local(&p, &p.path().join("sub"), &[], &from_sub));
}

#[test]
fn another_build_of_the_compiler_at_the_same_path_misses() {
    // A compiler of the server's own at a path of the test's: a script that runs gcc, then that
    // script rebuilt (a comment added) at the same path. gcc's driver itself cannot be copied
    // elsewhere: it finds cc1 relative to its own directory.
    let dir = tempfile::tempdir().unwrap();
    let gcc = dir.path().join("gcc");
    let build = |extra: &str| {
        let tmp = dir.path().join("gcc.new");
        std::fs::write(&tmp, format!("#!/bin/sh\n{extra}exec gcc \"$@\"\n")).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(&tmp, mode).unwrap();
        std::fs::rename(&tmp, &gcc).unwrap();
    };
    build("");
    let allowed = homcc_server::compilers::AllowedCompilers::load(
        std::slice::from_ref(&gcc),
        Path::new("/nonexistent"),
    )
    .unwrap();
    let server = TestServer::fresh(|c| c.compilers = Some(allowed));
    let p = Project::new();
    p.write("t.c", "int twice(int x) { return 2 * x; }\n");
    let args = ["-O2", "-c", "t.c", "-o", "t.o"];
    let compile = || {
        let homcc_args = ["--verbose", "--host", &server.host()];
        let out = (p.homcc_command(&homcc_args, gcc.to_str().unwrap(), &args))
            .env("HOMCC_NO_LOCAL_COMPILATION", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        homcc_lines(&out.stderr).pop().unwrap_or_default()
    };
    assert!(!compile().contains("(cached result)"));
    assert!(compile().contains("(cached result)"));
    build("# rebuilt\n");
    let summary = compile();
    assert!(
        !summary.contains("(cached result)"),
        "a rebuilt compiler: {summary}"
    );
    let object = p.take(&["t.o"]).remove(0).unwrap();
    assert!(object == local(&p, p.path(), &[], &args));
}

#[test]
fn the_time_macros_are_compiled_every_time_unless_source_date_epoch_fixes_them() {
    let server = TestServer::fresh(|_| ());
    let p = Project::new();
    p.write("stamp.h", "#define STAMP __DATE__ \" \" __TIME__\n")
        .write("t.c", "#include \"stamp.h\"\nconst char *built = STAMP;\n");
    let args = ["-c", "t.c", "-o", "t.o"];
    for _ in 0..2 {
        let (summary, _) = through_homcc(&p, &server, &[], &args);
        assert!(!summary.contains("(cached result)"), "{summary}");
    }
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let (summary, _) = through_homcc(&p, &server, &epoch, &args);
    assert!(!summary.contains("(cached result)"), "{summary}");
    let (summary, object) = through_homcc(&p, &server, &epoch, &args);
    assert!(
        summary.contains("(cached result)"),
        "fixed by SOURCE_DATE_EPOCH: {summary}"
    );
    assert!(object == local(&p, p.path(), &epoch, &args));
    let (summary, _) = through_homcc(&p, &server, &[("HOMCC_NO_RESULT_CACHE", "1")], &args);
    assert!(
        !summary.contains("(cached result)"),
        "HOMCC_NO_RESULT_CACHE: {summary}"
    );
}

#[test]
fn equal_compiles_at_once_run_once() {
    let server = TestServer::fresh(|c| c.limit = 4);
    let p = Project::new();
    p.write("s.cpp", &slow_cxx_source(6));
    let args = ["-O2", "-c", "s.cpp", "-o", "s.o"];
    let local = p.local("g++", &args);
    assert!(local.status.success());
    let want = p.take(&["s.o"]).remove(0).unwrap();
    // Two clients of their own (state dirs, scan caches) in the same tree, at once.
    let other = Project::new();
    let children: Vec<_> = [&p.client_cache, &other.client_cache]
        .iter()
        .map(|cache| {
            let mut cmd = p.homcc_command(&["--host", &server.host()], "g++", &args);
            homcc_tests::isolate(&mut cmd, cache.path());
            cmd.env("HOMCC_NO_LOCAL_COMPILATION", "1").spawn().unwrap()
        })
        .collect();
    for child in children {
        assert!(child.wait_with_output().unwrap().status.success());
    }
    let records = compiles(&server, 2);
    let ran = records.iter().filter(|r| !r.cached).count();
    assert_eq!(
        ran, 1,
        "one compile ran, the other waited for its result: {records:?}"
    );
    assert!(p.take(&["s.o"]).remove(0).unwrap() == want);
}

/// A result record damaged on disk in place no longer hashes to its name: it is never used (the
/// compile runs, and is recorded again). A well-formed record with a wrong object, stored under
/// its own digest (as a compromised compiler's, or a nondeterministic one's, would be), is
/// caught by `verify_results`: the compile's own object is delivered, the mismatch recorded, and
/// the compiler no longer trusted.
#[test]
fn verify_results_catches_a_wrong_record_and_delivers_the_right_object() {
    let cache = tempfile::tempdir().unwrap();
    let verify = |c: &mut homcc_server::Settings| c.verify_results = 1.0;
    let server = TestServer::start(cache.path(), verify);
    let p = Project::new();
    p.write("t.c", "int thrice(int x) { return 3 * x; }\n");
    let args = ["-O2", "-c", "t.c", "-o", "t.o"];
    let want = local(&p, p.path(), &[], &args);
    let (_, object) = through_homcc(&p, &server, &[], &args);
    assert!(object == want);

    // The one record, its object's first byte changed.
    let index = walk(&cache.path().join("results-v1"))
        .pop()
        .expect("a record");
    let blob_of = |hex: &str| cache.path().join("blobs-v1").join(&hex[..2]).join(hex);
    let blob = blob_of(std::fs::read_to_string(&index).unwrap().trim());
    let mut stored: homcc_server::results::Stored =
        homcc_proto::codec::decode_record(&std::fs::read(&blob).unwrap()).unwrap();
    stored.outputs[0].1[0] ^= 0xff;
    let tampered = homcc_proto::codec::encode_record(&stored).unwrap();
    let writable = |path: &Path, mode: u32| {
        let mut perms = std::fs::metadata(path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, mode);
        std::fs::set_permissions(path, perms).unwrap();
    };

    // Written back in place (a bad disk, or someone with the server's rights).
    writable(&blob, 0o644);
    std::fs::write(&blob, &tampered).unwrap();
    let (summary, object) = through_homcc(&p, &server, &[], &args);
    assert!(!summary.contains("(cached result)"), "{summary}");
    assert!(object == want, "the compile's own object is delivered");
    assert_eq!(
        compiles(&server, 2).pop().unwrap().verified,
        None,
        "not a hit"
    );

    // Stored whole under its own digest, the index pointing to it (read at the next start).
    server.stop();
    let wrong = homcc_proto::Digest::of(&tampered).to_hex();
    let wrong_blob = blob_of(&wrong);
    std::fs::create_dir_all(wrong_blob.parent().unwrap()).unwrap();
    std::fs::write(&wrong_blob, &tampered).unwrap();
    writable(&wrong_blob, 0o444);
    std::fs::write(&index, &wrong).unwrap();
    let server = TestServer::start(cache.path(), verify);
    let (summary, object) = through_homcc(&p, &server, &[], &args);
    assert!(!summary.contains("(cached result)"), "{summary}");
    assert!(object == want, "the compile's own object is delivered");
    let last = compiles(&server, 1).pop().unwrap();
    assert_eq!(last.verified, Some(false), "the mismatch is recorded");
    // The compiler is no longer trusted: compiled every time.
    let (summary, _) = through_homcc(&p, &server, &[], &args);
    assert!(!summary.contains("(cached result)"), "{summary}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        match entry.file_type().unwrap().is_dir() {
            true => files.extend(walk(&entry.path())),
            false => files.push(entry.path()),
        }
    }
    files
}
