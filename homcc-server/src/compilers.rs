//! The compilers this server can run: a compiler name from a request is looked up on the server's
//! `PATH` and used only if its version, build and target are the client's. For another target
//! (cross compilation, or a client on another architecture), as the Python homcc does: clang is
//! asked for it with `--target=<triple>`, gcc is looked up as `<triple>-<name>`.

use std::{
    collections::HashMap,
    ffi::OsString,
    path::{Path, PathBuf},
    sync::Mutex,
};

use homcc_proto::CompilerIdentity;

/// A compiler found for a request: its path and the arguments that select the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub path: PathBuf,
    /// `--target=<triple>` when clang is asked for a target that is not its default.
    pub target_args: Vec<OsString>,
}

/// A probe: a compiler name, with `--target=` or not.
type ProbeKey = (String, Option<String>);

/// Known compilers, probed once each (`cc -v`).
#[derive(Debug, Default)]
pub struct Compilers {
    probed: Mutex<HashMap<ProbeKey, Option<(PathBuf, CompilerIdentity)>>>,
}

impl Compilers {
    /// The server's compiler that matches `wanted`, or a one-line reason why there is none.
    pub async fn resolve(&self, wanted: &CompilerIdentity) -> Result<Resolved, String> {
        let name = Path::new(&wanted.name)
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.starts_with('-') && !n.is_empty())
            .ok_or_else(|| format!("compiler name '{}' is not usable", wanted.name))?
            .to_owned();
        let not_here = || format!("compiler {wanted} not available there");
        let (mut path, mut have) = self.probe(&name, None).await.ok_or_else(not_here)?;
        let mut target_args = Vec::new();
        if have.target != wanted.target {
            let other = if have.is_clang() {
                target_args.push(format!("--target={}", wanted.target).into());
                self.probe(&name, Some(&wanted.target)).await
            } else {
                self.probe(&format!("{}-{name}", wanted.target), None).await
            };
            if let Some(found) = other.filter(|(_, identity)| identity.target == wanted.target) {
                (path, have) = found;
            }
        }
        if have.version != wanted.version || have.target != wanted.target {
            return Err(format!(
                "{}; it has {} {} ({})",
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

    /// The compiler `name` on `PATH` and what it says it is, asked for `target` if given.
    async fn probe(&self, name: &str, target: Option<&str>) -> Option<(PathBuf, CompilerIdentity)> {
        let key = (name.to_owned(), target.map(str::to_owned));
        if let Some(found) = self.probed.lock().unwrap().get(&key) {
            return found.clone();
        }
        let found = probe(name, target).await;
        self.probed.lock().unwrap().insert(key, found.clone());
        found
    }
}

async fn probe(name: &str, target: Option<&str>) -> Option<(PathBuf, CompilerIdentity)> {
    let path = find_on_path(name)?;
    let out = tokio::process::Command::new(&path)
        .args(target.map(|t| format!("--target={t}")))
        .arg("-v")
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stderr);
    let mut identity = CompilerIdentity::from_verbose_output(name, &text)?;
    if !identity.is_clang() {
        identity = identity.with_assembler(&assembler_version(&path).await?);
    }
    tracing::info!(compiler = %path.display(), %identity, "found compiler");
    Some((path, identity))
}

/// The first line of `as --version` for the assembler gcc runs (`gcc -print-prog-name=as`),
/// which is part of a gcc's identity (see `CompilerIdentity::with_assembler`).
async fn assembler_version(compiler: &Path) -> Option<String> {
    async fn first_line(program: &std::ffi::OsStr, arg: &str) -> Option<String> {
        let out = tokio::process::Command::new(program)
            .arg(arg)
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .ok()?;
        let line = String::from_utf8(out.stdout)
            .ok()?
            .lines()
            .next()?
            .trim()
            .to_owned();
        (out.status.success() && !line.is_empty()).then_some(line)
    }
    let assembler = first_line(compiler.as_os_str(), "-print-prog-name=as").await?;
    first_line(assembler.as_ref(), "--version").await
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
