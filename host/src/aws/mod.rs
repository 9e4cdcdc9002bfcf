//! AWS plumbing for the parts of weir that talk to AWS: the clients, built once ([`Aws`] from
//! [`AwsOptions`]), name lookups (topic ARNs, queue URLs), one-line error descriptions
//! ([`describe`]) and the retry policy for partial failures ([`retry`]).
//!
//! This module imports nothing else of weir's: the sinks and sources that use AWS depend on it,
//! never the other way round. What a pipeline's names are bound to, and which sinks a pipeline
//! gets, is decided in [`crate::pipeline::build`].
//!
//! Retries: the SDK retries whole requests (standard mode, or adaptive with client-side rate
//! limiting; `max_attempts` each); the sinks retry what the SDK cannot see, the partial
//! failures inside a successful answer (`UnprocessedItems`, failed batch entries, cancelled
//! transactions), with [`retry::Backoff`]. What still fails is reported per record, so the
//! caller fails just those inputs.

pub mod error;
pub mod retry;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

pub use error::{AwsError, CallError, describe};

/// How to reach AWS.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// One endpoint for every service (a local emulator); S3 is then addressed path-style.
    pub endpoint_url: Option<String>,
    /// A separate endpoint for DynamoDB (e.g. dynalite beside moto), over `endpoint_url`.
    pub dynamodb_endpoint_url: Option<String>,
    /// Overrides the region from the environment and profile.
    pub region: Option<String>,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Adaptive retry mode (client-side rate limiting under throttling) instead of standard.
    pub adaptive: bool,
}

impl Default for AwsOptions {
    fn default() -> Self {
        AwsOptions { endpoint_url: None, dynamodb_endpoint_url: None, region: None, max_attempts: 5, adaptive: false }
    }
}

/// The HTTPS client every SDK client shares: hyper and rustls with the ring crypto provider.
pub fn https_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// Time limits on every AWS call, so that a stalled connection or a slow endpoint costs one
/// attempt (retried) instead of hanging a batch until the Lambda times out. An attempt covers the
/// request until the response's headers (S3 bodies stream afterwards, under the source's own
/// limits); the operation covers every attempt and the back-off between them.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(90))
        .build()
}

/// Clients for every service weir uses, built once.
#[derive(Clone)]
pub struct Aws {
    pub config: SdkConfig,
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The runtime the clients were built on: the run loop drives the sinks' writes on it, and
    /// the S3 object reader blocks on it (see [`crate::pipeline::Io`]).
    pub runtime: tokio::runtime::Handle,
}

impl Aws {
    /// Loads credentials and region the standard way (environment, profile, container or
    /// instance role) and builds the clients. Must run inside `runtime`.
    pub async fn load(options: &AwsOptions, runtime: tokio::runtime::Handle) -> Aws {
        let retry = if options.adaptive { RetryConfig::adaptive() } else { RetryConfig::standard() }
            .with_max_attempts(options.max_attempts.max(1));
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .retry_config(retry)
            .timeout_config(timeouts());
        if let Some(url) = &options.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if let Some(region) = &options.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let config = loader.load().await;
        let mut aws = Aws::from_config(config, options.endpoint_url.is_some(), runtime);
        if let Some(url) = &options.dynamodb_endpoint_url {
            let conf = aws_sdk_dynamodb::config::Builder::from(&aws.config).endpoint_url(url).build();
            aws.dynamodb = aws_sdk_dynamodb::Client::from_conf(conf);
        }
        aws
    }

    /// Clients from a loaded config; `path_style` for S3 emulators.
    pub fn from_config(config: SdkConfig, path_style: bool, runtime: tokio::runtime::Handle) -> Aws {
        let s3 = aws_sdk_s3::config::Builder::from(&config).force_path_style(path_style).build();
        Aws {
            s3: aws_sdk_s3::Client::from_conf(s3),
            sqs: aws_sdk_sqs::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            config,
            runtime,
        }
    }

    /// A topic ARN for a name or ARN.
    pub async fn topic_arn(&self, topic: &str) -> Result<String, AwsError> {
        if topic.starts_with("arn:") {
            return Ok(topic.to_string());
        }
        let mut pages = self.sns.list_topics().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::Lookup {
                what: format!("topic {topic:?}"),
                source: CallError::sdk("ListTopics", e),
            })?;
            if let Some(arn) =
                page.topics().iter().filter_map(|t| t.topic_arn()).find(|arn| arn.rsplit(':').next() == Some(topic))
            {
                return Ok(arn.to_string());
            }
        }
        Err(AwsError::NotFound { what: format!("topic {topic:?}"), why: "no such topic in this account and region" })
    }

    /// A queue URL for a name or URL.
    pub async fn queue_url(&self, queue: &str) -> Result<String, AwsError> {
        if queue.starts_with("https://") || queue.starts_with("http://") {
            return Ok(queue.to_string());
        }
        let out = self.sqs.get_queue_url().queue_name(queue).send().await.map_err(|e| AwsError::Lookup {
            what: format!("queue {queue:?}"),
            source: CallError::sdk("GetQueueUrl", e),
        })?;
        out.queue_url()
            .map(String::from)
            .ok_or_else(|| AwsError::NotFound { what: format!("queue {queue:?}"), why: "no URL in the answer" })
    }
}
