//! Which compilers homccd may run: the `compilers` setting, the links in the compiler directory,
//! and by default the well-known names on `PATH`.

use std::{
    collections::BTreeMap,
    io,
    path::{Path, PathBuf},
};

pub use homcc_proto::names::{is_well_known, WELL_KNOWN};
use homcc_proto::sys::is_executable;

/// Where homccd looks for links named after the compilers it may run, as distcc's
/// `/usr/lib/distcc`.
pub const DEFAULT_COMPILER_DIR: &str = "/usr/lib/homcc";

/// Where an allowed compiler comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// The `compilers` setting (`--compiler`, `HOMCCD_COMPILERS`, homcc.conf).
    Configured,
    /// A link in the compiler directory.
    CompilerDir,
    /// The default, with neither: a well-known compiler name in a `PATH` directory.
    Path,
}

/// A compiler homccd may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// The name a request asks for (the file name the client invoked).
    pub name: String,
    /// Absolute: what runs. A link's own name is kept (clang takes its mode, `clang++`, from it).
    pub path: PathBuf,
    pub origin: Origin,
}

/// A configured compiler or the compiler directory that cannot be used: homccd does not start.
#[derive(Debug, thiserror::Error)]
pub enum AllowedCompilersError {
    #[error("compiler '{0}' in compilers is not an executable file in a PATH directory")]
    NotOnPath(String),
    #[error("compiler '{}' in compilers is not an executable file", .0.display())]
    NotExecutable(PathBuf),
    #[error("compiler '{}' in compilers is neither a name nor an absolute path", .0.display())]
    NotNameOrAbsolute(PathBuf),
    #[error("cannot read the compiler directory {}: {source}", .dir.display())]
    Dir { dir: PathBuf, source: io::Error },
}

/// The compilers homccd may run, by name; fixed when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedCompilers {
    compilers: BTreeMap<String, Allowed>,
    /// The compiler directory, for the advice in a refusal.
    pub(super) dir: PathBuf,
}

impl AllowedCompilers {
    /// The `configured` compilers (names are looked up on `PATH` now) and the links in `dir`
    /// (missing: none); with neither, the [well-known](is_well_known) names in the `PATH`
    /// directories. Logs what it allows, and from where.
    pub fn load(
        configured: &[PathBuf],
        dir: &Path,
    ) -> Result<AllowedCompilers, AllowedCompilersError> {
        let list = AllowedCompilers::build(configured, dir, &path_dirs())?;
        list.log();
        Ok(list)
    }

    /// [`AllowedCompilers::load`] with `path_dirs` for `PATH`; the first compiler of a name wins.
    pub(super) fn build(
        configured: &[PathBuf],
        dir: &Path,
        path_dirs: &[PathBuf],
    ) -> Result<AllowedCompilers, AllowedCompilersError> {
        let mut list = AllowedCompilers {
            compilers: BTreeMap::new(),
            dir: dir.to_owned(),
        };
        let configured = configured
            .iter()
            .map(|entry| find_configured(entry, path_dirs));
        list.add(configured.collect::<Result<Vec<_>, _>>()?);
        list.add(linked_in(dir)?);
        if list.compilers.is_empty() {
            list.add(well_known_in(path_dirs));
        }
        Ok(list)
    }

    /// The compilers `found` (the first of each name) in an environment, with `dir` its compiler
    /// directory.
    pub fn found(found: Vec<Allowed>, dir: &Path) -> AllowedCompilers {
        let mut list = AllowedCompilers {
            compilers: BTreeMap::new(),
            dir: dir.to_owned(),
        };
        list.add(found);
        list
    }

    fn add(&mut self, compilers: Vec<Allowed>) {
        for allowed in compilers {
            self.compilers
                .entry(allowed.name.clone())
                .or_insert(allowed);
        }
    }

    /// The allowed compiler called `name`.
    pub fn get(&self, name: &str) -> Option<&Allowed> {
        self.compilers.get(name)
    }

    /// Every allowed compiler, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Allowed> {
        self.compilers.values()
    }

    /// One info line per source of compilers.
    fn log(&self) {
        for origin in [Origin::Configured, Origin::CompilerDir, Origin::Path] {
            let of_origin = self.iter().filter(|a| a.origin == origin);
            let names: Vec<_> = of_origin.map(|a| a.name.as_str()).collect();
            if names.is_empty() {
                continue;
            }
            let from = match origin {
                Origin::Configured => "the compilers setting".to_owned(),
                Origin::CompilerDir => format!("the links in {}", self.dir.display()),
                Origin::Path => "PATH (the default: none configured or linked)".to_owned(),
            };
            tracing::info!(from, compilers = names.join(" "), "allowed compilers");
        }
        if self.compilers.is_empty() {
            tracing::warn!(
                dir = %self.dir.display(),
                "no compilers allowed: every compile will be refused"
            );
        }
    }
}

/// The absolute directories of `PATH` (a relative one would depend on homccd's working dir).
pub(super) fn path_dirs() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .filter(|dir| dir.is_absolute())
        .collect()
}

/// A `compilers` entry: an absolute path, or a name looked up in `path_dirs`.
fn find_configured(entry: &Path, path_dirs: &[PathBuf]) -> Result<Allowed, AllowedCompilersError> {
    let name = entry.file_name().and_then(|n| n.to_str());
    let path = match name {
        Some(_) if entry.is_absolute() => entry.to_owned(),
        Some(name) if entry.as_os_str() == name => path_dirs
            .iter()
            .map(|dir| dir.join(name))
            .find(|p| is_executable(p))
            .ok_or_else(|| AllowedCompilersError::NotOnPath(name.to_owned()))?,
        _ => return Err(AllowedCompilersError::NotNameOrAbsolute(entry.to_owned())),
    };
    if !is_executable(&path) {
        return Err(AllowedCompilersError::NotExecutable(path));
    }
    Ok(Allowed {
        name: name.unwrap_or_default().to_owned(),
        path,
        origin: Origin::Configured,
    })
}

/// The compilers linked in `dir` (none if it is missing), by the links' names; directories are
/// skipped, and so are, with a warning, entries that lead to no executable file.
fn linked_in(dir: &Path) -> Result<Vec<Allowed>, AllowedCompilersError> {
    let fail = |source| AllowedCompilersError::Dir {
        dir: dir.to_owned(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fail(e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(fail)?;
        // A directory is no compiler: homcc's package keeps its masquerade links in `bin`.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let link = entry.path();
        match (
            link.file_name().and_then(|n| n.to_str()),
            link_target(&link),
        ) {
            (Some(name), Some(path)) if is_executable(&path) => found.push(Allowed {
                name: name.to_owned(),
                path,
                origin: Origin::CompilerDir,
            }),
            _ => tracing::warn!(entry = %link.display(), "skipped: not a link to an executable"),
        }
    }
    Ok(found)
}

/// The absolute path a link leads to, its directories canonicalized; an entry that is not a
/// link is itself. The last name is kept: `clang++ -> /usr/bin/clang++` must run as clang++,
/// not as the `clang` binary that file finally is.
fn link_target(link: &Path) -> Option<PathBuf> {
    let target = match std::fs::read_link(link) {
        Ok(target) => link.parent()?.join(target),
        Err(_) => link.to_owned(),
    };
    Some(
        target
            .parent()?
            .canonicalize()
            .ok()?
            .join(target.file_name()?),
    )
}

/// The well-known compilers in `path_dirs`, in `PATH` order.
fn well_known_in(path_dirs: &[PathBuf]) -> Vec<Allowed> {
    let mut found = Vec::new();
    for dir in path_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<_> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| is_well_known(name))
            .collect();
        names.sort();
        found.extend(
            names
                .into_iter()
                .map(|name| (dir.join(&name), name))
                .filter(|(path, _)| is_executable(path))
                .map(|(path, name)| Allowed {
                    name,
                    path,
                    origin: Origin::Path,
                }),
        );
    }
    found
}
