//! The compile environments homccd offers: the schroot profiles and docker containers its
//! administrator lists (`schroot_profiles`, `docker_containers`; none by default), each checked at
//! start (a container must be running; the job directory must be visible inside at the same path,
//! and the compiler must get no capability there) and left out with one log line when a check
//! fails. Each environment's compilers are found and probed inside it (`compilers`), and a request
//! runs where a compiler has exactly the client's identity: in the environment it names, or, when
//! it names none, on the server itself or else in the first environment that has one.

mod runner;

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Stdio,
};

use homcc_proto::{CompilerIdentity, Environment, RefusalReason};

use crate::compilers::{is_well_known, Allowed, AllowedCompilers, Compilers, Origin, Resolved};
pub use runner::{clear_started, done_marker, first_line, Compile, Runner, Stamp};

/// Where an environment's links to the compilers homccd may run in it are, as on the host.
const INSIDE_COMPILER_DIR: &str = "/usr/lib/homcc";

/// Lists, inside an environment, the executable entries of [`INSIDE_COMPILER_DIR`] (`L path`)
/// and of the `PATH` directories (`P path`).
const LIST_COMPILERS: &str = r#"for f in /usr/lib/homcc/*; do [ -x "$f" ] && echo "L $f"; done
IFS=:
for d in $PATH; do for f in "$d"/*; do [ -f "$f" ] && [ -x "$f" ] && echo "P $f"; done; done
exit 0"#;

/// What the server offers: the environments that passed their checks, and why the others were
/// left out.
#[derive(Debug, Default)]
pub struct Environments {
    offered: Vec<Compilers>,
    left_out: Vec<(Environment, String)>,
}

impl Environments {
    /// Checks and probes the listed environments (at once), logging what is offered and, in one
    /// line each, what is left out. `jobs_dir` is where homccd makes its job roots.
    pub async fn offer(schroot: &[String], docker: &[String], jobs_dir: &Path) -> Environments {
        let listed = (schroot.iter().map(|p| Environment::Schroot(p.clone())))
            .chain(docker.iter().map(|c| Environment::Docker(c.clone())));
        let checks = listed.map(|env| async move {
            let checked = ready(&env, jobs_dir).await;
            (env, checked)
        });
        let mut environments = Environments::default();
        for (env, checked) in futures_util::future::join_all(checks).await {
            match checked {
                Ok((compilers, names)) => {
                    tracing::info!(environment = %env, compilers = names.join(" "), "offered");
                    environments.offered.push(compilers);
                }
                Err(reason) => {
                    tracing::warn!(environment = %env, "left out: {reason}");
                    environments.left_out.push((env, reason));
                }
            }
        }
        environments
    }

    /// The offered environments, for messages: `docker container 'a', schroot profile 'b'`.
    pub fn names(&self) -> String {
        let names: Vec<_> = (self.offered.iter())
            .filter_map(|c| Some(c.runner()?.environment.to_string()))
            .collect();
        match names.is_empty() {
            true => "none".to_owned(),
            false => names.join(", "),
        }
    }

    /// Forgets what `env`'s compilers were found to be: they are probed again when next asked
    /// for, and a schroot session that was ended is begun again (off the caller's thread).
    pub fn forget(&self, env: &Environment) {
        if let Some(compilers) = self.get(env) {
            compilers.forget();
            if let Some(runner) = compilers.runner().cloned() {
                drop(tokio::task::spawn_blocking(move || runner.recover()));
            }
        }
    }

    fn get(&self, wanted: &Environment) -> Option<&Compilers> {
        (self.offered.iter()).find(|c| c.runner().is_some_and(|r| r.environment == *wanted))
    }

    /// Where `wanted` compiles: in the environment `in_env` names (which must be offered), else
    /// with the server's own compilers (`host`), else in the first offered environment that has
    /// a compiler of exactly that identity.
    pub async fn resolve(
        &self,
        host: &Compilers,
        in_env: Option<&Environment>,
        wanted: &CompilerIdentity,
    ) -> Result<Resolved, (RefusalReason, String)> {
        let mismatch = |m| (RefusalReason::CompilerMismatch, m);
        let Some(env) = in_env else {
            let own = host.resolve(wanted).await;
            let Err(why) = own else {
                return own.map_err(mismatch);
            };
            for compilers in &self.offered {
                if let Ok(found) = compilers.resolve(wanted).await {
                    return Ok(found);
                }
            }
            return Err(mismatch(why));
        };
        let Some(compilers) = self.get(env) else {
            let left_out = (self.left_out.iter()).find(|(e, _)| e == env);
            let why = match left_out {
                Some((_, reason)) => format!(" (left out at start: {reason})"),
                None => String::new(),
            };
            return Err((
                RefusalReason::Environment,
                format!("{env} is not offered there{why}; offered: {}", self.names()),
            ));
        };
        (compilers.resolve(wanted).await).map_err(|m| mismatch(format!("in {env}: {m}")))
    }

    /// Each environment's compilers (probed now), under a line naming it; and those left out.
    pub async fn table(&self) -> String {
        let mut table = String::new();
        for compilers in &self.offered {
            if let Some(runner) = compilers.runner() {
                table += &format!("in {}:\n{}", runner.environment, compilers.table().await);
            }
        }
        for (env, reason) in &self.left_out {
            table += &format!("{env}: left out: {reason}\n");
        }
        table
    }
}

/// `env` checked ([`check`]) with its compilers found and probed (the names of those that
/// answered), or why it is left out.
async fn ready(env: &Environment, jobs_dir: &Path) -> Result<(Compilers, Vec<String>), String> {
    let runner = match env {
        Environment::Docker(name) => {
            running(name).await?;
            Runner::docker(name)
        }
        Environment::Schroot(profile) => {
            let profile = profile.clone();
            tokio::task::spawn_blocking(move || Runner::schroot(&profile))
                .await
                .map_err(|e| e.to_string())??
        }
    };
    check(&runner, jobs_dir).await?;
    let allowed = list_compilers(&runner).await?;
    let compilers = Compilers::inside(allowed, runner);
    let names = compilers.probe_all().await;
    if names.is_empty() {
        return Err(format!(
            "no compiler answered there (homccd runs the links in its {INSIDE_COMPILER_DIR}, else gcc, g++, cc, c++, clang and clang++ on its PATH)"
        ));
    }
    Ok((compilers, names))
}

/// Whether the container `name` runs, by `docker container inspect`.
async fn running(name: &str) -> Result<(), String> {
    let out = tokio::process::Command::new("docker")
        .args(["container", "inspect", "-f", "{{.State.Running}}", name])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run docker: {e}"))?;
    match (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim(),
    ) {
        (true, "true") => Ok(()),
        (true, _) => Err("the container is not running (docker start it)".to_owned()),
        (false, _) => Err(format!("docker: {}", first_line(&out.stderr))),
    }
}

/// Whether a compile in `runner`'s environment would see its job root and get no capability: a
/// compile's way in (the wrapper, as homccd's user) reads back a file homccd wrote in a new
/// directory of `jobs_dir`, and the process's effective capabilities.
async fn check(runner: &Runner, jobs_dir: &Path) -> Result<(), String> {
    let dir = (tempfile::Builder::new()
        .prefix("check-")
        .tempdir_in(jobs_dir))
    .map_err(|e| format!("cannot make a directory in {}: {e}", jobs_dir.display()))?;
    let token = format!(
        "homccd {} sees {}",
        std::process::id(),
        dir.path().display()
    );
    let written = std::fs::write(dir.path().join("seen"), &token);
    written.map_err(|e| format!("cannot write in {}: {e}", dir.path().display()))?;
    let started = dir.path().join("started");
    let script = "cat seen && echo && grep '^CapEff:' /proc/self/status";
    let args: Vec<OsString> = vec!["-c".into(), script.into()];
    let mut cmd = runner.compile(Compile {
        compiler: Path::new("sh"),
        args: &args,
        cwd: dir.path(),
        env: &[],
        started: &started,
        memory: 0,
        stamp: None,
    });
    let out = cmd.stdin(Stdio::null()).output().await;
    let out = out.map_err(|e| format!("cannot start a program there: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let env = &runner.environment;
    let said = first_line(&out.stderr);
    if !started.exists() && !said.contains("can't cd") && !said.contains("chdir") {
        // The wrapper stopped before the compile, for a reason of its own (no setpriv, ...).
        return Err(format!("a compile cannot start there: {said}"));
    }
    if !started.exists() || lines.next() != Some(token.as_str()) {
        let jobs = jobs_dir.display();
        let fix = match env {
            Environment::Docker(_) => format!("start it with -v {jobs}:{jobs}"),
            Environment::Schroot(_) => {
                format!("add the line '{jobs} {jobs} none rw,bind 0 0' to its profile's fstab")
            }
        };
        return Err(format!(
            "it does not see homccd's job directory {jobs} at the same path ({said}): {fix}"
        ));
    }
    let caps = (lines.next().and_then(|l| l.strip_prefix("CapEff:")))
        .map(str::trim)
        .unwrap_or("unknown");
    if !caps.bytes().all(|b| b == b'0') {
        return Err(format!(
            "a compiler there would have capabilities (CapEff {caps}), and could write the cache's \
             files: start the container with --cap-drop ALL, or run homccd as a user of its own"
        ));
    }
    Ok(())
}

/// The compilers homccd may run inside: the links in the environment's `/usr/lib/homcc`; with
/// none, the well-known names on its `PATH` (the first of each name), as on the host.
async fn list_compilers(runner: &Runner) -> Result<AllowedCompilers, String> {
    let args: Vec<OsString> = vec!["-c".into(), LIST_COMPILERS.into()];
    let mut cmd: tokio::process::Command = runner.command("sh".as_ref(), &args).into();
    let out = (cmd.output().await).map_err(|e| format!("cannot list its compilers: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cannot list its compilers: {}",
            first_line(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let entry = |line: &str, tag: &str, origin| {
        let path = PathBuf::from(line.strip_prefix(tag)?);
        let name = path.file_name()?.to_str()?.to_owned();
        Some(Allowed { name, path, origin })
    };
    let linked: Vec<_> = (text.lines())
        .filter_map(|l| entry(l, "L ", Origin::CompilerDir))
        .collect();
    let found = match linked.is_empty() {
        false => linked,
        true => (text.lines())
            .filter_map(|l| entry(l, "P ", Origin::Path))
            .filter(|a| is_well_known(&a.name))
            .collect(),
    };
    Ok(AllowedCompilers::found(found, INSIDE_COMPILER_DIR.as_ref()))
}
