//! What homcc decodes from a server: any bytes, as frames of `ServerMessage`s, must decode or
//! fail with an error, never panic or allocate past the frame limit.
#![no_main]

use bytes::BytesMut;
use homcc_proto::ClientCodec;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = ClientCodec::new(1 << 20);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_message)) = codec.decode(&mut buf) {}
});
