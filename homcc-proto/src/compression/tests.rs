//! Compression, one case a line: round trips, stored unless smaller, and raw bytes (truncated,
//! garbage, lying sizes, trailing bytes, too large a window) that must be typed errors.

use std::io::Write;

use super::*;

use Compression::{Lzma, Lzo, Zstd};

/// What decompressing gives: the bytes, or which error.
#[derive(Debug, PartialEq)]
enum Outcome {
    Bytes(Vec<u8>),
    Corrupt,
    SizeMismatch,
    TooLarge,
}

/// Decompresses `data` as `c`, announced as `size` bytes with a limit of `max`.
fn check(c: Compression, data: &[u8], size: u64, max: u64, expected: Outcome) {
    let actual = match c.decompress(data, size, max) {
        Ok(bytes) => Outcome::Bytes(bytes),
        Err(CompressionError::Corrupt { .. }) => Outcome::Corrupt,
        Err(CompressionError::SizeMismatch { .. }) => Outcome::SizeMismatch,
        Err(CompressionError::TooLarge { .. }) => Outcome::TooLarge,
    };
    assert_eq!(
        actual,
        expected,
        "{c}, {} bytes announced as {size}",
        data.len()
    );
}

/// `data` compressed with `c`, which must shrink it.
fn packed(c: Compression, data: &[u8]) -> Vec<u8> {
    let (used, packed) = c.compress(data);
    assert_eq!(used, c, "{c} shrinks the sample");
    packed
}

fn text() -> Vec<u8> {
    b"int x;\n".repeat(100)
}

/// `len` bytes no algorithm shrinks (xorshift64).
fn random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

fn round_trip(c: Compression, data: &[u8]) {
    let (used, packed) = c.compress(data);
    let back = used
        .decompress(&packed, data.len() as u64, u64::MAX)
        .unwrap();
    assert_eq!(back, data, "{c} round trip");
}

#[test]
fn every_algorithm_round_trips() {
    let random = random(5000);
    let object = [&b"\x7fELF\x02\x01\x01\0"[..], &[0; 4096], &random].concat();
    for c in Compression::ALL {
        round_trip(c, b"");
        round_trip(c, b"x");
        round_trip(c, &text());
        round_trip(c, &random);
        round_trip(c, &object);
        round_trip(c, &b"#include <vector>\n".repeat(100_000));
    }
}

#[test]
fn compressed_only_when_smaller() {
    let random = random(5000);
    for c in Compression::ALL {
        let stored = |data: &[u8]| (Compression::None, data.to_vec());
        assert_eq!(c.compress(b""), stored(b""), "{c}: empty");
        assert_eq!(c.compress(b"int x;\n"), stored(b"int x;\n"), "{c}: 7 bytes");
        assert_eq!(c.compress(&random), stored(&random), "{c}: random bytes");
    }
    for c in [Lzo, Lzma, Zstd] {
        assert!(
            packed(c, &text()).len() < 100,
            "{c} shrinks 700 bytes of one line"
        );
    }
}

#[test]
fn raw_bytes_decompress_exactly_or_are_typed_errors() {
    use Outcome::*;
    let text = text();
    let [lzo, lzma, zstd] = [Lzo, Lzma, Zstd].map(|c| packed(c, &text));
    let ok = || Bytes(text.clone());
    let end = |data: &[u8], by: usize| data[..data.len() - by].to_vec();
    let max = u64::MAX;
    for (c, data) in [(Lzo, &lzo), (Lzma, &lzma), (Zstd, &zstd)] {
        check(c, data, 700, 700, ok());
        check(c, data, 700, 699, TooLarge);
        check(c, data, u64::MAX, 1 << 30, TooLarge);
        check(c, data, 701, max, SizeMismatch);
        check(c, &end(data, 1), 700, max, Corrupt);
        check(c, &end(data, 4), 700, max, Corrupt);
        check(c, &data[..data.len() / 2], 700, max, Corrupt);
        check(c, b"", 700, max, Corrupt);
        check(c, b"not compressed at all, just text", 700, max, Corrupt);
        // One stream is the whole payload: bytes after it are an error.
        check(c, &[data.clone(), vec![0]].concat(), 700, max, Corrupt);
        check(c, &[data.clone(), data.clone()].concat(), 700, max, Corrupt);
        check(
            c,
            &[data.clone(), data.clone()].concat(),
            1400,
            max,
            Corrupt,
        );
    }
    // Announced too small: LZO's decoder stops at the buffer's end, the others at size + 1.
    check(Lzo, &lzo, 699, max, Corrupt);
    check(Lzma, &lzma, 699, max, SizeMismatch);
    check(Zstd, &zstd, 699, max, SizeMismatch);
    check(Zstd, &zstd, 10, max, SizeMismatch);
    check(Compression::None, b"abc", 3, 3, Bytes(b"abc".to_vec()));
    check(Compression::None, b"abc", 4, 100, SizeMismatch);
    check(Compression::None, b"abc", 3, 2, TooLarge);
}

#[test]
fn a_zstd_frame_asking_for_a_window_above_8_mib_is_corrupt() {
    // A streamed frame without its content size, so its header names its window.
    let frame = |window_log: u32| {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
        encoder.window_log(window_log).unwrap();
        encoder.write_all(&text()).unwrap();
        encoder.finish().unwrap()
    };
    check(Zstd, &frame(23), 700, 700, Outcome::Bytes(text()));
    check(Zstd, &frame(24), 700, 700, Outcome::Corrupt);
    check(Zstd, &frame(27), 700, 700, Outcome::Corrupt);
}

#[test]
fn malformed_lzo_is_an_error_not_a_panic() {
    // Found by mutating streams: lzokay-native indexes out of bounds on it.
    let bad = [0x12, 0x61, 0x2f, 0xff, 0xff, 0x11, 0, 0];
    check(Lzo, &bad, 100, 1000, Outcome::Corrupt);
}

#[test]
fn parses_names() {
    assert_eq!("lzo".parse(), Ok(Lzo));
    assert_eq!("LZMA".parse(), Ok(Lzma));
    assert_eq!("zstd".parse(), Ok(Zstd));
    assert_eq!("ZStd".parse(), Ok(Zstd));
    assert_eq!("none".parse(), Ok(Compression::None));
    assert_eq!(
        "zip".parse::<Compression>(),
        Err("unknown compression 'zip': use one of none, lzo, lzma, zstd".into())
    );
    for c in Compression::ALL {
        assert_eq!(c.to_string().parse(), Ok(c));
    }
}
