//! The default name pattern, the allowlist from configured entries and from a directory of links
//! (temp dirs, links to the real /usr/bin/gcc and g++), and the refusal of names outside it.

use super::*;
use std::os::unix::fs::{symlink, PermissionsExt};

#[rustfmt::skip]
#[test]
fn well_known_names() {
    let check = |name: &str, want: bool| assert_eq!(is_well_known(name), want, "{name}");
    for name in WELL_KNOWN {
        check(name, true);
    }
    check("gcc-12", true);
    check("clang++-14", true);
    check("clang-14.0", true);
    check("aarch64-linux-gnu-gcc", true);
    check("x86_64-linux-gnu-g++-12", true);
    check("x86_64-pc-linux-gnu-clang++", true);
    check("arm-none-eabi-gcc", true);
    check("i686-w64-mingw32-c++", true);
    check("evilcc", false);
    check("gcc-ar", false);
    check("gcc-ar-12", false);
    check("clang-cpp-14", false);
    check("c89-gcc", false);
    check("evil-gcc", false);
    check("gcc-", false);
    check("-gcc", false);
    check("gcc-12a", false);
    check("gcc-1..2", false);
    check("x86_64--gnu-gcc", false);
    check("1386-linux-gnu-gcc", false);
    check("a-b-c-d-e-gcc", false);
    check("gcc.sh", false);
    check("sh", false);
    check("", false);
}

/// An executable file (a shell script) at `dir/name`.
fn executable(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// name, path, origin of each allowed compiler.
fn entries(list: &AllowedCompilers) -> Vec<(&str, &Path, Origin)> {
    list.iter()
        .map(|a| (a.name.as_str(), a.path.as_path(), a.origin))
        .collect()
}

#[test]
fn the_default_is_the_well_known_names_first_on_path() {
    let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let gcc = executable(first.path(), "gcc");
    executable(second.path(), "gcc");
    let cross = executable(second.path(), "aarch64-linux-gnu-gcc-12");
    let clang = executable(second.path(), "clang++-14");
    executable(second.path(), "evilcc");
    executable(second.path(), "gcc-ar");
    std::fs::write(second.path().join("g++"), "not executable").unwrap();
    let dirs = [first.path().to_owned(), second.path().to_owned()];
    let no_links = first.path().join("missing");
    let list = AllowedCompilers::build(&[], &no_links, &dirs).unwrap();
    assert_eq!(
        entries(&list),
        [
            ("aarch64-linux-gnu-gcc-12", cross.as_path(), Origin::Path),
            ("clang++-14", clang.as_path(), Origin::Path),
            ("gcc", gcc.as_path(), Origin::Path),
        ]
    );
}

#[test]
fn links_in_the_compiler_dir_are_allowed_by_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let script = executable(other.path(), "real-cc");
    symlink("/usr/bin/g++", dir.path().join("g++")).unwrap();
    symlink("/usr/bin/gcc", dir.path().join("mycc")).unwrap();
    // A relative target, through a directory link.
    symlink(other.path(), dir.path().join("tools")).unwrap();
    symlink("tools/real-cc", dir.path().join("cc")).unwrap();
    symlink("/nonexistent/gcc", dir.path().join("gone")).unwrap();
    std::fs::write(dir.path().join("notes"), "not a compiler").unwrap();
    let list = AllowedCompilers::build(&[], dir.path(), &[]).unwrap();
    let real_cc = other.path().canonicalize().unwrap().join("real-cc");
    assert_eq!(script.canonicalize().unwrap(), real_cc);
    assert_eq!(
        entries(&list),
        [
            ("cc", real_cc.as_path(), Origin::CompilerDir),
            ("g++", Path::new("/usr/bin/g++"), Origin::CompilerDir),
            ("mycc", Path::new("/usr/bin/gcc"), Origin::CompilerDir),
        ]
    );
}

#[test]
fn a_missing_compiler_dir_allows_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let list = AllowedCompilers::build(&[], &missing, &[]).unwrap();
    assert_eq!(entries(&list), []);
    let file = executable(dir.path(), "file");
    let error = AllowedCompilers::build(&[], &file, &[])
        .unwrap_err()
        .to_string();
    let want = format!("cannot read the compiler directory {}: ", file.display());
    assert!(error.starts_with(&want), "{error}");
}

#[test]
fn configured_entries_are_names_on_path_or_absolute_paths() {
    let (bin, links) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cc = executable(bin.path(), "cc");
    symlink("/usr/bin/gcc", links.path().join("cc")).unwrap();
    symlink("/usr/bin/g++", links.path().join("g++")).unwrap();
    let path_dirs = [bin.path().to_owned()];
    let configured = ["cc", "/usr/bin/clang++-14", "cc"].map(PathBuf::from);
    let list = AllowedCompilers::build(&configured, links.path(), &path_dirs).unwrap();
    // The configured `cc` wins over the link of that name; the links add the others.
    assert_eq!(
        entries(&list),
        [
            ("cc", cc.as_path(), Origin::Configured),
            (
                "clang++-14",
                Path::new("/usr/bin/clang++-14"),
                Origin::Configured
            ),
            ("g++", Path::new("/usr/bin/g++"), Origin::CompilerDir),
        ]
    );
}

#[test]
fn a_configured_entry_that_cannot_run_is_named() {
    let bin = tempfile::tempdir().unwrap();
    std::fs::write(bin.path().join("plain"), "not executable").unwrap();
    let check = |entry: &str, want: &str| {
        let got = AllowedCompilers::build(&[entry.into()], bin.path(), &[bin.path().to_owned()]);
        assert_eq!(got.unwrap_err().to_string(), want, "{entry}");
    };
    check(
        "nosuchcc",
        "compiler 'nosuchcc' in compilers is not an executable file in a PATH directory",
    );
    check(
        "plain",
        "compiler 'plain' in compilers is not an executable file in a PATH directory",
    );
    check(
        "/usr/bin/nosuchcc",
        "compiler '/usr/bin/nosuchcc' in compilers is not an executable file",
    );
    check(
        "bin/gcc",
        "compiler 'bin/gcc' in compilers is neither a name nor an absolute path",
    );
    check(
        "..",
        "compiler '..' in compilers is neither a name nor an absolute path",
    );
}

/// Compilers allowed by a directory holding `gcc -> /usr/bin/gcc` only.
/// Compilers that allow gcc alone, and its entry.
fn only_gcc() -> (tempfile::TempDir, Compilers, Allowed) {
    let dir = tempfile::tempdir().unwrap();
    symlink("/usr/bin/gcc", dir.path().join("gcc")).unwrap();
    let list = AllowedCompilers::build(&[], dir.path(), &[]).unwrap();
    let gcc = list.get("gcc").unwrap().clone();
    (dir, Compilers::new(list), gcc)
}

#[tokio::test]
async fn only_allowed_compilers_resolve() {
    let (dir, compilers, gcc) = only_gcc();
    let identity = compilers.probe(&gcc, None).await.expect("gcc -v").0;
    let want = |name: &str| CompilerIdentity {
        name: name.into(),
        ..identity.clone()
    };
    let resolved = compilers
        .resolve(&want("/usr/local/bin/gcc"))
        .await
        .unwrap();
    assert_eq!(resolved.path, Path::new("/usr/bin/gcc"));
    let refused = |name: &str| {
        format!(
            "compiler /usr/bin/{name} {} ({}) not available there: '{name}' is not allowed on this server \
             (add it to compilers in [homccd] or link it in {})",
            identity.version,
            identity.target,
            dir.path().display()
        )
    };
    for name in ["evilcc", "g++", "cc"] {
        let got = compilers.resolve(&want(&format!("/usr/bin/{name}"))).await;
        assert_eq!(got, Err(refused(name)), "{name}");
    }
}

#[tokio::test]
async fn a_cross_compiler_must_be_allowed_too() {
    let (dir, compilers, gcc) = only_gcc();
    let host = compilers.probe(&gcc, None).await.expect("gcc -v").0;
    let wanted = CompilerIdentity {
        target: "aarch64-linux-gnu".into(),
        ..host.clone()
    };
    let got = compilers.resolve(&wanted).await.unwrap_err();
    assert_eq!(
        got,
        format!(
            "compiler gcc {v} (aarch64-linux-gnu) not available there; it has gcc {v} ({}); \
             'aarch64-linux-gnu-gcc' is not allowed on this server (add it to compilers in \
             [homccd] or link it in {})",
            host.target,
            dir.path().display(),
            v = host.version,
        )
    );
}
