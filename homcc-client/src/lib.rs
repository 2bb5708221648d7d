//! homcc, the compiler wrapper: classify the command line, scan and hash the compile's files,
//! send it to a homccd, write back what it returns; or compile locally, saying why.
//!
//! One compile, top to bottom (`run`): `classify` → `compiler::info` (identity, include dirs)
//! → `scan` (every file, hashed) → manifest chunks → `session::compile_on` for each host in turn
//! → `output` (files, stdout, stderr, exit code); any failure before the verdict → `local`.

pub mod classify;
pub mod compiler;
pub mod depfile;
pub mod hosts;
pub mod known;
pub mod local;
pub mod output;
pub mod paths;
pub mod scan;
pub mod session;
pub mod settings;

use std::{
    collections::HashMap,
    ffi::{OsStr, OsString},
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Parser;
use homcc_proto::{manifest::chunk_entries, CompileRequest, FORWARDED_ENV, PROTOCOL_VERSION};

use crate::{
    classify::{classify, Plan, RemoteJob},
    compiler::ResolveError,
    known::KnownChunks,
    scan::ScanError,
    session::{compile_on, Prepared, Timeouts, Traffic},
    settings::{Cli, Settings},
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

/// The compiler command: the name as invoked (its identity on servers), the binary it resolves
/// to (never homcc itself), and its arguments as given.
struct Command<'a> {
    name: &'a OsStr,
    binary: PathBuf,
    args: &'a [OsString],
}

impl Command<'_> {
    /// Runs the compiler locally, as the user asked.
    fn local(&self) -> u8 {
        local::exec(&self.binary, self.args)
    }
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
    let cmd = Command { name, binary, args };
    let settings = match Settings::from_cli(&cli) {
        Ok(s) => s,
        Err(e) => return fallback(cli.no_local_compilation, &cmd, &format!("bad setting: {e}")),
    };
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
    match classify(args, &cwd) {
        Plan::Local(reason) if cli.scan_includes => {
            eprintln!("homcc: {reason}: this command runs locally, nothing would be sent");
            1
        }
        Plan::Local(reason) => {
            verbose(&settings, &format!("compiling locally: {reason}"));
            cmd.local()
        }
        Plan::Remote(job) if cli.scan_includes => scan_includes(&cmd, &cwd, job),
        Plan::Remote(job) => remote(&settings, &cmd, &cwd, job).await,
    }
}

/// `--scan-includes`: the files the compile would send, one per line (no dependency file is
/// written on the way).
fn scan_includes(cmd: &Command<'_>, cwd: &Path, mut job: RemoteJob) -> u8 {
    job.depfile = None;
    match scan::scan(&cmd.binary, &job, cwd) {
        Ok(files) => {
            let mut out = std::io::stdout().lock();
            for file in files {
                let _ = writeln!(out, "{}", file.entry.path.display());
            }
            0
        }
        Err(e) => {
            eprintln!("homcc: {e}");
            1
        }
    }
}

async fn remote(settings: &Settings, cmd: &Command<'_>, cwd: &Path, job: RemoteJob) -> u8 {
    let fail = |reason: &str| fallback(settings.no_local, cmd, reason);
    if settings.hosts.is_empty() {
        return fail("no build hosts: set --host or HOMCC_HOSTS");
    }
    let prepare_started = Instant::now();
    let info = match compiler::info(
        cmd.name,
        &cmd.binary,
        job.language,
        &job.target_args,
        settings.cache_dir.as_deref(),
    ) {
        Ok(info) => info,
        Err(e) => return fail(&format!("{e:#}")),
    };
    if job.split_dwarf && !info.identity.is_clang() {
        verbose(
            settings,
            "compiling locally: gcc's -gsplit-dwarf output depends on the build directory",
        );
        return cmd.local();
    }
    let files = match scan::scan(&cmd.binary, &job, cwd) {
        Ok(files) => files,
        Err(ScanError::CompilerFailed) => {
            verbose(settings, "compiling locally: the dependency scan failed");
            return cmd.local();
        }
        Err(e) => return fail(&e.to_string()),
    };
    let entries: Vec<_> = files.iter().map(|f| f.entry.clone()).collect();
    let chunks = match chunk_entries(&entries) {
        Ok(chunks) => chunks,
        Err(path) => {
            verbose(
                settings,
                &format!("compiling locally: path {} is not UTF-8", path.display()),
            );
            return cmd.local();
        }
    };
    let prepared = Prepared {
        request: CompileRequest {
            version: PROTOCOL_VERSION,
            compiler: info.identity,
            args: job.compile_args.clone(),
            cwd: cwd.to_owned(),
            include_dirs: info.include_dirs,
            implicit_includes: info.implicit_includes,
            manifest: Vec::new(),
            outputs: job.outputs.clone(),
            env: FORWARDED_ENV
                .iter()
                .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
                .collect(),
            compression: settings.compression,
        },
        chunks: chunks.into_iter().map(|c| (c.digest(), c)).collect(),
        files: files
            .iter()
            .map(|f| (f.entry.digest, f.read_from.clone()))
            .collect::<HashMap<_, _>>(),
    };
    let timeouts = Timeouts {
        connect: settings.connect_timeout,
        request: settings.request_timeout,
        heartbeat: settings.heartbeat_timeout,
    };
    let mut failures = Vec::new();
    for host in settings.hosts.iter().take(settings.tries) {
        let prepared_in = prepare_started.elapsed();
        let started = Instant::now();
        let known = KnownChunks::new(settings.cache_dir.as_deref(), &host.to_string());
        let mut traffic = Traffic::default();
        let compression = host.compression.unwrap_or(settings.compression);
        match compile_on(host, &prepared, &known, compression, timeouts, &mut traffic).await {
            Ok(result) => {
                if let Err(e) = output::write_outputs(&result, &job.outputs) {
                    return fail(&format!("{host} {e:#}"));
                }
                verbose(
                    settings,
                    &summary(
                        host,
                        &traffic,
                        result.exit_code,
                        prepared_in,
                        started.elapsed(),
                    ),
                );
                output::replay(&result);
                return u8::try_from(result.exit_code).unwrap_or(1);
            }
            Err(failure) => failures.push(format!("{host} {failure}")),
        }
    }
    fail(&failures.join("; "))
}

/// After a failure before the compiler's verdict: compile locally, or (fallback disabled) exit.
fn fallback(no_local: bool, cmd: &Command<'_>, reason: &str) -> u8 {
    if no_local {
        eprintln!("homcc: {reason}; not compiling locally (local compilation is disabled)");
        return EXIT_HOMCC_FAILED;
    }
    eprintln!("homcc: {reason}; compiling locally");
    cmd.local()
}

fn verbose(settings: &Settings, line: &str) {
    if settings.verbose {
        eprintln!("homcc: {line}");
    }
}

/// The `--verbose` line of a remote compile: what crossed the wire and where the time went
/// (`local`: probe, scan and hashing; `remote`: connecting to receiving the result).
fn summary(
    host: &hosts::Host,
    t: &Traffic,
    exit_code: i32,
    local: Duration,
    remote: Duration,
) -> String {
    format!(
        "{host}: {} files in {} chunks ({} sent inline); uploaded {} files ({} bytes, {} compressed); \
         request {} bytes sent, {} bytes received; exit {exit_code}; local {} ms, remote {} ms",
        t.files,
        t.chunks,
        t.chunks_inline,
        t.blobs,
        t.blob_bytes,
        t.blob_bytes_compressed,
        t.sent,
        t.received,
        local.as_millis(),
        remote.as_millis()
    )
}
