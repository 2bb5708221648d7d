//! The compilers this server can run: a compiler name from a request is looked up on the server's
//! `PATH` and used only if its version, build and target are the client's.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use homcc_proto::CompilerIdentity;

/// Known compilers, probed once each (`cc -v`).
#[derive(Debug, Default)]
pub struct Compilers {
    probed: Mutex<HashMap<String, Option<(PathBuf, CompilerIdentity)>>>,
}

impl Compilers {
    /// The server's compiler that matches `wanted`, or a one-line reason why there is none.
    pub async fn resolve(&self, wanted: &CompilerIdentity) -> Result<PathBuf, String> {
        let name = Path::new(&wanted.name)
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.starts_with('-') && !n.is_empty())
            .ok_or_else(|| format!("compiler name '{}' is not usable", wanted.name))?
            .to_owned();
        let cached = self.probed.lock().unwrap().get(&name).cloned();
        let found = match cached {
            Some(found) => found,
            None => {
                let found = probe(&name).await;
                self.probed
                    .lock()
                    .unwrap()
                    .insert(name.clone(), found.clone());
                found
            }
        };
        let not_here = || format!("compiler {wanted} not available there");
        let (path, have) = found.ok_or_else(not_here)?;
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
        Ok(path)
    }
}

async fn probe(name: &str) -> Option<(PathBuf, CompilerIdentity)> {
    let path = find_on_path(name)?;
    let out = tokio::process::Command::new(&path)
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
