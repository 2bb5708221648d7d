//! The scan cache through homcc and a real homccd (issue 12): for every way a changed tree could
//! make a recorded file list wrong, a compile is recorded, answered from the record while nothing
//! changes, and after the change scanned again, its object equal to a local compile of the
//! changed tree.

use std::{
    os::unix::fs::symlink,
    path::Path,
    process::Command,
    time::{Duration, SystemTime},
};

use homcc_tests::{homcc_lines, wait_for, Project, TestServer};

/// Waits until every file and directory under `dir` has settled, so that a scan that reads them
/// is recorded.
fn settle(dir: &Path) {
    let settled = || {
        let now = SystemTime::now();
        let mut stack = vec![dir.to_owned()];
        while let Some(dir) = stack.pop() {
            let dir_meta = std::fs::metadata(&dir).unwrap();
            if !homcc_client::scan::settled(&dir_meta, now) {
                return false;
            }
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                // A dangling symlink: the link itself.
                let meta = (std::fs::metadata(entry.path()))
                    .or_else(|_| std::fs::symlink_metadata(entry.path()))
                    .unwrap();
                if meta.is_dir() && !entry.file_type().unwrap().is_symlink() {
                    stack.push(entry.path());
                } else if !homcc_client::scan::settled(&meta, now) {
                    return false;
                }
            }
        }
        true
    };
    wait_for(
        "the project's files to settle",
        Duration::from_secs(10),
        settled,
    );
}

/// A compile through homcc with `--verbose`: its summary line (the scan cache's part in it) and
/// its object.
fn through_homcc(
    p: &Project,
    server: &TestServer,
    env: &[(&str, &str)],
    cc: &str,
    args: &[&str],
) -> (String, Vec<u8>) {
    let mut cmd = p.homcc_command(&["--verbose", "--host", &server.host()], cc, args);
    // The scan cache keeps the compiler's scans; the include closure needs none.
    cmd.env("HOMCC_NO_INCLUDE_CLOSURE", "1")
        .envs(env.iter().copied());
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = homcc_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "one summary line: {lines:?}");
    let object = p.take(&["t.o"]).remove(0).expect("t.o");
    (lines[0].clone(), object)
}

fn local(p: &Project, env: &[(&str, &str)], cc: &str, args: &[&str]) -> Vec<u8> {
    p.local_output(p.path(), env, cc, args, "t.o")
}

/// One trap: `setup` the tree, compile (recorded), compile again (answered by the record),
/// `change` the tree, compile (scanned again) and compare with a local compile. `env` is the
/// compiler's environment before and after the change.
fn trap(
    cc: &str,
    args: &[&str],
    setup: impl Fn(&Project),
    change: impl Fn(&Project),
    env: [&[(&str, &str)]; 2],
) {
    let p = Project::new();
    let server = TestServer::fresh(|_| {});
    setup(&p);
    settle(p.path());
    let (first, before) = through_homcc(&p, &server, env[0], cc, args);
    assert!(
        first.contains("; recorded)"),
        "the first scan is recorded: {first}"
    );
    let (again, same) = through_homcc(&p, &server, env[0], cc, args);
    assert!(
        again.contains("(scan cached)"),
        "unchanged, the record answers: {again}"
    );
    assert_eq!(same, before);
    change(&p);
    let (after, remote) = through_homcc(&p, &server, env[1], cc, args);
    assert!(
        !after.contains("(scan cached)"),
        "after the change: {after}"
    );
    let want = local(&p, env[1], cc, args);
    assert_eq!(
        remote, want,
        "the object equals a local compile of the changed tree"
    );
    assert_ne!(want, before, "the change changes the object");
    assert_eq!(server.records().len(), 3);
    // The include closure, which follows the changed tree's #includes itself, finds the same.
    let closure = [env[1], &[("HOMCC_NO_INCLUDE_CLOSURE", "0")]].concat();
    let (line, remote) = through_homcc(&p, &server, &closure, cc, args);
    assert_eq!(remote, want, "from the include closure: {line}");
}

const NONE: &[(&str, &str)] = &[];
/// A compile of `t.c` that searches `early/`, then `late/`.
const EARLY_LATE: [&str; 6] = ["-Iearly", "-Ilate", "-c", "t.c", "-o", "t.o"];

fn mkdirs(p: &Project, dirs: &[&str]) {
    for dir in dirs {
        std::fs::create_dir_all(p.path().join(dir)).unwrap();
    }
}

#[test]
fn a_new_header_in_an_earlier_include_dir() {
    let setup = |p: &Project| {
        mkdirs(p, &["early", "late"]);
        p.write("t.c", "#include \"x.h\"\nint v = X;\n");
        p.write("late/x.h", "#define X 1\n");
    };
    let change = |p: &Project| {
        p.write("early/x.h", "#define X 2\n");
    };
    trap("gcc", &EARLY_LATE, setup, change, [NONE; 2]);
}

#[test]
fn a_new_header_in_an_iquote_dir() {
    let setup = |p: &Project| {
        mkdirs(p, &["q", "b"]);
        p.write("t.c", "#include \"x.h\"\nint v = X;\n");
        p.write("b/x.h", "#define X 1\n");
    };
    let change = |p: &Project| {
        p.write("q/x.h", "#define X 2\n");
    };
    trap(
        "gcc",
        &["-iquote", "q", "-Ib", "-c", "t.c", "-o", "t.o"],
        setup,
        change,
        [NONE; 2],
    );
}

#[test]
fn a_new_header_beside_its_includer() {
    let setup = |p: &Project| {
        mkdirs(p, &["src", "inc"]);
        p.write("src/t.c", "#include \"x.h\"\nint v = X;\n");
        p.write("inc/x.h", "#define X 1\n");
    };
    let change = |p: &Project| {
        p.write("src/x.h", "#define X 2\n");
    };
    trap(
        "clang",
        &["-Iinc", "-c", "src/t.c", "-o", "t.o"],
        setup,
        change,
        [NONE; 2],
    );
}

#[test]
fn a_new_header_in_an_earlier_built_in_dir() {
    // The built-in dirs of a sysroot of the test's own: <sysroot>/usr/local/include, missing
    // at first, comes before <sysroot>/usr/include.
    let setup = |p: &Project| {
        mkdirs(p, &["sys/usr/include"]);
        p.write("t.c", "#include <x.h>\nint v = X;\n");
        p.write("sys/usr/include/x.h", "#define X 1\n");
    };
    let change = |p: &Project| {
        mkdirs(p, &["sys/usr/local/include"]);
        p.write("sys/usr/local/include/x.h", "#define X 2\n");
    };
    let sysroot = "--sysroot=sys";
    trap(
        "gcc",
        &[sysroot, "-c", "t.c", "-o", "t.o"],
        setup,
        change,
        [NONE; 2],
    );
}

#[test]
fn a_header_that_has_include_did_not_find() {
    let setup = |p: &Project| {
        let source =
            "#if __has_include(\"opt.h\")\n#include \"opt.h\"\n#else\n#define OPT 0\n#endif\n\
                      int v = OPT;\n";
        p.write("t.c", source);
    };
    let change = |p: &Project| {
        p.write("opt.h", "#define OPT 5\n");
    };
    trap("gcc", &["-c", "t.c", "-o", "t.o"], setup, change, [NONE; 2]);
}

#[test]
fn a_header_that_include_next_finds_earlier() {
    let setup = |p: &Project| {
        mkdirs(p, &["a", "b", "c"]);
        p.write("t.c", "#include <x.h>\nint v = X;\n");
        p.write("a/x.h", "#include_next <x.h>\n");
        p.write("c/x.h", "#define X 1\n");
    };
    let change = |p: &Project| {
        p.write("b/x.h", "#define X 2\n");
    };
    trap(
        "gcc",
        &["-Ia", "-Ib", "-Ic", "-c", "t.c", "-o", "t.o"],
        setup,
        change,
        [NONE; 2],
    );
}

#[test]
fn a_header_that_a_computed_include_finds_earlier() {
    // As git's sha1dc/sha1.h: `#include MACRO`, the name given by -D.
    let setup = |p: &Project| {
        mkdirs(p, &["early", "late/sub"]);
        p.write("t.c", "#include \"late/a.h\"\nint v = X;\n");
        p.write("late/a.h", "#include HEADER\n");
        p.write("late/sub/x.h", "#define X 1\n");
    };
    let change = |p: &Project| {
        mkdirs(p, &["early/sub"]);
        p.write("early/sub/x.h", "#define X 2\n");
    };
    let args = [
        "-Iearly",
        "-Ilate",
        "-DHEADER=<sub/x.h>",
        "-c",
        "t.c",
        "-o",
        "t.o",
    ];
    trap("gcc", &args, setup, change, [NONE; 2]);
}

/// Gives `file` the modification time of `like` (the change time follows the clock).
fn same_mtime(file: &Path, like: &Path) {
    let mtime = std::fs::metadata(like).unwrap().modified().unwrap();
    let f = std::fs::File::options().write(true).open(file).unwrap();
    f.set_modified(mtime).unwrap();
}

#[test]
fn a_header_replaced_by_one_of_the_same_size_and_mtime() {
    let setup = |p: &Project| {
        p.write(
            "t.c",
            "#include \"x.h\"\n#include \"y.h\"\nint v = X + Y;\n",
        );
        p.write("x.h", "#define X 1\n");
        p.write("y.h", "#define Y 1\n");
    };
    let change = |p: &Project| {
        // x.h: another file renamed over it; y.h: rewritten in place; both keep size and mtime.
        let (x, y) = (p.path().join("x.h"), p.path().join("y.h"));
        p.write("x.new", "#define X 2\n");
        same_mtime(&p.path().join("x.new"), &x);
        std::fs::rename(p.path().join("x.new"), &x).unwrap();
        let old = p.path().join("y.old");
        std::fs::copy(&y, &old).unwrap();
        same_mtime(&old, &y);
        p.write("y.h", "#define Y 3\n");
        same_mtime(&y, &old);
        std::fs::remove_file(old).unwrap();
    };
    trap("gcc", &["-c", "t.c", "-o", "t.o"], setup, change, [NONE; 2]);
}

#[test]
fn symlinked_headers_and_directories_retargeted() {
    let setup = |p: &Project| {
        mkdirs(p, &["d1", "d2"]);
        p.write(
            "t.c",
            "#include \"x.h\"\n#include \"inc/y.h\"\nint v = X + Y;\n",
        );
        p.write("x1.h", "#define X 1\n");
        p.write("x2.h", "#define X 2\n");
        p.write("d1/y.h", "#define Y 1\n");
        p.write("d2/y.h", "#define Y 3\n");
        same_mtime(&p.path().join("x2.h"), &p.path().join("x1.h"));
        same_mtime(&p.path().join("d2/y.h"), &p.path().join("d1/y.h"));
        symlink("x1.h", p.path().join("x.h")).unwrap();
        symlink("d1", p.path().join("inc")).unwrap();
    };
    let change = |p: &Project| {
        for (link, target) in [("x.h", "x2.h"), ("inc", "d2")] {
            let tmp = p.path().join("link.tmp");
            symlink(target, &tmp).unwrap();
            std::fs::rename(&tmp, p.path().join(link)).unwrap();
        }
    };
    trap("gcc", &["-c", "t.c", "-o", "t.o"], setup, change, [NONE; 2]);
}

#[test]
fn a_dangling_symlink_in_an_unchanged_include_dir_comes_to_life() {
    // While early/ keeps its stamp, its probes are not tried, but for its symlinks, whose
    // targets change without it.
    let setup = |p: &Project| {
        mkdirs(p, &["early", "late", "target"]);
        p.write("t.c", "#include \"x.h\"\nint v = X;\n");
        p.write("late/x.h", "#define X 1\n");
        symlink("../target/x.h", p.path().join("early/x.h")).unwrap();
    };
    let change = |p: &Project| {
        p.write("target/x.h", "#define X 2\n");
    };
    trap("gcc", &EARLY_LATE, setup, change, [NONE; 2]);
}

#[test]
fn a_missing_include_dir_that_is_a_dangling_symlink_comes_to_life() {
    // links/ keeps its stamp when its symlink's target appears.
    let setup = |p: &Project| {
        mkdirs(p, &["links", "far", "late"]);
        p.write("t.c", "#include \"x.h\"\nint v = X;\n");
        p.write("late/x.h", "#define X 1\n");
        symlink("../far/inc", p.path().join("links/inc")).unwrap();
    };
    let change = |p: &Project| {
        mkdirs(p, &["far/inc"]);
        p.write("far/inc/x.h", "#define X 2\n");
    };
    trap(
        "gcc",
        &["-Ilinks/inc", "-Ilate", "-c", "t.c", "-o", "t.o"],
        setup,
        change,
        [NONE; 2],
    );
}

#[test]
fn the_preprocessors_environment_changes() {
    let setup = |p: &Project| {
        mkdirs(p, &["e1", "e2"]);
        p.write("t.c", "#include <v.h>\nconst char *v = V __DATE__;\n");
        p.write("e1/v.h", "#define V \"1\"\n");
        p.write("e2/v.h", "#define V \"2\"\n");
    };
    let before: &[(&str, &str)] = &[("CPATH", "e1"), ("SOURCE_DATE_EPOCH", "1000000000")];
    let after: &[(&str, &str)] = &[("CPATH", "e2"), ("SOURCE_DATE_EPOCH", "1700000000")];
    trap(
        "gcc",
        &["-c", "t.c", "-o", "t.o"],
        setup,
        |_| {},
        [before, after],
    );
}

#[test]
fn the_compiler_is_replaced() {
    // `bin/cc` is gcc, then clang (whose own <stddef.h> is another file).
    let setup = |p: &Project| {
        mkdirs(p, &["bin"]);
        symlink(which("gcc"), p.path().join("bin/cc")).unwrap();
        p.write(
            "t.c",
            "#include <stddef.h>\nsize_t v = sizeof(max_align_t);\nint w = __GNUC__;\n",
        );
    };
    let change = |p: &Project| {
        let tmp = p.path().join("bin/cc.tmp");
        symlink(which("clang"), &tmp).unwrap();
        std::fs::rename(tmp, p.path().join("bin/cc")).unwrap();
    };
    trap(
        "./bin/cc",
        &["-c", "t.c", "-o", "t.o"],
        setup,
        change,
        [NONE; 2],
    );
}

fn which(program: &str) -> std::path::PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .unwrap();
    std::path::PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A file system whose times have whole seconds (ext4 with 128-byte inodes, loop-mounted; needs
/// root, as CI has): a header rewritten within the second of a scan keeps its stamp.
struct CoarseFs {
    dir: tempfile::TempDir,
    _image: tempfile::NamedTempFile,
}

impl CoarseFs {
    fn new() -> CoarseFs {
        let image = tempfile::NamedTempFile::new().unwrap();
        image.as_file().set_len(64 << 20).unwrap();
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{cmd:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-I", "128"])
            .arg(image.path()));
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(image.path())
            .arg(dir.path()));
        CoarseFs { dir, _image: image }
    }
}

impl Drop for CoarseFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_header_changed_within_the_second_of_its_scan() {
    let fs = CoarseFs::new();
    let server = TestServer::fresh(|_| {});
    let p = Project::new();
    let header = fs.dir.path().join("x.h");
    let include = format!("-I{}", fs.dir.path().display());
    let args = [include.as_str(), "-c", "t.c", "-o", "t.o"];
    p.write("t.c", "#include \"x.h\"\nint v = X;\n");
    settle(p.path());
    // Within one second: write x.h, compile, rewrite x.h with the same size. Tried again if the
    // second turned meanwhile (then the stamp changed and the case is not this one).
    for value in 1..20 {
        std::fs::write(&header, format!("#define X {value}0\n")).unwrap();
        let stamp = |m: std::fs::Metadata| {
            (
                m.modified().unwrap(),
                std::os::unix::fs::MetadataExt::ctime(&m),
            )
        };
        let written = stamp(std::fs::metadata(&header).unwrap());
        let (first, _) = through_homcc(&p, &server, NONE, "gcc", &args);
        std::fs::write(&header, format!("#define X {value}1\n")).unwrap();
        if stamp(std::fs::metadata(&header).unwrap()) != written {
            continue;
        }
        assert!(
            first.contains("; not recorded: "),
            "a file this fresh is not trusted: {first}"
        );
        let (after, remote) = through_homcc(&p, &server, NONE, "gcc", &args);
        assert!(!after.contains("(scan cached)"), "{after}");
        assert_eq!(remote, local(&p, NONE, "gcc", &args));
        return;
    }
    panic!("never rewrote x.h within the second of its scan");
}
