//! Why a reconciliation failed. An invalid spec is not one: it is reported in status and
//! not retried until the object changes.

use kube::runtime::finalizer;
use rmq_remoting::RemotingError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("object has no namespace")]
    NoNamespace,
    #[error("serializing status: {0}")]
    Json(#[from] serde_json::Error),
    /// A broker did not answer an admin request, or refused it.
    #[error("broker admin: {broker}: {source}")]
    Broker {
        /// Its `brokerName`, or its address.
        broker: String,
        #[source]
        source: RemotingError,
    },
    #[error("deletion refused: {0}")]
    DeletionRefused(String),
    /// The admin credential's Secret exists but does not hold one.
    #[error("admin credential: {0}")]
    Credential(String),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// A broker admin failure on `broker`.
    pub fn broker(broker: impl Into<String>, source: RemotingError) -> Error {
        Error::Broker {
            broker: broker.into(),
            source,
        }
    }

    /// A short, fixed name for the `error` label of the failure metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::NoNamespace => "no_namespace",
            Error::Json(_) => "json",
            Error::Broker { .. } => "broker",
            Error::DeletionRefused(_) => "deletion_refused",
            Error::Credential(_) => "credential",
            Error::Finalizer(_) => "finalizer",
        }
    }
}

/// The reconciler's own error comes out as it was; the finalizer's wraps its source.
impl From<finalizer::Error<Error>> for Error {
    fn from(e: finalizer::Error<Error>) -> Error {
        match e {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            other => Error::Finalizer(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn broker_errors_keep_their_source() {
        let e = Error::broker("broker-a", RemotingError::remote(1, Some("disk full")));
        assert_eq!(e.kind(), "broker");
        assert!(e.to_string().starts_with("broker admin: broker-a: "), "{e}");
        assert!(e.source().unwrap().to_string().contains("disk full"));
    }

    #[test]
    fn finalizer_errors_unwrap_the_reconcilers_own() {
        let own = Error::from(finalizer::Error::ApplyFailed(Error::NoNamespace));
        assert_eq!(own.kind(), "no_namespace");
        let other = Error::from(finalizer::Error::<Error>::UnnamedObject);
        assert_eq!(other.kind(), "finalizer");
        assert_eq!(other.to_string(), "finalizer: object has no name");
        assert!(other.source().is_some());
    }
}
