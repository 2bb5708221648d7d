//! Compressed blobs from the network: any bytes, with any claimed size, decompress to exactly
//! that size within the bound, or fail; never panic, never exceed the bound.
#![no_main]

use homcc_proto::Compression;
use libfuzzer_sys::fuzz_target;

const MAX: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&[algorithm, a, b, c], rest)) = data.split_first_chunk::<4>().map(|(h, r)| (h, r))
    else {
        return;
    };
    let size = u64::from(u32::from_le_bytes([a, b, c, 0]));
    let compression = Compression::ALL[usize::from(algorithm) % Compression::ALL.len()];
    if let Ok(out) = compression.decompress(rest, size, MAX) {
        assert_eq!(out.len() as u64, size);
        assert!(size <= MAX);
    }
});
