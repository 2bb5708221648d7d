//! The compilers this server runs: the [`AllowedCompilers`] fixed when homccd starts (the
//! `compilers` setting and the links in the compiler directory, `/usr/lib/homcc`; with neither, the
//! well-known gcc and clang names found on `PATH`), and for each request the allowed compiler
//! whose version, build and target are the client's. A request's compiler name is looked up in
//! the allowlist only, never on `PATH`. For another target (cross compilation, or a client on
//! another architecture), as the Python homcc does: clang is asked for it with `--target=<triple>`,
//! gcc is looked up (in the allowlist too) as `<triple>-<name>`.

use std::{
    collections::{BTreeMap, HashMap},
    ffi::OsString,
    io,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
};

use homcc_proto::{identity, sys::is_executable, CompilerIdentity};

/// Where homccd looks for links named after the compilers it may run, as distcc's
/// `/usr/lib/distcc`.
pub const DEFAULT_COMPILER_DIR: &str = "/usr/lib/homcc";

/// The compiler names allowed by default when found on `PATH`, also with a version suffix
/// (`gcc-12`) or a target prefix (`aarch64-linux-gnu-gcc`); see [`is_well_known`].
pub const WELL_KNOWN: [&str; 6] = ["gcc", "g++", "cc", "c++", "clang", "clang++"];

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
    dir: PathBuf,
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
    fn build(
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

/// Whether `name` is one of [`WELL_KNOWN`], possibly with a version suffix (`-12`, `-14.0`)
/// and a target prefix of two to four parts (`aarch64-linux-gnu-`): allowed by default.
pub fn is_well_known(name: &str) -> bool {
    let base = match name.rsplit_once('-') {
        Some((base, version)) if is_version(version) => base,
        _ => name,
    };
    WELL_KNOWN
        .iter()
        .any(|known| match base.strip_suffix(known) {
            Some("") => true,
            Some(prefix) => prefix.strip_suffix('-').is_some_and(is_triple),
            None => false,
        })
}

fn is_version(text: &str) -> bool {
    text.split('.')
        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn is_triple(text: &str) -> bool {
    let parts: Vec<_> = text.split('-').collect();
    let part = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    };
    (2..=4).contains(&parts.len())
        && parts.iter().all(part)
        && parts[0].starts_with(|c: char| c.is_ascii_alphabetic())
}

/// The absolute directories of `PATH` (a relative one would depend on homccd's working dir).
fn path_dirs() -> Vec<PathBuf> {
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

/// The compilers linked in `dir` (none if it is missing), by the links' names; entries that
/// lead to no executable file are skipped with a warning.
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
        let link = entry.map_err(fail)?.path();
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

/// A compiler found for a request: its path and the arguments that select the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub path: PathBuf,
    /// `--target=<triple>` when clang is asked for a target that is not its default.
    pub target_args: Vec<OsString>,
}

/// A probe: a compiler's path, with `--target=` or not.
type ProbeKey = (PathBuf, Option<String>);

/// The allowed compilers, each probed once (`cc -v`) per target.
#[derive(Debug)]
pub struct Compilers {
    allowed: AllowedCompilers,
    probed: Mutex<HashMap<ProbeKey, Option<CompilerIdentity>>>,
}

impl Compilers {
    pub fn new(allowed: AllowedCompilers) -> Compilers {
        Compilers {
            allowed,
            probed: Mutex::default(),
        }
    }

    /// The server's compiler that matches `wanted`, or a one-line reason why there is none.
    pub async fn resolve(&self, wanted: &CompilerIdentity) -> Result<Resolved, String> {
        let name = Path::new(&wanted.name)
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.starts_with('-') && !n.is_empty())
            .ok_or_else(|| format!("compiler name '{}' is not usable", wanted.name))?;
        if !is_target_triple(&wanted.target) {
            return Err(format!(
                "compiler target '{}' is not a target triple (such as x86_64-linux-gnu)",
                crate::request::shown(&wanted.target)
            ));
        }
        let not_here = || format!("compiler {wanted} not available there");
        let own = self
            .allowed
            .get(name)
            .ok_or_else(|| format!("{}: {}", not_here(), self.not_allowed(name)))?;
        let mut path = own.path.clone();
        let mut have = self.probe(own, None).await.ok_or_else(not_here)?;
        let mut target_args = Vec::new();
        let mut cross_hint = String::new();
        if have.target != wanted.target {
            let other = if have.is_clang() {
                target_args.push(format!("--target={}", wanted.target).into());
                let found = self.probe(own, Some(&wanted.target)).await;
                found.map(|identity| (own.path.clone(), identity))
            } else {
                let cross = format!("{}-{name}", wanted.target);
                match self.allowed.get(&cross) {
                    Some(cross) => self
                        .probe(cross, None)
                        .await
                        .map(|identity| (cross.path.clone(), identity)),
                    None => {
                        cross_hint = format!("; {}", self.not_allowed(&cross));
                        None
                    }
                }
            };
            if let Some(found) = other.filter(|(_, identity)| identity.target == wanted.target) {
                (path, have) = found;
            }
        }
        if have.version != wanted.version || have.target != wanted.target {
            return Err(format!(
                "{}; it has {} {} ({}){cross_hint}",
                not_here(),
                name,
                have.version,
                have.target
            ));
        }
        if have.build != wanted.build {
            return Err(format!(
                "compiler {wanted} is built differently there: '{}' instead of '{}'",
                have.build, wanted.build
            ));
        }
        Ok(Resolved { path, target_args })
    }

    /// Why `name` cannot run, and how to allow it.
    fn not_allowed(&self, name: &str) -> String {
        format!(
            "'{name}' is not allowed on this server (add it to compilers in [homccd] or link it in {})",
            self.allowed.dir.display()
        )
    }

    /// Each allowed compiler on a line: name, path, version and target (probed now).
    pub async fn table(&self) -> String {
        let allowed: Vec<_> = self.allowed.iter().collect();
        let probes = allowed.iter().map(|a| self.probe(a, None));
        let identities = futures_util::future::join_all(probes).await;
        let width = |f: fn(&Allowed) -> usize| allowed.iter().map(|a| f(a)).max().unwrap_or(0);
        let (names, paths) = (width(|a| a.name.len()), width(|a| a.path.as_os_str().len()));
        let mut table = String::new();
        for (a, identity) in allowed.iter().zip(identities) {
            let what = match identity {
                Some(id) => format!("{} {}", id.version, id.target),
                None => "? (its -v output names no version and target)".to_owned(),
            };
            let path = a.path.display();
            table += &format!("{:names$}  {path:paths$}  {what}\n", a.name);
        }
        table
    }

    /// What the allowed compiler says it is, asked for `target` if given.
    async fn probe(&self, allowed: &Allowed, target: Option<&str>) -> Option<CompilerIdentity> {
        let key = (allowed.path.clone(), target.map(str::to_owned));
        let cached = self.probed.lock().unwrap().get(&key).cloned();
        let found = match cached {
            Some(found) => found,
            None => {
                let found = probe(&allowed.path, &allowed.name, target).await;
                let mut probed = self.probed.lock().unwrap();
                // Clients choose the targets: the cache keeps a bounded number.
                if probed.len() < MAX_PROBES {
                    probed.insert(key, found.clone());
                }
                found
            }
        };
        found.map(|identity| CompilerIdentity {
            name: allowed.name.clone(),
            ..identity
        })
    }
}

/// The most probes [`Compilers`] keeps (each allowed compiler, and clang per target asked for).
const MAX_PROBES: usize = 256;

/// `x86_64-linux-gnu`, `aarch64-unknown-linux-gnu`, `arm-linux-gnueabihf`: at most 64 letters,
/// digits, `_`, `.` and `-`, as a clang `--target=` takes it and a cross gcc's name starts.
fn is_target_triple(target: &str) -> bool {
    (1..=64).contains(&target.len())
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !target.starts_with('-')
}

/// The identity of the compiler at `path` (for `target`), probed as the client does
/// (`homcc_proto::identity`), on a blocking thread: it runs the compiler and its assembler.
async fn probe(path: &Path, name: &str, target: Option<&str>) -> Option<CompilerIdentity> {
    let (path, name, target) = (path.to_owned(), name.to_owned(), target.map(str::to_owned));
    let probed = tokio::task::spawn_blocking(move || {
        let out = Command::new(&path)
            .args(target.map(|t| format!("--target={t}")))
            .arg("-v")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let identity =
            identity::identify(&name, path.as_os_str(), &text, identity::run_first_line).ok()?;
        tracing::info!(compiler = %path.display(), %identity, "found compiler");
        Some(identity)
    });
    probed.await.ok().flatten()
}

#[cfg(test)]
mod tests;
