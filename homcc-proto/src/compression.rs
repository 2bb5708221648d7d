//! Blob compression: none, LZO (lzokay-native) and LZMA (xz2). Each blob is compressed on its own,
//! and its uncompressed size travels beside it so that decompression is bounded and checked.

use std::{fmt, io::Read, str::FromStr};

use serde::{Deserialize, Serialize};

/// How a blob's bytes are compressed on the wire. The default is LZO: cheap enough to never cost
/// time on a fast link, and it halves typical sources and objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Compression {
    None,
    #[default]
    Lzo,
    Lzma,
}

/// The most memory the LZMA decoder may use (preset 6 needs about 9 MiB).
const LZMA_MEMORY_LIMIT: u64 = 64 << 20;
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
    pub const ALL: [Compression; 3] = [Compression::None, Compression::Lzo, Compression::Lzma];

    /// Compresses `data`. LZO falls back to storing the data when it does not shrink, which the
    /// caller sees as a different `Compression` in the returned pair.
    pub fn compress(self, data: &[u8]) -> (Compression, Vec<u8>) {
        match self {
            Compression::None => (Compression::None, data.to_vec()),
            Compression::Lzo => match lzokay_native::compress(data) {
                Ok(out) if out.len() < data.len() => (Compression::Lzo, out),
                _ => (Compression::None, data.to_vec()),
            },
            Compression::Lzma => {
                let mut out = Vec::new();
                let mut enc = xz2::read::XzEncoder::new(data, 6);
                enc.read_to_end(&mut out)
                    .expect("xz encoding into memory cannot fail");
                if out.len() < data.len() {
                    (Compression::Lzma, out)
                } else {
                    (Compression::None, data.to_vec())
                }
            }
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
                let mut out = Vec::with_capacity(size.min(PREALLOCATE_LIMIT) as usize);
                xz2::read::XzDecoder::new_stream(data, stream)
                    .take(size.saturating_add(1))
                    .read_to_end(&mut out)
                    .map_err(|e| corrupt(e.to_string()))?;
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

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Lzo => "lzo",
            Compression::Lzma => "lzma",
        })
    }
}

impl FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| c.to_string().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown compression '{s}': use one of none, lzo, lzma"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(c: Compression, data: &[u8]) {
        let (used, packed) = c.compress(data);
        let back = used
            .decompress(&packed, data.len() as u64, u64::MAX)
            .unwrap();
        assert_eq!(back, data, "{c} round trip");
    }

    #[test]
    fn every_algorithm_round_trips() {
        let text = b"#include <stdio.h>\nint main() { return 0; }\n".repeat(100);
        let random: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for c in Compression::ALL {
            round_trip(c, b"");
            round_trip(c, b"x");
            round_trip(c, &text);
            round_trip(c, &random);
        }
    }

    #[test]
    fn compressible_data_shrinks() {
        let text = b"int x;\n".repeat(1000);
        assert!(
            matches!(Compression::Lzo.compress(&text), (Compression::Lzo, v) if v.len() < 1000)
        );
        assert!(
            matches!(Compression::Lzma.compress(&text), (Compression::Lzma, v) if v.len() < 1000)
        );
    }

    #[test]
    fn lying_sizes_are_errors() {
        let text = b"int x;\n".repeat(100);
        let (used, packed) = Compression::Lzo.compress(&text);
        // Too small a size: the decoder stops at the buffer's end.
        assert!(matches!(
            used.decompress(&packed, 10, u64::MAX),
            Err(CompressionError::Corrupt { .. })
        ));
        // Too large: fewer bytes come out than announced.
        assert!(matches!(
            used.decompress(&packed, 701, u64::MAX),
            Err(CompressionError::SizeMismatch { .. })
        ));
        assert!(matches!(
            used.decompress(&packed, 700, 100),
            Err(CompressionError::TooLarge { .. })
        ));
        assert!(Compression::Lzma
            .decompress(b"not xz at all", 5, 100)
            .is_err());
        assert!(Compression::None.decompress(b"abc", 4, 100).is_err());
    }

    #[test]
    fn malformed_lzo_is_an_error_not_a_panic() {
        // Found by mutating streams: lzokay-native indexes out of bounds on it.
        let bad = [0x12, 0x61, 0x2f, 0xff, 0xff, 0x11, 0, 0];
        assert!(matches!(
            Compression::Lzo.decompress(&bad, 100, 1000),
            Err(CompressionError::Corrupt { .. })
        ));
    }

    #[test]
    fn parses_names() {
        assert_eq!("lzo".parse(), Ok(Compression::Lzo));
        assert_eq!("LZMA".parse(), Ok(Compression::Lzma));
        assert_eq!("none".parse(), Ok(Compression::None));
        assert!("zip"
            .parse::<Compression>()
            .unwrap_err()
            .contains("none, lzo, lzma"));
    }
}
