//! One remote compile on one host: connect, answer the server's challenge (with a token), send
//! the request, upload what the server asks for, wait (heartbeats, maybe in the server's queue)
//! for the result. Every way this can fail is a `Failure` naming what happened; a busy server
//! is one of them, but load rather than the host's fault.

mod conn;
mod failure;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use homcc_proto::{
    AuthToken, Blob, Chunk, ChunkRef, ClientMessage, CompileRequest, CompileResult, Compression,
    Digest, Need, Payload, RefusalReason, ServerMessage,
};
use rayon::prelude::*;
use tokio::net::TcpStream;

use self::conn::{Conn, Stream, Wait};
pub use self::failure::Failure;
use crate::{
    hosts::Host,
    known::KnownChunks,
    ssh::{Ssh, SshError, SshSettings},
};

/// The request, minus the manifest refs (which depend on what the host is known to have).
#[derive(Debug)]
pub struct Prepared {
    pub request: CompileRequest,
    pub chunks: Vec<(Digest, Chunk)>,
    /// Where to read each file, by digest.
    pub files: HashMap<Digest, PathBuf>,
}

/// Time limits of one remote compile.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connecting, and again the server's first answer to the request.
    pub connect: Duration,
    /// The whole remote compile, from connecting to the result.
    pub request: Duration,
    /// The longest silence from the server.
    pub heartbeat: Duration,
}

/// What crossed the wire.
#[derive(Debug, Default, Clone)]
pub struct Traffic {
    pub files: usize,
    pub chunks: usize,
    pub chunks_inline: usize,
    pub blobs: usize,
    pub blob_bytes: u64,
    pub blob_bytes_compressed: u64,
    pub sent: u64,
    pub received: u64,
    /// The compile's place in the server's queue, if it had to wait for a slot there.
    pub queued: Option<u32>,
}

/// The host of one attempt, and how to talk to it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub host: &'a Host,
    /// Answers the host's authentication challenge; `None`: the host must not send one.
    pub auth: Option<&'a AuthToken>,
    /// Of the uploaded files and of the returned outputs.
    pub compression: Compression,
    pub timeouts: Timeouts,
    /// Whether the compile may wait in the server's queue (else a full server answers busy).
    pub queue: bool,
    /// How an SSH host is reached.
    pub ssh: &'a SshSettings,
}

/// Runs the compile on `target`: connect (and answer the challenge), send the request, then
/// answer the server until its verdict. `answered` is called once the server has shown it is
/// healthy (its first answer to the request is not a refusal, or only says it is busy).
pub async fn compile_on(
    target: &Target<'_>,
    prepared: &Prepared,
    known: &KnownChunks,
    traffic: &mut Traffic,
    answered: &mut dyn FnMut(),
) -> Result<CompileResult, Failure> {
    let deadline = Instant::now() + target.timeouts.request;
    let stream = open(target).await?;
    let request = request_for(target, prepared, known, traffic);
    let inline: Vec<Digest> = (request.manifest.iter())
        .filter(|chunk| chunk.inline.is_some())
        .map(|chunk| chunk.digest)
        .collect();
    let talk = async {
        let mut conn = connect(stream, target, deadline).await?;
        conn.send(ClientMessage::Compile(Box::new(request))).await?;
        let result = converse(&mut conn, target, prepared, traffic, answered, deadline).await?;
        Ok::<_, Failure>((result, conn.bytes()))
    };
    let (result, bytes) = match talk.await {
        Ok(done) => done,
        Err(failure) => return Err(ssh_reason(failure, target)),
    };
    // The others were known already (a chunk the host had lost and asked for is one of them).
    known.insert_all(&inline);
    (traffic.sent, traffic.received) = bytes;
    Ok(result)
}

/// The wait for the server's first answer, to the challenge or to the request: it comes as soon
/// as the server has accepted the connection or read the request, so a server that accepts
/// connections but does not answer costs only the connect timeout.
fn first_answer(timeouts: Timeouts, during: &'static str) -> Wait {
    Wait {
        silence: timeouts.connect,
        timeout: "establish_connection_timeout",
        during,
    }
}

/// A stream to `target`'s homccd: a TCP connection, or for an SSH host a connection through its
/// master connection (set up first if there is none).
async fn open(target: &Target<'_>) -> Result<Box<dyn Stream>, Failure> {
    let timeouts = target.timeouts;
    let timed_out = |during| Failure::TimedOut {
        timeout: "establish_connection_timeout",
        after: timeouts.connect,
        during,
    };
    if let Some(ssh) = Ssh::of(target.ssh, target.host) {
        let stream = ssh.connect(timeouts.connect).await.map_err(|e| match e {
            SshError::TimedOut => timed_out("while starting the SSH connection"),
            e => Failure::Ssh(e),
        })?;
        return Ok(Box::new(stream));
    }
    let stream = tokio::time::timeout(timeouts.connect, TcpStream::connect(target.host.address()))
        .await
        .map_err(|_| timed_out("while connecting"))?
        .map_err(Failure::Unreachable)?;
    let _ = stream.set_nodelay(true);
    // A link that goes away during an upload: the unacknowledged data ends the connection after
    // the heartbeat timeout, as silence does while the client waits.
    let _ = socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(timeouts.heartbeat));
    Ok(Box::new(stream))
}

/// `failure` of a compile over SSH: a connection that ended early there is the SSH server's
/// connection to homccd failing (no homccd on that port), or the SSH connection's end.
fn ssh_reason(failure: Failure, target: &Target<'_>) -> Failure {
    match (failure, &target.host.transport) {
        (Failure::Lost(e) | Failure::Protocol(e), crate::hosts::Transport::Ssh { .. }) => {
            Failure::Ssh(SshError::Failed(format!(
                "the connection through SSH ended ({e}): is homccd listening on 127.0.0.1:{} there?",
                target.host.port
            )))
        }
        (failure, _) => failure,
    }
}

/// A connection over `stream` to `target`'s host, authenticated when the client has a token.
async fn connect(
    stream: Box<dyn Stream>,
    target: &Target<'_>,
    deadline: Instant,
) -> Result<Conn, Failure> {
    let timeouts = target.timeouts;
    let mut conn = Conn::new(stream);
    if let Some(token) = target.auth {
        let wait = first_answer(
            timeouts,
            "waiting for the server's authentication challenge (does it have an auth_token_file?)",
        );
        let nonce = match conn.receive(wait, deadline, timeouts.request).await? {
            ServerMessage::Challenge { nonce } => nonce,
            ServerMessage::Refused(refusal) => return Err(Failure::Refused(refusal)),
            _ => {
                return Err(Failure::Protocol(
                    "the server sent no authentication challenge".into(),
                ))
            }
        };
        let proof = token.proof(&nonce);
        conn.send(ClientMessage::Auth { proof }).await?;
    }
    Ok(conn)
}

/// The request for `target`: its compression and leave to queue, and the manifest's chunks inline
/// where the host is not known to have them.
fn request_for(
    target: &Target<'_>,
    prepared: &Prepared,
    known: &KnownChunks,
    traffic: &mut Traffic,
) -> CompileRequest {
    let mut request = prepared.request.clone();
    request.compression = target.compression;
    request.queue = target.queue;
    request.manifest = (prepared.chunks.iter())
        .map(|(digest, chunk)| ChunkRef {
            digest: *digest,
            inline: (!known.contains(digest)).then(|| chunk.clone()),
        })
        .collect();
    traffic.files = prepared.files.len();
    traffic.chunks = request.manifest.len();
    traffic.chunks_inline = (request.manifest.iter())
        .filter(|c| c.inline.is_some())
        .count();
    request
}

/// Answers the server after the request (uploads what it needs, notes its place in the queue)
/// until its verdict.
async fn converse(
    conn: &mut Conn,
    target: &Target<'_>,
    prepared: &Prepared,
    traffic: &mut Traffic,
    answered: &mut dyn FnMut(),
    deadline: Instant,
) -> Result<CompileResult, Failure> {
    let timeouts = target.timeouts;
    let mut first = true;
    loop {
        let wait = match first {
            true => first_answer(timeouts, "waiting for the server's first answer"),
            false => Wait {
                silence: timeouts.heartbeat,
                timeout: "heartbeat timeout",
                during: "waiting for a sign of life from the server",
            },
        };
        let message = conn.receive(wait, deadline, timeouts.request).await?;
        let was_first = std::mem::take(&mut first);
        let healthy = match &message {
            ServerMessage::Refused(refusal) => refusal.reason == RefusalReason::Busy,
            ServerMessage::Challenge { .. } => false,
            _ => true,
        };
        if was_first && healthy {
            answered();
        }
        match message {
            ServerMessage::Need(need) => {
                let nothing = need.chunks.is_empty() && need.blobs.is_empty();
                upload(conn, prepared, &need, target.compression, traffic).await?;
                if nothing && matches!(target.host.transport, crate::hosts::Transport::Ssh { .. }) {
                    conn.send(ClientMessage::Ready).await?;
                }
            }
            ServerMessage::Heartbeat => {}
            ServerMessage::Queued { position } => traffic.queued = Some(position),
            ServerMessage::Result(result) => return Ok(result),
            ServerMessage::Refused(refusal) => return Err(Failure::Refused(refusal)),
            ServerMessage::Challenge { .. } if was_first && target.auth.is_none() => {
                return Err(Failure::AuthRequired)
            }
            ServerMessage::Challenge { .. } => {
                return Err(Failure::Protocol(
                    "an authentication challenge in the middle of a compile".into(),
                ))
            }
        }
    }
}

/// Sends the chunks and files the server asked for; files are read, checked against the digest
/// they were scanned with, and compressed in parallel.
async fn upload(
    conn: &mut Conn,
    prepared: &Prepared,
    need: &Need,
    compression: Compression,
    traffic: &mut Traffic,
) -> Result<(), Failure> {
    if !need.chunks.is_empty() {
        let by_digest: HashMap<&Digest, &Chunk> =
            prepared.chunks.iter().map(|(d, c)| (d, c)).collect();
        let chunks =
            need.chunks
                .iter()
                .map(|d| {
                    by_digest.get(d).map(|c| (*c).clone()).ok_or_else(|| {
                        Failure::Protocol(format!("server asked for unknown chunk {d}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
        conn.send(ClientMessage::Chunks(chunks)).await?;
    }
    if need.blobs.is_empty() || conn.answered() {
        return Ok(());
    }
    let mut paths = Vec::with_capacity(need.blobs.len());
    for digest in &need.blobs {
        let path = prepared
            .files
            .get(digest)
            .ok_or_else(|| Failure::Protocol(format!("server asked for unknown file {digest}")))?;
        paths.push((*digest, path.clone()));
    }
    // Files are read and compressed in parallel and each is sent as soon as it is ready, so the
    // link is busy while the CPU works (and the server never waits for the slowest file first).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Blob, Failure>>(8);
    tokio::task::spawn_blocking(move || {
        paths.par_iter().try_for_each(|(digest, path)| {
            let blob = read_blob(*digest, path, compression);
            let failed = blob.is_err();
            // A closed channel means the upload was given up: stop reading files.
            tx.blocking_send(blob).map_err(drop)?;
            if failed {
                Err(())
            } else {
                Ok(())
            }
        })
    });
    while let Some(blob) = rx.recv().await {
        let blob = blob?;
        traffic.blobs += 1;
        traffic.blob_bytes += blob.payload.size;
        traffic.blob_bytes_compressed += blob.payload.data.len() as u64;
        conn.send(ClientMessage::Blob(blob)).await?;
        if conn.answered() {
            // The server answered mid-upload (a refusal): the rest would not be read.
            break;
        }
    }
    Ok(())
}

/// A file's content, checked against the digest it was scanned with, and compressed.
fn read_blob(digest: Digest, path: &Path, compression: Compression) -> Result<Blob, Failure> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::Client(format!("cannot read {}: {e}", path.display())))?;
    if Digest::of(&bytes) != digest {
        return Err(Failure::Client(format!(
            "{} changed during the compile",
            path.display()
        )));
    }
    Ok(Blob {
        digest,
        payload: Payload::pack(compression, &bytes),
    })
}
