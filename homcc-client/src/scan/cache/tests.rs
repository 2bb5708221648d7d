//! The scan cache's key and its bound.

use std::time::Duration;

use super::*;
use crate::scan::probes::Found;

#[test]
fn every_input_of_the_scan_is_in_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cc, cc1) = (dir.path().join("cc"), dir.path().join("cc1"));
    std::fs::write(&cc, "driver").unwrap();
    std::fs::write(&cc1, "proper").unwrap();
    let args = |line: &'static str| line.split(' ').map(OsStr::new).collect::<Vec<_>>();
    let key =
        |cc: &Path, cc1: &Path, line, cwd: &str| Key::new(cc, cc1, &args(line), Path::new(cwd));
    let base = key(&cc, &cc1, "-c a.c", "/p").unwrap();
    assert_eq!(key(&cc, &cc1, "-c a.c", "/p"), Some(base));
    assert_ne!(key(&cc, &cc1, "-c b.c", "/p"), Some(base));
    assert_ne!(key(&cc, &cc1, "-c a.c", "/q"), Some(base));
    assert_ne!(
        key(&cc, &cc1, "-c a.c", "/p"),
        key(&cc1, &cc, "-c a.c", "/p")
    );
    assert_ne!(
        key(&cc, &cc1, "-c a.c", "/p"),
        key(&cc, &cc1, "-c a.c ", "/p")
    );
    // A compiler proper replaced by another file.
    std::fs::remove_file(&cc1).unwrap();
    std::fs::write(&cc1, "proper").unwrap();
    assert_ne!(key(&cc, &cc1, "-c a.c", "/p"), Some(base));
    assert_eq!(key(&cc, &dir.path().join("none"), "-c a.c", "/p"), None);
}

#[test]
fn the_least_recently_used_records_go_first() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    for (name, age) in [("old", 30), ("older", 60), ("young", 0)] {
        let path = dir.path().join(name);
        std::fs::write(&path, [0u8; 100]).unwrap();
        let file = File::options().write(true).open(&path).unwrap();
        file.set_modified(now - Duration::from_secs(age)).unwrap();
    }
    evict(dir.path(), 250);
    let mut left: Vec<_> = (std::fs::read_dir(dir.path()).unwrap().flatten())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["old", "young"]);
    evict(dir.path(), 1000);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn a_directory_that_kept_its_stamp_answers_for_its_probes_but_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let inc = dir.path().join("inc");
    std::fs::create_dir(&inc).unwrap();
    // Settled: any change from now on gives it another modification time.
    let past = SystemTime::now() - Duration::from_secs(60);
    File::open(&inc).unwrap().set_modified(past).unwrap();
    let stamp = Stamp::of(&inc.metadata().unwrap());
    // Recorded as a file, but there is none: only trying the probe can tell.
    let probe = |linked| Probe {
        path: inc.join("x.h"),
        is: Found::File,
        linked,
    };
    let record = |probe, stamp| Record {
        files: Vec::new(),
        driver_files: Vec::new(),
        probes: vec![probe],
        probed_dirs: vec![ProbedDir {
            path: inc.clone(),
            stamp,
        }],
        depfile: None,
    };
    assert!(changed_lookup(&record(probe(false), stamp)).is_none());
    assert!(changed_lookup(&record(probe(true), stamp)).is_some());
    std::fs::write(dir.path().join("inc/y.h"), "").unwrap();
    assert!(changed_lookup(&record(probe(false), stamp)).is_some());
}
