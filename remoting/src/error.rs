//! Errors of the remoting layer.

use std::io;
use std::time::Duration;

/// Everything that can go wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub enum RemotingError {
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge { len: usize, max: usize },
    #[error("malformed frame: {0}")]
    BadFrame(String),
    #[error("malformed header: {0}")]
    BadHeader(String),
    #[error("missing required header field `{0}`")]
    MissingField(String),
    #[error("header field `{field}` has an invalid value `{value}`")]
    BadField { field: String, value: String },
    #[error("malformed body: {0}")]
    BadBody(String),
    #[error("connect to {addr} failed: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("request to {addr} timed out after {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("connection to {0} closed")]
    ConnectionClosed(String),
    #[error("remote answered code {code} ({name}): {remark}")]
    Remote {
        code: i32,
        name: &'static str,
        remark: String,
    },
}

impl RemotingError {
    /// A `Remote` error from a response's code and remark.
    pub fn remote(code: i32, remark: Option<&str>) -> Self {
        RemotingError::Remote {
            code,
            name: crate::code::ResponseCode::name(code).unwrap_or("UNKNOWN"),
            remark: remark.unwrap_or_default().to_string(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = RemotingError> = std::result::Result<T, E>;
