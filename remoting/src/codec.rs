//! The frame codec: `[total_len][serialize_type << 24 | header_len][header][body]`.
//!
//! Oversize or malformed frames are errors; the connection that sent them is closed by its
//! owner, and nothing else is affected.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::command::{RemotingCommand, SerializeType};
use crate::error::RemotingError;

/// Default limit of `total_len`, as Java's `com.rocketmq.remoting.frameMaxLength`.
pub const DEFAULT_MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Encodes and decodes whole remoting frames.
#[derive(Debug, Clone)]
pub struct RemotingCodec {
    max_frame_len: usize,
}

impl Default for RemotingCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FRAME_LEN)
    }
}

impl RemotingCodec {
    /// A codec refusing frames whose `total_len` exceeds `max_frame_len`.
    pub fn new(max_frame_len: usize) -> Self {
        RemotingCodec { max_frame_len }
    }

    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }
}

impl Decoder for RemotingCodec {
    type Item = RemotingCommand;
    type Error = RemotingError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<RemotingCommand>, RemotingError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let total = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if total > self.max_frame_len {
            return Err(RemotingError::FrameTooLarge {
                len: total,
                max: self.max_frame_len,
            });
        }
        if total < 4 {
            return Err(RemotingError::BadFrame(format!(
                "total length {total} is shorter than the header-length word"
            )));
        }
        if src.len() < 4 + total {
            // Grow with what arrives, not with what the length word promises: ten thousand
            // half frames announcing 16 MiB each must not reserve 160 GiB.
            src.reserve((4 + total - src.len()).min(64 << 10));
            return Ok(None);
        }
        src.advance(4);
        let mut frame = src.split_to(total);
        let word = frame.get_u32();
        let serialize_type = SerializeType::from_code((word >> 24) as u8)?;
        let header_len = (word & 0x00FF_FFFF) as usize;
        if header_len > frame.len() {
            return Err(RemotingError::BadFrame(format!(
                "header length {header_len} exceeds the {} bytes left in the frame",
                frame.len()
            )));
        }
        let header = frame.split_to(header_len);
        let mut cmd = RemotingCommand::decode_header_bytes(serialize_type, &header)?;
        cmd.body = frame.freeze();
        Ok(Some(cmd))
    }
}

impl Encoder<RemotingCommand> for RemotingCodec {
    type Error = RemotingError;

    fn encode(&mut self, cmd: RemotingCommand, dst: &mut BytesMut) -> Result<(), RemotingError> {
        encode_into(&cmd, self.max_frame_len, dst)
    }
}

fn encode_into(
    cmd: &RemotingCommand,
    max_frame_len: usize,
    dst: &mut BytesMut,
) -> Result<(), RemotingError> {
    let header = cmd.encode_header();
    if header.len() > 0x00FF_FFFF {
        return Err(RemotingError::BadHeader(format!(
            "header of {} bytes does not fit the 24-bit length",
            header.len()
        )));
    }
    let total = 4 + header.len() + cmd.body.len();
    if total > max_frame_len {
        return Err(RemotingError::FrameTooLarge {
            len: total,
            max: max_frame_len,
        });
    }
    dst.reserve(4 + total);
    dst.put_u32(total as u32);
    dst.put_u32(((cmd.serialize_type.code() as u32) << 24) | header.len() as u32);
    dst.put_slice(&header);
    dst.put_slice(&cmd.body);
    Ok(())
}

/// One command as a complete frame (used by tests and tools that write raw bytes).
pub fn encode_frame(cmd: &RemotingCommand) -> Result<BytesMut, RemotingError> {
    let mut buf = BytesMut::new();
    encode_into(cmd, usize::MAX, &mut buf)?;
    Ok(buf)
}
