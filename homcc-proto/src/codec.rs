//! The one codec both programs use: tokio-util length-delimited frames (4-byte big-endian length,
//! then the body) whose bodies are serde + bincode 2 (`config::standard()`: little-endian varints).
//! Every bincode call of the project lives in this module.
//!
//! A frame longer than the codec's maximum is rejected from its length header, before its body is
//! buffered or decoded.

use std::{
    cell::Cell,
    marker::PhantomData,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use bytes::{Buf, BufMut, BytesMut};
use serde::{
    de::{DeserializeOwned, Error as _, SeqAccess, Visitor},
    Deserialize, Deserializer, Serialize,
};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::{manifest::Chunk, ClientMessage, ServerMessage, PROTOCOL_VERSION};

/// Upper bound on any frame, whatever a caller configures: the length header is a u32.
pub const FRAME_LIMIT_CEILING: usize = u32::MAX as usize;
/// Default maximum frame the server accepts from a client (one blob or one request).
pub const DEFAULT_MAX_CLIENT_FRAME: usize = 64 << 20;
/// Default maximum frame the client accepts from a server (a result with every output file).
pub const DEFAULT_MAX_SERVER_FRAME: usize = 1 << 30;

const LENGTH_HEADER: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("peer speaks protocol version {peer}, this side speaks {PROTOCOL_VERSION}")]
    VersionMismatch { peer: u32 },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("a frame lists more than {max} manifest files or more than {max} directories (dirs and chunks)")]
    TooManyEntries { max: usize },
    #[error("busy: the {max} bytes of memory for the frames being read are taken, so a frame of {len} bytes does not fit now")]
    NoMemory { len: usize, max: usize },
    #[error(
        "a frame of {len} bytes is more than the {max} bytes of memory for all frames being read"
    )]
    BeyondMemory { len: usize, max: usize },
    #[error("cannot encode message: {0}")]
    Encode(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A message type that can arrive on a connection.
pub trait Incoming: DeserializeOwned {
    /// The protocol version announced by a frame that did not decode, if it announces one.
    fn announced_version(_frame: &[u8]) -> Option<u32> {
        None
    }
}

impl Incoming for ServerMessage {}

impl Incoming for ClientMessage {
    /// A `Compile` request begins with its variant index (0) and the version: both varints, which
    /// keeps this readable whatever later versions change after them.
    fn announced_version(frame: &[u8]) -> Option<u32> {
        match decode_prefix::<(u32, u32)>(frame) {
            Some((0, version)) => Some(version),
            _ => None,
        }
    }
}

/// Frames in, `Rx` decoded; `Tx` encoded, frames out.
#[derive(Debug)]
pub struct MessageCodec<Rx, Tx> {
    frames: LengthDelimitedCodec,
    /// Whether the next bytes of the stream are a length header (the length-delimited codec
    /// consumes the header before the body has fully arrived).
    at_head: bool,
    max_in: usize,
    max_out: usize,
    /// The most manifest files, and the most directories, one incoming frame may list.
    max_entries: Option<usize>,
    /// Where each incoming frame takes its memory from, and what it holds of it while it is read.
    memory: Option<Arc<FrameMemory>>,
    held: Option<Held>,
    _types: PhantomData<fn(Tx) -> Rx>,
}

/// The server's side: reads [`ClientMessage`]s, writes [`ServerMessage`]s.
/// Build it with [`MessageCodec::with_limits`]`(max client frame, DEFAULT_MAX_SERVER_FRAME)`.
pub type ServerCodec = MessageCodec<ClientMessage, ServerMessage>;
/// The client's side: reads [`ServerMessage`]s, writes [`ClientMessage`]s.
pub type ClientCodec = MessageCodec<ServerMessage, ClientMessage>;

impl<Rx, Tx> MessageCodec<Rx, Tx> {
    /// A codec that reads and writes frames of at most `max_frame` body bytes.
    pub fn new(max_frame: usize) -> Self {
        Self::with_limits(max_frame, max_frame)
    }

    /// A codec that reads frames of at most `max_in` and writes frames of at most `max_out` bytes.
    pub fn with_limits(max_in: usize, max_out: usize) -> Self {
        let max_in = max_in.min(FRAME_LIMIT_CEILING);
        let frames = LengthDelimitedCodec::builder()
            .length_field_length(LENGTH_HEADER)
            .max_frame_length(max_in)
            .new_codec();
        MessageCodec {
            frames,
            at_head: true,
            max_in,
            max_out: max_out.min(FRAME_LIMIT_CEILING),
            max_entries: None,
            memory: None,
            held: None,
            _types: PhantomData,
        }
    }
}

impl<Rx, Tx> MessageCodec<Rx, Tx> {
    /// Changes the read limit from the next frame on (homccd reads only a small frame until a
    /// client has authenticated).
    pub fn set_max_in(&mut self, max_in: usize) {
        self.max_in = max_in.min(FRAME_LIMIT_CEILING);
        self.frames.set_max_frame_length(self.max_in);
    }

    /// Refuses an incoming frame that lists more than `max` manifest files, or more than `max`
    /// directories (chunks, dirs to create), from the lists' lengths: before their elements are
    /// decoded ([`CodecError::TooManyEntries`]).
    pub fn set_max_entries(&mut self, max: usize) {
        self.max_entries = Some(max);
    }

    /// Takes the memory of every incoming frame, as its length header announces it, from
    /// `memory` until the frame is decoded; a frame that does not fit is refused
    /// ([`CodecError::NoMemory`]) before its body is read.
    pub fn set_memory(&mut self, memory: Arc<FrameMemory>) {
        self.memory = Some(memory);
    }
}

/// Memory shared by many connections' frames: what they may buffer together.
#[derive(Debug)]
pub struct FrameMemory {
    used: AtomicUsize,
    max: usize,
}

/// Bytes taken from a [`FrameMemory`], given back when dropped.
#[derive(Debug)]
pub struct Held {
    from: Arc<FrameMemory>,
    bytes: usize,
}

impl FrameMemory {
    pub fn new(max: usize) -> Arc<FrameMemory> {
        Arc::new(FrameMemory {
            used: AtomicUsize::new(0),
            max,
        })
    }

    /// `bytes` of it, if that much is free.
    pub fn take(self: &Arc<Self>, bytes: usize) -> Result<Held, CodecError> {
        if bytes > self.max {
            return Err(CodecError::BeyondMemory {
                len: bytes,
                max: self.max,
            });
        }
        let fits = |used: usize| used.checked_add(bytes).filter(|total| *total <= self.max);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, fits)
            .map_err(|_| CodecError::NoMemory {
                len: bytes,
                max: self.max,
            })?;
        Ok(Held {
            from: self.clone(),
            bytes,
        })
    }

    /// The bytes taken now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.from.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl<Rx: Incoming, Tx> Decoder for MessageCodec<Rx, Tx> {
    type Item = Rx;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Rx>, CodecError> {
        let at_head = self.at_head && src.len() >= LENGTH_HEADER;
        if at_head {
            let len = (&src[..LENGTH_HEADER]).get_u32() as usize;
            if len > self.max_in {
                return Err(CodecError::FrameTooLarge {
                    len,
                    max: self.max_in,
                });
            }
            if let Some(memory) = &self.memory {
                self.held = Some(memory.take(len)?);
            }
        }
        let frame = self.frames.decode(src)?;
        // A complete frame brings the stream back to a header; a consumed header leaves it in a body.
        self.at_head = frame.is_some() || (self.at_head && !at_head);
        let Some(frame) = frame else {
            return Ok(None);
        };
        // Once decoded, what the message holds is its receiver's to count.
        let _held = self.held.take();
        match self.max_entries {
            None => decode_body(&frame).map(Some),
            Some(max) => {
                BUDGET.set(Some(EntryBudget {
                    files: max,
                    dirs: max,
                    spent: false,
                }));
                let decoded = decode_body(&frame);
                let spent = BUDGET.take().is_some_and(|b| b.spent);
                match spent {
                    true => Err(CodecError::TooManyEntries { max }),
                    false => decoded.map(Some),
                }
            }
        }
    }
}

/// What a frame being decoded may still list (see [`MessageCodec::set_max_entries`]).
#[derive(Debug, Clone, Copy)]
struct EntryBudget {
    files: usize,
    dirs: usize,
    /// A list was longer than what was left.
    spent: bool,
}

thread_local! {
    /// Set while a codec with a budget decodes one frame (decoding is synchronous).
    static BUDGET: Cell<Option<EntryBudget>> = const { Cell::new(None) };
}

/// What a counted list lists.
#[derive(Debug, Clone, Copy)]
enum Counts {
    Files,
    Dirs,
}

/// Deserializes a list of manifest files, counted against the frame's budget.
pub(crate) fn counted_files<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_seq(CountedSeq(Counts::Files, PhantomData))
}

/// Deserializes a list of directories (chunks, dirs to create), counted against the budget.
pub(crate) fn counted_dirs<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    d.deserialize_seq(CountedSeq(Counts::Dirs, PhantomData))
}

struct CountedSeq<T>(Counts, PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for CountedSeq<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // bincode gives every list's length before its elements.
        let len = seq.size_hint().unwrap_or(0);
        if let Some(mut budget) = BUDGET.get() {
            let left = match self.0 {
                Counts::Files => &mut budget.files,
                Counts::Dirs => &mut budget.dirs,
            };
            match left.checked_sub(len) {
                Some(rest) => *left = rest,
                None => budget.spent = true,
            }
            BUDGET.set(Some(budget));
            if budget.spent {
                return Err(A::Error::custom("too many manifest entries"));
            }
        }
        let mut out = Vec::with_capacity(len.min(4096));
        while let Some(element) = seq.next_element()? {
            out.push(element);
        }
        Ok(out)
    }
}

impl<Rx, Tx: Serialize> Encoder<Tx> for MessageCodec<Rx, Tx> {
    type Error = CodecError;

    fn encode(&mut self, item: Tx, dst: &mut BytesMut) -> Result<(), CodecError> {
        let start = dst.len();
        dst.put_u32(0);
        let written =
            bincode::serde::encode_into_std_write(&item, &mut (&mut *dst).writer(), config());
        let len = dst.len() - start - LENGTH_HEADER;
        if let Err(e) = written {
            dst.truncate(start);
            return Err(CodecError::Encode(e.to_string()));
        }
        if len > self.max_out {
            dst.truncate(start);
            return Err(CodecError::FrameTooLarge {
                len,
                max: self.max_out,
            });
        }
        dst[start..start + LENGTH_HEADER].copy_from_slice(&(len as u32).to_be_bytes());
        Ok(())
    }
}

/// The encoding of a chunk: what its digest is computed over and how the server caches it.
pub fn encode_chunk(chunk: &Chunk) -> Vec<u8> {
    bincode::serde::encode_to_vec(chunk, config()).expect("a chunk holds only strings and numbers")
}

/// Reads a chunk back from [`encode_chunk`]'s bytes.
pub fn decode_chunk(bytes: &[u8]) -> Result<Chunk, CodecError> {
    decode_exact(bytes)
}

/// Encodes any value for a local record (the client's on-disk caches).
pub fn encode_record<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a value written by [`encode_record`].
pub fn decode_record<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_exact(bytes)
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    bincode::serde::decode_from_slice(bytes, config())
        .ok()
        .map(|(v, _)| v)
}

fn decode_body<T: Incoming>(frame: &[u8]) -> Result<T, CodecError> {
    decode_exact(frame).map_err(|e| match T::announced_version(frame) {
        Some(peer) if peer != PROTOCOL_VERSION => CodecError::VersionMismatch { peer },
        _ => e,
    })
}

/// Decodes a value that must use every byte of `bytes`.
///
/// bincode allocates a string or byte buffer as long as the length it reads, before reading its
/// bytes (found by the frame fuzz targets: a 10-byte frame asked for 4 GiB). Its limit counts
/// such claims and also the in-memory size of every integer it reads (8 bytes for a one-byte
/// varint), so a well-formed message claims at most 8 bytes per byte of input: a limit of that,
/// rounded up to a power of four (at least 4 KiB), accepts every real message and keeps a lying
/// length from allocating more than 32 times the frame.
fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    fn limited<T: DeserializeOwned, const N: usize>(
        bytes: &[u8],
    ) -> Result<(T, usize), bincode::error::DecodeError> {
        bincode::serde::decode_from_slice::<T, _>(bytes, config().with_limit::<N>())
    }
    let decoded = match bytes.len().saturating_mul(8) {
        n if n <= 0x1000 => limited::<T, 0x1000>(bytes),
        n if n <= 0x4000 => limited::<T, 0x4000>(bytes),
        n if n <= 0x1_0000 => limited::<T, 0x1_0000>(bytes),
        n if n <= 0x4_0000 => limited::<T, 0x4_0000>(bytes),
        n if n <= 0x10_0000 => limited::<T, 0x10_0000>(bytes),
        n if n <= 0x40_0000 => limited::<T, 0x40_0000>(bytes),
        n if n <= 0x100_0000 => limited::<T, 0x100_0000>(bytes),
        n if n <= 0x400_0000 => limited::<T, 0x400_0000>(bytes),
        n if n <= 0x1000_0000 => limited::<T, 0x1000_0000>(bytes),
        n if n <= 0x4000_0000 => limited::<T, 0x4000_0000>(bytes),
        _ => limited::<T, { usize::MAX }>(bytes),
    };
    match decoded {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(CodecError::Malformed(format!(
            "{} bytes left over after the message",
            bytes.len() - used
        ))),
        Err(e) => Err(CodecError::Malformed(e.to_string())),
    }
}
