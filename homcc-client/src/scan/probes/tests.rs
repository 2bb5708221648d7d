//! The probes of lookups in a real tree: search order, `_next`, missing dirs, and the races
//! that keep a scan from being recorded.

use std::time::Duration;

use super::*;

/// A tree with `a/`, `b/` (bracket dirs, in that order), `q/` (a quote dir) and `src/`.
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["a", "b", "q", "src"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    dir
}

/// A file read at `path` (absolute and normal, as the tests' temp dirs are).
fn includer<'a>(path: &'a Path, names: &'a [Lookup]) -> Includer<'a> {
    Includer {
        read_from: path,
        path,
        names,
    }
}

fn lookup(name: &str, delimiter: Delimiter) -> Lookup {
    Lookup::include(name.as_bytes(), delimiter)
}

/// The probes of `names` looked up from `src/t.c` (which read `read`), paths relative to `dir`.
fn probes_of(
    dir: &Path,
    names: Vec<Lookup>,
    read: &[&str],
    start: SystemTime,
) -> Result<Vec<(String, Found)>, String> {
    let search = SearchList {
        quote: vec![dir.join("q")],
        bracket: vec![dir.join("a"), dir.join("b")],
        missing: vec![dir.join("gone")],
        printed: true,
        ..SearchList::default()
    };
    let source = dir.join("src/t.c");
    let read: Vec<PathBuf> = read.iter().map(|r| dir.join(r)).collect();
    let mut files = vec![includer(&source, &names)];
    files.extend(read.iter().map(|r| includer(r, &[])));
    let lookups = Lookups {
        search: &search,
        cwd: dir,
        files,
        forced: Vec::new(),
        implicit: Vec::new(),
        paths_as_built: true,
    };
    let shown = |p: Probe| {
        (
            p.path.strip_prefix(dir).unwrap().display().to_string(),
            p.is,
        )
    };
    probes(&lookups, start).map(|found| found.probes.into_iter().map(shown).collect())
}

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(10)
}

#[test]
fn lookups_try_the_search_order_up_to_the_first_file() {
    let dir = tree();
    let d = dir.path();
    std::fs::write(d.join("b/x.h"), "").unwrap();
    std::fs::write(d.join("q/y.h"), "").unwrap();
    let names = vec![
        lookup("x.h", Delimiter::Angle),
        lookup("y.h", Delimiter::Quote),
        lookup("z.h", Delimiter::Angle),
    ];
    let got = probes_of(d, names, &["b/x.h", "q/y.h"], later()).unwrap();
    let want = [
        ("gone", Found::NoDir),
        ("a/x.h", Found::NoFile),
        ("b/x.h", Found::File),
        ("src/y.h", Found::NoFile),
        ("q/y.h", Found::File),
        ("a/z.h", Found::NoFile),
        ("b/z.h", Found::NoFile),
    ];
    let want: Vec<(String, Found)> = want.iter().map(|(p, f)| (p.to_string(), *f)).collect();
    assert_eq!(got, want);
}

#[test]
fn include_next_tries_every_directory_and_a_directory_is_no_file() {
    let dir = tree();
    let d = dir.path();
    std::fs::write(d.join("a/n.h"), "").unwrap();
    std::fs::write(d.join("b/n.h"), "").unwrap();
    std::fs::create_dir(d.join("a/dir.h")).unwrap();
    let next = Lookup {
        next: true,
        ..lookup("n.h", Delimiter::Angle)
    };
    let got = probes_of(
        d,
        vec![next, lookup("dir.h", Delimiter::Angle)],
        &["a/n.h", "b/n.h"],
        later(),
    )
    .unwrap();
    let files: Vec<_> = got
        .iter()
        .filter(|(_, f)| *f == Found::File)
        .map(|(p, _)| p.as_str())
        .collect();
    assert_eq!(files, ["a/n.h", "b/n.h"]);
    assert!(
        got.contains(&("a/dir.h".to_string(), Found::NoFile)),
        "{got:?}"
    );
    assert!(
        got.contains(&("q/n.h".to_string(), Found::NoFile)),
        "{got:?}"
    );
}

#[test]
fn races_with_the_tree_are_not_recorded() {
    let dir = tree();
    let d = dir.path();
    // A file not read that is new may have appeared after the compiler looked.
    std::fs::write(d.join("a/new.h"), "").unwrap();
    let new = probes_of(
        d,
        vec![lookup("new.h", Delimiter::Angle)],
        &[],
        SystemTime::now(),
    );
    assert!(new.unwrap_err().contains("a/new.h changed during the scan"));
    // A name only tested and not found, in a directory that just changed.
    let tested = Lookup {
        existence: true,
        ..lookup("maybe.h", Delimiter::Angle)
    };
    let recent = probes_of(d, vec![tested.clone()], &[], SystemTime::now());
    assert!(recent.unwrap_err().contains("__has_include"));
    assert!(probes_of(d, vec![tested], &[], later()).is_ok());
    // A missing search directory that exists now.
    std::fs::create_dir(d.join("gone")).unwrap();
    let appeared = probes_of(d, vec![], &[], later());
    assert!(appeared.unwrap_err().contains("gone appeared"));
}

#[test]
fn probes_hold_until_the_tree_changes() {
    let dir = tree();
    let d = dir.path();
    let probe = |path: &str, is| Probe::seen(d.join(path), is);
    let (file, nofile, nodir) = (
        probe("a/x.h", Found::File),
        probe("b/x.h", Found::NoFile),
        probe("gone", Found::NoDir),
    );
    std::fs::write(d.join("a/x.h"), "").unwrap();
    assert!(file.holds() && nofile.holds() && nodir.holds());
    std::fs::create_dir(d.join("b/x.h")).unwrap();
    std::fs::write(d.join("gone"), "").unwrap();
    assert!(
        nofile.holds() && nodir.holds(),
        "a directory is no file, a file is no directory"
    );
    std::fs::remove_dir(d.join("b/x.h")).unwrap();
    std::fs::write(d.join("b/x.h"), "").unwrap();
    std::fs::remove_file(d.join("gone")).unwrap();
    std::fs::create_dir(d.join("gone")).unwrap();
    std::fs::remove_file(d.join("a/x.h")).unwrap();
    assert!(!file.holds() && !nofile.holds() && !nodir.holds());
}

#[test]
fn a_computed_include_tries_the_names_of_the_files_read() {
    let dir = tree();
    let d = dir.path();
    std::fs::create_dir(d.join("b/sub")).unwrap();
    std::fs::write(d.join("b/sub/x.h"), "").unwrap();
    std::fs::write(d.join("src/t.c"), "").unwrap();
    let computed = Lookup {
        name: None,
        ..lookup("", Delimiter::Quote)
    };
    let got = probes_of(d, vec![computed], &["b/sub/x.h"], later()).unwrap();
    let tried: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    // sub/x.h (its name after b/) and t.c (after src/), each everywhere "name" or <name> may
    // have looked up to the first file; where there is no sub/, that is the probe.
    let want = [
        "gone",
        "src/sub",
        "q/sub",
        "a/sub",
        "b/sub/x.h",
        "src/t.c",
        "a/t.c",
        "b/t.c",
    ];
    assert_eq!(tried, want);
}

/// The probes and the directories listed of `names` looked up from `src/t.c` in `dir`.
fn walked(dir: &Path, names: Vec<Lookup>, start: SystemTime) -> Probes {
    let search = SearchList {
        bracket: vec![dir.join("a"), dir.join("b")],
        printed: true,
        ..SearchList::default()
    };
    let source = dir.join("src/t.c");
    let lookups = Lookups {
        search: &search,
        cwd: dir,
        files: vec![includer(&source, &names)],
        forced: Vec::new(),
        implicit: Vec::new(),
        paths_as_built: true,
    };
    probes(&lookups, start).unwrap()
}

#[test]
fn probes_of_symlinks_are_marked_and_settled_directories_kept() {
    // A scan that started before the tree was made: every directory changed since.
    let before = SystemTime::now() - Duration::from_secs(1);
    let dir = tree();
    let d = dir.path();
    std::fs::write(d.join("b/found.h"), "").unwrap();
    std::fs::create_dir(d.join("a/dir.h")).unwrap();
    std::os::unix::fs::symlink("../nowhere.h", d.join("a/dangling.h")).unwrap();
    std::os::unix::fs::symlink("../b/found.h", d.join("a/linked.h")).unwrap();
    std::os::unix::fs::symlink("../nowhere", d.join("a/sub")).unwrap();
    let names = [
        "x.h",
        "dir.h",
        "dangling.h",
        "linked.h",
        "found.h",
        "sub/s.h",
        "none/n.h",
    ];
    let names = names.map(|n| lookup(n, Delimiter::Angle)).to_vec();
    let walk = walked(d, names, later());
    let is = |path: &str| {
        let probe = walk.probes.iter().find(|p| p.path == d.join(path)).unwrap();
        (probe.is, probe.linked)
    };
    assert_eq!(is("a/x.h"), (Found::NoFile, false));
    assert_eq!(is("a/dir.h"), (Found::NoFile, false));
    assert_eq!(is("a/dangling.h"), (Found::NoFile, true));
    assert_eq!(is("a/linked.h"), (Found::File, true));
    assert_eq!(is("b/found.h"), (Found::File, false));
    assert_eq!(is("a/sub"), (Found::NoDir, true));
    assert_eq!(is("a/none"), (Found::NoDir, false));
    let kept: Vec<&Path> = walk.dirs.iter().map(|l| l.path.as_path()).collect();
    assert_eq!(kept, [d.join("a"), d.join("b")]);
    // Directories that changed since just before the scan are not kept.
    let absent = ["x.h", "dangling.h"].map(|n| lookup(n, Delimiter::Angle));
    let fresh = walked(d, absent.to_vec(), before);
    assert!(fresh.dirs.is_empty(), "{:?}", fresh.dirs);
}
