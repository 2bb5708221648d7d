//! The include closure through homcc and a real homccd (issue 12): a compile lists its files by
//! following its `#include`s, runs no local preprocessor, and the server writes its dependency
//! file; objects and dependency files equal a local compile's. Where the closure cannot be exact
//! (a computed include, a precompiled header) the compiler scans, and a compile from the closure
//! that fails is judged from the compiler's scan.

use homcc_tests::{assert_same_as_local_with, homcc_lines, Counting, Project, TestServer};

/// A compile through homcc with `--verbose` (and `PATH` through `counting`): its summary line
/// and the files `outputs` it wrote.
fn through_homcc(
    p: &Project,
    server: &TestServer,
    counting: &Counting,
    cc: &str,
    args: &[&str],
    outputs: &[&str],
) -> (String, Vec<Option<Vec<u8>>>) {
    let mut cmd = p.homcc_command(&["--verbose", "--host", &server.host()], cc, args);
    let out = cmd.env("PATH", counting.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = homcc_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "one summary line: {lines:?}");
    (lines[0].clone(), p.take(outputs))
}

fn local(p: &Project, cc: &str, args: &[&str], outputs: &[&str]) -> Vec<Option<Vec<u8>>> {
    let out = p.local(cc, args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.take(outputs)
}

/// A tree that uses every way of looking up a header: beside the includer (also from a header
/// in a subdirectory), `-I`, `-iquote`, a subdirectory in a name, `#include_next` out of a
/// wrapper of a system header, `__has_include` of a header that exists and of one that does
/// not, and an `#include` in a branch that is never taken, of a header that does not exist.
fn every_lookup(p: &Project) {
    p.write(
        "t.c",
        "#include \"a.h\"\n#include <lib.h>\n#include \"q.h\"\n#include \"sub/b.h\"\n\
         #include <stdlib.h>\n\
         #if __has_include(\"maybe.h\")\n#include \"maybe.h\"\n#endif\n\
         #if __has_include(<absent.h>)\n#error absent.h\n#endif\n\
         #if 0\n#include \"never.h\"\n#endif\n\
         int v(void) { return A + LIB + Q + B + C + MAYBE + WRAPPED + (int)sizeof(div_t); }\n",
    );
    p.write("a.h", "#define A 1\n");
    p.write("lib/lib.h", "#define LIB 2\n");
    p.write("quote/q.h", "#define Q 3\n");
    p.write("inc/sub/b.h", "#include \"c.h\"\n#define B 4\n");
    p.write("inc/sub/c.h", "#define C 5\n");
    p.write("late/maybe.h", "#define MAYBE 6\n");
    p.write(
        "wrap/stdlib.h",
        "#include_next <stdlib.h>\n#define WRAPPED 7\n",
    );
}

const EVERY_LOOKUP_ARGS: [&str; 10] = [
    "-Iinc", "-Ilib", "-Iwrap", "-Ilate", "-iquote", "quote", "-O2", "-g", "-c", "t.c",
];

#[test]
fn every_lookup_through_the_closure_runs_no_local_preprocessor() {
    for cc in ["gcc", "clang"] {
        let p = Project::new();
        every_lookup(&p);
        let server = TestServer::fresh(|_| {});
        let counting = Counting::new(&p.path().join("count"));
        let outputs = ["t.o", "t.d"];
        let mut args = EVERY_LOOKUP_ARGS.to_vec();
        args.extend(["-o", "t.o", "-MMD", "-MP"]);
        let (line, remote) = through_homcc(&p, &server, &counting, cc, &args, &outputs);
        assert!(line.contains("(include closure"), "{cc}: {line}");
        assert_eq!(counting.runs(), Vec::<String>::new(), "{cc}: no local scan");
        let want = local(&p, cc, &args, &outputs);
        assert!(want[1].as_ref().is_some_and(|d| !d.is_empty()));
        assert_eq!(
            remote, want,
            "{cc}: object and -MMD file equal a local compile's"
        );
    }
}

/// `-MD` names the system headers by their absolute paths, which the server's file names in its
/// job root: the local compiler writes it, in one run.
#[test]
fn a_dependency_file_naming_system_headers_is_written_by_one_local_run() {
    let p = Project::new();
    every_lookup(&p);
    let server = TestServer::fresh(|_| {});
    let counting = Counting::new(&p.path().join("count"));
    let outputs = ["t.o", "deps/t.d"];
    std::fs::create_dir_all(p.path().join("deps")).unwrap();
    let mut args = EVERY_LOOKUP_ARGS.to_vec();
    args.extend(["-o", "t.o", "-MD", "-MF", "deps/t.d", "-MT", "target"]);
    let (line, remote) = through_homcc(&p, &server, &counting, "gcc", &args, &outputs);
    assert!(line.contains("(include closure"), "{line}");
    assert_eq!(counting.runs().len(), 1, "{:?}", counting.runs());
    let want = local(&p, "gcc", &args, &outputs);
    let depfile = String::from_utf8_lossy(want[1].as_ref().unwrap()).into_owned();
    assert!(depfile.contains("/usr/include/stdlib.h"), "{depfile}");
    assert_eq!(remote, want);
}

/// A computed include takes the header names its macro is defined as: on the command line, or
/// in a file of the closure. One defined otherwise leaves the list to the compiler.
#[test]
fn computed_includes_through_the_closure_and_the_compiler() {
    let p = Project::new();
    p.write(
        "t.c",
        "#include \"defs.h\"\n#include HEADER\n#include OTHER\nint v = X + Y;\n",
    );
    p.write("defs.h", "#define OTHER <y.h>\n");
    p.write("x.h", "#define X 1\n");
    p.write("inc/y.h", "#define Y 2\n");
    p.write(
        "s.c",
        "#define STR(x) #x\n#define HEADER STR(x.h)\n#include HEADER\nint v = X;\n",
    );
    let server = TestServer::fresh(|_| {});
    let counting = Counting::new(&p.path().join("count"));
    let args = [
        "-Iinc",
        "-DHEADER=\"x.h\"",
        "-c",
        "t.c",
        "-o",
        "t.o",
        "-MMD",
    ];
    let outputs = ["t.o", "t.d"];
    let (line, remote) = through_homcc(&p, &server, &counting, "gcc", &args, &outputs);
    assert!(line.contains("(include closure"), "{line}");
    assert_eq!(counting.runs(), Vec::<String>::new(), "no local scan");
    assert_eq!(remote, local(&p, "gcc", &args, &outputs));

    let args = ["-c", "s.c", "-o", "s.o", "-MMD"];
    let outputs = ["s.o", "s.d"];
    let (line, remote) = through_homcc(&p, &server, &counting, "gcc", &args, &outputs);
    assert!(
        line.contains("(no include closure: a computed include of HEADER, a macro defined other than as a header name)"),
        "{line}"
    );
    assert_eq!(counting.runs().len(), 1, "one scan: {:?}", counting.runs());
    assert_eq!(remote, local(&p, "gcc", &args, &outputs));
}

#[test]
fn a_precompiled_header_beside_a_header_is_left_to_the_compiler() {
    let p = Project::new();
    p.write("t.c", "#include \"x.h\"\nint v = X;\n");
    p.write("x.h", "#define X 1\n");
    let out = p.local("gcc", &["-x", "c-header", "x.h", "-o", "x.h.gch"]);
    assert!(out.status.success());
    let server = TestServer::fresh(|_| {});
    let counting = Counting::new(&p.path().join("count"));
    let args = ["-c", "t.c", "-o", "t.o"];
    let (line, remote) = through_homcc(&p, &server, &counting, "gcc", &args, &["t.o"]);
    assert!(
        line.contains("(no include closure: a precompiled header for "),
        "{line}"
    );
    assert_eq!(remote, local(&p, "gcc", &args, &["t.o"]));
}

/// The search list is recorded with the directories the compiler left out as missing: one that
/// appears later, with a header that shadows another, joins the search.
#[test]
fn a_missing_include_dir_that_appears_joins_the_search() {
    let p = Project::new();
    p.write("t.c", "#include \"x.h\"\nint v = X;\n");
    p.write("old/x.h", "#define X 1\n");
    let server = TestServer::fresh(|_| {});
    let counting = Counting::new(&p.path().join("count"));
    let args = ["-Inew", "-Iold", "-c", "t.c", "-o", "t.o"];
    let (line, before) = through_homcc(&p, &server, &counting, "gcc", &args, &["t.o"]);
    assert!(line.contains("(include closure"), "{line}");
    p.write("new/x.h", "#define X 2\n");
    let (line, after) = through_homcc(&p, &server, &counting, "gcc", &args, &["t.o"]);
    assert!(line.contains("(include closure"), "{line}");
    let want = local(&p, "gcc", &args, &["t.o"]);
    assert_ne!(before, want, "the new header changes the object");
    assert_eq!(after, want);
}

/// A compile from the closure that fails is checked against the compiler's own scan, which
/// lists no file the closure did not send: its verdict is the build's, from one remote compile
/// (exit code, stdout and stderr equal a local compile's, with no line of homcc's).
#[test]
fn a_failing_compile_from_the_closure_ends_with_the_compilers_verdict() {
    let p = Project::new();
    p.write("t.c", "#include \"a.h\"\nint v = A +;\n");
    p.write("a.h", "#define A 1\n");
    let server = TestServer::fresh(|_| {});
    for compiler in ["gcc", "clang"] {
        let args = ["-MMD", "-c", "t.c"];
        let local = assert_same_as_local_with(&p, &server, compiler, &args, &["t.o", "t.d"], 1);
        assert_eq!(local.code, Some(1));
        assert!(local.stderr.contains("error"), "{}", local.stderr);
    }
    let host = server.host();
    let out = p.homcc(&["--verbose", "--host", &host], "gcc", &["-c", "t.c"]);
    assert_eq!(out.status.code(), Some(1));
    let lines = homcc_lines(&out.stderr);
    assert!(
        lines.iter().any(|l| l.contains("that verdict stands")),
        "{lines:?}"
    );
}

/// Variables for a command.
type Env<'a> = &'a [(&'a str, &'a str)];

#[test]
fn no_include_closure_in_each_form_makes_the_compiler_scan() {
    let p = Project::new();
    p.write("a.h", "#define A 1\n");
    let server = TestServer::fresh(|_| {});
    let config = p.path().join("homcc.conf");
    std::fs::write(&config, "[homcc]\nno_include_closure = true\n").unwrap();
    let forms: [(&[&str], Env); 4] = [
        (&[], &[]),
        (&["--no-include-closure"], &[]),
        (&[], &[("HOMCC_NO_INCLUDE_CLOSURE", "1")]),
        (&[], &[("HOMCC_DIR", p.path().to_str().unwrap())]),
    ];
    for (i, (flags, env)) in forms.into_iter().enumerate() {
        // A source of its own each time: no recorded scan answers it.
        let source = format!("t{i}.c");
        p.write(&source, "#include \"a.h\"\nint v = A;\n");
        let host = server.host();
        let mut homcc_args = vec!["--verbose", "--host", &host];
        homcc_args.extend(flags);
        let args = ["-c", source.as_str(), "-o", "t.o"];
        let mut cmd = p.homcc_command(&homcc_args, "gcc", &args);
        let out = cmd.envs(env.iter().copied()).output().unwrap();
        assert!(out.status.success());
        let lines = homcc_lines(&out.stderr);
        let closure = lines.iter().any(|l| l.contains("(include closure"));
        assert_eq!(closure, i == 0, "{flags:?} {env:?}: {lines:?}");
    }
}
