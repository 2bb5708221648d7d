//! One connection, one compile: authenticate the client (`auth`, with a token), read the
//! request, take a place (`queue`) or refuse as busy at once, negotiate the missing files, wait
//! for a compile slot if none is free, run the compiler hermetically while sending heartbeats,
//! send the result.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Instant};

use homcc_proto::{
    policy, ClientMessage, CodecError, CompileRequest, CompileResult, RefusalReason, ServerMessage,
    PROTOCOL_VERSION,
};
use tokio::net::TcpStream;

use crate::{
    args::hermetic_args,
    auth,
    compile::{self, CompileError, Inside, Invocation},
    compilers::Resolved,
    conn::Conn,
    ending::{bad_frame, disk_full, internal, invalid, limit, paused, refuse, storage, Ending},
    jobroot::{self, JobRoot, Output, Returned},
    negotiate::negotiate,
    queue::{Admission, Slot, Uploading},
    request::{self, DirCount},
    results::{self, Begin, Results, Stored},
    server::{Record, State},
};

/// Serves one connection to its end; never fails the caller.
pub async fn serve(stream: TcpStream, peer: SocketAddr, state: Arc<State>) {
    let started = Instant::now();
    let config = &state.config;
    let mut conn = Conn::new(
        stream,
        config.max_frame,
        config.idle_timeout,
        config.heartbeat_interval,
    );
    conn.set_max_entries(config.limits.manifest_entries);
    conn.set_memory(state.frame_memory.clone());
    let mut record = Record {
        peer: Some(peer),
        phase_began: Some(started),
        ..Record::default()
    };
    let mut unread = false;
    let outcome = handle(&mut conn, peer, &state, &mut record).await;
    let ending = match paused(outcome).await {
        Ok((result, job)) => {
            record.outcome = format!("exit {}", result.exit_code);
            let sent = conn
                .send(ServerMessage::Result(result))
                .await
                .err()
                .map(|e| e.to_string());
            record.phase("reply");
            // A client over SSH may have sent `Ready` after the compile ended: read to its end,
            // so that the connection closes cleanly (unread bytes would reset it).
            unread = sent.is_none();
            // Scrubbing the job root takes a while; the client has its result already. It is kept
            // for the client's next compile (or deleted, if it cannot be scrubbed, or if the
            // client did not take its result: its link may be gone for a while).
            let state = Arc::clone(&state);
            if let Some(job) = job {
                let took_it = sent.is_none();
                tokio::task::spawn_blocking(move || match took_it {
                    true => {
                        if let Ok(kept) = job.release(|digest| state.cache.inode(digest)) {
                            state.roots.put(peer.ip(), kept);
                        }
                    }
                    false => drop(job),
                });
            }
            sent
        }
        Err(Ending::Refuse(refusal) | Ending::Pause(refusal)) => {
            record.outcome = format!("refused: {refusal}");
            // Refused before authenticating, or before reading a frame it has no memory for:
            // the client's frame may be there, unread.
            unread = matches!(
                refusal.reason,
                RefusalReason::AuthFailed | RefusalReason::Busy
            );
            conn.send(ServerMessage::Refused(refusal))
                .await
                .err()
                .map(|e| e.to_string())
        }
        Err(Ending::Lost(why)) => {
            record.outcome = format!("lost: {why}");
            None
        }
    };
    if let Some(e) = ending {
        record.outcome = format!("{} (reply not sent: {e})", record.outcome);
    }
    (record.bytes_in, record.bytes_out) = conn.bytes();
    tracing::info!(
        client = %peer, compiler = %record.compiler, environment = %record.environment, output = %record.output, compression = %record.compression, result = %request::shown(&record.outcome), cached = record.cached, verified = ?record.verified,
        files = record.files, blobs_in = record.blobs_in, bytes_in = record.bytes_in,
        bytes_out = record.bytes_out, upload_ms = record.upload_wait.as_millis() as u64, queued_ms = record.queued_ms, compile_ms = record.compile_ms, ms = started.elapsed().as_millis() as u64, "compile"
    );
    tracing::debug!(client = %peer, output = %record.output, phases = %record.shown_phases(), "compile phases");
    state.stats.record(record);
    if unread {
        conn.close_unread().await;
    }
}

/// Runs the compile, or answers it from the result cache; returns its result and the job root
/// (none for a cached result), which the caller keeps for the client's next compile.
async fn handle(
    conn: &mut Conn,
    peer: SocketAddr,
    state: &State,
    record: &mut Record,
) -> Result<(CompileResult, Option<JobRoot>), Ending> {
    if let Some(token) = &state.config.auth {
        auth::authenticate(conn, token, peer, state.config.max_frame).await?;
    }
    let req = read_request(conn).await?;
    record.phase("request");
    // The client's strings, shown as one short line each: a log line is never forged.
    record.compiler = request::shown(&req.compiler.to_string());
    record.output = (req.outputs.first())
        .map(|o| request::shown(&o.to_string_lossy()))
        .unwrap_or_default();
    record.compression = req.compression.to_string();
    record.environment =
        (req.environment.as_ref()).map_or_else(|| "server".into(), |e| e.to_string());
    // A place, held until the compile is done: waiting counts as much as running. While the
    // files upload it is provisional (`queue`): a compile that has its files may take it.
    let (uploading, compiler, dirs) = admit(state, peer, &req).await?;
    let environment = (compiler.runner.as_ref()).map(|r| r.environment.clone());
    if let Some(env) = &environment {
        record.environment = env.to_string();
    }
    record.phase("admit");
    // A compile the server has run already is answered from its record, before any upload;
    // of the same compile asked for at once by several clients, one runs and the others wait.
    // A share of the hits (`verify_results`) is compiled again and compared with its record.
    let results = (state.results.as_ref())
        .filter(|results| !req.no_result_cache && results.trusts(&compiler.path));
    let key = results.and_then(|results| Some((results, results::key(&req, &compiler)?)));
    // `_leader` wakes the compiles that wait for this one when it is dropped, at the end.
    let (_leader, check, record_as) = match key {
        None => (None, None, None),
        Some((results, key)) => match lead_or_answer(conn, results, key).await? {
            Begin::Run(leader) => (Some(leader), None, Some(key)),
            // Recorded with another dependency file than this request asks the server for.
            Begin::Hit(stored) if !results::answers(&stored, &req) => (None, None, Some(key)),
            Begin::Hit(stored) if results.verifies() => (None, Some((key, stored)), None),
            Begin::Hit(stored) => {
                record.cached = true;
                return Ok((cached_result(stored, &req, environment), None));
            }
            Begin::Wait(_) => unreachable!("lead_or_answer waits"),
        },
    };
    // File work (directories, hard links, copies) blocks: off the async threads' duty.
    let kept = state.roots.take(peer.ip());
    let (job, cwd) =
        tokio::task::block_in_place(|| jobroot::for_request(kept, &state.jobs_dir, &req))?;
    record.phase("root");
    negotiate(conn, state, (&req, dirs), &job, record).await?;
    tokio::task::block_in_place(|| job.clear_left()).map_err(storage)?;
    record.phase("files");
    let admission =
        (uploading.uploaded()).map_err(|full| refuse(RefusalReason::Busy, full.to_string()))?;
    let (outputs, invocation) =
        tokio::task::block_in_place(|| invocation(state, &req, &compiler, &job, cwd))?;
    record.phase("prepare");
    let queued = Instant::now();
    let _slot = take_slot(conn, state, &admission).await?;
    let compile_started = Instant::now();
    record.queued_ms = (compile_started - queued).as_millis() as u64;
    record.started = Some(compile_started);
    record.phase("slot");
    let finished = run_with_heartbeats(conn, state, invocation).await?;
    if finished.ran_out_of_disk(job.path()) {
        // Not the compile's verdict: the client compiles elsewhere, and the next finds room.
        state.cache.make_headroom();
        return Err(disk_full("the compiler could not write its files"));
    }
    record.compile_ms = compile_started.elapsed().as_millis() as u64;
    record.phase("compile");
    let (compression, max) = (req.compression, state.config.limits.output_size);
    // Outputs may be hundreds of MB: read and compressed off the async threads.
    let root = job.path().to_owned();
    let (files, outputs) = tokio::task::spawn_blocking(move || {
        let files = jobroot::read_outputs(outputs, &root, max)?;
        let packed = jobroot::pack_outputs(
            files
                .iter()
                .map(|(path, bytes)| (path.as_path(), bytes.as_slice())),
            compression,
        );
        Ok::<_, Ending>((files, packed))
    })
    .await
    .map_err(internal)??;
    record.phase("outputs");
    let result = CompileResult {
        exit_code: finished.exit_code,
        stdout: job.unmap_text(&finished.stdout),
        stderr: job.unmap_text(&finished.stderr),
        outputs,
        environment,
        cached: false,
    };
    if let (Some((key, stored)), Some(results)) = (&check, &state.results) {
        let outputs = stored
            .outputs
            .iter()
            .map(|(p, b)| (p.as_path(), b.as_slice()));
        let same = stored.exit_code == result.exit_code
            && stored.stdout == result.stdout
            && stored.stderr == result.stderr
            && outputs.eq(files.iter().map(|(p, b)| (p.as_path(), b.as_slice())));
        record.verified = Some(same);
        if !same {
            results.mismatch(key, &compiler.path);
        }
    }
    if let (Some(key), Some(results)) = (&record_as, &state.results) {
        tokio::task::block_in_place(|| {
            record_result(state, results, key, &req, &job, &result, files)
        });
        record.phase("record");
    }
    Ok((result, Some(job)))
}

/// The record of `key`, or the right to compile it: waits (with heartbeats) while another
/// compile of the same key runs.
async fn lead_or_answer(
    conn: &mut Conn,
    results: &Arc<Results>,
    key: homcc_proto::Digest,
) -> Result<Begin, Ending> {
    loop {
        match results.begin(key) {
            Begin::Wait(mut done) => {
                conn.with_heartbeats(async move {
                    let _ = done.wait_for(|done| *done).await;
                })
                .await?;
            }
            begun => return Ok(begun),
        }
    }
}

/// A stored result, as the client of `req` gets it.
fn cached_result(
    stored: Stored,
    req: &CompileRequest,
    environment: Option<homcc_proto::Environment>,
) -> CompileResult {
    // A record made for a request whose dependency file the server wrote may hold it: a
    // request whose client writes its own does not get it.
    let asked = |path: &PathBuf| req.outputs.contains(path) || req.depfile.as_ref() == Some(path);
    let files = stored.outputs.iter().filter(|(path, _)| asked(path));
    CompileResult {
        exit_code: stored.exit_code,
        outputs: jobroot::pack_outputs(
            files.map(|(path, bytes)| (path.as_path(), bytes.as_slice())),
            req.compression,
        ),
        stdout: stored.stdout,
        stderr: stored.stderr,
        environment,
        cached: true,
    }
}

/// Stores the result of a compile the server ran, unless an input file uses the time macros
/// (`__DATE__` ...) and `SOURCE_DATE_EPOCH` does not fix them.
fn record_result(
    state: &State,
    results: &Results,
    key: &homcc_proto::Digest,
    req: &CompileRequest,
    job: &JobRoot,
    result: &CompileResult,
    files: Vec<(PathBuf, Vec<u8>)>,
) {
    let epoch = req.env.iter().any(|(name, _)| name == "SOURCE_DATE_EPOCH");
    if !epoch {
        let mut inputs = Vec::new();
        for chunk_ref in &req.manifest {
            let Ok(Some(chunk)) = state.cache.chunk(&chunk_ref.digest) else {
                return;
            };
            for file in &chunk.files {
                let client = std::path::Path::new(&chunk.dir).join(&file.name);
                let Ok(path) = job.map_normal(&client) else {
                    return;
                };
                inputs.push((file.digest, path));
            }
        }
        if results.any_uses_the_time(inputs.iter().map(|(d, p)| (d, p.as_path()))) {
            return;
        }
    }
    let stored = Stored {
        dep_args: results::dep_args(&req.args).cloned().collect(),
        depfile: req.depfile.clone(),
        exit_code: result.exit_code,
        stdout: result.stdout.clone(),
        stderr: result.stderr.clone(),
        outputs: (files.into_iter())
            .map(|(path, bytes)| (path, serde_bytes::ByteBuf::from(bytes)))
            .collect(),
    };
    if let Err(e) = results.put(key, &stored) {
        tracing::warn!(%key, "result not recorded: {e}");
    }
}

/// What homccd decides before it writes a file: the arguments pass its policy and the other
/// fields its checks (`request`), it is not shutting down, it has room (now or in its queue), and
/// it has the client's compiler. The checks come first: a refused request takes no place and
/// runs no compiler probe.
async fn admit(
    state: &State,
    peer: SocketAddr,
    req: &CompileRequest,
) -> Result<(Uploading, Resolved, DirCount), Ending> {
    policy::check(&req.args).map_err(|e| refuse(RefusalReason::Forbidden, e.to_string()))?;
    let dirs = request::check(req, &state.config.limits)?;
    if state.shutdown.is_cancelled() {
        return Err(refuse(
            RefusalReason::ShuttingDown,
            "server is shutting down",
        ));
    }
    let admission = (state.scheduler)
        .admit(peer.ip(), req.queue)
        .map_err(|full| refuse(RefusalReason::Busy, full.to_string()))?;
    let compiler = (state.environments)
        .resolve(&state.compilers, req.environment.as_ref(), &req.compiler)
        .await
        .map_err(|(reason, m)| refuse(reason, m))?;
    Ok((admission, compiler, dirs))
}

/// The compile to run in the filled job root, and where its outputs will be (none there yet):
/// the hermetic command line and the sandbox. (Whatever else it writes, it cannot write a
/// cached blob: `sandbox::run_confined`.)
fn invocation<'a>(
    state: &State,
    req: &'a CompileRequest,
    compiler: &'a Resolved,
    job: &JobRoot,
    cwd: PathBuf,
) -> Result<(Vec<Output>, Invocation<'a>), Ending> {
    let mut outputs = Vec::with_capacity(req.outputs.len() + 1);
    let depfile = (req.depfile.iter()).map(|out| (out, Returned::IfPortable));
    for (out, returned) in (req.outputs.iter().map(|out| (out, Returned::Always))).chain(depfile) {
        let path = job.map_normal(out).map_err(invalid)?;
        jobroot::prepare_output(job, &path).map_err(storage)?;
        outputs.push(Output {
            client: out.clone(),
            path,
            returned,
        });
    }
    let mut args = compiler.target_args.clone();
    args.extend(hermetic_args(req, job).map_err(invalid)?);
    let sandbox = match (state.sandbox, &compiler.runner) {
        (true, None) => Some(job.sandbox(&compiler.path).map_err(internal)?),
        _ => None,
    };
    let inside = (compiler.runner.as_ref()).map(|runner| Inside {
        runner,
        started: job.started(),
        stamp: compiler.stamp.as_ref(),
    });
    let invocation = Invocation {
        compiler: &compiler.path,
        args,
        cwd,
        tmp: job.tmp().to_owned(),
        env: &req.env,
        sandbox,
        inside,
    };
    Ok((outputs, invocation))
}

async fn read_request(conn: &mut Conn) -> Result<CompileRequest, Ending> {
    // The request is small: it must arrive whole within the idle time, however it trickles in.
    let idle = conn.idle();
    let lost = || Ending::Lost(format!("no whole request within {} s", idle.as_secs()));
    let first = tokio::time::timeout(idle, conn.next())
        .await
        .map_err(|_| lost())?
        .map_err(|_| lost())?;
    let req = match first {
        None => return Err(Ending::Lost("closed before sending a request".into())),
        Some(Err(CodecError::VersionMismatch { peer })) => return Err(version_refusal(peer)),
        Some(Err(e)) => return Err(bad_frame(e)),
        Some(Ok(ClientMessage::Compile(req))) => *req,
        Some(Ok(_)) => return Err(invalid("the first frame must be a Compile request")),
    };
    if req.version != PROTOCOL_VERSION {
        return Err(version_refusal(req.version));
    }
    Ok(req)
}

fn version_refusal(client: u32) -> Ending {
    refuse(
        RefusalReason::Version { server: PROTOCOL_VERSION },
        format!("protocol version {client} not spoken there (server speaks {PROTOCOL_VERSION}): use the same homcc release on both sides"),
    )
}

/// A compile slot: at once if one is free and no one waits before this compile, else after
/// `Queued` and heartbeats, when its turn comes (at most `queue_timeout`).
async fn take_slot(conn: &mut Conn, state: &State, admission: &Admission) -> Result<Slot, Ending> {
    let waiter = admission.wait();
    if let Some(slot) = waiter.try_take() {
        return Ok(slot);
    }
    let position = u32::try_from(waiter.position()).unwrap_or(u32::MAX);
    conn.send(ServerMessage::Queued { position })
        .await
        .map_err(|e| Ending::Lost(e.to_string()))?;
    let timeout = state.config.queue_timeout;
    let turn = async {
        tokio::select! {
            slot = tokio::time::timeout(timeout, waiter.take()) => slot.map_err(|_| refuse(
                RefusalReason::Busy,
                format!("busy: no compile slot freed within {} s in the queue (queue_timeout)", timeout.as_secs()),
            )),
            _ = state.shutdown.cancelled() => Err(refuse(RefusalReason::ShuttingDown, "server is shutting down")),
        }
    };
    conn.with_heartbeats(turn).await?
}

/// Runs the compile, sending heartbeats; a client that goes away kills it.
async fn run_with_heartbeats(
    conn: &mut Conn,
    state: &State,
    inv: Invocation<'_>,
) -> Result<compile::Finished, Ending> {
    let bounds = compile::Bounds {
        time: state.config.compile_timeout,
        output: state.config.max_compiler_output,
        memory: state.config.max_compiler_memory,
    };
    conn.with_heartbeats(compile::run(inv, bounds))
        .await?
        .map_err(|e| match e {
            CompileError::TimedOut(_) => refuse(RefusalReason::Timeout, e.to_string()),
            CompileError::OutputTooLarge { .. } | CompileError::OutOfMemory(_) => {
                limit(e.to_string())
            }
            CompileError::Environment {
                ref environment, ..
            } => {
                // It may have changed (a compiler replaced, a container recreated): its
                // compilers are probed again when next asked for.
                state.environments.forget(environment);
                refuse(
                    RefusalReason::Environment,
                    format!("{e}; offered: {}", state.environments.names()),
                )
            }
            _ => internal(e),
        })
}
