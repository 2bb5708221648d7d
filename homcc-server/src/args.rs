//! The hermetic command line (docs/protocol.md §4, *The server's command line*): the client's
//! arguments with every absolute path moved into the job root, `-nostdinc` plus the client's
//! built-in include dirs as `-isystem R<dir>`, and `-fdebug-prefix-map=R= -fmacro-prefix-map=R=`
//! so that the root never shows in what the compiler writes.

use std::{
    ffi::{OsStr, OsString},
    os::unix::ffi::OsStrExt,
    path::Path,
};

use homcc_proto::{
    flags::{self, Operand, Token, Value},
    CompileRequest,
};

use crate::jobroot::{JobRoot, PathError};

/// Builds the server's argument list for `req`, whose include dirs the caller has created in the
/// root (`JobRoot::create_dir_spelt`).
pub fn hermetic_args(req: &CompileRequest, job: &JobRoot) -> Result<Vec<OsString>, PathError> {
    let (args, cwd, include_dirs) = (&req.args, req.cwd.as_path(), &req.include_dirs);
    let root = job.path().as_os_str();
    let mut out = Vec::with_capacity(args.len() + 2 * include_dirs.len() + 2);
    // The two maps that `-ffile-prefix-map` stands for, given separately: gcc lets a
    // `-ffile-prefix-map` win over a user's later `-fmacro-prefix-map`, which must still apply.
    // Preprocessed sources get only the debug map: nothing is included or expanded any more.
    let maps: &[&str] = if req.preprocessed {
        &["-fdebug-prefix-map="]
    } else {
        &["-fdebug-prefix-map=", "-fmacro-prefix-map="]
    };
    for map in maps {
        out.push(concat(&[OsStr::new(map), root, OsStr::new("=")]));
    }
    let implicit_includes = if req.preprocessed {
        &[][..]
    } else {
        &req.implicit_includes[..]
    };
    for file in implicit_includes {
        out.push("-include".into());
        out.push(implicit_include(file, cwd, job)?);
    }
    // The same tokens the policy checked: each path read or written goes into the root.
    for token in flags::tokens(args) {
        match token {
            Token::Input(arg) => out.push(map_path(arg, cwd, job)?),
            Token::Flag(flag) => match (flag.rule.operand, flag.value) {
                (Operand::Read | Operand::Written, Value::Separate(path)) => {
                    out.push(flag.arg.to_owned());
                    out.push(map_path(path, cwd, job)?);
                }
                (Operand::Read | Operand::Written, Value::Joined(path)) if !path.is_empty() => {
                    out.push(concat(&[flag.head(), &map_path(path, cwd, job)?]));
                }
                (Operand::PrefixMap, Value::Joined(map)) => {
                    out.push(map_prefix_map(flag.head(), map.as_bytes(), job)?);
                }
                _ => out.extend(flag.args().map(OsStr::to_owned)),
            },
            Token::ResponseFile(arg) | Token::Unknown(arg) => out.push(arg.to_owned()),
        }
    }
    if !req.preprocessed {
        out.push("-nostdinc".into());
        for dir in include_dirs {
            out.push("-isystem".into());
            out.push(job.map_spelt(dir)?.into_os_string());
        }
    }
    Ok(out)
}

/// How to name an implicit include (`/usr/include/stdc-predef.h`) so that gcc treats it as its own
/// pre-include: by its bare name, found through the same `-isystem` dir that later `#include`s of
/// it use, so include guards skip those (an absolute path makes gcc enter the file again, which
/// shows in `-g3` macro debug info). `-include` looks in the working directory first, so a file of
/// that name there forces the absolute path.
fn implicit_include(file: &Path, cwd: &Path, job: &JobRoot) -> Result<OsString, PathError> {
    let mapped = job.map_spelt(file)?;
    match file.file_name() {
        Some(name) if !job.map_spelt(cwd)?.join(name).exists() => Ok(name.to_owned()),
        _ => Ok(mapped.into_os_string()),
    }
}

/// An absolute path goes into the root; a relative one stays (the compiler runs in `R/cwd`), but
/// neither may leave the root.
fn map_path(value: &OsStr, cwd: &Path, job: &JobRoot) -> Result<OsString, PathError> {
    let path = Path::new(value);
    if path.is_absolute() {
        Ok(job.map_spelt(path)?.into_os_string())
    } else {
        job.check_relative(cwd, path)?;
        Ok(value.to_owned())
    }
}

/// `-ffile-prefix-map=/old=/new` → `-ffile-prefix-map=R/old=/new`: after ours, so the user's more
/// specific map still applies to the paths the compiler sees.
fn map_prefix_map(flag: &OsStr, value: &[u8], job: &JobRoot) -> Result<OsString, PathError> {
    let (old, new) = match value.iter().position(|b| *b == b'=') {
        Some(at) => (&value[..at], &value[at..]),
        None => (value, &b""[..]),
    };
    let old = Path::new(OsStr::from_bytes(old));
    let old = if old.is_absolute() {
        job.map_spelt(old)?.into_os_string()
    } else {
        old.as_os_str().to_owned()
    };
    Ok(concat(&[flag, &old, OsStr::from_bytes(new)]))
}

fn concat(parts: &[&OsStr]) -> OsString {
    let mut s = OsString::new();
    for p in parts {
        s.push(p);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::PathBuf;

    use homcc_proto::{CompilerIdentity, Compression, PROTOCOL_VERSION};

    fn request(
        args: &[&str],
        cwd: &str,
        include_dirs: &[&str],
        implicit: &[&str],
    ) -> CompileRequest {
        CompileRequest {
            version: PROTOCOL_VERSION,
            compiler: CompilerIdentity {
                name: "gcc".into(),
                version: "12".into(),
                build: "gcc version 12".into(),
                target: "x".into(),
            },
            args: args.iter().map(OsString::from).collect(),
            cwd: cwd.into(),
            include_dirs: include_dirs.iter().map(PathBuf::from).collect(),
            implicit_includes: implicit.iter().map(PathBuf::from).collect(),
            preprocessed: false,
            dirs: vec![],
            manifest: vec![],
            outputs: vec![],
            env: vec![],
            compression: Compression::Lzo,
            queue: true,
            depfile: None,
            environment: None,
            no_result_cache: false,
        }
    }

    fn check(args: &[&str], expected: &[&str]) {
        let jobs = tempfile::tempdir().unwrap();
        let job = JobRoot::create(jobs.path()).unwrap();
        let r = job.path().display().to_string();
        let req = request(
            args,
            "/home/u/p",
            &["/usr/include"],
            &["/usr/include/stdc-predef.h"],
        );
        let got = hermetic_args(&req, &job).unwrap();
        let got: Vec<String> = got
            .iter()
            .map(|a| a.to_string_lossy().replace(&r, "R"))
            .collect();
        let mut want = vec![
            "-fdebug-prefix-map=R=".to_owned(),
            "-fmacro-prefix-map=R=".to_owned(),
            "-include".into(),
            "stdc-predef.h".into(),
        ];
        want.extend(expected.iter().map(|s| s.to_string()));
        want.extend(["-nostdinc", "-isystem", "R/usr/include"].map(String::from));
        assert_eq!(got, want, "{args:?}");
    }

    #[test]
    fn maps_paths() {
        check(&["-c", "a.c", "-o", "a.o"], &["-c", "a.c", "-o", "a.o"]);
        check(
            &["-c", "/src/a.c", "-o", "/out/a.o"],
            &["-c", "R/src/a.c", "-o", "R/out/a.o"],
        );
        check(
            &["-I/inc", "-I", "/inc2", "-Irel"],
            &["-IR/inc", "-I", "R/inc2", "-Irel"],
        );
        check(
            &["-isystem", "/s", "-idirafter/d", "-iquote", "/q"],
            &["-isystem", "R/s", "-idirafterR/d", "-iquote", "R/q"],
        );
        check(
            &["-include", "/p/pre.h", "--sysroot=/sys", "-MF", "/d/a.d"],
            &["-include", "R/p/pre.h", "--sysroot=R/sys", "-MF", "R/d/a.d"],
        );
        check(
            &["-DX=/not/a/path", "-D", "Y=/z", "-MT", "/t.o"],
            &["-DX=/not/a/path", "-D", "Y=/z", "-MT", "/t.o"],
        );
        check(
            &["-ffile-prefix-map=/home/u=/x", "-fdebug-prefix-map=rel=y"],
            &["-ffile-prefix-map=R/home/u=/x", "-fdebug-prefix-map=rel=y"],
        );
        check(&["-x", "c++", "/a.txt"], &["-x", "c++", "R/a.txt"]);
    }

    #[test]
    fn implicit_include_in_the_working_directory_is_named_absolutely() {
        let jobs = tempfile::tempdir().unwrap();
        let job = JobRoot::create(jobs.path()).unwrap();
        let cwd = job.create_dir_spelt(Path::new("/home/u")).unwrap();
        std::fs::write(cwd.join("stdc-predef.h"), "").unwrap();
        let req = request(&[], "/home/u", &[], &["/usr/include/stdc-predef.h"]);
        let args = hermetic_args(&req, &job).unwrap();
        assert_eq!(
            args[3],
            job.path()
                .join("usr/include/stdc-predef.h")
                .into_os_string()
        );
    }

    #[test]
    fn preprocessed_sources_get_only_the_debug_map() {
        let jobs = tempfile::tempdir().unwrap();
        let job = JobRoot::create(jobs.path()).unwrap();
        let mut req = request(
            &["-c", "a.i"],
            "/home/u",
            &["/usr/include"],
            &["/usr/include/stdc-predef.h"],
        );
        req.preprocessed = true;
        let r = job.path().display().to_string();
        let got: Vec<String> = hermetic_args(&req, &job)
            .unwrap()
            .iter()
            .map(|a| a.to_string_lossy().replace(&r, "R"))
            .collect();
        assert_eq!(got, ["-fdebug-prefix-map=R=", "-c", "a.i"]);
    }

    #[test]
    fn refuses_escapes() {
        let jobs = tempfile::tempdir().unwrap();
        let job = JobRoot::create(jobs.path()).unwrap();
        let bad = |a: &[&str]| hermetic_args(&request(a, "/home/u", &[], &[]), &job).is_err();
        assert!(bad(&["-I/../../etc"]));
        assert!(bad(&["-o", "../../../x.o"]));
        assert!(bad(&["/a/../../b.c"]));
        assert!(!bad(&["-o", "../x.o"]));
        assert!(hermetic_args(&request(&[], "/", &["/../x"], &[]), &job).is_err());
        assert!(hermetic_args(&request(&[], "/", &[], &["/../x.h"]), &job).is_err());
    }

    /// Every row of the flag table whose value is a path, in each spelling the row takes: an
    /// absolute path there goes into the root, so no allowed flag reads or writes outside it.
    #[test]
    fn every_path_flag_of_the_table_is_mapped() {
        use homcc_proto::flags::{Attach, Operand, Verdict, RULES};
        let jobs = tempfile::tempdir().unwrap();
        let job = JobRoot::create(jobs.path()).unwrap();
        let r = job.path().display().to_string();
        let paths = RULES.iter().filter(|r| {
            matches!(r.operand, Operand::Read | Operand::Written) && r.verdict != Verdict::Refuse
        });
        let mut seen = 0;
        for rule in paths {
            let s = rule.spelling;
            let spellings: Vec<Vec<String>> = match rule.attach {
                Attach::Either => vec![vec![s.into(), "/p/x".into()], vec![format!("{s}/p/x")]],
                Attach::Separate => vec![vec![s.into(), "/p/x".into()]],
                Attach::Joined => vec![vec![format!("{s}/p/x")]],
                Attach::None => unreachable!("{s} takes no value"),
            };
            for spelling in spellings {
                let mut args = vec!["-c", "a.c"];
                args.extend(spelling.iter().map(String::as_str));
                let req = request(&args, "/home/u", &[], &[]);
                assert_eq!(homcc_proto::policy::check(&req.args), Ok(()), "{args:?}");
                let got = hermetic_args(&req, &job).unwrap();
                let mapped = format!("{r}/p/x");
                assert!(
                    got.iter().any(|a| a.to_string_lossy().ends_with(&mapped)),
                    "{args:?} -> {got:?}"
                );
                seen += 1;
            }
        }
        assert!(seen >= 20, "{seen}");
    }

    /// The policy judges flags; the hermetic command line keeps every path it allows inside
    /// the job root.
    #[test]
    fn relative_paths_that_climb_out_pass_the_policy_and_are_refused_here() {
        let jobs = tempfile::tempdir().unwrap();
        let job = JobRoot::create(jobs.path()).unwrap();
        for (line, escapes) in [
            ("-c a.c -o ../../../x.o", true),
            ("-c a.c -o../../../x.o", true),
            ("-c a.c -MF ../../../x.d", true),
            ("-c a.c -I../../../../etc", true),
            ("-c a.c --sysroot=../../..", true),
            ("-c ../../../../a.c", true),
            ("-c a.c -o ../x.o", false),
        ] {
            let args: Vec<&str> = line.split(' ').collect();
            let req = request(&args, "/home/u", &[], &[]);
            assert_eq!(homcc_proto::policy::check(&req.args), Ok(()), "{line}");
            assert_eq!(hermetic_args(&req, &job).is_err(), escapes, "{line}");
        }
    }
}
