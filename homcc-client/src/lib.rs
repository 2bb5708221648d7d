//! homcc, the compiler wrapper: classify the command line, scan and hash the compile's files,
//! send it to a homccd, write back what it returns; or compile locally, saying why.
//!
//! One compile, top to bottom: here `run` (resolve the compiler, `config`: settings and hosts,
//! `respfile`, `classify`) and `run_jobs`; then, per source, `job::compile`: prepare (`compiler`
//! probe, `scan` and hashes, manifest chunks) → pick a host (`slots`) → one attempt per host
//! (`session::compile_on`) → `output::write_outputs`; back here, `output::replay` (stdout,
//! stderr, exit code) and the local link of a compile+link. Any failure before the verdict is an
//! `Instead` (`local`), run locally in a local slot; `say` is what homcc itself prints.

pub mod classify;
pub mod cli;
pub mod compiler;
pub mod config;
pub mod depfile;
pub mod hosts;
pub mod job;
pub mod known;
pub mod links;
pub mod local;
pub mod output;
pub mod paths;
pub mod respfile;
pub mod say;
pub mod scan;
pub mod session;
mod show;
pub mod slots;
pub mod ssh;

use std::{
    ffi::OsString,
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Parser;
use futures_util::StreamExt;
use homcc_proto::CompileResult;

use crate::{
    classify::{classify, link_args, Driver, LinkArg, Plan, RemoteJob},
    cli::Cli,
    compiler::ResolveError,
    config::Settings,
    local::{fallback, no_local_anyway, Instead, Invocation},
    say::verbose,
};

/// Exit code when homcc itself fails and local compilation is disabled (as distcc's).
pub const EXIT_HOMCC_FAILED: u8 = 100;

/// `homcc`'s main: parses `args` (argv) and runs. Called through a symlink named after a
/// compiler (`g++ -> homcc`), homcc masquerades as that compiler: every argument is the
/// compiler's, and homcc's own settings come from its variables.
pub fn main_with_args(args: Vec<OsString>) -> ExitCode {
    let parsed = match masquerade_name(&args) {
        Some(name) => {
            let command = std::iter::once(name).chain(args.into_iter().skip(1));
            Cli::try_parse_from(["homcc".into(), "--".into()].into_iter().chain(command))
        }
        None => Cli::try_parse_from(args),
    };
    let cli = parsed.unwrap_or_else(|e| e.exit());
    if let Some(kind) = cli.generate {
        let command = <Cli as clap::CommandFactory>::command();
        return homcc_proto::generate::print(kind, command, Cli::MAN_PAGE);
    }
    if let Some(dir) = &cli.update_links {
        return ExitCode::from(links::update_links(dir));
    }
    if cli.shows() {
        return ExitCode::from(show::show(&cli));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    ExitCode::from(runtime.block_on(run(cli)))
}

/// The compiler name homcc was invoked as, unless it was invoked as `homcc`.
fn masquerade_name(args: &[OsString]) -> Option<OsString> {
    let name = Path::new(args.first()?).file_name()?;
    (name != "homcc").then(|| name.to_owned())
}

/// Runs one compiler invocation; returns the exit code.
pub async fn run(cli: Cli) -> u8 {
    let (name, args) = cli.command.split_first().expect("clap requires COMPILER");
    let binary = match compiler::resolve(name) {
        Ok(binary) => binary,
        Err(e) => {
            eprintln!("homcc: {e}");
            return match e {
                ResolveError::NotFound(_) => 127,
                ResolveError::IsHomcc(_) => EXIT_HOMCC_FAILED,
            };
        }
    };
    let mut cmd = Invocation {
        name,
        binary,
        args,
        local_slots: None,
    };
    let settings = match Settings::load(&cli) {
        Ok(s) => s,
        Err(e) => return fallback(no_local_anyway(&cli), &cmd, &format!("bad setting: {e}")),
    };
    cmd.local_slots = (settings.slots.clone()).map(|slots| (slots, settings.local_limit));
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            return fallback(
                settings.no_local,
                &cmd,
                &format!("no working directory: {e}"),
            )
        }
    };
    // Response files are expanded here, as the compiler would, so that every argument is seen;
    // a local run still gets the original arguments.
    let expanded;
    let args = if respfile::has_response_files(args) {
        match respfile::expand(args, &cwd, respfile::Dialect::from_compiler_name(name)) {
            Ok(all) => {
                expanded = all;
                &expanded
            }
            Err(e) => {
                verbose(&settings, &format!("compiling locally: {e}"));
                return cmd.local();
            }
        }
    } else {
        args
    };
    // The compiler's environment, as flags (homccd runs it with none of it), or a local compile.
    let plan = match classify::environment::flags(|var| std::env::var_os(var)) {
        Ok(extra) if extra.is_empty() => classify(args, &cwd, Driver::from_name(name)),
        Ok(extra) => classify(&[args, &extra].concat(), &cwd, Driver::from_name(name)),
        Err(reason) => Plan::Local(reason),
    };
    match plan {
        Plan::Local(reason) if cli.scan_includes => {
            eprintln!("homcc: {reason}: this command runs locally, nothing would be sent");
            1
        }
        Plan::Local(reason) => {
            verbose(&settings, &format!("compiling locally: {reason}"));
            cmd.local()
        }
        Plan::Remote(jobs) | Plan::CompileAndLink { jobs, .. } if cli.scan_includes => {
            scan_includes(&cmd, &cwd, jobs, !settings.config.no_include_closure)
        }
        Plan::Remote(jobs) => remote(&settings, &cmd, &cwd, jobs).await,
        Plan::CompileAndLink { jobs, link } => {
            compile_and_link(&settings, &cmd, &cwd, jobs, &link).await
        }
    }
}

/// `--scan-includes`: the files the compile would send (with `closure`, its include closure where
/// that can be used), one per line, each once (no dependency file is written on the way).
fn scan_includes(cmd: &Invocation<'_>, cwd: &Path, jobs: Vec<RemoteJob>, closure: bool) -> u8 {
    let mut seen = std::collections::HashSet::new();
    let mut out = std::io::stdout().lock();
    for mut job in jobs {
        job.depfile = None;
        let info = compiler::info(cmd.name, &cmd.binary, job.language, &job.target_args, None);
        let scanned = (info.map_err(scan::ScanError::Other))
            .and_then(|info| scan::scan(&cmd.binary, &info, &job, cwd, None, closure));
        match scanned {
            Ok(scan) => {
                for file in scan
                    .files
                    .into_iter()
                    .filter(|f| seen.insert(f.entry.path.clone()))
                {
                    let _ = writeln!(out, "{}", file.entry.path.display());
                }
            }
            Err(e) => {
                eprintln!("homcc: {e}");
                return 1;
            }
        }
    }
    0
}

/// Runs `jobs` (one per source) on the build hosts, in parallel up to the hosts' limits; their
/// outputs are written. Any job that does not reach a verdict makes the whole command local.
async fn run_jobs(
    settings: &Settings,
    cmd: &Invocation<'_>,
    cwd: &Path,
    jobs: &[RemoteJob],
) -> Result<Vec<CompileResult>, Instead> {
    if settings.hosts.is_empty() && settings.local_is_host {
        verbose(settings, "compiling locally: localhost is the only host");
        return Err(Instead::Local);
    }
    if settings.hosts.is_empty() {
        return Err(Instead::Fallback(
            "no build hosts: give --host, set HOMCC_HOSTS or write a hosts file (homcc --help)"
                .into(),
        ));
    }
    let parallel = (settings.remote_limit() as usize).max(1);
    let outcomes: Vec<Result<CompileResult, Instead>> = futures_util::stream::iter(jobs)
        .map(|job| job::compile(settings, cmd.name, &cmd.binary, cwd, job))
        .buffered(parallel)
        .collect()
        .await;
    outcomes.into_iter().collect()
}

/// Replays the compilers' stdout and stderr in command-line order; the exit code is the first
/// failure's, as the compiler driver's.
fn replay_all(results: &[CompileResult]) -> u8 {
    for result in results {
        output::replay(result);
    }
    let failed = results.iter().map(|r| r.exit_code).find(|code| *code != 0);
    failed.map_or(0, |code| u8::try_from(code).unwrap_or(1))
}

/// A compile-only command: every source remotely.
async fn remote(settings: &Settings, cmd: &Invocation<'_>, cwd: &Path, jobs: Vec<RemoteJob>) -> u8 {
    match run_jobs(settings, cmd, cwd, &jobs).await {
        Ok(results) => replay_all(&results),
        Err(instead) => instead.run(settings, cmd),
    }
}

/// A compile+link command: every source remotely into a temporary object, then the original link
/// locally on those objects; the temporary directory is gone whatever happens.
async fn compile_and_link(
    settings: &Settings,
    cmd: &Invocation<'_>,
    cwd: &Path,
    mut jobs: Vec<RemoteJob>,
    link: &[LinkArg],
) -> u8 {
    let dir = match tempfile::Builder::new().prefix("homcc-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            return fallback(
                settings.no_local,
                cmd,
                &format!("no temporary directory: {e}"),
            )
        }
    };
    for job in &mut jobs {
        job.place_object(dir.path());
    }
    let results = match run_jobs(settings, cmd, cwd, &jobs).await {
        Ok(results) => results,
        Err(instead) => {
            drop(dir);
            return instead.run(settings, cmd);
        }
    };
    let code = replay_all(&results);
    if code != 0 {
        return code;
    }
    let objects: Vec<PathBuf> = jobs.iter().map(|j| j.object.clone()).collect();
    let _slot = cmd.take_local_slot();
    let status = std::process::Command::new(&cmd.binary)
        .args(link_args(link, &objects))
        .current_dir(cwd)
        .status();
    drop(dir);
    match status {
        Ok(status) => u8::try_from(homcc_proto::sys::exit_code(status)).unwrap_or(1),
        Err(e) => {
            eprintln!("homcc: cannot run {} to link: {e}", cmd.binary.display());
            EXIT_HOMCC_FAILED
        }
    }
}
