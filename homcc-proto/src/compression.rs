//! Blob compression: none, LZO (lzokay-native), LZMA (xz2) and zstd. Each blob is compressed on its
//! own, and its uncompressed size travels beside it so that decompression is bounded and checked.

use std::{fmt, io::Read, str::FromStr};

use serde::{Deserialize, Serialize};

/// How a blob's bytes are compressed on the wire; new algorithms are only ever appended (their
/// index is their wire value). The default is zstd at [`ZSTD_LEVEL`]: it compresses headers and
/// objects at about 250 MB/s, ten to thirty times as fast as LZO (lzokay-native), and 7 to 11 %
/// smaller, so it costs about nothing on a 1 Gbit/s link and saves most of the time on a slower
/// one (the figures are in docs/configuration.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Compression {
    None,
    Lzo,
    Lzma,
    #[default]
    Zstd,
}

/// The most memory the LZMA decoder may use (preset 6 needs about 9 MiB).
const LZMA_MEMORY_LIMIT: u64 = 64 << 20;
/// The zstd level homcc writes (see docs/configuration.md for the figures it was chosen from).
pub const ZSTD_LEVEL: i32 = 1;
/// The largest zstd window the decoder accepts, as a power of two: 8 MiB, the most that levels 1
/// to 19 use; a frame that asks for more is corrupt, so one frame costs at most that much memory.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;
/// Output buffers grow past this size only as data really arrives.
const PREALLOCATE_LIMIT: u64 = 16 << 20;

/// A blob whose bytes do not decompress to what its header says.
#[derive(Debug, thiserror::Error)]
pub enum CompressionError {
    #[error("{compression} data is corrupt: {detail}")]
    Corrupt {
        compression: Compression,
        detail: String,
    },
    #[error("{compression} data decompresses to {actual} bytes, but {expected} were announced")]
    SizeMismatch {
        compression: Compression,
        expected: u64,
        actual: u64,
    },
    #[error("{compression} data announces {size} bytes, more than the limit of {max}")]
    TooLarge {
        compression: Compression,
        size: u64,
        max: u64,
    },
}

impl Compression {
    /// Every algorithm, in the order `--help` lists them.
    pub const ALL: [Compression; 4] = [
        Compression::None,
        Compression::Lzo,
        Compression::Lzma,
        Compression::Zstd,
    ];

    /// "none, lzo, lzma, zstd": the names [`FromStr`] accepts, for error messages.
    pub fn names() -> String {
        Compression::ALL.map(|c| c.to_string()).join(", ")
    }

    /// Compresses `data`. Every algorithm falls back to storing the data when it does not
    /// shrink, which the caller sees as [`Compression::None`] in the returned pair.
    pub fn compress(self, data: &[u8]) -> (Compression, Vec<u8>) {
        let packed = match self {
            Compression::None => None,
            Compression::Lzo => lzokay_native::compress(data).ok(),
            Compression::Lzma => {
                let mut out = Vec::new();
                let mut enc = xz2::read::XzEncoder::new(data, 6);
                enc.read_to_end(&mut out)
                    .expect("xz encoding into memory cannot fail");
                Some(out)
            }
            // A frame with its content size, and so a window no larger than the data.
            Compression::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL).ok(),
        };
        match packed {
            Some(out) if out.len() < data.len() => (self, out),
            _ => (Compression::None, data.to_vec()),
        }
    }

    /// Decompresses `data`, which must give exactly `size` bytes; `size` above `max` is refused
    /// before anything is allocated.
    pub fn decompress(self, data: &[u8], size: u64, max: u64) -> Result<Vec<u8>, CompressionError> {
        if size > max {
            return Err(CompressionError::TooLarge {
                compression: self,
                size,
                max,
            });
        }
        let corrupt = |detail: String| CompressionError::Corrupt {
            compression: self,
            detail,
        };
        let out = match self {
            Compression::None => data.to_vec(),
            // Decoded by the `lzo` crate, not lzokay-native (which compresses): it writes into a
            // buffer of the announced size and never further, and rejects every malformed
            // stream with an error (lzokay-native's decoder grows its output without bound and
            // panics on bad back-references; found by the `decompress` fuzz target).
            Compression::Lzo => {
                let mut out = vec![0; size as usize];
                let written = lzo::decompress_into(data, &mut out)
                    .map_err(|e| corrupt(format!("invalid LZO stream: {e}")))?;
                out.truncate(written);
                out
            }
            Compression::Lzma => {
                let stream = xz2::stream::Stream::new_stream_decoder(LZMA_MEMORY_LIMIT, 0)
                    .map_err(|e| corrupt(e.to_string()))?;
                read_at_most(xz2::read::XzDecoder::new_stream(data, stream), size)
                    .map_err(|e| corrupt(e.to_string()))?
            }
            Compression::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(data)
                    .map_err(|e| corrupt(e.to_string()))?
                    .single_frame();
                decoder
                    .window_log_max(ZSTD_WINDOW_LOG_MAX)
                    .map_err(|e| corrupt(e.to_string()))?;
                let out = read_at_most(&mut decoder, size).map_err(|e| corrupt(e.to_string()))?;
                let after = decoder.finish();
                if out.len() as u64 <= size && !after.is_empty() {
                    let extra = after.len();
                    return Err(corrupt(format!("data after its frame ({extra} bytes)")));
                }
                out
            }
        };
        if out.len() as u64 != size {
            return Err(CompressionError::SizeMismatch {
                compression: self,
                expected: size,
                actual: out.len() as u64,
            });
        }
        Ok(out)
    }
}

/// At most `size + 1` bytes of `reader` (one more than announced shows a stream that is too
/// long), in a buffer that grows past [`PREALLOCATE_LIMIT`] only as bytes arrive.
fn read_at_most(reader: impl Read, size: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size.min(PREALLOCATE_LIMIT) as usize);
    reader.take(size.saturating_add(1)).read_to_end(&mut out)?;
    Ok(out)
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Lzo => "lzo",
            Compression::Lzma => "lzma",
            Compression::Zstd => "zstd",
        })
    }
}

impl FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| c.to_string().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown compression '{s}': use one of {}",
                    Compression::names()
                )
            })
    }
}

#[cfg(test)]
mod tests;
