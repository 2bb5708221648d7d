//! What homccd decodes from a client: any bytes, as frames of `ClientMessage`s, must decode or
//! fail with an error, never panic or allocate past the frame limit.
#![no_main]

use bytes::BytesMut;
use homcc_proto::ServerCodec;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut codec = ServerCodec::new(1 << 20);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(_message)) = codec.decode(&mut buf) {}
});
