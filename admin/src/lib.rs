//! Procedures on a running broker group that `mqadmin` and the operator share, over the
//! remoting protocol: reading a broker's state ([`broker`]: role, offset, epoch), changing its
//! permission, promoting a slave and stepping a master down, and the [`switchover`] that does
//! those in order without losing or cutting anything.

pub mod broker;
pub mod switchover;

use std::time::Duration;

use rmq_remoting::RemotingError;

/// Why a procedure failed or was called off.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A broker did not answer, or answered with an error code.
    #[error("{addr}: {source}")]
    Call {
        addr: String,
        #[source]
        source: RemotingError,
    },
    /// A broker answered something this procedure cannot read.
    #[error("{addr}: {what}: {detail}")]
    BadAnswer {
        addr: String,
        what: &'static str,
        detail: String,
    },
    #[error("{target} is more than {max_mib} MiB behind the master; the switch waits for it to catch up")]
    TargetBehind { target: String, max_mib: i64 },
    #[error("the master or the target does not report its offset")]
    OffsetsUnknown,
    #[error("cannot make the master read-only: {0}")]
    ReadOnly(#[source] Box<Error>),
    #[error("{target} did not catch up with the master within {within:?} ({lag})")]
    CatchUp {
        target: String,
        within: Duration,
        lag: String,
    },
    #[error("promoting {target} failed: {source}")]
    Promote {
        target: String,
        #[source]
        source: Box<Error>,
    },
    /// A switchover was called off for `reason`; the master got its permission back unless
    /// `still_read_only` says why not.
    #[error("{reason}{}", .still_read_only.as_ref().map(|e| format!(" and the master stays read-only (brokerPermission=4): {e}")).unwrap_or_default())]
    CalledOff {
        reason: Box<Error>,
        still_read_only: Option<Box<Error>>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
