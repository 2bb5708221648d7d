//! One remote job (one source of the command): probe the compiler, scan and hash the files (in
//! a local slot), then take a slot on the host with the most free ones and compile there, up to
//! `remote_compilation_tries` hosts that fail; a full host is load, not a failure: another host
//! is asked, or the compile waits (in a server's queue) up to `compilation_request_timeout`.
//! The outcome is the compiler's verdict with its outputs written, or why the command must run
//! locally.

use std::{
    collections::HashMap,
    ffi::OsStr,
    path::Path,
    time::{Duration, Instant},
};

use homcc_proto::{
    manifest::chunk_entries, CompileRequest, CompileResult, FORWARDED_ENV, PROTOCOL_VERSION,
};

use crate::{
    classify::{Language, RemoteJob},
    compiler,
    config::Settings,
    hosts::Host,
    known::KnownChunks,
    local::Instead,
    output,
    say::{debug, verbose},
    scan::{self, ScanError},
    session::{compile_on, Failure, Prepared, Target, Timeouts, Traffic},
    slots::{poll_interval, Pick, Slot, Slots, BACKOFF},
};

/// Runs `job` of the compiler `name` (resolved to `binary`) on the first host that takes it.
pub async fn compile(
    settings: &Settings,
    name: &OsStr,
    binary: &Path,
    cwd: &Path,
    job: &RemoteJob,
) -> Result<CompileResult, Instead> {
    let started = Instant::now();
    let prepared = prepare_in_local_slot(settings, name, binary, cwd, job).await?;
    let prepared_in = started.elapsed();
    let slots = settings.slots.as_ref();
    let mut round = Round::new(settings.hosts.len());
    let mut failures = Vec::new();
    let wait_until = Instant::now() + settings.request_timeout;
    let mut attempts = 0;
    while attempts < settings.tries {
        let (index, _slot, alone) =
            match take_host(settings, slots, &round.skip(), wait_until).await {
                Taken::Host(index, slot, alone) => (index, slot, alone),
                Taken::Local => return Err(local_instead(settings)),
                Taken::Nothing(reasons) if round.any_busy() => {
                    match round.wait_for_room(settings, wait_until).await {
                        Room::AskAgain => continue,
                        Room::Local => return Err(local_instead(settings)),
                        Room::TimedOut(line) => {
                            failures.extend(reasons);
                            failures.push(line);
                            break;
                        }
                    }
                }
                Taken::Nothing(reasons) => {
                    failures.extend(reasons);
                    break;
                }
            };
        let host = &settings.hosts[index];
        let key = host.key();
        // A host of unknown health is tried by one process at a time; the others then see how
        // it went.
        let probe = match slots {
            Some(slots) => {
                let deadline = Instant::now() + 2 * settings.connect_timeout;
                slots.probe(&key, deadline).await
            }
            None => None,
        };
        if let Some((left, reason)) = slots.and_then(|s| s.backing_off(&key)) {
            let left = left.as_secs() + 1;
            failures.push(format!("{host}: skipped for {left} s after: {reason}"));
            round.failed[index] = true;
            continue;
        }
        // The first look at the hosts asks a full one to say so rather than queue the compile,
        // as long as another host may have a free slot.
        let queue = round.all_were_full || alone;
        match attempt(settings, host, &prepared, queue, probe).await {
            Ok((result, traffic, remote)) => {
                let remove_stale = prepared.request.compiler.is_clang() || job.assembly;
                if let Err(e) = output::write_outputs(&result, &job.outputs, remove_stale) {
                    return Err(Instead::Fallback(format!("{host} {e:#}")));
                }
                let line = summary(host, &traffic, result.exit_code, prepared_in, remote);
                verbose(settings, &line);
                return Ok(result);
            }
            Err(failure) if failure.is_busy() => {
                debug(settings, &format!("{host} {failure}: asking another host"));
                if let Some(slots) = slots {
                    slots.record_busy(&key);
                }
                round.busy[index] = Some(format!("{host} {failure}"));
            }
            Err(failure) => {
                attempts += 1;
                round.failed[index] = true;
                record_failure(settings, host, &failure);
                failures.push(format!("{host} {failure}"));
                // Every homccd applies the same argument policy: no other host will take it.
                if failure.is_forbidden() {
                    break;
                }
            }
        }
    }
    Err(Instead::Fallback(failures.join("; ")))
}

/// Probes the compiler and scans and hashes the files, off the runtime (so jobs overlap) and in
/// a local slot (so that `make -j64` does not run 64 scans at once).
async fn prepare_in_local_slot(
    settings: &Settings,
    name: &OsStr,
    binary: &Path,
    cwd: &Path,
    job: &RemoteJob,
) -> Result<Prepared, Instead> {
    let work = (
        settings.clone(),
        name.to_owned(),
        binary.to_owned(),
        cwd.to_owned(),
        job.clone(),
    );
    let prepared = tokio::task::spawn_blocking(move || {
        let (settings, name, binary, cwd, job) = work;
        let _slot = (settings.slots.as_ref()).and_then(|s| s.take_local(settings.local_limit));
        prepare(&settings, &name, &binary, &cwd, &job)
    })
    .await;
    prepared.unwrap_or_else(|e| {
        Err(Instead::Fallback(format!(
            "preparing the compile failed: {e}"
        )))
    })
}

/// After a failure of `host`: if it is the host's fault, every homcc process skips it for a
/// while.
fn record_failure(settings: &Settings, host: &Host, failure: &Failure) {
    if let (Some(slots), true) = (&settings.slots, failure.is_hosts_fault()) {
        slots.record_failure(&host.key(), &failure.to_string());
        let skip = BACKOFF.as_secs();
        debug(
            settings,
            &format!("{host} {failure}; every homcc skips it for {skip} s"),
        );
    }
}

/// What to do when every host left answered busy.
enum Room {
    /// Ask the hosts again (after a pause), now ready to wait in their queues.
    AskAgain,
    /// Compile here: `localhost` is a host and has a free slot.
    Local,
    /// `compilation_request_timeout` has passed: why the compile gives up.
    TimedOut(String),
}

/// What one walk over the hosts has learnt: which failed (not asked again) and which were full.
#[derive(Debug)]
struct Round {
    /// Every host left was full in an earlier walk: from then on, each is asked to queue.
    all_were_full: bool,
    failed: Vec<bool>,
    /// The busy answer of each host that gave one in this walk.
    busy: Vec<Option<String>>,
}

impl Round {
    fn new(hosts: usize) -> Round {
        Round {
            all_were_full: false,
            failed: vec![false; hosts],
            busy: vec![None; hosts],
        }
    }

    /// The hosts not to pick in this walk.
    fn skip(&self) -> Vec<bool> {
        (self.failed.iter().zip(&self.busy))
            .map(|(failed, busy)| *failed || busy.is_some())
            .collect()
    }

    fn any_busy(&self) -> bool {
        self.busy.iter().any(Option::is_some)
    }

    /// Every host left is full: load, not failure. Waits a moment for the next walk, in which
    /// the full hosts may have room again (or queue the compile), unless `wait_until` has come.
    async fn wait_for_room(&mut self, settings: &Settings, wait_until: Instant) -> Room {
        if Instant::now() >= wait_until {
            return Room::TimedOut(self.busy_line(settings.request_timeout));
        }
        let slots = settings.slots.as_ref();
        if settings.local_is_host
            && (slots.and_then(|s| s.try_take_local(settings.local_limit))).is_some()
        {
            return Room::Local;
        }
        let pause = busy_pause().min(wait_until.saturating_duration_since(Instant::now()));
        tokio::time::sleep(pause).await;
        self.all_were_full = true;
        self.busy.fill(None);
        Room::AskAgain
    }

    /// Why the compile gave up on full hosts.
    fn busy_line(&self, waited: Duration) -> String {
        let answers: Vec<&str> = self.busy.iter().flatten().map(String::as_str).collect();
        format!(
            "every host stayed full for compilation_request_timeout of {} s ({})",
            waited.as_secs_f32(),
            answers.join("; ")
        )
    }
}

/// A pause before asking full hosts again: long enough not to flood them, jittered so that
/// waiting processes spread out.
fn busy_pause() -> Duration {
    Duration::from_millis(fastrand::u64(100..300))
}

fn local_instead(settings: &Settings) -> Instead {
    verbose(
        settings,
        "compiling locally: every remote slot is taken and localhost has a free one",
    );
    Instead::Local
}

/// One remote compile on `host`: the result, what crossed the wire and how long it took.
async fn attempt(
    settings: &Settings,
    host: &Host,
    prepared: &Prepared,
    queue: bool,
    mut probe: Option<std::fs::File>,
) -> Result<(CompileResult, Traffic, Duration), Failure> {
    let started = Instant::now();
    let key = host.key();
    let known = KnownChunks::new(settings.cache_dir.as_deref(), &key);
    let mut traffic = Traffic::default();
    let target = Target {
        host,
        auth: settings.auth.as_ref(),
        compression: host.compression.unwrap_or(settings.compression),
        timeouts: Timeouts {
            connect: settings.connect_timeout,
            request: settings.request_timeout,
            heartbeat: settings.heartbeat_timeout,
        },
        queue,
    };
    let mut answered = || {
        if let Some(slots) = &settings.slots {
            slots.record_success(&key);
        }
        probe.take();
    };
    let result = compile_on(&target, prepared, &known, &mut traffic, &mut answered).await?;
    Ok((result, traffic, started.elapsed()))
}

/// Where a job goes next.
enum Taken {
    /// A slot on `hosts[index]`; whether it is the only host left.
    Host(usize, Option<Slot>, bool),
    /// Every remote slot is taken, `localhost` is a host and has a free slot.
    Local,
    /// No host to go to, and why.
    Nothing(Vec<String>),
}

/// A slot on the host not to `skip` with the most free slots; when every slot is taken, waits
/// for one until `wait_until` (or takes a free local slot if `localhost` is one of the hosts).
/// Without a state dir, hosts are taken in order and limits hold only within this process.
async fn take_host(
    settings: &Settings,
    slots: Option<&Slots>,
    skip: &[bool],
    wait_until: Instant,
) -> Taken {
    let Some(slots) = slots else {
        let mut left =
            (settings.hosts.iter().enumerate()).filter(|(i, h)| !skip[*i] && h.is_usable());
        return match left.next() {
            Some((index, _)) => Taken::Host(index, None, left.next().is_none()),
            None => Taken::Nothing(Vec::new()),
        };
    };
    let mut waited = false;
    loop {
        match slots.pick(&settings.hosts, skip) {
            Pick::Host { index, slot, alone } => return Taken::Host(index, Some(slot), alone),
            Pick::NoHost(reasons) => return Taken::Nothing(reasons),
            Pick::Full => {}
        }
        if settings.local_is_host && slots.try_take_local(settings.local_limit).is_some() {
            return Taken::Local;
        }
        if Instant::now() >= wait_until {
            let waited = settings.request_timeout.as_secs_f32();
            return Taken::Nothing(vec![format!(
                "no free slot on any host within compilation_request_timeout of {waited} s"
            )]);
        }
        if !waited {
            debug(settings, "every host slot is taken: waiting for one");
            waited = true;
        }
        tokio::time::sleep(poll_interval()).await;
    }
}

/// Everything the request needs: compiler identity, every file hashed, chunks.
fn prepare(
    settings: &Settings,
    name: &OsStr,
    binary: &Path,
    cwd: &Path,
    job: &RemoteJob,
) -> Result<Prepared, Instead> {
    let cache_dir = settings.cache_dir.as_deref();
    let quietly_local = |reason: &str| {
        verbose(settings, &format!("compiling locally: {reason}"));
        Instead::Local
    };
    // A compiler that cannot even preprocess this language (gcc without cc1obj) fails the same
    // way locally, where it explains itself.
    let info = compiler::info(name, binary, job.language, &job.target_args, cache_dir)
        .map_err(|e| quietly_local(&format!("{e:#}")))?;
    if job.split_dwarf && !info.identity.is_clang() {
        return Err(quietly_local(
            "gcc's -gsplit-dwarf output depends on the build directory",
        ));
    }
    if job.language == Language::AsmCpp && info.identity.is_clang() {
        return Err(quietly_local(
            "clang's integrated assembler writes the real build directory into debug info",
        ));
    }
    let files = match scan::scan(binary, job, cwd) {
        Ok(files) => files,
        Err(ScanError::CompilerFailed) => return Err(quietly_local("the dependency scan failed")),
        Err(e) => return Err(Instead::Fallback(e.to_string())),
    };
    let entries: Vec<_> = files.iter().map(|f| f.entry.clone()).collect();
    let chunks = chunk_entries(&entries)
        .map_err(|path| quietly_local(&format!("path {} is not UTF-8", path.display())))?;
    Ok(Prepared {
        request: CompileRequest {
            version: PROTOCOL_VERSION,
            compiler: info.identity,
            args: job.compile_args.clone(),
            cwd: cwd.to_owned(),
            include_dirs: info.include_dirs,
            implicit_includes: info.implicit_includes,
            preprocessed: job.language.is_preprocessed(),
            dirs: job
                .include_flag_dirs
                .iter()
                .filter(|d| d.is_dir())
                .cloned()
                .collect(),
            manifest: Vec::new(),
            outputs: job.outputs.clone(),
            env: FORWARDED_ENV
                .iter()
                .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
                .collect(),
            compression: settings.compression,
            queue: true,
        },
        chunks: chunks.into_iter().map(|c| (c.digest(), c)).collect(),
        files: files
            .iter()
            .map(|f| (f.entry.digest, f.read_from.clone()))
            .collect::<HashMap<_, _>>(),
    })
}

/// The `--verbose` line of a remote compile: what crossed the wire and where the time went
/// (`local`: probe, scan and hashing; `remote`: connecting to receiving the result, and whether
/// the compile waited in the server's queue).
fn summary(host: &Host, t: &Traffic, exit_code: i32, local: Duration, remote: Duration) -> String {
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
    ) + &t.queued.map_or(String::new(), |place| format!(" (waited in its queue, place {place})"))
}
