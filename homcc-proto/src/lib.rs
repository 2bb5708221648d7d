//! homcc's wire protocol: the messages of one compile, their framing codec, blob compression and
//! content digests, the compiler identity (`identity`), and the settings loader both binaries
//! share. It opens no sockets (`counted` only wraps a stream the caller owns); the only processes
//! it runs are the one-line queries of a compiler's identity (`identity::run_first_line`); its
//! only file access is `config` reading homcc.conf and the token file, and `sys` looking at a
//! file's metadata.
//!
//! One compile per TCP connection (see `docs/protocol.md`):
//! client `Compile` → server `Need` → client `Chunks`/`Blob`s → server `Queued` (if it waits for
//! a compile slot) and `Heartbeat`s → `Result`, or `Refused` at any point before the result. A
//! server with a token first sends `Challenge`, which the client answers with `Auth` (`auth`)
//! before its `Compile`.

pub mod auth;
pub mod codec;
pub mod compression;
pub mod config;
pub mod counted;
pub mod digest;
pub mod flags;
pub mod generate;
pub mod identity;
pub mod manifest;
pub mod message;
pub mod names;
pub mod policy;
pub mod sys;
pub mod text;

pub use auth::{AuthToken, AuthTokenError};
pub use codec::{ClientCodec, CodecError, ServerCodec};
pub use compression::{Compression, CompressionError};
pub use digest::Digest;
pub use manifest::{Chunk, ChunkFile, ManifestEntry};
pub use message::*;

/// The protocol version this build speaks; the first field of every [`CompileRequest`]. 8 added
/// [`RefusalReason::DiskFull`], 7 added
/// [`CompileRequest::no_result_cache`] and [`CompileResult::cached`], 6 added
/// [`ClientMessage::Ready`], 5
/// [`CompileRequest::environment`] and [`CompileResult::environment`], 4
/// [`CompileRequest::depfile`], 3 [`Compression::Zstd`], which a version-2 peer cannot decode
/// (docs/protocol.md §8).
pub const PROTOCOL_VERSION: u32 = 8;

/// homccd's default TCP port (the Python homcc's).
pub const DEFAULT_PORT: u16 = 3126;
