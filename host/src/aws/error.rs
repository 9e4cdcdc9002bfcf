//! AWS errors as people read them.

/// An AWS SDK error in one line: `Code: message` for an error the service answered, else the
/// chain of causes (a timeout, a dropped connection, ...).
pub fn describe<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(service) => {
            format!("{}: {}", service.code().unwrap_or("ServiceError"), service.message().unwrap_or("(no message)"))
        }
        None => aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
    }
}

/// A name could not be resolved to a resource.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// `what` names the resource looked up; `message` is the service's answer ([`describe`]).
    #[error("{what}: {message}")]
    Lookup { what: String, message: String },
}
