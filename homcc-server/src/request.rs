//! What homccd checks of a request's own fields before it creates a directory or a job root
//! (docs/protocol.md §4, docs/security.md): the directories it would make, counted by path
//! component; outputs listed once each; environment values of known, safe shapes.

use std::{collections::HashSet, path::Path};

use homcc_proto::{CompileRequest, RefusalReason, FORWARDED_ENV};

use crate::{
    ending::{limit, refuse, Ending},
    server::Limits,
};

/// The directories a request makes the server create, counted by path component: a few hundred
/// for a real compile, while 60 paths 2000 levels deep would take the server seconds.
pub const MAX_DIR_COMPONENTS: usize = 20_000;

/// The longest value of a forwarded environment variable.
const MAX_ENV_VALUE: usize = 256;

/// Checks `req` against `limits` and the rules above; returns the count of the directories its
/// own fields name, which the manifest's chunks add to as they are placed (`session::fits`).
pub fn check(req: &CompileRequest, limits: &Limits) -> Result<DirCount, Ending> {
    let dirs = dirs(req, limits)?;
    outputs(req)?;
    env(req)?;
    Ok(dirs)
}

/// The directories named by the request's own fields: how many, and their components together.
fn dirs(req: &CompileRequest, limits: &Limits) -> Result<DirCount, Ending> {
    let all = || {
        std::iter::once(req.cwd.as_path())
            .chain(req.include_dirs.iter().map(|d| d.as_path()))
            .chain(req.dirs.iter().map(|d| d.as_path()))
            .chain(req.implicit_includes.iter().map(|d| d.as_path()))
    };
    let mut count = DirCount::default();
    for dir in all() {
        count = count.add(dir, limits)?;
    }
    Ok(count)
}

/// Directories counted against the bounds: how many, and their components together.
#[derive(Debug, Default, Clone, Copy)]
pub struct DirCount {
    dirs: usize,
    components: usize,
}

impl DirCount {
    /// The count with `dir` added, or the refusal when it would pass a bound.
    pub fn add(self, dir: &Path, limits: &Limits) -> Result<DirCount, Ending> {
        let count = DirCount {
            dirs: self.dirs + 1,
            components: self.components + dir.components().count(),
        };
        if count.dirs > limits.manifest_entries || count.components > MAX_DIR_COMPONENTS {
            return Err(limit(format!(
                "the request names more than {} dirs (max_manifest_entries) or dirs of more \
                 than {MAX_DIR_COMPONENTS} components together",
                limits.manifest_entries
            )));
        }
        Ok(count)
    }
}

/// Each output once (the dependency file among them): the server reads each back into memory.
fn outputs(req: &CompileRequest) -> Result<(), Ending> {
    let mut seen = HashSet::with_capacity(req.outputs.len() + 1);
    match (req.outputs.iter().chain(&req.depfile)).find(|o| !seen.insert(*o)) {
        Some(twice) => Err(refuse(
            RefusalReason::InvalidRequest,
            format!(
                "output {} is listed twice: list each output once",
                shown(&twice.to_string_lossy())
            ),
        )),
        None => Ok(()),
    }
}

/// The forwarded variables' values must have the shape their meaning allows: locale names
/// (`LANGUAGE` a `:`-separated list of them) and a number of seconds, nothing that could name
/// a file (the compiler finds message catalogs by the locale's name).
fn env(req: &CompileRequest) -> Result<(), Ending> {
    let forwarded = (req.env.iter()).filter(|(name, _)| FORWARDED_ENV.contains(&name.as_str()));
    for (name, value) in forwarded {
        let fits = value.len() <= MAX_ENV_VALUE
            && match name.as_str() {
                "SOURCE_DATE_EPOCH" => {
                    !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit())
                }
                "LANGUAGE" => value.split(':').all(is_locale_name),
                _ => value.is_empty() || is_locale_name(value),
            };
        if !fits {
            let expected = match name.as_str() {
                "SOURCE_DATE_EPOCH" => "a number of seconds",
                "LANGUAGE" => "locale names separated by ':'",
                _ => "a locale name such as C.UTF-8 or en_US.UTF-8",
            };
            return Err(refuse(
                RefusalReason::InvalidRequest,
                format!(
                    "environment variable {name}={} is not {expected}",
                    shown(value)
                ),
            ));
        }
    }
    Ok(())
}

/// `C`, `POSIX`, `en_US.UTF-8`, `de_DE@euro`, `sr_RS.UTF-8@latin`: a letter, then letters,
/// digits and `_.-@`.
fn is_locale_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-@".contains(&b))
}

/// A client's string as homccd shows it, in a message or its log: one line, at most 500
/// characters, control characters escaped.
pub fn shown(text: &str) -> String {
    homcc_proto::text::shown(text, 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_names() {
        for good in [
            "C",
            "POSIX",
            "C.UTF-8",
            "en_US.UTF-8",
            "de_DE@euro",
            "sr_RS.UTF-8@latin",
        ] {
            assert!(is_locale_name(good), "{good}");
        }
        for bad in [
            "",
            "..",
            "../../proc/self/cwd/evil",
            "/tmp/x",
            "en US",
            ".hidden",
            "a/b",
        ] {
            assert!(!is_locale_name(bad), "{bad}");
        }
    }
}
