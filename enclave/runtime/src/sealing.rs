//! Where the enclave's data key comes from, through its channel.
//!
//! * [`SealingSource::AwsKms`]: AWS KMS ([`kms_sealing::aws_kms`]). The host keeps the
//!   [`DataKeyRecord`] as the sealed object [`DATA_KEY_OBJECT`]; the enclave signs its requests
//!   with credentials the host hands over ([`HostRequest::AwsCredentials`]) and reaches KMS over
//!   a relayed connection ([`Destination::AwsKms`]) with TLS to the configured endpoint name.
//! * [`SealingSource::DevKeyFile`]: a key file (developer mode, insecure, loud).
//!
//! Which KMS key is used is the enclave's configuration, never the host's choice: a key the
//! host controlled with a permissive policy would let it decrypt the data key itself. A record
//! naming another key is refused.

use kms_channel::mux::EnclaveChannel;
use kms_channel::wire::{Destination, HostRequest, HostResponse};
use kms_nsm::Nsm;
use kms_sealing::https::{Dial, RelayIo};
use kms_sealing::{
    AwsKmsSealing, Credentials, DataKeyRecord, KmsConfig, KmsSealingError, RelayedHttps,
};
#[cfg(feature = "insecure-dev")]
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The sealed object holding the [`DataKeyRecord`].
pub const DATA_KEY_OBJECT: &str = "data-key";

/// Where the data key comes from.
#[derive(Clone, Debug)]
pub enum SealingSource {
    /// AWS KMS, trusting `roots` for the endpoint's TLS certificate (production: the public web
    /// PKI roots, [`production_roots`]).
    AwsKms {
        /// Region, endpoint and key.
        config: KmsConfig,
        /// TLS trust roots for the endpoint.
        roots: rustls::RootCertStore,
    },
    /// A local key file of 64 hex characters (developer mode; absent from production builds).
    #[cfg(feature = "insecure-dev")]
    DevKeyFile(PathBuf),
}

/// The roots a production enclave trusts for AWS endpoints (Mozilla's set, compiled in, so the
/// host cannot change them).
pub fn production_roots() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// Why no data key was obtained.
#[derive(Debug, thiserror::Error)]
pub enum SealingError {
    /// The host has no data-key record: the enclave was never provisioned here.
    #[error("no sealed data-key record at the host")]
    NoRecord,
    /// A data-key record exists already: a first boot would replace the identity.
    #[error("a data-key record exists already; refusing to create another")]
    RecordExists,
    /// The host failed or answered out of turn.
    #[error("host: {0}")]
    Host(String),
    /// AWS KMS did not release the key.
    #[error(transparent)]
    Kms(#[from] KmsSealingError),
    /// The HTTPS client could not be set up.
    #[error(transparent)]
    Https(#[from] kms_sealing::https::HttpsError),
    /// The key file is missing or malformed.
    #[error("sealing key file {0}: {1}")]
    KeyFile(std::path::PathBuf, String),
}

async fn ask(channel: &EnclaveChannel, req: HostRequest) -> Result<HostResponse, SealingError> {
    match channel.request(req).await {
        Ok(HostResponse::Failed(e)) => Err(SealingError::Host(e)),
        Ok(r) => Ok(r),
        Err(e) => Err(SealingError::Host(e.to_string())),
    }
}

/// The AWS KMS client over `channel`.
pub async fn aws_kms(
    channel: &EnclaveChannel,
    config: KmsConfig,
    roots: rustls::RootCertStore,
    nsm: Arc<dyn Nsm>,
) -> Result<AwsKmsSealing, SealingError> {
    let credentials = match ask(channel, HostRequest::AwsCredentials).await? {
        HostResponse::AwsCredentials(c) => Credentials {
            access_key_id: c.access_key_id,
            secret_access_key: Zeroizing::new(c.secret_access_key),
            session_token: c.session_token.map(Zeroizing::new),
        },
        other => return Err(SealingError::Host(format!("unexpected answer {other:?}"))),
    };
    let relay = channel.clone();
    let dial: Dial = Arc::new(move || {
        let relay = relay.clone();
        Box::pin(async move {
            relay
                .connect(Destination::AwsKms)
                .await
                .map(|io| Box::new(io) as Box<dyn RelayIo>)
                .map_err(std::io::Error::other)
        })
    });
    let https = RelayedHttps::new(dial, roots, &config.endpoint_host)?;
    Ok(AwsKmsSealing::new(config, credentials, https, nsm))
}

async fn record(channel: &EnclaveChannel) -> Result<Option<DataKeyRecord>, SealingError> {
    let req = HostRequest::GetSealed {
        name: DATA_KEY_OBJECT.into(),
    };
    match ask(channel, req).await? {
        HostResponse::Blob(None) => Ok(None),
        HostResponse::Blob(Some(b)) => Ok(Some(DataKeyRecord::decode(&b)?)),
        other => Err(SealingError::Host(format!("unexpected answer {other:?}"))),
    }
}

/// Reads a key file of 64 hex characters (developer mode).
#[cfg(feature = "insecure-dev")]
pub fn key_file(path: &PathBuf) -> Result<Zeroizing<[u8; 32]>, SealingError> {
    let bad = |e: String| SealingError::KeyFile(path.clone(), e);
    let raw = Zeroizing::new(std::fs::read(path).map_err(|e| bad(e.to_string()))?);
    let text = std::str::from_utf8(&raw).map_err(|_| bad("not text".into()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), &mut key[..])
        .map_err(|_| bad("not 64 hex characters".into()))?;
    Ok(key)
}

/// The data key of an enclave that was provisioned before (every boot but the first).
pub async fn open_data_key(
    channel: &EnclaveChannel,
    source: &SealingSource,
    nsm: Arc<dyn Nsm>,
) -> Result<Zeroizing<[u8; 32]>, SealingError> {
    match source {
        #[cfg(feature = "insecure-dev")]
        SealingSource::DevKeyFile(path) => key_file(path),
        SealingSource::AwsKms { config, roots } => {
            let record = record(channel).await?.ok_or(SealingError::NoRecord)?;
            let kms = aws_kms(channel, config.clone(), roots.clone(), nsm).await?;
            Ok(kms.decrypt_data_key(&record).await?)
        }
    }
}

/// A new data key for a first boot; its record is stored at the host before the key is
/// returned. Refused if a record exists (that enclave's state would be orphaned).
pub async fn create_data_key(
    channel: &EnclaveChannel,
    config: KmsConfig,
    roots: rustls::RootCertStore,
    nsm: Arc<dyn Nsm>,
) -> Result<Zeroizing<[u8; 32]>, SealingError> {
    if record(channel).await?.is_some() {
        return Err(SealingError::RecordExists);
    }
    let kms = aws_kms(channel, config, roots, nsm).await?;
    let (key, record) = kms.generate_data_key().await?;
    let put = HostRequest::PutSealed {
        name: DATA_KEY_OBJECT.into(),
        bytes: record.encode(),
    };
    match ask(channel, put).await? {
        HostResponse::Stored => Ok(key),
        other => Err(SealingError::Host(format!("unexpected answer {other:?}"))),
    }
}
