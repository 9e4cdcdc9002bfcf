//! AWS errors as people read them.

use std::error::Error;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

/// An AWS SDK error in one line: `Code: message` for an error the service answered, else the
/// chain of causes (a timeout, a dropped connection, ...).
pub fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(service) => {
            format!("{}: {}", service.code().unwrap_or("ServiceError"), service.message().unwrap_or("(no message)"))
        }
        None => aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
    }
}

/// An AWS call that failed: what was being done (`reading s3://b/k`, `ListTopics`), the answer
/// in one line ([`describe`]), and the SDK's error itself as the source.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct CallError {
    pub what: String,
    pub message: String,
    #[source]
    pub source: Box<dyn Error + Send + Sync>,
}

impl CallError {
    /// A request the SDK or the service refused.
    pub fn sdk<E, R>(what: impl Into<String>, e: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        CallError { what: what.into(), message: describe(&e), source: Box::new(e) }
    }

    /// An answer whose body could not be read to its end.
    pub fn body(what: impl Into<String>, e: aws_sdk_s3::primitives::ByteStreamError) -> Self {
        CallError { what: what.into(), message: e.to_string(), source: Box::new(e) }
    }
}

/// A name could not be resolved to a resource.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// The lookup call failed.
    #[error("{what}: {source}")]
    Lookup { what: String, source: CallError },
    /// The call succeeded, and there is no such resource.
    #[error("{what}: {why}")]
    NotFound { what: String, why: &'static str },
}
