//! A raw protocol client built on homcc-proto, for what homcc itself never sends: requests that
//! hold a server's slot, or carry a wrong version or compiler.

use std::{ffi::OsString, net::SocketAddr, path::Path, time::Duration};

use futures_util::{SinkExt, StreamExt};
use homcc_client::{classify::Language, compiler};
use homcc_proto::{
    codec::DEFAULT_MAX_SERVER_FRAME, Chunk, ChunkFile, ChunkRef, ClientCodec, ClientMessage,
    CompileRequest, CompilerIdentity, Compression, Digest, ServerMessage, PROTOCOL_VERSION,
};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

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

/// Holds one compile slot of the server at `addr` until dropped (inside `runtime`): a request
/// whose file the server waits for, as long as its idle timeout lets it.
pub fn hold_slot(runtime: &tokio::runtime::Runtime, addr: SocketAddr, dir: &Path) -> Raw {
    let request = raw_request(dir, PROTOCOL_VERSION, gxx_identity());
    let (conn, reply) = runtime.block_on(send_request(addr, request));
    match reply {
        ServerMessage::Need(need) => assert_eq!(need.blobs, [Digest::of(HELD_SOURCE)], "{need:?}"),
        other => panic!("expected Need, got {other:?}"),
    }
    conn
}
