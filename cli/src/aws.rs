//! How the CLI reaches AWS (`weir run --aws`, `weir send --queue-url`): the standard credential
//! chain and region, optionally pointed at a local emulator.

use weir_host::aws::{Aws, AwsOptions};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct AwsArgs {
    /// One endpoint for every AWS service (a local emulator such as moto); S3 is then addressed path-style.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// A separate endpoint for DynamoDB (e.g. dynalite), over --endpoint-url.
    #[arg(long, env = "AWS_ENDPOINT_URL_DYNAMODB")]
    pub dynamodb_endpoint_url: Option<String>,
    /// AWS region (default: from the environment or profile).
    #[arg(long)]
    pub region: Option<String>,
    /// Attempts per AWS request, the first included (the SDK's retry).
    #[arg(long, default_value_t = 5)]
    pub max_attempts: u32,
    /// Adaptive retry mode: client-side rate limiting when AWS throttles.
    #[arg(long)]
    pub adaptive_retry: bool,
}

impl AwsArgs {
    pub fn options(&self) -> AwsOptions {
        AwsOptions {
            endpoint_url: self.endpoint_url.clone(),
            dynamodb_endpoint_url: self.dynamodb_endpoint_url.clone(),
            region: self.region.clone(),
            max_attempts: self.max_attempts,
            adaptive: self.adaptive_retry,
        }
    }

    /// A multi-threaded runtime and the clients, loaded on it.
    pub fn connect(&self) -> anyhow::Result<(tokio::runtime::Runtime, Aws)> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let aws = runtime.block_on(Aws::load(&self.options(), runtime.handle().clone()));
        Ok((runtime, aws))
    }
}
