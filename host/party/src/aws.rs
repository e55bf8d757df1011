//! What the host does for its enclave's AWS KMS calls: it relays the enclave's TLS connection to
//! the configured KMS endpoint and hands over its own credentials (the instance role's, through
//! the AWS SDK's default chain: environment, profile, instance metadata). It cannot read or
//! change the traffic, and the credentials alone release nothing: the key policy requires the
//! enclave's attestation.

use aws_credential_types::provider::ProvideCredentials;
use kms_channel::wire::{AwsCredentials, HostResponse};

/// The host's credentials for its enclave, or why there are none.
pub async fn credentials() -> HostResponse {
    let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
        .build()
        .await;
    match chain.provide_credentials().await {
        Ok(c) => HostResponse::AwsCredentials(AwsCredentials {
            access_key_id: c.access_key_id().to_string(),
            secret_access_key: c.secret_access_key().to_string(),
            session_token: c.session_token().map(str::to_string),
        }),
        Err(e) => HostResponse::Failed(format!("no AWS credentials: {e}")),
    }
}
