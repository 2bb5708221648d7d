//! The include closure where it once read a file otherwise than the compiler (found by a review
//! of it): each source reads `x.h` through a construct the closure must see as the compiler sees
//! it, or decline. A trap waits on the server: another `x.h` in a later directory, which the
//! closure sends (every branch of `__has_include(<x.h>)` or of an `#if 0` is followed), so a
//! closure that misses the first `x.h` compiles against the second, silently. Each object must
//! equal a local compile's.

use homcc_tests::{assert_same_as_local, Project, TestServer};

/// Drags `b/x.h` into the closure (with `-Ib`).
const TRAP: &str = "#if __has_include(<x.h>)\n#endif\n#if 0\n#include \"b/x.h\"\n#endif\n";

/// A source (`TRAP` in it stands for [`TRAP`], else that comes first), its compiler and flags
/// (`-Ib` is added), and the files beside it.
struct Case {
    name: &'static str,
    compiler: &'static str,
    flags: &'static [&'static str],
    source: &'static str,
    files: &'static [(&'static str, &'static str)],
}

const LOCAL_X: (&str, &str) = ("x.h", "#define X 1\n");

const CASES: &[Case] = &[
    Case {
        name: "a byte order mark before the first directive",
        compiler: "gcc",
        flags: &[],
        source: "\u{feff}#include \"x.h\"\nTRAP\nint v = X;\n",
        files: &[LOCAL_X],
    },
    Case {
        name: "a lone carriage return ends a line",
        compiler: "gcc",
        flags: &[],
        source: "// old Mac line end\r#include \"x.h\"\rint v = X;\n",
        files: &[LOCAL_X],
    },
    Case {
        name: "a splice with blanks ends a comment",
        compiler: "clang",
        flags: &[],
        source: "/* comment *\\ \n/\n#include \"x.h\"\nint v = X;\n",
        files: &[LOCAL_X],
    },
    Case {
        name: "a NUL before a directive",
        compiler: "gcc",
        flags: &[],
        source: "\0#include \"x.h\"\nint v = X;\n",
        files: &[LOCAL_X],
    },
    Case {
        name: "no raw string in ISO C",
        compiler: "gcc",
        flags: &["-std=c11"],
        source: "#if 0\nR\"x(\n#endif\n#include \"x.h\"\n#if 0\n)x\"\n#endif\nint v = X;\n",
        files: &[LOCAL_X],
    },
    Case {
        name: "no raw string in clang's C",
        compiler: "clang",
        flags: &[],
        source: "#if 0\nR\"x(\n#endif\n#include \"x.h\"\n#if 0\n)x\"\n#endif\nint v = X;\n",
        files: &[LOCAL_X],
    },
    Case {
        name: "no digit separator in C",
        compiler: "gcc",
        flags: &[],
        source: "#if 0\n1'a/*'\n#endif\n#include \"x.h\"\n/* */\nint v = X;\n",
        files: &[LOCAL_X],
    },
    Case {
        name: "clang's -ftrigraphs",
        compiler: "clang",
        flags: &["-ftrigraphs", "-Wno-trigraphs"],
        source: "??=include \"x.h\"\nint v = X;\n",
        files: &[LOCAL_X],
    },
    Case {
        name: "a macro defined through -Xpreprocessor",
        compiler: "gcc",
        flags: &["-Xpreprocessor", "-DHEADER=\"x.h\""],
        source: "#include HEADER\nint v = X;\n",
        files: &[LOCAL_X],
    },
    Case {
        name: "a computed include of __FILE__",
        compiler: "gcc",
        flags: &["-iquote", "a"],
        source: "#line 1 \"x.h\"\n#include __FILE__\nint v = X;\n",
        files: &[("a/x.h", "#define X 1\n")],
    },
    Case {
        name: "clang's Microsoft search of the includers' directories",
        compiler: "clang",
        flags: &["-fms-compatibility"],
        source: "#include \"sub/a.h\"\nint v = X;\n",
        files: &[LOCAL_X, ("sub/a.h", "#include \"x.h\"\n")],
    },
    Case {
        name: "a name that climbs out of a directory of its own",
        compiler: "gcc",
        flags: &["-Ia"],
        source: "#include \"sub/../x.h\"\nint v = X;\n",
        files: &[("a/x.h", "#define X 1\n"), ("a/sub/empty", "")],
    },
];

#[test]
fn constructs_the_closure_must_read_as_the_compiler_does() {
    let server = TestServer::fresh(|_| {});
    let mut failures = Vec::new();
    for case in CASES {
        let p = Project::new();
        let source = match case.source.contains("TRAP\n") {
            true => case.source.replace("TRAP\n", TRAP),
            false => format!("{TRAP}{}", case.source),
        };
        p.write("t.c", &source).write("b/x.h", "#define X 2\n");
        for (path, content) in case.files {
            p.write(path, content);
        }
        let mut args = case.flags.to_vec();
        args.extend(["-Ib", "-c", "t.c", "-o", "t.o"]);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_same_as_local(&p, &server, case.compiler, &args, &["t.o"])
        }));
        match result {
            Ok(out) if out.code == Some(0) => {}
            Ok(out) => failures.push(format!(
                "{}: exit {:?}: {}",
                case.name, out.code, out.stderr
            )),
            Err(_) => failures.push(case.name.to_string()),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// `inc/sub` links to `../other/deep`, whose `x.h` includes `"../y.h"`: the kernel climbs from
/// the link's target (`other/y.h`), the server's tree of plain directories from `inc/`.
#[test]
fn a_climb_after_a_symbolic_link() {
    let server = TestServer::fresh(|_| {});
    let p = Project::new();
    p.write(
        "t.c",
        "#include \"inc/sub/x.h\"\n#include \"inc/y.h\"\nint v = V;\n",
    )
    .write("other/y.h", "#define V 1\n")
    .write("other/deep/x.h", "#include \"../y.h\"\n")
    .write("inc/y.h", "#ifndef V\n#define V 2\n#endif\n");
    std::os::unix::fs::symlink("../other/deep", p.path().join("inc/sub")).unwrap();
    assert_same_as_local(&p, &server, "gcc", &["-c", "t.c", "-o", "t.o"], &["t.o"]);
}
