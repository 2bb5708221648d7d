//! Command lines as build tools write them, each run through homcc against a real homccd and
//! compared with the plain compiler in the same directory: compiler names in every form, homcc
//! masquerading as the compiler through a symlink, and homcc refusing to run itself.

use std::{os::unix::fs::symlink, process::Command};

use homcc_tests::{
    assert_same_as_local, assert_same_as_local_with, bin, homcc_lines, isolate, Project, TestServer,
};

fn project() -> Project {
    let p = Project::new();
    p.write(
        "a.c",
        "#include <stdio.h>\nint main(void) { puts(__FILE__); return 0; }\n",
    )
    .write(
        "a.cpp",
        "#include <string>\nstd::string f() { return __FILE__; }\n",
    );
    p
}

#[test]
fn every_compiler_name_form_compiles_remotely() {
    let p = project();
    let server = TestServer::fresh(|_| {});
    for (compiler, source) in [
        ("cc", "a.c"),
        ("c++", "a.cpp"),
        ("gcc-12", "a.c"),
        ("g++-12", "a.cpp"),
        ("x86_64-linux-gnu-gcc-12", "a.c"),
        ("x86_64-linux-gnu-g++-12", "a.cpp"),
        ("/usr/bin/gcc", "a.c"),
        ("clang-14", "a.c"),
        ("/usr/bin/clang++-14", "a.cpp"),
    ] {
        assert_same_as_local(
            &p,
            &server,
            compiler,
            &["-O2", "-g", "-c", source, "-o", "out.o"],
            &["out.o"],
        );
        let name = std::path::Path::new(compiler)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            server.latest().compiler.starts_with(name),
            "{compiler}: the server ran {}",
            server.latest().compiler
        );
    }
}

/// A directory holding `name -> homcc`, as a masquerade setup does (`/usr/lib/homcc`).
fn masquerade_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    symlink(bin("homcc"), dir.path().join(name)).unwrap();
    dir
}

fn path_with_first(dir: &std::path::Path) -> std::ffi::OsString {
    let mut path = dir.as_os_str().to_owned();
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap());
    path
}

#[test]
fn a_symlink_named_after_the_compiler_masquerades_as_it() {
    let p = project();
    let server = TestServer::fresh(|_| {});
    let dir = masquerade_dir("g++");
    let args = ["-O2", "-c", "a.cpp", "-o", "a.o"];
    let local = p.local("g++", &args);
    assert!(local.status.success());
    let local_object = p.take(&["a.o"]);
    // `g++ ...` with the symlink first on PATH: homcc runs, finds the real g++ after itself.
    let out = isolate(&mut Command::new("g++"), p.client_cache.path())
        .args(args)
        .current_dir(p.path())
        .env("PATH", path_with_first(dir.path()))
        .env("HOMCC_HOSTS", server.host())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stderr, local.stderr);
    assert_eq!(p.take(&["a.o"]), local_object);
    assert!(
        server.latest().outcome.starts_with("exit 0"),
        "compiled remotely"
    );
}

#[test]
fn homcc_never_runs_itself() {
    let p = project();
    // Named as the compiler directly.
    let out = p.homcc(&[], bin("homcc").to_str().unwrap(), &["-c", "a.c"]);
    assert_eq!(out.status.code(), Some(100));
    let lines = homcc_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("is homcc itself"), "{}", lines[0]);
    // A masquerade symlink with no real compiler of that name after it on PATH.
    let dir = masquerade_dir("gcc");
    let out = Command::new(dir.path().join("gcc"))
        .args(["-c", "a.c"])
        .current_dir(p.path())
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(100));
    assert!(homcc_lines(&out.stderr)[0].contains("is homcc itself"));
    assert!(!p.path().join("a.o").exists());
}

#[test]
fn assembly_output_compiles_remotely() {
    let p = project();
    let src = p.path().join("a.c").display().to_string();
    let server = TestServer::fresh(|_| {});
    for compiler in ["gcc", "clang"] {
        assert_same_as_local(&p, &server, compiler, &["-S", "a.c"], &["a.s"]);
        assert_same_as_local(
            &p,
            &server,
            compiler,
            &["-O2", "-g", "-S", &src, "-o", "out.asm"],
            &["out.asm"],
        );
        assert_same_as_local(
            &p,
            &server,
            compiler,
            &["-c", "-S", "a.c", "-MD"],
            &["a.s", "a.d"],
        );
    }
}

#[test]
fn scan_includes_lists_what_would_be_sent() {
    let p = project();
    p.write("inc/own.h", "#define OWN 1\n")
        .write("b.c", "#include <stdio.h>\n#include \"own.h\"\n");
    let out = p.homcc(
        &["--scan-includes"],
        "gcc",
        &["-Iinc", "-MD", "-c", "b.c", "-o", "b.o"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8(out.stdout).unwrap();
    let listed: Vec<&str> = listed.lines().collect();
    let root = p.path().display().to_string();
    assert_eq!(listed[0], format!("{root}/b.c"));
    assert!(
        listed.contains(&format!("{root}/inc/own.h").as_str()),
        "{listed:?}"
    );
    assert!(listed.contains(&"/usr/include/stdio.h"), "{listed:?}");
    assert!(
        !p.path().join("b.d").exists() && !p.path().join("b.o").exists(),
        "nothing is written"
    );
    // A compile+link command sends its sources too; a link of objects only sends nothing.
    let out = p.homcc(
        &["--scan-includes"],
        "gcc",
        &["a.c", "b.c", "-Iinc", "-o", "app"],
    );
    assert!(out.status.success());
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(
        listed.starts_with(&format!("{root}/a.c\n")) && listed.contains("/b.c\n"),
        "{listed}"
    );
    assert_eq!(
        listed
            .lines()
            .filter(|l| *l == "/usr/include/stdio.h")
            .count(),
        1,
        "each file once"
    );
    let out = p.homcc(&["--scan-includes"], "gcc", &["b.o", "-o", "app"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(homcc_lines(&out.stderr)[0].contains("runs locally"));
    assert!(!p.path().join("app").exists());
}

#[test]
fn several_sources_compile_remotely_in_parallel() {
    let p = project();
    p.write("w.c", "int w(void) { int unused; return 0; }\n")
        .write("e.c", "int e(void) { return missing; }\n")
        .write("c.txt", "int from_text(void) { return 3; }\n");
    let server = TestServer::fresh(|_| {});
    for compiler in ["gcc", "clang"] {
        // Warnings of each source in command-line order, objects at their default names.
        let local = assert_same_as_local_with(
            &p,
            &server,
            compiler,
            &[
                "-Wall", "-O2", "-c", "a.c", "w.c", "-MD", "-x", "c", "c.txt",
            ],
            &["a.o", "w.o", "c.o", "a.d", "w.d", "c.d"],
            3,
        );
        assert!(local.stderr.contains("unused"), "{}", local.stderr);
        // One source fails: the others still compile, the exit code is the failure's.
        let local = assert_same_as_local_with(
            &p,
            &server,
            compiler,
            &["-c", "a.c", "e.c", "w.c"],
            &["a.o", "e.o", "w.o"],
            3,
        );
        assert_ne!(local.code, Some(0));
        assert!(local.files[0].is_some() && local.files[2].is_some());
    }
}

#[test]
fn response_files_are_expanded_on_the_client() {
    let p = project();
    p.write(
        "src dir/b c.c",
        "#include <defs.h>\nint f(void) { return VALUE; }\n",
    )
    .write("inc/defs.h", "#define VALUE 7\n")
    .write("flags.rsp", "-O2 -Iinc\n-DNAME=\"quoted value\"\n")
    .write("all.rsp", "@flags.rsp -c 'src dir/b c.c'\n-o out.o\n");
    let server = TestServer::fresh(|_| {});
    for compiler in ["gcc", "clang"] {
        assert_same_as_local(&p, &server, compiler, &["@all.rsp", "-g"], &["out.o"]);
    }
    // A response file that is not there stays an argument: the compiler reports it.
    let out = p.homcc(&["--host", &server.host()], "gcc", &["-c", "@missing.rsp"]);
    assert_eq!(
        out.status.code(),
        p.local("gcc", &["-c", "@missing.rsp"]).status.code()
    );
}

#[test]
fn compile_and_link_compiles_remotely_and_links_locally() {
    let p = project();
    p.write("main.cpp", "#include <cstdio>\nextern \"C\" int twice(int);\nint main() { std::printf(\"%d\\n\", twice(21)); }\n")
        .write("twice.c", "int twice(int x) { return 2 * x; }\n")
        .write("main.c", "#include <stdio.h>\nint twice(int);\nint main(void) { printf(\"%d\\n\", twice(21)); return 0; }\n");
    let server = TestServer::fresh(|_| {});
    let cases: &[(&str, &[&str], &[&str], usize)] = &[
        ("gcc", &["a.c"], &["a.out"], 1),
        (
            "gcc",
            &["-O2", "-g", "main.c", "twice.c", "-o", "app", "-lm"],
            &["app"],
            2,
        ),
        (
            "gcc",
            &["-O2", "-flto", "main.c", "twice.c", "-o", "app"],
            &["app"],
            2,
        ),
        (
            "g++",
            &[
                "-O2", "main.cpp", "-x", "c", "twice.c", "-x", "none", "-o", "app",
            ],
            &["app"],
            2,
        ),
        (
            "clang",
            &["-O2", "-g", "main.c", "twice.c", "-o", "app"],
            &["app"],
            2,
        ),
    ];
    for (compiler, args, outputs, compiles) in cases {
        assert_same_as_local_with(&p, &server, compiler, args, outputs, *compiles);
    }
    // An object among the inputs goes to the link as it is; no temporary object stays behind.
    assert!(p
        .local("gcc", &["-c", "twice.c", "-o", "twice.o"])
        .status
        .success());
    let tmp = tempfile::tempdir().unwrap();
    let out = p
        .homcc_command(
            &["--host", &server.host()],
            "gcc",
            &["main.c", "twice.o", "-o", "app"],
        )
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(p.path().join("app")).output().unwrap();
    assert_eq!(run.stdout, b"42\n");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "temporary objects left behind"
    );
    // A link error: the linker's verdict, with the same exit code as locally.
    let local = p.local("gcc", &["main.c", "-o", "broken"]);
    let remote = p.homcc(
        &["--host", &server.host()],
        "gcc",
        &["main.c", "-o", "broken"],
    );
    assert_eq!(remote.status.code(), local.status.code());
    assert!(String::from_utf8_lossy(&remote.stderr).contains("undefined reference to `twice'"));
}

/// A small multi-file project with a Makefile whose compiler is `$(CXX)`.
fn make_project() -> Project {
    let p = Project::new();
    for i in 1..=6 {
        p.write(
            &format!("src/f{i}.cpp"),
            &format!("#include <string>\n#include <vector>\n#include \"common.h\"\nint f{i}() {{ std::vector<std::string> v{{\"a\"}}; return int(v.size()) * BASE + {i}; }}\n"),
        );
    }
    p.write("src/common.h", "#pragma once\n#define BASE 10\n")
        .write("src/main.cpp", "int f1();\nint main() { return f1() == 11 ? 0 : 1; }\n")
        .write(
            "Makefile",
            "OBJS := $(patsubst %.cpp,%.o,$(wildcard src/*.cpp))\napp: $(OBJS)\n\t$(CXX) $(OBJS) -o app\n%.o: %.cpp\n\t$(CXX) -O2 -g -MMD -c $< -o $@\n",
        );
    p
}

/// Every file under `dir` (path relative to it → bytes), for comparing two builds.
fn tree(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

#[test]
fn make_j_builds_the_same_project_remotely() {
    let p = make_project();
    let server = TestServer::fresh(|_| {});
    let make = |cxx: &str| {
        let out = isolate(&mut Command::new("make"), p.client_cache.path())
            .args(["-j4", "-B", &format!("CXX={cxx}")])
            .current_dir(p.path())
            .env("HOMCC_HOSTS", format!("{}/4", server.host()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stderr
    };
    make("g++");
    let local = tree(p.path());
    let stderr = make(&format!("{} g++", bin("homcc").display()));
    assert!(
        homcc_lines(&stderr).is_empty(),
        "{}",
        String::from_utf8_lossy(&stderr)
    );
    assert_eq!(
        tree(p.path()),
        local,
        "objects, dependency files and the app match"
    );
    assert_eq!(
        server.wait_for_records(7).len(),
        7,
        "each of the 7 sources compiled remotely"
    );
    assert!(Command::new(p.path().join("app"))
        .status()
        .unwrap()
        .success());
}

#[test]
fn ccache_with_ccache_prefix_compiles_its_misses_remotely() {
    let p = project();
    let server = TestServer::fresh(|_| {});
    let ccache_dir = tempfile::tempdir().unwrap();
    let args = ["g++", "-O2", "-g", "-c", "a.cpp", "-o", "a.o"];
    let local = p.local("g++", &args[1..]);
    let local_object = p.take(&["a.o"]);
    let ccache = || {
        isolate(&mut Command::new("ccache"), p.client_cache.path())
            .args(args)
            .current_dir(p.path())
            .env("CCACHE_DIR", ccache_dir.path())
            .env("CCACHE_PREFIX", bin("homcc"))
            .env("HOMCC_HOSTS", server.host())
            .output()
            .expect("ccache is installed (tests/run-all.sh installs it)")
    };
    let miss = ccache();
    assert!(
        miss.status.success(),
        "{}",
        String::from_utf8_lossy(&miss.stderr)
    );
    assert_eq!(
        (miss.stderr, p.take(&["a.o"])),
        (local.stderr.clone(), local_object.clone())
    );
    assert_eq!(
        server.next_record().outcome,
        "exit 0",
        "the miss compiled remotely"
    );
    let hit = ccache();
    assert!(hit.status.success());
    assert_eq!(p.take(&["a.o"]), local_object);
    assert_eq!(server.records().len(), 1, "a ccache hit sends nothing");
}

#[test]
fn cross_compiles_for_another_target() {
    let p = project();
    p.write(
        "cross.c",
        "#include <stddef.h>\nsize_t f(size_t x) { return x * 3; }\n",
    );
    let server = TestServer::fresh(|_| {});
    let args = [
        "-ffreestanding",
        "-O2",
        "-g",
        "-c",
        "cross.c",
        "-o",
        "cross.o",
    ];
    // clang asked for the target; a cross gcc named by its triple.
    let with_target: Vec<&str> = std::iter::once("--target=aarch64-linux-gnu")
        .chain(args)
        .collect();
    assert_same_as_local(&p, &server, "clang", &with_target, &["cross.o"]);
    assert_same_as_local(&p, &server, "aarch64-linux-gnu-gcc", &args, &["cross.o"]);
    // A client whose own `clang` and `gcc` target aarch64 (as on an ARM laptop): the server's
    // `clang` and `gcc` target x86_64, so it asks clang for the target and uses the cross gcc.
    let wrappers = tempfile::tempdir().unwrap();
    for (name, command) in [
        ("clang", "clang --target=aarch64-linux-gnu"),
        ("gcc", "aarch64-linux-gnu-gcc"),
    ] {
        let path = wrappers.path().join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\nexec /usr/bin/{command} \"$@\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        assert_same_as_local(&p, &server, path.to_str().unwrap(), &args, &["cross.o"]);
        assert!(
            server.latest().compiler.contains("aarch64"),
            "{}",
            server.latest().compiler
        );
    }
}
