//! The scan with a real gcc: the file list in each dependency-file form, and the scan cache
//! answering, or not, as the tree changes.

use std::{ffi::OsString, time::Instant};

use super::*;
use crate::{
    classify::{classify, Driver, Plan},
    compiler,
};

#[test]
fn only_flags_that_shape_the_output_of_e_are_left_out_of_the_scan() {
    let left_out = ["-P", "-fdirectives-only", "-dM", "-dMD", "-dDM"];
    let kept = [
        "-dD",
        "-dI",
        "-d",
        "-dumpbase",
        "-dumpdir",
        "-MD",
        "-Pfoo",
        "-I",
        "-D",
    ];
    assert!(left_out.iter().all(|a| shapes_output_only(OsStr::new(a))));
    assert!(!kept.iter().any(|a| shapes_output_only(OsStr::new(a))));
}

#[test]
fn headers_opened_are_the_dotted_lines_of_h() {
    let stderr = b"#include <...> search starts here:\n /usr/include\n. a.h\n.. ./sub dir/b.h\n\
./c.h:1:2: warning: x\nMultiple include guards may be useful for:\na.h\n... /usr/include/d.h\n";
    let want = ["a.h", "./sub dir/b.h", "/usr/include/d.h"].map(PathBuf::from);
    assert_eq!(headers_opened(stderr).collect::<Vec<_>>(), want);
}

#[test]
fn forced_includes_are_named_by_their_flags() {
    let args = |line: &str| line.split(' ').map(OsString::from).collect::<Vec<_>>();
    let forced = forced_includes(&args("-include a.h -imacrosm.h -I x -c t.c")).unwrap();
    assert_eq!(forced, ["a.h", "m.h"].map(PathBuf::from));
    assert_eq!(forced_includes(&args("-O2 t.c")), Some(Vec::new()));
}

/// A project in a temp dir: `t.c` in `src/`, headers in `inc/` and `early/` (searched first).
struct Project {
    dir: tempfile::TempDir,
    cache: ScanCache,
}

impl Project {
    fn new() -> Project {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["src", "inc", "early", "cache"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let project = Project {
            cache: ScanCache::new(&dir.path().join("cache")),
            dir,
        };
        project.write(
            "src/t.c",
            "#include \"x.h\"\n#include <stdio.h>\nint t = X;\n",
        );
        project.write("inc/x.h", "#define X 1\n");
        project
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).unwrap();
    }

    /// Scans `line` (gcc's arguments) in the project dir, once every file has settled.
    fn scan(&self, line: &str) -> Scan {
        let cwd = self.dir.path();
        settle(cwd);
        let args: Vec<OsString> = line.split(' ').map(OsString::from).collect();
        let Plan::Remote(jobs) = classify(&args, cwd, Driver::from_name(OsStr::new("gcc"))) else {
            panic!("{line} is not a remote compile");
        };
        let gcc = compiler::resolve(OsStr::new("gcc")).unwrap();
        let info = compiler::info(OsStr::new("gcc"), &gcc, jobs[0].language, &[], None).unwrap();
        scan(&gcc, &info, &jobs[0], cwd, Some(&self.cache), false).unwrap()
    }
}

/// Waits until every file under `dir` has settled (a scan that reads a file changed just before
/// it is not recorded), polling with a deadline.
fn settle(dir: &Path) {
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    let settled = || {
        let now = SystemTime::now();
        let mut stack = vec![dir.to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let meta = entry.metadata().unwrap();
                if meta.is_dir() {
                    stack.push(entry.path());
                } else if !settled(&meta, now) {
                    return false;
                }
            }
        }
        true
    };
    while !settled() {
        assert!(
            Instant::now() < deadline,
            "files under {} never settled",
            dir.display()
        );
        std::thread::yield_now();
    }
}

fn names(scan: &Scan) -> Vec<String> {
    let mut names: Vec<String> = (scan.files.iter())
        .map(|f| {
            f.entry
                .path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn ran(scan: &Scan) -> String {
    match &scan.cache {
        CacheUse::Ran { why, recorded } => {
            assert_eq!(recorded, &Ok(()), "{why}");
            why.clone()
        }
        other => panic!("the scan did not run: {other:?}"),
    }
}

#[test]
fn a_recorded_scan_answers_until_a_file_or_a_lookup_changes() {
    let p = Project::new();
    let line = "-Iearly -Iinc -c src/t.c -o t.o";
    let first = p.scan(line);
    assert_eq!(ran(&first), "not recorded");
    assert!(
        names(&first).contains(&"x.h".to_string()),
        "{:?}",
        names(&first)
    );
    let again = p.scan(line);
    assert_eq!(again.cache, CacheUse::Hit);
    assert_eq!(names(&again), names(&first));
    // Same size, new content.
    p.write("inc/x.h", "#define X 2\n");
    assert!(ran(&p.scan(line)).contains("x.h changed"));
    assert_eq!(p.scan(line).cache, CacheUse::Hit);
    // A header that shadows x.h in a directory searched earlier.
    p.write("early/x.h", "#define X 3\n");
    let shadowed = p.scan(line);
    assert!(ran(&shadowed).contains("early/x.h"), "{:?}", shadowed.cache);
    let read: Vec<_> = shadowed
        .files
        .iter()
        .map(|f| f.entry.path.clone())
        .collect();
    assert!(read.contains(&p.dir.path().join("early/x.h")), "{read:?}");
    // Another command line is another record.
    assert_eq!(
        ran(&p.scan("-Iinc -Iearly -c src/t.c -o t.o")),
        "not recorded"
    );
}

#[test]
fn a_replayed_scan_writes_the_dependency_file_as_the_compiler_did() {
    let p = Project::new();
    for line in [
        "-Iinc -MMD -c src/t.c -o t.o",
        "-Iinc -MD -MP -MF t.d -c src/t.c -o t.o",
    ] {
        let _ = std::fs::remove_file(p.dir.path().join("t.d"));
        ran(&p.scan(line));
        let written = std::fs::read(p.dir.path().join("t.d")).unwrap();
        std::fs::remove_file(p.dir.path().join("t.d")).unwrap();
        assert_eq!(p.scan(line).cache, CacheUse::Hit, "{line}");
        assert_eq!(
            std::fs::read(p.dir.path().join("t.d")).unwrap(),
            written,
            "{line}"
        );
    }
}

#[test]
fn a_file_changed_just_before_the_scan_is_not_recorded() {
    let p = Project::new();
    let cwd = p.dir.path();
    let args: Vec<OsString> = "-Iinc -c src/t.c".split(' ').map(OsString::from).collect();
    let Plan::Remote(jobs) = classify(&args, cwd, Driver::from_name(OsStr::new("gcc"))) else {
        panic!("not remote");
    };
    let gcc = compiler::resolve(OsStr::new("gcc")).unwrap();
    let info = compiler::info(OsStr::new("gcc"), &gcc, jobs[0].language, &[], None).unwrap();
    p.write("inc/x.h", "#define X 4\n");
    let scan = scan(&gcc, &info, &jobs[0], cwd, Some(&p.cache), false).unwrap();
    let CacheUse::Ran { recorded, .. } = scan.cache else {
        panic!("{:?}", scan.cache);
    };
    assert!(recorded
        .unwrap_err()
        .contains("changed just before the scan"));
}
