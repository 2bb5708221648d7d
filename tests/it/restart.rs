//! homccd restarted in the middle of a `make -j8`: SIGTERM (it stops listening, lets its running
//! compiles finish and exits 0), then started again on the same port and cache. The build
//! succeeds with every object identical to a local build; the compiles that found no server
//! compiled locally with one line each; and compiles return to the server once it is back,
//! within the 2 s back-off that a refused connection starts.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use homcc_tests::{bin, homcc_lines, isolate, slow_cxx_source, wait_for, Daemon, Project};
use std::time::Duration;

/// Translation units of the build, and how many objects are there when homccd is restarted.
const UNITS: usize = 48;
const RESTART_AFTER: usize = 12;

/// `make -j8` of every `*.cpp` of `project` into `out/`, with `cxx` as the compiler.
fn make(project: &Project, cxx: &str, out: &str) -> Command {
    std::fs::create_dir_all(project.path().join(out)).unwrap();
    let mut cmd = Command::new("make");
    cmd.args(["-j8", "-s", &format!("CXX={cxx}"), &format!("OUT={out}")])
        .current_dir(project.path());
    cmd
}

fn objects(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut objects: Vec<_> = (std::fs::read_dir(dir).unwrap().flatten())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    objects.sort();
    objects
}

#[test]
fn a_restart_in_the_middle_of_a_parallel_build() {
    let project = Project::new();
    project.write(
        "Makefile",
        "OBJ := $(patsubst %.cpp,$(OUT)/%.o,$(wildcard *.cpp))\nall: $(OBJ)\n$(OUT)/%.o: %.cpp\n\t$(CXX) -O1 -c $< -o $@\n",
    );
    for n in 0..UNITS {
        project.write(
            &format!("unit{n:02}.cpp"),
            &format!("// unit {n}\n{}", slow_cxx_source(6 + n % 5)),
        );
    }
    let local = make(&project, "g++", "local").output().unwrap();
    assert!(
        local.status.success(),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );

    let cache = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(cache.path(), &["--limit", "8"]);
    let homcc = format!("{} g++", bin("homcc").display());
    let mut build = make(&project, &homcc, "remote");
    isolate(&mut build, project.client_cache.path())
        .env("HOMCC_HOSTS", format!("{}/8", daemon.host()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let build = build.spawn().unwrap();
    let remote = project.path().join("remote");
    wait_for("the first objects", Duration::from_secs(120), || {
        std::fs::read_dir(&remote).unwrap().count() >= RESTART_AFTER
    });
    let served_before = daemon.compiles_done();
    let daemon = daemon.restart();

    let out = build.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "make: {stderr}");
    let lines = homcc_lines(&out.stderr);
    let served_after = daemon.compiles_done();
    eprintln!(
        "{UNITS} units: {served_before} compiled remotely before the restart, {served_after} after it, {} locally",
        lines.len()
    );
    assert!(
        lines.iter().all(|l| l.ends_with("; compiling locally")),
        "only fallback lines: {lines:#?}"
    );
    assert!(
        served_before >= RESTART_AFTER.min(8),
        "before the restart: {served_before}"
    );
    // The build was not even half done: with the back-off of a refused connection (2 s) the
    // compiles come back to the restarted server for most of the rest.
    assert!(
        served_after >= (UNITS - RESTART_AFTER) / 2,
        "only {served_after} compiles came back to the restarted server; {} went local: {lines:#?}",
        lines.len()
    );
    assert_eq!(
        objects(&project.path().join("local")),
        objects(&remote),
        "every object as the local build's"
    );
}
