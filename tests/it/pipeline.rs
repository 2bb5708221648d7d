//! The whole pipeline against real compilers: remote outputs, warnings and errors are the bytes of
//! a local compile; warm compiles upload nothing and stay small on the wire; the cache survives
//! restarts and keeps to its bound.

use homcc_proto::Compression;
use homcc_tests::{assert_same_as_local, have, homcc_lines, Project, TestServer};

/// The standard headers of a typical C++ translation unit: ~230 files with what they include.
macro_rules! typical_cxx_headers {
    () => {
        "#include <map>\n#include <string>\n#include <iostream>\n#include <vector>\n\
         #include <algorithm>\n#include <memory>\n#include <functional>\n#include <unordered_map>\n\
         #include <sstream>\n"
    };
}
const TYPICAL_CXX_HEADERS: &str = typical_cxx_headers!();

/// A C++ translation unit that reads ~230 files, almost all system headers.
const TYPICAL_CXX: &str = concat!(
    typical_cxx_headers!(),
    "#include \"util.hpp\"\n#include <config.h>\n\
     int main() { std::map<std::string, int> m{{greet(), VALUE}}; std::cout << m.size() << __FILE__ << '\\n'; }\n"
);

const C_SOURCE: &str = "#include <stdio.h>\n#include <string.h>\n#include \"local.h\"\n#include <config.h>\n\
static int twice(int x) { return 2 * x; }\n\
int main(int argc, char **argv) { printf(\"%d %s %s\\n\", twice(VALUE), __FILE__, argv[0]); return (int)strlen(LOCAL) + argc; }\n";

/// A project with sources in `src/`, a quote include beside them, headers in `include/` found
/// through `-I`, and a header directory under an absolute path outside the project.
fn project() -> (Project, tempfile::TempDir) {
    let p = Project::new();
    p.write("src/main.cpp", TYPICAL_CXX)
        .write(
            "src/util.hpp",
            "#pragma once\n#include <string>\ninline std::string greet() { return \"hi\"; }\n",
        )
        .write("src/main.c", C_SOURCE)
        .write("src/local.h", "#define LOCAL \"local\"\n")
        .write("include/config.h", "#define VALUE 42\n");
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("extra.h"), "#define EXTRA 1\n").unwrap();
    std::fs::create_dir(p.path().join("build")).unwrap();
    (p, outside)
}

fn matrix(compiler: &str, source: &str) {
    if !have(compiler) {
        panic!("{compiler} is not installed: the README's test command installs it (apt-get install -y clang)");
    }
    let (p, outside) = project();
    let server = TestServer::fresh(|_| {});
    let extra = format!("-I{}", outside.path().display());
    let abs_out = p.path().join("build/abs.o").display().to_string();
    // Relative paths that climb out of the working directory and back in.
    let name = p.path().file_name().unwrap().to_str().unwrap().to_owned();
    for flags in [&["-O0"][..], &["-O2"], &["-O2", "-g"], &["-g3"]] {
        let mut args: Vec<&str> = flags.to_vec();
        let inc = format!("-I../{name}/include");
        args.extend([inc.as_str(), &extra, "-c", source, "-o", "out.o"]);
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("SRC", &format!("../{name}/src")))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_same_as_local(&p, &server, compiler, &args, &["out.o"]);
        // Absolute paths for the source, -I and -o, and a dependency file.
        let src = p
            .path()
            .join(source.replace("SRC", "src"))
            .display()
            .to_string();
        let inc = format!("-I{}/include", p.path().display());
        let mut args: Vec<&str> = flags.to_vec();
        args.extend([
            inc.as_str(),
            "-MD",
            "-c",
            src.as_str(),
            "-o",
            abs_out.as_str(),
        ]);
        assert_same_as_local(
            &p,
            &server,
            compiler,
            &args,
            &["build/abs.o", "build/abs.d"],
        );
    }
}

#[test]
fn gcc_c_matches_local() {
    matrix("gcc", "SRC/main.c");
}

#[test]
fn gxx_cxx_matches_local() {
    matrix("g++", "SRC/main.cpp");
}

#[test]
fn clang_c_matches_local() {
    matrix("clang", "SRC/main.c");
}

#[test]
fn clangxx_cxx_matches_local() {
    matrix("clang++", "SRC/main.cpp");
}

#[test]
fn clang_split_dwarf_matches_local() {
    let (p, _outside) = project();
    let server = TestServer::fresh(|_| {});
    for flags in [
        &["-g", "-gsplit-dwarf"][..],
        &["-O2", "-g", "-gsplit-dwarf"],
    ] {
        let mut args = flags.to_vec();
        args.extend(["-Iinclude", "-c", "src/main.cpp", "-o", "main.o"]);
        assert_same_as_local(&p, &server, "clang++", &args, &["main.o", "main.dwo"]);
        let dwo = p.path().join("main.dwo");
        assert!(!dwo.exists(), "outputs are taken after each comparison");
    }
}

#[test]
fn warnings_match_local() {
    let p = Project::new();
    p.write("warn.c", "#include <stdio.h>\nint main(void) { int unused; printf(\"%d\\n\", \"not a number\"); return 0; }\n")
        .write("warn.cpp", "#include <vector>\nint f() { std::vector<int> v; int unused; return v.size() < -1; }\n");
    let server = TestServer::fresh(|_| {});
    for (compiler, source) in [
        ("gcc", "warn.c"),
        ("g++", "warn.cpp"),
        ("clang", "warn.c"),
        ("clang++", "warn.cpp"),
    ] {
        let local = assert_same_as_local(
            &p,
            &server,
            compiler,
            &["-Wall", "-Wextra", "-c", source, "-o", "w.o"],
            &["w.o"],
        );
        assert_eq!(local.code, Some(0));
        assert!(
            local.stderr.contains("warning"),
            "{compiler}: {}",
            local.stderr
        );
    }
}

#[test]
fn errors_match_local_with_client_paths() {
    let p = Project::new();
    let headers = tempfile::tempdir().unwrap();
    std::fs::write(headers.path().join("broken.h"), "struct S { int x }\n").unwrap();
    p.write(
        "bad.c",
        "#include \"broken.h\"\nint main(void) { return undefined_name; }\n",
    );
    let inc = format!("-I{}", headers.path().display());
    let server = TestServer::fresh(|_| {});
    for compiler in ["gcc", "clang"] {
        let local = assert_same_as_local(
            &p,
            &server,
            compiler,
            &[inc.as_str(), "-c", "bad.c", "-o", "bad.o"],
            &["bad.o"],
        );
        assert_ne!(local.code, Some(0));
        assert!(
            local
                .stderr
                .contains(&headers.path().join("broken.h").display().to_string()),
            "{compiler}: {}",
            local.stderr
        );
        assert!(
            local.stderr.contains("undefined_name"),
            "{compiler}: {}",
            local.stderr
        );
    }
    // A stale object after a failed compile: clang removes it, gcc leaves it (as never ran).
    for compiler in ["gcc", "clang"] {
        let stale = |out: std::process::Output| {
            assert_ne!(out.status.code(), Some(0));
            let kept = p.path().join("bad.o").exists();
            std::fs::write(p.path().join("bad.o"), b"stale").unwrap();
            kept
        };
        std::fs::write(p.path().join("bad.o"), b"stale").unwrap();
        let args = ["-c", "bad.c", inc.as_str(), "-o", "bad.o"];
        let local = stale(p.local(compiler, &args));
        let remote = stale(p.homcc(&["--host", &server.host()], compiler, &args));
        assert_eq!(
            local, remote,
            "{compiler}: stale object kept locally: {local}"
        );
    }
}

#[test]
fn warm_compile_uploads_nothing_and_fits_in_2_kib() {
    let (p, _outside) = project();
    let server = TestServer::fresh(|_| {});
    let args = ["-O2", "-Iinclude", "-c", "src/main.cpp", "-o", "main.o"];
    let cold = p.homcc(&["--verbose", "--host", &server.host()], "g++", &args);
    assert!(
        cold.status.success(),
        "{}",
        String::from_utf8_lossy(&cold.stderr)
    );
    let cold_record = server.next_record();
    assert!(
        cold_record.files >= 220,
        "a typical C++ TU reads ~230 files, this one {}",
        cold_record.files
    );
    assert_eq!(
        cold_record.blobs_in, cold_record.files,
        "a cold cache asks for every file"
    );
    // zstd by default: the request asks for it, and the summary line shows the upload compressed.
    assert_eq!(cold_record.compression, "zstd");
    let summary = homcc_lines(&cold.stderr).join("\n");
    let (raw, packed) = uploaded_bytes(&summary);
    assert!(
        packed * 2 < raw,
        "uploads are zstd-compressed by default: {summary}"
    );

    // HOMCC_VERBOSE takes the usual spellings of true, like every boolean variable.
    let warm = p
        .homcc_command(&["--host", &server.host()], "g++", &args)
        .env("HOMCC_VERBOSE", "yes")
        .output()
        .unwrap();
    assert!(warm.status.success());
    assert_eq!(homcc_lines(&warm.stderr).len(), 1, "the verbose summary");
    let warm_record = server.next_record();
    assert_eq!(warm_record.blobs_in, 0, "a warm compile uploads no file");
    assert_eq!(warm_record.chunks_in, 0);
    assert!(
        warm_record.bytes_in <= 2048,
        "warm request is {} bytes on the wire",
        warm_record.bytes_in
    );
    println!(
        "cold: {} files, {} bytes sent; warm: {} bytes sent, {} bytes received",
        cold_record.files, cold_record.bytes_in, warm_record.bytes_in, warm_record.bytes_out
    );
}

/// Each compression, named on the host's line (`HOST,zstd`): the request asks for it, the
/// uploads shrink by it (`none`: not at all), and the object, returned in it, is the local
/// compile's byte for byte.
#[test]
fn every_compression_on_the_hosts_line_matches_local() {
    let (p, _outside) = project();
    let args = [
        "-O2",
        "-g",
        "-Iinclude",
        "-c",
        "src/main.cpp",
        "-o",
        "main.o",
    ];
    let local = p.local("g++", &args);
    assert!(local.status.success(), "{local:?}");
    let object = p.take(&["main.o"]);
    let mut uploaded = Vec::new();
    for c in Compression::ALL {
        let server = TestServer::fresh(|_| {});
        let host = format!("{},{c}", server.host());
        let out = p.homcc(&["--verbose", "--host", &host], "g++", &args);
        let summary = homcc_lines(&out.stderr).join("\n");
        assert!(out.status.success(), "{c}: {summary}");
        assert_eq!(server.next_record().compression, c.to_string());
        let (raw, packed) = uploaded_bytes(&summary);
        match c {
            Compression::None => assert_eq!(packed, raw, "{summary}"),
            _ => assert!(packed * 2 < raw, "{c}: {summary}"),
        }
        assert!(
            p.take(&["main.o"]) == object,
            "{c}: main.o differs from the local compile's"
        );
        uploaded.push(packed);
    }
    uploaded.sort();
    uploaded.dedup();
    assert_eq!(
        uploaded.len(),
        Compression::ALL.len(),
        "each its own bytes: {uploaded:?}"
    );
}

/// (raw, compressed) bytes of the uploaded files, from homcc's verbose summary.
fn uploaded_bytes(summary: &str) -> (u64, u64) {
    let after = summary.split("uploaded ").nth(1).expect("summary line");
    let numbers: Vec<u64> = after
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .map(|s| s.parse().unwrap())
        .collect();
    (numbers[1], numbers[2])
}

#[test]
fn warm_after_restart_uploads_nothing() {
    let (p, _outside) = project();
    let server_cache = tempfile::tempdir().unwrap();
    let args = ["-Iinclude", "-c", "src/main.cpp", "-o", "main.o"];
    let first = TestServer::start(server_cache.path(), |_| {});
    assert_same_as_local(&p, &first, "g++", &args, &["main.o"]);
    assert!(first.records()[0].blobs_in > 200);
    first.stop();
    let second = TestServer::start(server_cache.path(), |_| {});
    assert_same_as_local(&p, &second, "g++", &args, &["main.o"]);
    assert_eq!(
        second.records()[0].blobs_in,
        0,
        "the cache was rebuilt from disk"
    );
}

#[test]
fn eviction_keeps_the_cache_under_its_bound() {
    let p = Project::new();
    let headers = [
        "<map>\n#include <string>",
        "<vector>\n#include <algorithm>\n#include <memory>",
        "<iostream>\n#include <sstream>",
        "<unordered_map>\n#include <functional>",
    ];
    for (i, h) in headers.iter().enumerate() {
        p.write(
            &format!("tu{i}.cpp"),
            &format!("#include {h}\nint f{i}() {{ return {i}; }}\n"),
        );
    }
    let bound: u64 = 1 << 20;
    let server_cache = tempfile::tempdir().unwrap();
    let server = TestServer::start(server_cache.path(), |c| c.max_cache_bytes = bound);
    for round in 0..2 {
        for i in 0..headers.len() {
            let source = format!("tu{i}.cpp");
            assert_same_as_local(
                &p,
                &server,
                "g++",
                &["-O2", "-c", &source, "-o", "tu.o"],
                &["tu.o"],
            );
            let used = homcc_tests::disk_usage(&server_cache.path().join("blobs-v1"));
            assert!(
                used <= bound,
                "round {round}, tu{i}: cache holds {used} bytes, bound {bound}"
            );
        }
    }
    let uploaded: usize = server.records().iter().map(|r| r.blobs_in).sum();
    let files: usize = server.records().iter().map(|r| r.files).sum();
    // Round two refers to chunks by digest that the server has evicted since: it asks for them
    // again (the second negotiation step), and those compiles still matched the local ones.
    let chunks_asked_again: usize = server.records().iter().map(|r| r.chunks_in).sum();
    assert!(
        chunks_asked_again > 0,
        "no evicted chunk was asked for again"
    );
    assert!(
        uploaded > files / 2,
        "a cache smaller than the working set evicts and asks again ({uploaded} of {files})"
    );
}

#[test]
fn concurrent_compiles_upload_each_file_once() {
    let p = Project::new();
    let tus = 4;
    for i in 0..tus {
        p.write(
            &format!("tu{i}.cpp"),
            &format!("{TYPICAL_CXX_HEADERS}int f{i}() {{ return {i}; }}\n"),
        );
    }
    let server = TestServer::fresh(|c| c.limit = tus);
    // Every client starts at once against a cold cache: they all miss the shared headers.
    let children: Vec<_> = (0..tus)
        .map(|i| {
            let source = format!("tu{i}.cpp");
            let object = format!("tu{i}.o");
            p.homcc_command(
                &["--host", &server.host()],
                "g++",
                &["-c", &source, "-o", &object],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let records = server.wait_for_records(tus);
    assert!(
        records.iter().all(|r| r.outcome.starts_with("exit 0")),
        "{records:?}"
    );
    // The distinct file contents all the compiles send, by homcc's own account.
    let mut distinct = std::collections::HashSet::new();
    for i in 0..tus {
        let listed = p.homcc(&["--scan-includes"], "g++", &["-c", &format!("tu{i}.cpp")]);
        assert!(listed.status.success());
        for path in String::from_utf8(listed.stdout).unwrap().lines() {
            distinct.insert(homcc_proto::Digest::of(&std::fs::read(path).unwrap()));
        }
    }
    let uploaded: usize = records.iter().map(|r| r.blobs_in).sum();
    assert_eq!(
        uploaded,
        distinct.len(),
        "each distinct file is uploaded exactly once in all"
    );
}

/// A client's next compile runs in the job root its last one left, scrubbed: it sees the files
/// of its own manifest and nothing of the last compile's (a header the client deleted since,
/// the object the last compile wrote).
#[test]
fn the_next_compile_of_a_client_sees_nothing_of_the_last() {
    let server = TestServer::fresh(|_| {});
    let p = Project::new();
    let has = "#if __has_include(\"gone.h\")\nint gone = 1;\n#else\nint gone = 2;\n#endif\n\
               #if __has_include(\"t.o\")\nint object = 1;\n#else\nint object = 2;\n#endif\n\
               #include \"v.h\"\nint v = V;\n";
    p.write("t.c", has)
        .write("gone.h", "")
        .write("v.h", "#define V 1\n");
    let compiles = |n| {
        assert_same_as_local(&p, &server, "gcc", &["-c", "t.c", "-o", "t.o"], &["t.o"]);
        homcc_tests::wait_for(
            "the root to be kept",
            std::time::Duration::from_secs(10),
            || server.records().len() >= n && kept_root(&server.cache_dir),
        );
    };
    compiles(1);
    std::fs::remove_file(p.path().join("gone.h")).unwrap();
    p.write("v.h", "#define V 2\n");
    compiles(2);
    assert!(server
        .records()
        .iter()
        .all(|r| r.outcome.starts_with("exit 0")));
}

/// Whether the one job root under `cache_dir` has been scrubbed (no object in it any more).
fn kept_root(cache_dir: &std::path::Path) -> bool {
    let roots: Vec<_> = std::fs::read_dir(cache_dir.join("jobs"))
        .unwrap()
        .flatten()
        .collect();
    let objects = |dir: &std::path::Path| {
        std::process::Command::new("find")
            .arg(dir)
            .args(["-name", "*.o"])
            .output()
            .unwrap()
            .stdout
    };
    roots.len() == 1 && objects(&roots[0].path()).is_empty()
}

/// Two headers of the same content in two directories are two files on the server too, as on
/// the client: each resolves its own `#include "cfg.h"` from its own directory (clang takes two
/// names of one inode for one file), and `#pragma once` tells them apart as the compiler does
/// locally (gcc: by content and mtime, here the same, as in a tree from one checkout). Twice, the
/// second time in the job root the first compile left.
#[test]
fn headers_of_the_same_content_stay_separate_files() {
    let server = TestServer::fresh(|_| {});
    let p = Project::new();
    let forwarding = "#pragma once\n#include \"cfg.h\"\n";
    p.write(
        "t.c",
        "#include \"a/h.h\"\n#include \"b/h.h\"\n#include \"c/h.h\"\n",
    )
    .write("a/h.h", forwarding)
    .write("a/cfg.h", "int from_a;\n")
    .write("b/h.h", forwarding)
    .write("b/cfg.h", "int from_b;\n")
    .write("c/h.h", "#include \"cfg.h\"\n")
    .write("c/cfg.h", "int from_c;\n");
    let same_time =
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    for header in ["a/h.h", "b/h.h"] {
        let file = std::fs::File::options()
            .write(true)
            .open(p.path().join(header));
        file.unwrap().set_modified(same_time).unwrap();
    }
    for compiler in ["clang", "gcc", "clang"] {
        let out =
            assert_same_as_local(&p, &server, compiler, &["-c", "t.c", "-o", "t.o"], &["t.o"]);
        assert_eq!(out.code, Some(0), "{}", out.stderr);
    }
    // What the compilers read here: clang both forwarding headers, gcc the first only.
    let symbols = |compiler| p.local(compiler, &["-E", "t.c"]).stdout;
    let clang = String::from_utf8(symbols("clang")).unwrap();
    assert!(clang.contains("from_a") && clang.contains("from_b") && clang.contains("from_c"));
    let gcc = String::from_utf8(symbols("gcc")).unwrap();
    assert!(gcc.contains("from_a") && !gcc.contains("from_b") && gcc.contains("from_c"));
}
