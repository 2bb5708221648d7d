//! The compilers this server runs: the [`AllowedCompilers`] fixed when homccd starts (the
//! `compilers` setting and the links in the compiler directory, `/usr/lib/homcc`; with neither, the
//! well-known gcc and clang names found on `PATH`), and for each request the allowed compiler
//! whose version, build and target are the client's. A request's compiler name is looked up in
//! the allowlist only, never on `PATH`. For another target (cross compilation, or a client on
//! another architecture), as the Python homcc does: clang is asked for it with `--target=<triple>`,
//! gcc is looked up (in the allowlist too) as `<triple>-<name>`. Each environment homccd offers
//! (`environments`) has compilers of its own, found and probed inside it.

use std::{
    collections::HashMap,
    ffi::{OsStr, OsString},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
};

use homcc_proto::{identity, CompilerIdentity};

use crate::environments::{Runner, Stamp};

mod allowed;

pub use allowed::*;

/// A compiler found for a request: its path and the arguments that select the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub path: PathBuf,
    /// `--target=<triple>` when clang is asked for a target that is not its default.
    pub target_args: Vec<OsString>,
    /// The environment it runs in; `None`: the server itself.
    pub runner: Option<Runner>,
    /// In an environment: what the compiler was when probed.
    pub stamp: Option<Stamp>,
}

/// A probe: a compiler's path, with `--target=` or not.
type ProbeKey = (PathBuf, Option<String>);

/// The allowed compilers of the server or of one of its environments, each probed once (`cc -v`)
/// per target, where they run.
#[derive(Debug)]
pub struct Compilers {
    allowed: AllowedCompilers,
    probed: Mutex<HashMap<ProbeKey, Option<Probed>>>,
    /// The environment they are in; `None`: the server itself.
    runner: Option<Runner>,
}

/// What a probe found: the compiler's identity and, in an environment, its [`Stamp`].
type Probed = (CompilerIdentity, Option<Stamp>);

impl Compilers {
    pub fn new(allowed: AllowedCompilers) -> Compilers {
        Compilers {
            allowed,
            probed: Mutex::default(),
            runner: None,
        }
    }

    /// The compilers `allowed` in `runner`'s environment.
    pub fn inside(allowed: AllowedCompilers, runner: Runner) -> Compilers {
        Compilers {
            runner: Some(runner),
            ..Compilers::new(allowed)
        }
    }

    pub fn allowed(&self) -> &AllowedCompilers {
        &self.allowed
    }

    pub fn runner(&self) -> Option<&Runner> {
        self.runner.as_ref()
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
        let (mut have, mut stamp) = self.probe(own, None).await.ok_or_else(not_here)?;
        let mut target_args = Vec::new();
        let mut cross_hint = String::new();
        if have.target != wanted.target {
            let other = if have.is_clang() {
                target_args.push(format!("--target={}", wanted.target).into());
                let found = self.probe(own, Some(&wanted.target)).await;
                found.map(|(identity, stamp)| (own.path.clone(), identity, stamp))
            } else {
                let cross = format!("{}-{name}", wanted.target);
                match self.allowed.get(&cross) {
                    Some(cross) => self
                        .probe(cross, None)
                        .await
                        .map(|(identity, stamp)| (cross.path.clone(), identity, stamp)),
                    None => {
                        cross_hint = format!("; {}", self.not_allowed(&cross));
                        None
                    }
                }
            };
            if let Some(found) = other.filter(|(_, identity, _)| identity.target == wanted.target) {
                (path, have, stamp) = found;
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
        Ok(Resolved {
            path,
            target_args,
            runner: self.runner.clone(),
            stamp,
        })
    }

    /// Why `name` cannot run, and how to allow it.
    fn not_allowed(&self, name: &str) -> String {
        if let Some(runner) = &self.runner {
            return format!(
                "'{name}' is not allowed in {} (link it in its {})",
                runner.environment,
                self.allowed.dir.display()
            );
        }
        format!(
            "'{name}' is not allowed on this server (add it to compilers in [homccd] or link it in {})",
            self.allowed.dir.display()
        )
    }

    /// Forgets every probe: each compiler is probed again when next asked for (its environment
    /// changed).
    pub fn forget(&self) {
        self.probed.lock().unwrap().clear();
    }

    /// Probes every allowed compiler (at once); the names of those found.
    pub async fn probe_all(&self) -> Vec<String> {
        let allowed: Vec<_> = self.allowed.iter().collect();
        let probes = allowed.iter().map(|a| self.probe(a, None));
        let identities = futures_util::future::join_all(probes).await;
        (allowed.iter().zip(identities))
            .filter(|(_, identity)| identity.is_some())
            .map(|(a, _)| a.name.clone())
            .collect()
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
                Some((id, _)) => format!("{} {}", id.version, id.target),
                None => "? (its -v output names no version and target)".to_owned(),
            };
            let path = a.path.display();
            table += &format!("{:names$}  {path:paths$}  {what}\n", a.name);
        }
        table
    }

    /// What the allowed compiler says it is, asked for `target` if given, and (in an
    /// environment) its [`Stamp`] then.
    async fn probe(&self, allowed: &Allowed, target: Option<&str>) -> Option<Probed> {
        let key = (allowed.path.clone(), target.map(str::to_owned));
        let cached = self.probed.lock().unwrap().get(&key).cloned();
        let found = match cached {
            Some(found) => found,
            None => {
                let runner = self.runner.clone();
                let found = probe(runner, &allowed.path, &allowed.name, target).await;
                let mut probed = self.probed.lock().unwrap();
                // Clients choose the targets: the cache keeps a bounded number. In an
                // environment a probe may fail for a while (a stopped container): only what
                // one found is kept.
                let keep = found.is_some() || self.runner.is_none();
                if keep && probed.len() < MAX_PROBES {
                    probed.insert(key, found.clone());
                }
                found
            }
        };
        found.map(|(identity, stamp)| {
            let name = allowed.name.clone();
            (CompilerIdentity { name, ..identity }, stamp)
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
/// (`homcc_proto::identity`), on a blocking thread: it runs the compiler and its assembler, in
/// `runner`'s environment if given, and then notes their [`Stamp`] there.
async fn probe(
    runner: Option<Runner>,
    path: &Path,
    name: &str,
    target: Option<&str>,
) -> Option<Probed> {
    let (path, name, target) = (path.to_owned(), name.to_owned(), target.map(str::to_owned));
    let probed = tokio::task::spawn_blocking(move || {
        let command = |program: &OsStr, args: Vec<OsString>| match &runner {
            Some(runner) => runner.command(program, &args),
            None => {
                let mut cmd = Command::new(program);
                cmd.args(args).env("LC_ALL", "C").stdin(Stdio::null());
                cmd
            }
        };
        let verbose = (target.map(|t| format!("--target={t}").into()).into_iter())
            .chain(["-v".into()])
            .collect();
        let out = command(path.as_os_str(), verbose).output().ok()?;
        let text = String::from_utf8_lossy(&out.stderr);
        let mut assembler = None;
        let first_line = |program: &OsStr, arg: &str| {
            let out = command(program, vec![arg.into()]).output().ok()?;
            let line = identity::first_line(out.status.success(), &out.stdout);
            if arg == identity::ASSEMBLER_NAME_ARG {
                assembler.clone_from(&line);
            }
            line
        };
        let identity = identity::identify(&name, path.as_os_str(), &text, first_line).ok()?;
        let stamp = match &runner {
            Some(runner) => Some(runner.stamp(&path, assembler.as_deref())?),
            None => None,
        };
        let place =
            (runner.as_ref()).map_or_else(|| "server".to_owned(), |r| r.environment.to_string());
        tracing::info!(compiler = %path.display(), %identity, %place, "found compiler");
        Some((identity, stamp))
    });
    probed.await.ok().flatten()
}

#[cfg(test)]
mod tests;
