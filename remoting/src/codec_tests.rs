//! Frame codec properties: any input decodes or errors, never panics; commands round-trip.

use std::collections::HashMap;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use crate::code::LanguageCode;
use crate::codec::RemotingCodec;
use crate::command::{RemotingCommand, SerializeType};
use crate::error::RemotingError;

prop_compose! {
    fn command()(
        code in any::<i16>(), lang in 0u8..14, version in any::<i16>(), opaque in any::<i32>(),
        flag in 0..4i32, remark in proptest::option::of(".{1,20}"),
        ext in hash_map("[a-zA-Z_]{1,10}", ".{0,20}", 0..6),
        body in vec(any::<u8>(), 0..64), binary in any::<bool>(),
    ) -> RemotingCommand {
        RemotingCommand {
            code: code as i32,
            language: LanguageCode::from_code(lang),
            version: version as i32,
            opaque,
            flag,
            remark,
            ext_fields: ext,
            body: Bytes::from(body),
            serialize_type: if binary { SerializeType::RocketMq } else { SerializeType::Json },
        }
    }
}

proptest! {
    #[test]
    fn any_bytes_decode_or_error(chunks in vec(vec(any::<u8>(), 0..64), 0..8)) {
        let mut codec = RemotingCodec::new(1024);
        let mut buf = BytesMut::new();
        for chunk in chunks {
            buf.extend_from_slice(&chunk);
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
        }
    }

    #[test]
    fn framed_garbage_headers_decode_or_error(st in 0u8..3, header in vec(any::<u8>(), 0..80), body in vec(any::<u8>(), 0..16)) {
        let mut buf = BytesMut::new();
        buf.put_u32((4 + header.len() + body.len()) as u32);
        buf.put_u32(((st as u32) << 24) | header.len() as u32);
        buf.extend_from_slice(&header);
        buf.extend_from_slice(&body);
        let _ = RemotingCodec::default().decode(&mut buf);
    }

    #[test]
    fn commands_round_trip(cmds in vec(command(), 1..5)) {
        let mut codec = RemotingCodec::default();
        let mut buf = BytesMut::new();
        for c in &cmds {
            codec.encode(c.clone(), &mut buf).unwrap();
        }
        // Feed the bytes one piece at a time, as a socket might deliver them.
        let all = buf.freeze();
        let mut feed = BytesMut::new();
        let mut out = Vec::new();
        for piece in all.chunks(7) {
            feed.extend_from_slice(piece);
            while let Some(c) = codec.decode(&mut feed).unwrap() {
                out.push(c);
            }
        }
        prop_assert_eq!(out, cmds);
    }
}

#[test]
fn oversize_frame_is_refused_before_buffering() {
    let mut codec = RemotingCodec::new(1000);
    let mut buf = BytesMut::new();
    buf.put_u32(1001);
    buf.put_u32(0);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(RemotingError::FrameTooLarge {
            len: 1001,
            max: 1000
        })
    ));
}

#[test]
fn header_longer_than_frame_is_an_error() {
    let mut buf = BytesMut::new();
    buf.put_u32(8);
    buf.put_u32(100);
    buf.put_u32(0);
    assert!(RemotingCodec::default().decode(&mut buf).is_err());
}

#[test]
fn lenient_json_header_from_other_clients() {
    // No serializeTypeCurrentRPC, numeric and boolean extFields, language as a number.
    let header = br#"{"code":10,"language":1,"version":317,"opaque":5,"flag":0,"extFields":{"queueId":4,"batch":false,"topic":"T","gone":null}}"#;
    let cmd = RemotingCommand::decode_header_bytes(SerializeType::Json, header).unwrap();
    assert_eq!(cmd.language, LanguageCode::Cpp);
    let mut expect = HashMap::new();
    expect.insert("queueId".to_string(), "4".to_string());
    expect.insert("batch".to_string(), "false".to_string());
    expect.insert("topic".to_string(), "T".to_string());
    assert_eq!(cmd.ext_fields, expect);
}

#[test]
fn json_header_carries_fields_strict_clients_need() {
    let cmd = RemotingCommand::success();
    let text = String::from_utf8(cmd.encode_header()).unwrap();
    for key in [
        "\"code\":0",
        "\"extFields\":{}",
        "\"flag\":1",
        "\"language\":\"JAVA\"",
        "\"serializeTypeCurrentRPC\":\"JSON\"",
        "\"version\":",
        "\"opaque\":",
    ] {
        assert!(text.contains(key), "{key} missing from {text}");
    }
}

#[test]
fn binary_header_layout() {
    let mut cmd = RemotingCommand::request(105);
    cmd.opaque = 7;
    cmd.serialize_type = SerializeType::RocketMq;
    cmd.ext_fields.insert("topic".into(), "T".into());
    let h = cmd.encode_header();
    // code, language RUST (12), version, opaque, flag, remark_len 0, ext_len, then the map.
    assert_eq!(&h[..3], &[0, 105, 12]);
    assert_eq!(&h[5..9], &7i32.to_be_bytes());
    assert_eq!(&h[13..17], &0i32.to_be_bytes());
    assert_eq!(&h[17..21], &(2 + 5 + 4 + 1i32).to_be_bytes());
    assert_eq!(&h[21..], b"\x00\x05topic\x00\x00\x00\x01T");
}
