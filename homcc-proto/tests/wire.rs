//! Wire tests: raw bytes through the codecs (round trips, split and merged frames, oversized,
//! garbage, other versions), chunk encoding, the size of a warm request, and the exact bytes of the
//! frames shown in `docs/protocol.md`.

use std::{ffi::OsString, os::unix::ffi::OsStringExt, path::PathBuf};

use bytes::BytesMut;
use homcc_proto::{
    codec::{self, DEFAULT_MAX_CLIENT_FRAME, DEFAULT_MAX_SERVER_FRAME},
    manifest::chunk_entries,
    AuthToken, Blob, Chunk, ChunkFile, ChunkRef, ClientCodec, ClientMessage, CodecError,
    CompileRequest, CompileResult, CompilerIdentity, Compression, Digest, ManifestEntry, Need,
    OutputFile, Payload, Refusal, RefusalReason, ServerCodec, ServerMessage, PROTOCOL_VERSION,
};
use tokio_util::codec::{Decoder, Encoder};

// ---------------------------------------------------------------------------------------------
// Helpers

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

/// The client's codec as homcc builds it: reads server frames up to the server-frame limit.
fn client_codec() -> ClientCodec {
    ClientCodec::new(DEFAULT_MAX_SERVER_FRAME)
}

/// The server's codec as homccd builds it: reads client frames up to the client-frame limit,
/// writes results up to the server-frame limit.
fn server_codec() -> ServerCodec {
    ServerCodec::with_limits(DEFAULT_MAX_CLIENT_FRAME, DEFAULT_MAX_SERVER_FRAME)
}

/// A whole frame (header and body) as the client writes it.
fn client_frame(msg: &ClientMessage) -> BytesMut {
    let mut buf = BytesMut::new();
    client_codec()
        .encode(msg.clone(), &mut buf)
        .expect("encodes");
    buf
}

/// A whole frame (header and body) as the server writes it.
fn server_frame(msg: &ServerMessage) -> BytesMut {
    let mut buf = BytesMut::new();
    server_codec()
        .encode(msg.clone(), &mut buf)
        .expect("encodes");
    buf
}

fn body(frame: &[u8]) -> Vec<u8> {
    let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
    assert_eq!(len, frame.len() - 4, "header counts the body bytes");
    frame[4..].to_vec()
}

/// Frames `body` with a correct 4-byte big-endian length header.
fn frame(body: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
    buf
}

fn decode_client(bytes: &[u8]) -> Result<Option<ClientMessage>, CodecError> {
    server_codec().decode(&mut BytesMut::from(bytes))
}

fn decode_server(bytes: &[u8]) -> Result<Option<ServerMessage>, CodecError> {
    client_codec().decode(&mut BytesMut::from(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn identity() -> CompilerIdentity {
    CompilerIdentity {
        name: "g++".into(),
        version: "12.2.0".into(),
        build: "gcc version 12.2.0 (Debian 12.2.0-14)".into(),
        target: "x86_64-linux-gnu".into(),
    }
}

const SOURCE: &[u8] = b"#include <vector>\nint f(std::vector<int> &v) { return v.size(); }\n";

fn source_text() -> Vec<u8> {
    SOURCE.repeat(40)
}

fn entry(path: &str, content: &[u8]) -> ManifestEntry {
    ManifestEntry {
        path: path.into(),
        digest: Digest::of(content),
        size: content.len() as u64,
    }
}

fn project_chunks() -> Vec<Chunk> {
    chunk_entries(&[
        entry("/home/user/project/src/foo.cpp", &source_text()),
        entry(
            "/home/user/project/include/foo.h",
            b"#pragma once\nint f();\n",
        ),
        entry(
            "/home/user/project/include/bar.h",
            b"#pragma once\nint g();\n",
        ),
        entry("/usr/include/c++/12/vector", b"// vector\n"),
    ])
    .expect("valid paths")
}

/// A payload that really is compressed with `compression` (it shrinks source text).
fn packed(compression: Compression, bytes: &[u8]) -> Payload {
    let payload = Payload::pack(compression, bytes);
    assert_eq!(
        payload.compression, compression,
        "{compression} shrinks the sample"
    );
    payload
}

fn compile_request() -> CompileRequest {
    let chunks = project_chunks();
    CompileRequest {
        version: PROTOCOL_VERSION,
        compiler: identity(),
        args: vec![
            os(b"-O2"),
            os(b"-c"),
            os(b"../src/foo.cpp"),
            os(b"-o"),
            os(b"foo.o"),
            os(b"-DNAME=\xffnot-utf8"),
            os(b""),
        ],
        cwd: "/home/user/project/build".into(),
        include_dirs: vec![
            "/usr/lib/gcc/x86_64-linux-gnu/12/../../../../include/c++/12".into(),
            "/usr/include".into(),
        ],
        implicit_includes: vec!["/usr/include/stdc-predef.h".into()],
        preprocessed: false,
        dirs: vec![],
        manifest: vec![
            ChunkRef {
                digest: chunks[0].digest(),
                inline: Some(chunks[0].clone()),
            },
            ChunkRef {
                digest: chunks[1].digest(),
                inline: None,
            },
            ChunkRef {
                digest: chunks[2].digest(),
                inline: Some(chunks[2].clone()),
            },
        ],
        outputs: vec![
            "/home/user/project/build/foo.o".into(),
            "/home/user/project/build/foo.dwo".into(),
        ],
        env: vec![
            ("LANG".into(), "de_DE.UTF-8".into()),
            ("SOURCE_DATE_EPOCH".into(), "1700000000".into()),
        ],
        compression: Compression::Lzma,
        queue: true,
        depfile: None,
        environment: None,
        no_result_cache: false,
    }
}

fn client_messages() -> Vec<ClientMessage> {
    let text = source_text();
    let mut messages = vec![
        ClientMessage::Compile(Box::new(compile_request())),
        ClientMessage::Compile(Box::new(CompileRequest {
            args: vec![],
            include_dirs: vec![],
            implicit_includes: vec![],
            preprocessed: false,
            dirs: vec![],
            manifest: vec![],
            outputs: vec![],
            env: vec![],
            compression: Compression::None,
            ..compile_request()
        })),
        ClientMessage::Chunks(project_chunks()),
        ClientMessage::Chunks(vec![]),
        ClientMessage::Blob(Blob {
            digest: Digest::of(b""),
            payload: Payload::pack(Compression::Lzo, b""),
        }),
        ClientMessage::Auth { proof: [0; 32] },
        ClientMessage::Auth {
            proof: AuthToken::from_bytes(b"token").unwrap().proof(&[0xff; 32]),
        },
    ];
    for c in Compression::ALL {
        messages.push(ClientMessage::Blob(Blob {
            digest: Digest::of(&text),
            payload: packed(c, &text),
        }));
    }
    messages
}

fn server_messages() -> Vec<ServerMessage> {
    let object: Vec<u8> = b"\x7fELF\x02\x01\x01\0"
        .iter()
        .copied()
        .chain(source_text())
        .collect();
    let mut messages: Vec<ServerMessage> = [
        RefusalReason::Busy,
        RefusalReason::Version {
            server: PROTOCOL_VERSION,
        },
        RefusalReason::Version { server: u32::MAX },
        RefusalReason::CompilerMismatch,
        RefusalReason::InvalidRequest,
        RefusalReason::ShuttingDown,
        RefusalReason::Timeout,
        RefusalReason::Internal,
        RefusalReason::Forbidden,
        RefusalReason::Limit,
        RefusalReason::AuthFailed,
    ]
    .into_iter()
    .map(|reason| {
        ServerMessage::Refused(Refusal {
            reason,
            detail: format!("refused: {reason:?}"),
        })
    })
    .collect();
    messages.extend([
        ServerMessage::Need(Need::default()),
        ServerMessage::Need(Need {
            chunks: project_chunks().iter().map(Chunk::digest).collect(),
            blobs: vec![Digest::of(b"a"), Digest::of(b"b")],
        }),
        ServerMessage::Heartbeat,
        ServerMessage::Challenge { nonce: [0; 32] },
        ServerMessage::Challenge { nonce: [0xa5; 32] },
        ServerMessage::Queued { position: 1 },
        ServerMessage::Queued { position: 300 },
        ServerMessage::Result(CompileResult {
            exit_code: 1,
            stdout: vec![],
            stderr: b"foo.cpp:1:1: error: \xff\xfe not UTF-8\n".to_vec(),
            outputs: vec![],
            environment: None,
            cached: false,
        }),
        ServerMessage::Result(CompileResult {
            exit_code: -11,
            stdout: b"note\n".to_vec(),
            stderr: vec![],
            outputs: vec![],
            environment: None,
            cached: false,
        }),
    ]);
    for c in Compression::ALL {
        messages.push(ServerMessage::Result(CompileResult {
            exit_code: 0,
            stdout: vec![],
            stderr: b"warning: unused variable\n".to_vec(),
            outputs: vec![
                OutputFile {
                    path: "/home/user/project/build/foo.o".into(),
                    payload: packed(c, &object),
                },
                OutputFile {
                    path: "/home/user/project/build/foo.dwo".into(),
                    payload: Payload::pack(c, b""),
                },
            ],
            environment: None,
            cached: false,
        }));
    }
    messages
}

// ---------------------------------------------------------------------------------------------
// Round trips

#[test]
fn every_client_message_round_trips() {
    let messages = client_messages();
    for variant in ["Compile", "Chunks", "Blob", "Auth"] {
        assert!(
            messages
                .iter()
                .any(|m| format!("{m:?}").starts_with(variant)),
            "{variant} covered"
        );
    }
    for msg in messages {
        let mut buf = BytesMut::new();
        client_codec().encode(msg.clone(), &mut buf).unwrap();
        let mut server = server_codec();
        assert_eq!(server.decode(&mut buf).unwrap(), Some(msg));
        assert!(buf.is_empty(), "the frame is consumed whole");
        assert_eq!(server.decode(&mut buf).unwrap(), None);
    }
}

#[test]
fn every_server_message_round_trips() {
    let messages = server_messages();
    for variant in [
        "Refused",
        "Need",
        "Heartbeat",
        "Result",
        "Challenge",
        "Queued",
    ] {
        assert!(
            messages
                .iter()
                .any(|m| format!("{m:?}").starts_with(variant)),
            "{variant} covered"
        );
    }
    for msg in messages {
        let mut buf = BytesMut::new();
        server_codec().encode(msg.clone(), &mut buf).unwrap();
        let mut client = client_codec();
        assert_eq!(client.decode(&mut buf).unwrap(), Some(msg));
        assert!(buf.is_empty(), "the frame is consumed whole");
        assert_eq!(client.decode(&mut buf).unwrap(), None);
    }
}

#[test]
fn payloads_unpack_after_the_wire_with_every_compression() {
    let text = source_text();
    for c in Compression::ALL {
        let msg = ClientMessage::Blob(Blob {
            digest: Digest::of(&text),
            payload: packed(c, &text),
        });
        let Some(ClientMessage::Blob(blob)) = decode_client(&client_frame(&msg)).unwrap() else {
            panic!("{c}: not a blob");
        };
        let bytes = blob.payload.unpack(text.len() as u64).unwrap();
        assert_eq!(Digest::of(&bytes), blob.digest, "{c}");
        assert!(
            blob.payload.unpack(text.len() as u64 - 1).is_err(),
            "{c}: size above max refused"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Framing

#[test]
fn several_frames_in_one_buffer_decode_one_by_one() {
    let messages = client_messages();
    let mut buf = BytesMut::new();
    let mut client = client_codec();
    for msg in &messages {
        client.encode(msg.clone(), &mut buf).unwrap();
    }
    let mut server = server_codec();
    for msg in messages {
        assert_eq!(server.decode(&mut buf).unwrap(), Some(msg));
    }
    assert!(buf.is_empty());
    assert_eq!(server.decode(&mut buf).unwrap(), None);
}

#[test]
fn a_frame_split_at_every_byte_decodes_only_when_complete() {
    let text = source_text();
    let messages = [
        ClientMessage::Compile(Box::new(compile_request())),
        ClientMessage::Blob(Blob {
            digest: Digest::of(&text),
            payload: packed(Compression::Lzo, &text),
        }),
    ];
    for (msg, max) in messages
        .iter()
        .flat_map(|m| [(m, DEFAULT_MAX_CLIENT_FRAME), (m, 1 << 16)])
    {
        let msg = msg.clone();
        let whole = client_frame(&msg);
        for split in 0..whole.len() {
            // A small maximum too: the body's first bytes must never be read as a length.
            let mut server = ServerCodec::new(max);
            let mut buf = BytesMut::from(&whole[..split]);
            assert_eq!(
                server.decode(&mut buf).unwrap(),
                None,
                "split at {split} of {}",
                whole.len()
            );
            buf.extend_from_slice(&whole[split..]);
            assert_eq!(
                server.decode(&mut buf).unwrap(),
                Some(msg.clone()),
                "split at {split}"
            );
            assert!(buf.is_empty());
        }
        // One byte at a time, as a slow link delivers it.
        let mut server = ServerCodec::new(max);
        let mut buf = BytesMut::new();
        for (i, byte) in whole.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let decoded = server.decode(&mut buf).unwrap();
            assert_eq!(decoded.is_some(), i == whole.len() - 1, "after byte {i}");
        }
    }
}

#[test]
fn a_length_header_above_the_max_is_rejected_from_four_bytes() {
    // (codec max, announced body length, rejected?) with nothing but the 4 header bytes buffered.
    let cases: [(usize, u32, bool); 6] = [
        (100, 100, false),
        (100, 101, true),
        (100, u32::MAX, true),
        (
            DEFAULT_MAX_CLIENT_FRAME,
            DEFAULT_MAX_CLIENT_FRAME as u32,
            false,
        ),
        (
            DEFAULT_MAX_CLIENT_FRAME,
            DEFAULT_MAX_CLIENT_FRAME as u32 + 1,
            true,
        ),
        (
            DEFAULT_MAX_SERVER_FRAME,
            DEFAULT_MAX_SERVER_FRAME as u32 + 1,
            true,
        ),
    ];
    for (max, len, rejected) in cases {
        let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
        let result = ServerCodec::new(max).decode(&mut buf);
        let limit = max.min(u32::MAX as usize);
        match result {
            Err(CodecError::FrameTooLarge { len: l, max: m }) if rejected => {
                assert_eq!((l, m), (len as usize, limit), "max {max}, len {len}");
            }
            Ok(None) if !rejected => {}
            other => panic!("max {max}, len {len}: {other:?}"),
        }
        let result = ClientCodec::new(max).decode(&mut BytesMut::from(&len.to_be_bytes()[..]));
        assert_eq!(
            matches!(result, Err(CodecError::FrameTooLarge { .. })),
            rejected,
            "client side"
        );
    }
}

#[test]
fn the_read_limit_can_change_between_frames() {
    // homccd reads only an Auth-sized frame before a client has authenticated, then requests.
    let auth = client_frame(&ClientMessage::Auth { proof: [1; 32] });
    let compile = client_frame(&example_compile());
    let mut codec = server_codec();
    codec.set_max_in(64);
    let mut buf = BytesMut::from(&auth[..]);
    buf.extend_from_slice(&compile);
    assert_eq!(
        codec.decode(&mut buf).unwrap(),
        Some(ClientMessage::Auth { proof: [1; 32] })
    );
    let mut small = server_codec();
    small.set_max_in(64);
    assert!(matches!(
        small.decode(&mut buf.clone()),
        Err(CodecError::FrameTooLarge { max: 64, .. })
    ));
    codec.set_max_in(DEFAULT_MAX_CLIENT_FRAME);
    assert_eq!(codec.decode(&mut buf).unwrap(), Some(example_compile()));
    assert!(buf.is_empty());
}

#[test]
fn the_encoder_refuses_an_oversized_frame_and_leaves_dst_unchanged() {
    let msg = ClientMessage::Blob(Blob {
        digest: Digest::of(b"x"),
        payload: Payload::pack(Compression::None, &[7; 300]),
    });
    let len = client_frame(&msg).len() - 4;
    let prefix = b"earlier frame bytes";

    let mut dst = BytesMut::from(&prefix[..]);
    ClientCodec::new(len)
        .encode(msg.clone(), &mut dst)
        .expect("exactly the max is allowed");
    assert_eq!(&dst[prefix.len()..], &client_frame(&msg)[..]);

    let mut dst = BytesMut::from(&prefix[..]);
    match ClientCodec::new(len - 1).encode(msg, &mut dst) {
        Err(CodecError::FrameTooLarge { len: l, max }) => assert_eq!((l, max), (len, len - 1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(&dst[..], prefix);

    let mut dst = BytesMut::from(&prefix[..]);
    let result = ServerCodec::new(10).encode(ServerMessage::Need(Need::default()), &mut dst);
    assert!(result.is_ok(), "a 3-byte body fits in 10");
    assert_eq!(&dst[prefix.len()..], [0, 0, 0, 3, 1, 0, 0]);
}

#[test]
fn the_server_reads_up_to_the_client_limit_and_writes_up_to_the_server_limit() {
    // homccd's codec: client frames above 64 MiB are rejected from their header, while a result
    // frame may be larger than that (up to 1 GiB).
    let mut server = server_codec();
    let header = (DEFAULT_MAX_CLIENT_FRAME as u32 + 1).to_be_bytes();
    assert!(matches!(
        server.decode(&mut BytesMut::from(&header[..])),
        Err(CodecError::FrameTooLarge { max, .. }) if max == DEFAULT_MAX_CLIENT_FRAME
    ));

    // The same with small limits, so that the frames stay small: reads at most 100 bytes, writes
    // at most 1000.
    let result = ServerMessage::Result(CompileResult {
        exit_code: 0,
        stdout: vec![],
        stderr: vec![],
        outputs: vec![OutputFile {
            path: "/p/a.o".into(),
            payload: Payload::pack(Compression::None, &[7; 500]),
        }],
        environment: None,
        cached: false,
    });
    let mut dst = BytesMut::new();
    ServerCodec::with_limits(100, 1000)
        .encode(result.clone(), &mut dst)
        .expect("a result above the read limit is written");
    assert!(dst.len() - 4 > 100);
    assert_eq!(
        ClientCodec::with_limits(1000, 100)
            .decode(&mut dst)
            .unwrap(),
        Some(result.clone())
    );
    let mut dst = BytesMut::new();
    assert!(matches!(
        ServerCodec::with_limits(1000, 100).encode(result, &mut dst),
        Err(CodecError::FrameTooLarge { max: 100, .. })
    ));
    assert!(dst.is_empty());
    let blob = client_frame(&ClientMessage::Blob(Blob {
        digest: Digest::of(&[7; 500]),
        payload: Payload::pack(Compression::None, &[7; 500]),
    }));
    assert!(matches!(
        ServerCodec::with_limits(100, 1000).decode(&mut blob.clone()),
        Err(CodecError::FrameTooLarge { max: 100, .. })
    ));
}

#[test]
fn refusal_reasons_have_the_documented_indices() {
    let reasons = [
        (RefusalReason::Busy, vec![0]),
        (RefusalReason::Version { server: 1 }, vec![1, 1]),
        (RefusalReason::CompilerMismatch, vec![2]),
        (RefusalReason::InvalidRequest, vec![3]),
        (RefusalReason::ShuttingDown, vec![4]),
        (RefusalReason::Timeout, vec![5]),
        (RefusalReason::Internal, vec![6]),
        (RefusalReason::Forbidden, vec![7]),
        (RefusalReason::Limit, vec![8]),
        (RefusalReason::AuthFailed, vec![9]),
    ];
    for (reason, index) in reasons {
        let msg = ServerMessage::Refused(Refusal {
            reason,
            detail: String::new(),
        });
        let mut expected = vec![0];
        expected.extend(index);
        expected.push(0);
        assert_eq!(body(&server_frame(&msg)), expected, "{reason:?}");
    }
}

#[test]
fn the_auth_messages_have_the_documented_indices_and_raw_32_bytes() {
    let nonce: [u8; 32] = std::array::from_fn(|i| i as u8);
    let mut want = vec![4];
    want.extend(nonce);
    assert_eq!(
        body(&server_frame(&ServerMessage::Challenge { nonce })),
        want
    );
    let proof = AuthToken::from_bytes(b"token").unwrap().proof(&nonce);
    let mut want = vec![3];
    want.extend(proof);
    assert_eq!(body(&client_frame(&ClientMessage::Auth { proof })), want);
    // The frozen indices of §8 did not move.
    assert_eq!(
        body(&server_frame(&ServerMessage::Refused(Refusal {
            reason: RefusalReason::Version { server: 1 },
            detail: String::new(),
        }))),
        [0, 1, 1, 0]
    );
}

#[test]
fn a_path_that_is_not_utf8_cannot_be_encoded_and_leaves_dst_unchanged() {
    let request = CompileRequest {
        cwd: PathBuf::from(os(b"/home/\xff")),
        ..compile_request()
    };
    let mut dst = BytesMut::from(&b"before"[..]);
    let result = client_codec().encode(ClientMessage::Compile(Box::new(request)), &mut dst);
    assert!(matches!(result, Err(CodecError::Encode(_))), "{result:?}");
    assert_eq!(&dst[..], b"before");
}

// ---------------------------------------------------------------------------------------------
// Bad bodies

fn compile_body(request: CompileRequest) -> Vec<u8> {
    body(&client_frame(&ClientMessage::Compile(Box::new(request))))
}

fn blob_body() -> Vec<u8> {
    body(&client_frame(&ClientMessage::Blob(Blob {
        digest: Digest::of(b"int x;\n"),
        payload: Payload::pack(Compression::None, b"int x;\n"),
    })))
}

fn patched(mut bytes: Vec<u8>, at: usize, value: u8) -> Vec<u8> {
    bytes[at] = value;
    bytes
}

fn with(mut bytes: Vec<u8>, extra: &[u8]) -> Vec<u8> {
    bytes.extend_from_slice(extra);
    bytes
}

#[test]
fn bad_client_bodies_are_malformed() {
    let small = CompileRequest {
        args: vec![os(b"-c")],
        manifest: vec![ChunkRef {
            digest: Digest::of(b"chunk"),
            inline: None,
        }],
        outputs: vec!["/o".into()],
        env: vec![],
        ..compile_request()
    };
    let small_body = compile_body(small.clone());
    let id = &small.compiler;
    // variant, version, the four identity strings (length byte + bytes), the args count.
    let first_arg = 2
        + [&id.name, &id.version, &id.build, &id.target]
            .iter()
            .map(|s| 1 + s.len())
            .sum::<usize>()
        + 1;
    // The implicit include's bytes, after its length byte.
    let implicit: &[u8] = b"/usr/include/stdc-predef.h";
    assert_eq!(
        small.implicit_includes,
        [PathBuf::from("/usr/include/stdc-predef.h")]
    );
    let implicit_include = small_body
        .windows(implicit.len())
        .position(|w| w == implicit)
        .expect("the implicit include is in the body");
    // The body ends with: the last chunk ref's inline tag, outputs count (1), "/o" (3 bytes),
    // env count (0), compression, queue, depfile (None), environment (None), no_result_cache.
    let inline_tag = small_body.len() - 11;
    let output_path = small_body.len() - 8;
    let blob = blob_body();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", vec![]),
        ("garbage", b"\xff\xfe\xfd garbage".to_vec()),
        ("unknown message variant 5", vec![5]),
        ("ready with a trailing byte", vec![4, 0]),
        ("auth without its proof", vec![3]),
        ("auth proof of 31 bytes", with(vec![3], &[0xaa; 31])),
        ("auth proof of 33 bytes", with(vec![3], &[0xaa; 33])),
        (
            "variant index as a u64 varint",
            vec![0xfd, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        ("blob ends inside its digest", vec![2, 1, 2, 3]),
        (
            "blob truncated by one byte",
            blob[..blob.len() - 1].to_vec(),
        ),
        (
            "blob data length beyond the frame",
            with(blob[..35].to_vec(), &[0xfb, 0xe8, 0x03, b'x']),
        ),
        ("blob with a trailing byte", with(blob.clone(), &[0])),
        (
            "blob with unknown compression 4",
            patched(blob.clone(), 33, 4),
        ),
        ("chunks count beyond the frame", vec![1, 0xfb, 0xff, 0xff]),
        (
            "current-version compile truncated",
            small_body[..small_body.len() - 1].to_vec(),
        ),
        (
            "current-version compile with a trailing byte",
            with(small_body.clone(), &[0]),
        ),
        (
            "compiler name not UTF-8",
            patched(small_body.clone(), 3, 0xff),
        ),
        (
            "OsString variant 1 (Windows)",
            patched(small_body.clone(), first_arg, 1),
        ),
        ("Option tag 2", patched(small_body.clone(), inline_tag, 2)),
        (
            "implicit include not UTF-8",
            patched(small_body.clone(), implicit_include + 1, 0xff),
        ),
        (
            "output path not UTF-8",
            patched(small_body.clone(), output_path + 1, 0xff),
        ),
        (
            "env pair missing its value",
            with(small_body[..small_body.len() - 6].to_vec(), &[1, 1, b'X']),
        ),
        (
            "unknown output compression 4",
            patched(small_body.clone(), small_body.len() - 5, 4),
        ),
        (
            "queue flag 2",
            patched(small_body.clone(), small_body.len() - 4, 2),
        ),
        (
            "depfile tag 2",
            patched(small_body.clone(), small_body.len() - 3, 2),
        ),
        (
            "environment tag 2",
            patched(small_body.clone(), small_body.len() - 2, 2),
        ),
        (
            "environment variant 2",
            with(
                small_body[..small_body.len() - 2].to_vec(),
                &[1, 2, 1, b'x', 0],
            ),
        ),
        (
            "no_result_cache flag 2",
            patched(small_body.clone(), small_body.len() - 1, 2),
        ),
    ];
    assert_eq!(
        small_body[first_arg..first_arg + 3],
        [0, 2, b'-'],
        "offset of the first arg"
    );
    assert_eq!(
        small_body[implicit_include - 2..implicit_include],
        [1, implicit.len() as u8],
        "offset of the implicit include (after its count and length)"
    );
    assert_eq!(
        small_body[output_path - 2..output_path + 3],
        [1, 2, b'/', b'o', 0],
        "offset of the output path (after its count and length, before the env count)"
    );
    assert_eq!(small_body[inline_tag], 0, "offset of the inline tag");
    assert!(
        decode_client(&frame(&small_body)).unwrap().is_some(),
        "the unpatched body decodes"
    );
    for (name, bad) in cases {
        let decoded = decode_client(&frame(&bad));
        assert!(
            matches!(decoded, Err(CodecError::Malformed(_))),
            "{name}: {decoded:?}"
        );
    }
}

#[test]
fn bad_server_bodies_are_malformed() {
    let result = body(&server_frame(&ServerMessage::Result(CompileResult {
        exit_code: 0,
        stdout: vec![],
        stderr: vec![],
        outputs: vec![OutputFile {
            path: "/p/a.o".into(),
            payload: Payload::pack(Compression::None, b"o"),
        }],
        environment: None,
        cached: false,
    })));
    // variant, exit code, stdout, stderr, outputs count, then the path's length and bytes.
    let path_byte = 1 + 1 + 1 + 1 + 1 + 1;
    assert_eq!(result[path_byte], b'/');
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", vec![]),
        ("unknown message variant 5", vec![5]),
        ("unknown refusal reason 12", vec![0, 12, 0]),
        ("challenge without its nonce", vec![4]),
        ("challenge nonce of 31 bytes", with(vec![4], &[0x55; 31])),
        ("challenge nonce of 33 bytes", with(vec![4], &[0x55; 33])),
        ("refusal without its detail", vec![0, 0]),
        ("heartbeat with a trailing byte", vec![2, 0]),
        ("need ends inside a digest", vec![1, 1, 0xaa]),
        ("result truncated", result[..result.len() - 1].to_vec()),
        (
            "output path not UTF-8",
            patched(result.clone(), path_byte, 0xff),
        ),
        ("a server frame announces no version", vec![0, 2, 0xff]),
    ];
    assert!(
        decode_server(&frame(&result)).unwrap().is_some(),
        "the unpatched body decodes"
    );
    for (name, bad) in cases {
        let decoded = decode_server(&frame(&bad));
        assert!(
            matches!(decoded, Err(CodecError::Malformed(_))),
            "{name}: {decoded:?}"
        );
    }
}

#[test]
fn a_compile_of_another_version_that_does_not_decode_is_a_version_mismatch() {
    // The next version, as the previous version's server sees it: a request whose compression
    // (the second last byte) it does not know, as a version-2 server sees a version-3 request
    // for zstd.
    let next = PROTOCOL_VERSION + 1;
    let real = compile_body(CompileRequest {
        version: next,
        ..compile_request()
    });
    let new_compression = patched(real.clone(), real.len() - 2, 4);
    let v = next as u8;
    // (body, expected peer version; None = Malformed)
    let cases: Vec<(Vec<u8>, Option<u32>)> = vec![
        (vec![0, v, 0xff, 0xff], Some(next)),
        // The previous version's client (a version-2 homcc).
        (vec![0, v - 2, 0xff], Some(PROTOCOL_VERSION - 1)),
        (vec![0, 1, 0xff], Some(1)),
        (vec![0, 0], Some(0)),
        (vec![0, 0xfb, 0x2c, 0x01, 0xff], Some(300)),
        (vec![0, 0xfc, 0xff, 0xff, 0xff, 0xff], Some(u32::MAX)),
        (real[..real.len() - 1].to_vec(), Some(next)),
        (with(real.clone(), b"v4 field"), Some(next)),
        (new_compression, Some(next)),
        // The current version: the rest is simply malformed.
        (vec![0, PROTOCOL_VERSION as u8, 0xff], None),
        (vec![0], None),
        // Only a Compile announces a version.
        (vec![2, 2, 0xff], None),
        (vec![1, 2, 0xff], None),
    ];
    for (bad, expected) in cases {
        let result = decode_client(&frame(&bad));
        match (expected, result) {
            (Some(v), Err(CodecError::VersionMismatch { peer })) => {
                assert_eq!(peer, v, "{}", hex(&bad))
            }
            (None, Err(CodecError::Malformed(_))) => {}
            (expected, result) => panic!("{}: expected {expected:?}, got {result:?}", hex(&bad)),
        }
    }
}

#[test]
fn a_compile_of_another_version_that_decodes_reaches_the_server() {
    // The codec judges only undecodable frames; the server must check `version` itself.
    let request = CompileRequest {
        version: 7,
        ..compile_request()
    };
    let decoded = decode_client(&client_frame(&ClientMessage::Compile(Box::new(
        request.clone(),
    ))));
    assert_eq!(
        decoded.unwrap(),
        Some(ClientMessage::Compile(Box::new(request)))
    );
}

#[test]
fn non_minimal_varints_are_accepted() {
    // Decoders accept any varint width that fits; encoders always write the shortest.
    let cases: [&[u8]; 3] = [
        &[1, 0, 0],
        &[1, 0xfb, 0, 0, 0xfb, 0, 0],
        &[1, 0xfc, 0, 0, 0, 0, 0],
    ];
    for bad in cases {
        assert_eq!(
            decode_server(&frame(bad)).unwrap(),
            Some(ServerMessage::Need(Need::default()))
        );
    }
    assert_eq!(
        body(&server_frame(&ServerMessage::Need(Need::default()))),
        [1, 0, 0]
    );
}

// ---------------------------------------------------------------------------------------------
// Manifest chunks

#[test]
fn chunk_encoding_is_deterministic_and_names_the_chunk() {
    let forward = project_chunks();
    let mut entries: Vec<ManifestEntry> = forward.iter().flat_map(Chunk::entries).collect();
    entries.reverse();
    let backward = chunk_entries(&entries).unwrap();
    assert_eq!(forward, backward);
    for (a, b) in forward.iter().zip(&backward) {
        assert_eq!(codec::encode_chunk(a), codec::encode_chunk(b));
        assert_eq!(a.digest(), Digest::of(&codec::encode_chunk(a)));
        assert_eq!(codec::decode_chunk(&codec::encode_chunk(a)).unwrap(), *a);
    }

    let chunk = Chunk {
        dir: "/p".into(),
        files: vec![ChunkFile {
            name: "a.c".into(),
            digest: Digest([0xab; 32]),
            size: 300,
        }],
    };
    let mut expected = vec![2, b'/', b'p', 1, 3, b'a', b'.', b'c'];
    expected.extend([0xab; 32]);
    expected.extend([0xfb, 0x2c, 0x01]);
    assert_eq!(codec::encode_chunk(&chunk), expected);
}

#[test]
fn chunks_travel_as_their_exact_encoding() {
    // A server may hash the bytes as received: a Chunks body is the count, then each chunk's
    // encoding verbatim.
    let chunks = project_chunks();
    let mut expected = vec![1, chunks.len() as u8];
    for c in &chunks {
        expected.extend(codec::encode_chunk(c));
    }
    assert_eq!(
        body(&client_frame(&ClientMessage::Chunks(chunks))),
        expected
    );
}

// ---------------------------------------------------------------------------------------------
// Size of a warm request

#[test]
fn a_warm_request_fits_in_2_kib() {
    let args = "-O2 -g -c ../src/foo.cpp -o foo.o -I../include -I../third_party/fmt/include \
                -DNDEBUG -DFOO_VERSION=3 -std=c++17 -Wall -fPIC";
    let request = CompileRequest {
        version: PROTOCOL_VERSION,
        compiler: identity(),
        args: args.split_whitespace().map(OsString::from).collect(),
        cwd: "/home/user/project/build".into(),
        include_dirs: [
            "/usr/lib/gcc/x86_64-linux-gnu/12/../../../../include/c++/12",
            "/usr/lib/gcc/x86_64-linux-gnu/12/../../../../include/x86_64-linux-gnu/c++/12",
            "/usr/lib/gcc/x86_64-linux-gnu/12/../../../../include/c++/12/backward",
            "/usr/lib/gcc/x86_64-linux-gnu/12/include",
            "/usr/local/include",
            "/usr/include",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect(),
        implicit_includes: vec!["/usr/include/stdc-predef.h".into()],
        preprocessed: false,
        dirs: vec![],
        manifest: (0..25u8)
            .map(|i| ChunkRef {
                digest: Digest::of(&[i]),
                inline: None,
            })
            .collect(),
        outputs: vec!["/home/user/project/build/foo.o".into()],
        env: vec![("LANG".into(), "en_US.UTF-8".into())],
        compression: Compression::Lzo,
        queue: true,
        depfile: None,
        environment: None,
        no_result_cache: false,
    };
    assert_eq!(request.args.len(), 13);
    let size = client_frame(&ClientMessage::Compile(Box::new(request))).len();
    println!("warm request: {size} bytes on the wire (header included)");
    assert!(size < 2048, "warm request is {size} bytes");
}

// ---------------------------------------------------------------------------------------------
// The worked examples of docs/protocol.md

/// The bytes of the annotated hex block that follows `<!-- wire-example: NAME -->` in the doc:
/// on each line, the hex bytes before the first double space.
fn documented_bytes(doc: &str, name: &str) -> Vec<u8> {
    let marker = format!("<!-- wire-example: {name} -->");
    let start = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/protocol.md lacks {marker}"));
    let mut lines = doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1);
    let mut bytes = Vec::new();
    for line in lines.by_ref().take_while(|l| !l.starts_with("```")) {
        let hex_part = line.split("  ").next().unwrap_or("");
        for token in hex_part.split_whitespace() {
            assert_eq!(token.len(), 2, "{name}: {token:?} in {line:?}");
            bytes
                .push(u8::from_str_radix(token, 16).unwrap_or_else(|_| panic!("{name}: {line:?}")));
        }
    }
    bytes
}

fn example_compile() -> ClientMessage {
    let chunk = Chunk {
        dir: "/p".into(),
        files: vec![ChunkFile {
            name: "a.c".into(),
            digest: Digest::of(b"int x;\n"),
            size: 7,
        }],
    };
    ClientMessage::Compile(Box::new(CompileRequest {
        version: PROTOCOL_VERSION,
        compiler: CompilerIdentity {
            name: "gcc".into(),
            version: "12.2.0".into(),
            build: "gcc version 12.2.0 (Debian 12.2.0-14)".into(),
            target: "x86_64-linux-gnu".into(),
        },
        args: vec![os(b"-c"), os(b"a.c")],
        cwd: "/p".into(),
        include_dirs: vec!["/usr/include".into()],
        implicit_includes: vec!["/usr/include/stdc-predef.h".into()],
        preprocessed: false,
        dirs: vec![],
        manifest: vec![ChunkRef {
            digest: chunk.digest(),
            inline: Some(chunk),
        }],
        outputs: vec!["/p/a.o".into()],
        env: vec![("LC_ALL".into(), "C".into())],
        compression: Compression::Lzo,
        queue: true,
        depfile: None,
        environment: None,
        no_result_cache: false,
    }))
}

/// The nonce of the documented challenge: the bytes 00, 01, ..., 1f.
fn example_nonce() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

#[test]
fn the_documented_frames_are_the_real_bytes() {
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/protocol.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/protocol.md");
    let client: [(&str, ClientMessage); 3] = [
        ("compile", example_compile()),
        (
            "auth",
            ClientMessage::Auth {
                proof: AuthToken::from_bytes(b"s3cret\n")
                    .unwrap()
                    .proof(&example_nonce()),
            },
        ),
        (
            "blob",
            ClientMessage::Blob(Blob {
                digest: Digest::of(b"int x;\n"),
                payload: Payload::pack(Compression::Lzo, b"int x;\n"),
            }),
        ),
    ];
    let server: [(&str, ServerMessage); 6] = [
        (
            "challenge",
            ServerMessage::Challenge {
                nonce: example_nonce(),
            },
        ),
        (
            "refused-auth",
            ServerMessage::Refused(Refusal {
                reason: RefusalReason::AuthFailed,
                detail: "authentication failed".into(),
            }),
        ),
        (
            "need",
            ServerMessage::Need(Need {
                chunks: vec![],
                blobs: vec![Digest::of(b"int x;\n")],
            }),
        ),
        ("queued", ServerMessage::Queued { position: 3 }),
        (
            "result",
            ServerMessage::Result(CompileResult {
                exit_code: 1,
                stdout: vec![],
                stderr: b"a.c:1: error\n".to_vec(),
                outputs: vec![OutputFile {
                    path: "/p/a.o".into(),
                    payload: Payload::pack(Compression::None, b"\x7fELF"),
                }],
                environment: None,
                cached: false,
            }),
        ),
        (
            "refused-version",
            ServerMessage::Refused(Refusal {
                reason: RefusalReason::Version { server: 1 },
                detail: "protocol 1".into(),
            }),
        ),
    ];
    for (name, msg) in client {
        let actual = client_frame(&msg);
        assert_eq!(
            hex(&documented_bytes(&doc, name)),
            hex(&actual),
            "docs/protocol.md example {name}"
        );
        assert_eq!(decode_client(&actual).unwrap(), Some(msg));
    }
    for (name, msg) in server {
        let actual = server_frame(&msg);
        assert_eq!(
            hex(&documented_bytes(&doc, name)),
            hex(&actual),
            "docs/protocol.md example {name}"
        );
        assert_eq!(decode_server(&actual).unwrap(), Some(msg));
    }
}

#[test]
fn a_lying_length_inside_a_frame_is_malformed_not_a_huge_allocation() {
    // Found by the client_frames fuzz target: a Blob whose payload claims 4 GiB of data in a
    // 16-byte frame. The decoder refuses it without allocating the claimed size.
    let mut body = client_frame(&ClientMessage::Blob(Blob {
        digest: Digest::of(b"x"),
        payload: packed(Compression::None, b"x"),
    }))[4..]
        .to_vec();
    // The payload's data length is the last varint before its one byte: make it u32::MAX.
    let data_len_at = body.len() - 2;
    assert_eq!(body[data_len_at], 1, "the data's length, then the data");
    body.splice(data_len_at..data_len_at + 1, [0xfc, 0xff, 0xff, 0xff, 0xff]);
    match decode_client(&frame(&body)) {
        Err(CodecError::Malformed(e)) => assert!(e.contains("LimitExceeded"), "{e}"),
        other => panic!("expected a malformed frame, got {other:?}"),
    }
}
