//! `homcc --update-links DIR`: a masquerade directory, as distcc's `/usr/lib/distcc` kept by
//! `update-distcc-symlinks`. DIR gets a link to homcc named after each compiler on `PATH` (the
//! names homccd allows by default, `homcc_proto::names`), and loses the links to homcc whose
//! compiler is gone: a link to a missing compiler would make a configure script find a compiler
//! that is not there. Entries that are not links to homcc are the user's and are left alone.

use std::{
    collections::BTreeSet,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
};

use anyhow::Context;
use homcc_proto::{names::is_well_known, sys::is_executable};

/// One change to the masquerade directory.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Added(PathBuf),
    Removed(PathBuf),
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added(link) => write!(f, "added {}", link.display()),
            Change::Removed(link) => write!(f, "removed {}", link.display()),
        }
    }
}

/// `--update-links DIR`: prints each change; the exit code.
pub fn update_links(dir: &Path) -> u8 {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let result = std::env::current_exe()
        .and_then(|me| me.canonicalize())
        .context("cannot find homcc's own path")
        .and_then(|me| update(dir, &me, &std::env::split_paths(&path).collect::<Vec<_>>()));
    match result {
        Ok(changes) => {
            for change in changes {
                println!("{change}");
            }
            0
        }
        Err(e) => {
            eprintln!("homcc: --update-links {}: {e:#}", dir.display());
            1
        }
    }
}

/// Makes `dir` hold a link to `homcc` for each compiler in `path_dirs` and no link to `homcc`
/// for any other name; the changes, removals first.
pub fn update(dir: &Path, homcc: &Path, path_dirs: &[PathBuf]) -> anyhow::Result<Vec<Change>> {
    std::fs::create_dir_all(dir).context("cannot create the directory")?;
    let dir = dir.canonicalize().context("cannot resolve the directory")?;
    let wanted = compilers_on(path_dirs, &dir, homcc);
    let mut changes = Vec::new();
    let mut present = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).context("cannot read the directory")? {
        let link = entry.context("cannot read the directory")?.path();
        let name = link.file_name().unwrap_or_default().to_string_lossy();
        // The user's own entries, and links still wanted, stay.
        if !leads_to(&link, homcc) || wanted.contains(name.as_ref()) {
            present.insert(name.into_owned());
        } else {
            std::fs::remove_file(&link)
                .with_context(|| format!("cannot remove {}", link.display()))?;
            changes.push(Change::Removed(link));
        }
    }
    for name in wanted.difference(&present) {
        let link = dir.join(name);
        symlink(homcc, &link).with_context(|| format!("cannot create {}", link.display()))?;
        changes.push(Change::Added(link));
    }
    Ok(changes)
}

/// The well-known compiler names that are executables in `path_dirs`, other than `skip` (the
/// masquerade directory itself) and other than homcc.
fn compilers_on(path_dirs: &[PathBuf], skip: &Path, homcc: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for dir in path_dirs {
        if dir.canonicalize().is_ok_and(|d| d == skip) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let path = entry.path();
            if is_well_known(&name) && is_executable(&path) && !leads_to(&path, homcc) {
                names.insert(name);
            }
        }
    }
    names
}

/// Whether `path` is, or leads through links to, `homcc`.
fn leads_to(path: &Path, homcc: &Path) -> bool {
    path.canonicalize().is_ok_and(|target| target == homcc)
        || std::fs::read_link(path).is_ok_and(|target| target == homcc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{io, os::unix::fs::PermissionsExt};

    fn executable(path: &Path) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn links_follow_the_compilers_on_path() -> io::Result<()> {
        let root = tempfile::tempdir()?;
        let (bin, masq) = (root.path().join("bin"), root.path().join("masq"));
        std::fs::create_dir(&bin)?;
        let homcc = bin.join("homcc");
        executable(&homcc);
        for name in [
            "gcc",
            "gcc-12",
            "g++-12",
            "x86_64-linux-gnu-gcc-12",
            "gcc-ar",
            "ld",
        ] {
            executable(&bin.join(name));
        }
        std::fs::write(bin.join("clang"), "not executable")?;
        symlink(&homcc, bin.join("cc"))?; // a masquerade link on PATH is not a compiler
        let path = [bin.clone(), masq.clone()];

        let changes = update(&masq, &homcc, &path).unwrap();
        assert_eq!(changes.len(), 4);
        assert_eq!(
            names(&masq),
            ["g++-12", "gcc", "gcc-12", "x86_64-linux-gnu-gcc-12"]
        );
        assert_eq!(std::fs::read_link(masq.join("gcc"))?, homcc);
        assert!(update(&masq, &homcc, &path).unwrap().is_empty());

        // A compiler removed loses its link; the user's own files stay.
        std::fs::remove_file(bin.join("gcc-12"))?;
        std::fs::write(masq.join("clang++"), "the user's")?;
        let changes = update(&masq, &homcc, &path).unwrap();
        assert_eq!(
            changes,
            [Change::Removed(masq.canonicalize()?.join("gcc-12"))]
        );
        let want = ["clang++", "g++-12", "gcc", "x86_64-linux-gnu-gcc-12"];
        assert_eq!(names(&masq), want);
        Ok(())
    }
}
