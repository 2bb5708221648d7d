//! A raw protocol client built on homcc-proto, for what homcc itself never sends: requests that
//! hold a server's slot, carry a wrong version or compiler, or attack the server (bad paths,
//! lying uploads, frames out of order or malformed).

use std::{
    collections::HashMap,
    ffi::OsString,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use homcc_client::{classify::Language, compiler};
use homcc_proto::{
    codec::DEFAULT_MAX_SERVER_FRAME, Blob, Chunk, ChunkFile, ChunkRef, ClientCodec, ClientMessage,
    CodecError, CompileRequest, CompileResult, CompilerIdentity, Compression, Digest,
    ManifestEntry, Need, Payload, Refusal, ServerMessage, PROTOCOL_VERSION,
};
use tokio::{io::AsyncWriteExt, net::TcpStream};
use tokio_util::{codec::Framed, sync::CancellationToken};

use crate::os;

/// A connection that speaks the client side of the protocol.
pub type Raw = Framed<TcpStream, ClientCodec>;

/// A runtime for the raw client (holders must be dropped inside it).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The identity homcc sends for `g++`.
pub fn gxx_identity() -> CompilerIdentity {
    let binary = compiler::resolve(os("g++")).expect("g++ on PATH");
    compiler::info(os("g++"), &binary, Language::Cxx, &[], None)
        .expect("probe g++")
        .identity
}

/// The file the raw request lists (the server's fresh cache lacks it).
pub const HELD_SOURCE: &[u8] = b"int held_slot_marker;\n";

/// A compile of `held.cpp` in `dir`, its manifest one inline chunk.
pub fn raw_request(dir: &Path, version: u32, compiler: CompilerIdentity) -> CompileRequest {
    let chunk = Chunk {
        dir: dir.to_str().expect("a UTF-8 temp dir").to_owned(),
        files: vec![ChunkFile {
            name: "held.cpp".into(),
            digest: Digest::of(HELD_SOURCE),
            size: HELD_SOURCE.len() as u64,
        }],
    };
    CompileRequest {
        version,
        compiler,
        args: ["-c", "held.cpp", "-o", "held.o"]
            .map(OsString::from)
            .to_vec(),
        cwd: dir.to_owned(),
        include_dirs: Vec::new(),
        implicit_includes: Vec::new(),
        preprocessed: false,
        dirs: vec![],
        manifest: vec![ChunkRef {
            digest: chunk.digest(),
            inline: Some(chunk),
        }],
        outputs: vec![dir.join("held.o")],
        env: Vec::new(),
        compression: Compression::default(),
        queue: true,
        depfile: None,
        environment: None,
        no_result_cache: false,
    }
}

/// Connects, sends `request` and returns the connection with the server's first reply.
pub async fn send_request(addr: SocketAddr, request: CompileRequest) -> (Raw, ServerMessage) {
    let stream = TcpStream::connect(addr).await.expect("connect to homccd");
    let mut conn = Framed::new(stream, ClientCodec::new(DEFAULT_MAX_SERVER_FRAME));
    conn.send(ClientMessage::Compile(Box::new(request)))
        .await
        .expect("send the request");
    let reply = tokio::time::timeout(Duration::from_secs(60), conn.next())
        .await
        .expect("a reply in time")
        .expect("a reply before the connection closed")
        .expect("a reply that decodes");
    (conn, reply)
}

/// Holds one place of the server at `addr` until dropped (inside `runtime`), as a compile that
/// has its files does: it uploads a source whose constant evaluation runs for minutes, and
/// returns once the server has queued it or sends heartbeats while it runs. (A place held by a
/// compile still uploading is not held: a compile with its files may take it.) Dropping the
/// connection makes homccd kill the compiler.
pub fn hold_place(runtime: &tokio::runtime::Runtime, addr: SocketAddr, dir: &Path) -> Raw {
    let mut source = String::from(
        "constexpr long spin(long n) { long x = 0; for (long i = 0; i < n; ++i) for (long j = 0; j < 1000; ++j) x += i ^ j; return x; }\n",
    );
    for k in 0..400 {
        source += &format!("constexpr long spun{k} = spin({});\n", 1500 + k);
    }
    let conversation = Conversation::new(
        gxx_identity(),
        dir,
        &["-c", "spin.cpp", "-o", "spin.o"],
        &[(dir.join("spin.cpp"), source.into_bytes())],
        &[dir.join("spin.o")],
        Compression::Lzma,
    );
    runtime.block_on(async {
        let (mut conn, reply) = send_request(addr, conversation.request.clone()).await;
        match reply {
            ServerMessage::Need(need) => conversation.upload(&mut conn, &need).await.unwrap(),
            other => panic!("expected Need, got {other:?}"),
        }
        match tokio::time::timeout(ANSWER_LIMIT, conn.next()).await {
            Ok(Some(Ok(ServerMessage::Heartbeat | ServerMessage::Queued { .. }))) => conn,
            other => panic!("expected the held compile to run or wait, got {other:?}"),
        }
    })
}

/// How long the raw client waits for the server's next frame before it fails the test.
pub const ANSWER_LIMIT: Duration = Duration::from_secs(30);

/// The server's answer to what a raw client sent.
#[derive(Debug)]
pub enum Answer {
    Refused(Refusal),
    Need(Need),
    Result(CompileResult),
    /// The connection ended (end of file or reset) without a final frame.
    Closed(String),
    /// A frame the client did not expect, or that does not decode.
    Unexpected(String),
}

/// A connection to `addr` that speaks the client side of the protocol.
pub async fn connect(addr: SocketAddr) -> Raw {
    let stream = TcpStream::connect(addr).await.expect("connect to homccd");
    Framed::new(stream, ClientCodec::new(DEFAULT_MAX_SERVER_FRAME))
}

/// Writes `bytes` as they are, framing included (for frames homcc-proto would never encode).
pub async fn send_bytes(conn: &mut Raw, bytes: &[u8]) -> std::io::Result<()> {
    conn.get_mut().write_all(bytes).await
}

/// `body` with its length header.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len())
        .expect("a body below 4 GiB")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(body);
    out
}

/// The body of `message` as the codec encodes it.
pub fn body(message: &ClientMessage) -> Vec<u8> {
    homcc_proto::codec::encode_record(message).expect("a message encodes")
}

/// The server's next frame that is not a heartbeat (or its place in the queue); panics after [`ANSWER_LIMIT`] of silence.
pub async fn next_answer(conn: &mut Raw) -> Answer {
    loop {
        let frame = tokio::time::timeout(ANSWER_LIMIT, conn.next())
            .await
            .unwrap_or_else(|_| panic!("homccd said nothing for {ANSWER_LIMIT:?}"));
        return match frame {
            None => Answer::Closed("end of file".into()),
            Some(Err(CodecError::Io(e))) => Answer::Closed(e.to_string()),
            Some(Err(e)) => Answer::Unexpected(e.to_string()),
            Some(Ok(ServerMessage::Heartbeat | ServerMessage::Queued { .. })) => continue,
            Some(Ok(ServerMessage::Refused(refusal))) => Answer::Refused(refusal),
            Some(Ok(ServerMessage::Need(need))) => Answer::Need(need),
            Some(Ok(ServerMessage::Result(result))) => Answer::Result(result),
            Some(Ok(other)) => Answer::Unexpected(format!("{other:?}")),
        };
    }
}

/// Sends `bytes` one at a time, `gap` apart, until the server answers (or a write fails); then
/// its answer.
pub async fn trickle(conn: &mut Raw, bytes: &[u8], gap: Duration) -> Answer {
    let never = CancellationToken::new();
    (trickle_until(conn, bytes, gap, &never).await).expect("never stopped")
}

/// As [`trickle`], until `stop` is cancelled (then `None`).
pub async fn trickle_until(
    conn: &mut Raw,
    bytes: &[u8],
    gap: Duration,
    stop: &CancellationToken,
) -> Option<Answer> {
    for byte in bytes {
        if send_bytes(conn, &[*byte]).await.is_err() {
            break;
        }
        let frame = tokio::select! {
            _ = stop.cancelled() => return None,
            frame = tokio::time::timeout(gap, conn.next()) => frame,
        };
        if let Ok(frame) = frame {
            return Some(match frame {
                None => Answer::Closed("end of file".into()),
                Some(Ok(ServerMessage::Refused(refusal))) => Answer::Refused(refusal),
                Some(other) => Answer::Unexpected(format!("{other:?}")),
            });
        }
    }
    Some(next_answer(conn).await)
}

/// A compile request and what its client uploads when the server asks for it.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub request: CompileRequest,
    /// Every chunk of the manifest, by digest (sent in `Chunks` when a `Need` names it).
    pub chunks: HashMap<Digest, Chunk>,
    /// The `Blob` frame sent for each file a `Need` names (an attack may make one lie).
    pub blobs: HashMap<Digest, Blob>,
}

impl Conversation {
    /// `compiler args` run in `cwd`, reading `files` (absolute client paths and contents) and
    /// writing `outputs`; the manifest is one inline chunk per directory, as homcc builds it,
    /// and the blobs are honest, compressed with `compression`.
    pub fn new(
        compiler: CompilerIdentity,
        cwd: &Path,
        args: &[&str],
        files: &[(PathBuf, Vec<u8>)],
        outputs: &[PathBuf],
        compression: Compression,
    ) -> Conversation {
        let entries: Vec<ManifestEntry> = files
            .iter()
            .map(|(path, content)| ManifestEntry {
                path: path.clone(),
                digest: Digest::of(content),
                size: content.len() as u64,
            })
            .collect();
        let chunks = homcc_proto::manifest::chunk_entries(&entries).expect("UTF-8 file paths");
        let blobs = files
            .iter()
            .map(|(_, content)| {
                let digest = Digest::of(content);
                let payload = Payload::pack(compression, content);
                (digest, Blob { digest, payload })
            })
            .collect();
        let mut conversation = Conversation {
            request: CompileRequest {
                version: PROTOCOL_VERSION,
                compiler,
                args: args.iter().map(OsString::from).collect(),
                cwd: cwd.to_owned(),
                include_dirs: Vec::new(),
                implicit_includes: Vec::new(),
                preprocessed: false,
                dirs: Vec::new(),
                manifest: chunks
                    .into_iter()
                    .map(|chunk| ChunkRef {
                        digest: Digest([0; 32]),
                        inline: Some(chunk),
                    })
                    .collect(),
                outputs: outputs.to_vec(),
                env: Vec::new(),
                compression,
                queue: true,
                depfile: None,
                environment: None,
                no_result_cache: false,
            },
            chunks: HashMap::new(),
            blobs,
        };
        conversation.seal();
        conversation
    }

    /// A connection to `addr` that has sent the request, and the server's `Need` (anything else
    /// fails the test).
    pub async fn ask(&self, addr: SocketAddr) -> (Raw, Need) {
        let mut conn = connect(addr).await;
        let request = ClientMessage::Compile(Box::new(self.request.clone()));
        conn.send(request).await.expect("send the request");
        match next_answer(&mut conn).await {
            Answer::Need(need) => (conn, need),
            other => panic!("expected a Need, got {other:?}"),
        }
    }

    /// Lists `chunk` in the manifest by its digest alone, to be sent when a `Need` asks for it.
    pub fn list_chunk_by_digest(&mut self, chunk: Chunk) {
        let digest = chunk.digest();
        self.request.manifest.push(ChunkRef {
            digest,
            inline: None,
        });
        self.chunks.insert(digest, chunk);
    }

    /// Gives every inline chunk its true digest (after a test changed one) and records the
    /// chunks for upload.
    pub fn seal(&mut self) {
        for chunk_ref in &mut self.request.manifest {
            if let Some(chunk) = &chunk_ref.inline {
                chunk_ref.digest = chunk.digest();
                self.chunks.insert(chunk_ref.digest, chunk.clone());
            }
        }
    }

    /// The first chunk of the manifest, to change (then [`Conversation::seal`]).
    pub fn chunk_mut(&mut self) -> &mut Chunk {
        self.request.manifest[0]
            .inline
            .as_mut()
            .expect("an inline chunk")
    }

    /// Connects to `addr`, sends the request and answers every `Need`, until the server's last
    /// word.
    pub async fn run(&self, addr: SocketAddr) -> Answer {
        let mut conn = connect(addr).await;
        // A server that refuses at once may close before the request is written: read anyway.
        let _ = conn
            .send(ClientMessage::Compile(Box::new(self.request.clone())))
            .await;
        self.answer(&mut conn).await
    }

    /// Answers every `Need` on `conn` with the chunks and blobs it names (those this
    /// conversation lacks are not sent), until the server's last word.
    pub async fn answer(&self, conn: &mut Raw) -> Answer {
        loop {
            let need = match next_answer(conn).await {
                Answer::Need(need) => need,
                last => return last,
            };
            // A write the server refused to read shows in the next answer, which is read anyway.
            let _ = self.upload(conn, &need).await;
        }
    }

    /// Sends what `need` names: one `Chunks` frame, then a `Blob` frame per file.
    pub async fn upload(&self, conn: &mut Raw, need: &Need) -> Result<(), CodecError> {
        if !need.chunks.is_empty() {
            let chunks = need
                .chunks
                .iter()
                .filter_map(|d| self.chunks.get(d).cloned())
                .collect();
            conn.send(ClientMessage::Chunks(chunks)).await?;
        }
        for digest in &need.blobs {
            if let Some(blob) = self.blobs.get(digest) {
                conn.send(ClientMessage::Blob(blob.clone())).await?;
            }
        }
        Ok(())
    }
}
