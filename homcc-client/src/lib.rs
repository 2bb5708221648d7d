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
    ffi::OsString,
    path::Path,
    process::ExitCode,
    time::{Duration, Instant},
};

use clap::Parser;
use homcc_proto::{manifest::chunk_entries, CompileRequest, FORWARDED_ENV, PROTOCOL_VERSION};

use crate::{
    classify::{classify, Plan, RemoteJob},
    known::KnownChunks,
    scan::ScanError,
    session::{compile_on, Prepared, Timeouts, Traffic},
    settings::{Cli, Settings},
};

/// Exit code when homcc itself fails and local compilation is disabled (as distcc's).
pub const EXIT_HOMCC_FAILED: u8 = 100;

/// `homcc`'s main: parses `args` (argv) and runs.
pub fn main_with_args(args: Vec<OsString>) -> ExitCode {
    let cli = Cli::try_parse_from(args).unwrap_or_else(|e| e.exit());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    ExitCode::from(runtime.block_on(run(cli)))
}

/// Runs one compiler invocation; returns the exit code.
pub async fn run(cli: Cli) -> u8 {
    let (compiler, args) = cli.command.split_first().expect("clap requires COMPILER");
    let settings = match Settings::from_cli(&cli) {
        Ok(s) => s,
        Err(e) => {
            return fallback(
                &cli.no_local_compilation,
                compiler,
                args,
                &format!("bad setting: {e}"),
            )
        }
    };
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            return fallback(
                &settings.no_local,
                compiler,
                args,
                &format!("no working directory: {e}"),
            )
        }
    };
    match classify(args, &cwd) {
        Plan::Local(reason) => {
            verbose(&settings, &format!("compiling locally: {reason}"));
            local::exec(compiler, args)
        }
        Plan::Remote(job) => remote(&settings, compiler, args, &cwd, job).await,
    }
}

async fn remote(
    settings: &Settings,
    compiler: &OsString,
    args: &[OsString],
    cwd: &Path,
    job: RemoteJob,
) -> u8 {
    let fail = |reason: &str| fallback(&settings.no_local, compiler, args, reason);
    if settings.hosts.is_empty() {
        return fail("no build hosts: set --host or HOMCC_HOSTS");
    }
    let prepare_started = Instant::now();
    let binary = match compiler::resolve(compiler) {
        Ok(b) => b,
        Err(_) => return local::exec(compiler, args),
    };
    let info = match compiler::info(
        compiler,
        &binary,
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
        return local::exec(compiler, args);
    }
    let files = match scan::scan(&binary, &job, cwd) {
        Ok(files) => files,
        Err(ScanError::CompilerFailed) => {
            verbose(settings, "compiling locally: the dependency scan failed");
            return local::exec(compiler, args);
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
            return local::exec(compiler, args);
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
fn fallback(no_local: &bool, compiler: &OsString, args: &[OsString], reason: &str) -> u8 {
    if *no_local {
        eprintln!("homcc: {reason}; not compiling locally (local compilation is disabled)");
        return EXIT_HOMCC_FAILED;
    }
    eprintln!("homcc: {reason}; compiling locally");
    local::exec(compiler, args)
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
