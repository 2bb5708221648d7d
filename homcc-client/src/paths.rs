//! Lexical path handling: client paths are made absolute and normal without touching the disk, as
//! the server will resolve them inside its job root.

use std::path::{Component, Path, PathBuf};

/// `cwd/path` (or `path` if absolute) with `.` removed and `..` applied lexically.
pub fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in cwd.join(path).components() {
        match part {
            Component::Normal(name) => out.push(name),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let check = |cwd: &str, p: &str, want: &str| {
            assert_eq!(
                absolute(Path::new(cwd), Path::new(p)),
                Path::new(want),
                "{cwd} {p}"
            )
        };
        check("/home/u/p", "a.c", "/home/u/p/a.c");
        check("/home/u/p", "../inc/a.h", "/home/u/inc/a.h");
        check("/home/u/p", "./x/./y.h", "/home/u/p/x/y.h");
        check(
            "/home/u/p",
            "/usr/lib/gcc/x86_64-linux-gnu/12/../../../../include/c++/12/map",
            "/usr/include/c++/12/map",
        );
        check("/", "../../a", "/a");
    }
}
