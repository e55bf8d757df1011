//! The enclave process (`kms-enclave`, and `kms enclave` in the developer CLI). Its only I/O
//! is the channel to its host.
//!
//! Boot: connect to the host's channel, fetch the sealed state through it (a missing or
//! unopenable blob is fatal: the enclave never invents a new identity), unseal it, fetch and
//! check each key set's server key by digest, anchor the light client at the sealed genesis
//! validators (checking the chain's first block), bring up the attested TLS mesh over relayed
//! connections, then serve the host's jobs one at a time.
//!
//! Sealing: AWS KMS (`--aws-kms-key-arn`, [`crate::sealing`]: the data key released only to
//! this attested enclave, over TLS terminating here) or, in developer mode, a local key file
//! (`--dev-sealing-key`).
//!
//! Attestation: `/dev/nsm` (a Nitro Enclave; documents chain to the AWS Nitro root), or, in a
//! developer build (`insecure-dev`) given `--dev-root-ca`, the mock NSM under that root. A
//! production build has no mock, no key file and no developer flag: it boots with the device
//! NSM and AWS KMS sealing, or not at all. In an enclave image its command line (party, channel
//! `vsock:CID:PORT`, KMS key ARN and region) is fixed by the image's init and therefore part of
//! the measured image (PCR2), so a host cannot point it at another key; building that image is
//! the reproducible-image issue's.

use crate::registration::{party_policies, registered_identities, RegistrationError};
use crate::sealed_blobs::SealedBlobs;
use crate::sealing::{self, production_roots, SealingError, SealingSource};
use crate::state::{AeadSealer, PartyState};
use crate::{AttestedClock, Clock, PartyRuntime, RuntimeError, RuntimeParts};
use kms_channel::addr::ChannelAddr;
use kms_channel::mux::EnclaveChannel;
use kms_channel::wire::{Failure, FailureKind, HealthReport, HostRequest, HostResponse, Phase};
use kms_light_client::{ConfigEvidence, LightBlock, LightClient, Options};
use kms_sealing::KmsConfig;
use kms_threshold::{FloodingParams, HeldKey, ServedLog, ThresholdParty};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Oldest config evidence (by its header's time against the trusted clock) the enclave boots on.
pub const MAX_CONFIG_AGE: Duration = Duration::from_secs(300);

/// Largest difference between the enclave clock and the NSM's before the enclave refuses to act.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(5);

/// The developer-mode PCRs of the mock NSM (every party runs "the same release").
pub const DEV_PCRS: [[u8; 48]; 3] = [[0x4b; 48], [0x4d; 48], [0x53; 48]];

/// Why the enclave process could not boot or stopped.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// Bad command line.
    #[error("usage: {0}")]
    Usage(String),
    /// The channel to the host failed.
    #[error("channel: {0}")]
    Channel(String),
    /// The host has no sealed state for this party.
    #[error("no sealed state at the host: refusing to start with a fresh identity")]
    NoState,
    /// The host failed a request.
    #[error("host: {0}")]
    Host(String),
    /// The sealed state does not open or decode.
    #[error("state: {0}")]
    State(#[from] crate::state::StateError),
    /// A sealed object does not open under the data key.
    #[error(transparent)]
    Aead(#[from] kms_sealing::AeadError),
    /// A sealed blob could not be read (the host, or a blob that does not open).
    #[error("sealed blob: {0}")]
    Sealed(#[from] crate::sealed_blobs::SealedBlobError),
    /// No data key.
    #[error("sealing: {0}")]
    Sealing(#[from] SealingError),
    /// The server key the host served is not the sealed digest's.
    #[error("server key {0} does not match its digest or does not decode")]
    ServerKey(String),
    /// The light client could not be anchored.
    #[error("light client: {0}")]
    LightClient(String),
    /// The attested mesh could not be set up.
    #[error("attested TLS: {0}")]
    Tls(String),
    /// A local file (developer mode) could not be read.
    #[error("file {0}: {1}")]
    File(PathBuf, std::io::Error),
    /// The config contract does not register this enclave's keys for its party.
    #[error("not registered: {0}")]
    NotRegistered(#[from] RegistrationError),
    /// No attestation provider (outside a Nitro Enclave, `/dev/nsm` does not exist).
    #[error("NSM: {0}")]
    Nsm(#[from] kms_nsm::NsmError),
    /// Something else in setting up the runtime.
    #[error("{0}")]
    Setup(String),
}

/// Where the enclave's attestation documents come from.
enum NsmSource {
    /// `/dev/nsm`: documents chain to the AWS Nitro Enclaves root.
    Device,
    /// The mock NSM under a developer root CA (file: 4-byte length, certificate, PKCS#8 key).
    #[cfg(feature = "insecure-dev")]
    Mock(PathBuf),
}

/// The enclave's command line.
pub struct Args {
    party: u32,
    channel: ChannelAddr,
    nsm: NsmSource,
    aws: Option<AwsArgs>,
    #[cfg(feature = "insecure-dev")]
    dev_key: Option<PathBuf>,
    #[cfg(feature = "insecure-dev")]
    import_dev_state: bool,
}

/// AWS KMS sealing options.
struct AwsArgs {
    key_arn: String,
    region: String,
    endpoint_host: Option<String>,
    #[cfg(feature = "insecure-dev")]
    dev_ca: Option<PathBuf>,
}

/// Parses the command line: `--party N --channel unix:PATH|vsock:CID:PORT --aws-kms-key-arn ARN
/// --aws-region REGION [--aws-kms-endpoint-host HOST]`. A developer build also takes
/// `--dev-root-ca FILE` (the mock NSM instead of `/dev/nsm`), `--dev-sealing-key FILE` (a local
/// data key instead of AWS KMS), `--dev-aws-kms-ca DER` (a local KMS endpoint's CA) and
/// `--import-dev-state --dev-sealing-key FILE` (a first boot that takes over the dealer's state
/// sealed under that key and reseals it under a new AWS KMS data key).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, BootError> {
    let mut it = args.into_iter();
    let (mut party, mut channel) = (None, None);
    let (mut key_arn, mut region, mut endpoint_host) = (None, None, None);
    #[cfg(feature = "insecure-dev")]
    let (mut dev_key, mut root_ca, mut dev_ca, mut import_dev_state) = (None, None, None, false);
    while let Some(a) = it.next() {
        #[cfg(feature = "insecure-dev")]
        if a == "--import-dev-state" {
            import_dev_state = true;
            continue;
        }
        let mut val = || {
            it.next()
                .ok_or_else(|| BootError::Usage(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--party" => {
                party = Some(
                    val()?
                        .parse()
                        .map_err(|_| BootError::Usage("--party N".into()))?,
                )
            }
            "--channel" => {
                channel = Some(
                    val()?
                        .parse::<ChannelAddr>()
                        .map_err(|e| BootError::Usage(e.to_string()))?,
                )
            }
            "--aws-kms-key-arn" => key_arn = Some(val()?),
            "--aws-region" => region = Some(val()?),
            "--aws-kms-endpoint-host" => endpoint_host = Some(val()?),
            #[cfg(feature = "insecure-dev")]
            "--dev-sealing-key" => dev_key = Some(PathBuf::from(val()?)),
            #[cfg(feature = "insecure-dev")]
            "--dev-root-ca" => root_ca = Some(PathBuf::from(val()?)),
            #[cfg(feature = "insecure-dev")]
            "--dev-aws-kms-ca" => dev_ca = Some(PathBuf::from(val()?)),
            other => return Err(BootError::Usage(format!("unknown argument {other}"))),
        }
    }
    let aws = match (key_arn, region) {
        (Some(key_arn), Some(region)) => Some(AwsArgs {
            key_arn,
            region,
            endpoint_host,
            #[cfg(feature = "insecure-dev")]
            dev_ca,
        }),
        (None, None) => None,
        _ => {
            return Err(BootError::Usage(
                "--aws-kms-key-arn and --aws-region go together".into(),
            ))
        }
    };
    #[cfg(feature = "insecure-dev")]
    {
        if dev_key.is_none() && (aws.is_none() || import_dev_state) {
            return Err(BootError::Usage("--dev-sealing-key is required".into()));
        }
        if import_dev_state && aws.is_none() {
            return Err(BootError::Usage(
                "--import-dev-state reseals under AWS KMS: it needs --aws-kms-key-arn".into(),
            ));
        }
    }
    #[cfg(not(feature = "insecure-dev"))]
    if aws.is_none() {
        return Err(BootError::Usage(
            "--aws-kms-key-arn and --aws-region are required".into(),
        ));
    }
    Ok(Args {
        party: need(party, "--party")?,
        channel: need(channel, "--channel")?,
        #[cfg(feature = "insecure-dev")]
        nsm: root_ca.map_or(NsmSource::Device, NsmSource::Mock),
        #[cfg(not(feature = "insecure-dev"))]
        nsm: NsmSource::Device,
        aws,
        #[cfg(feature = "insecure-dev")]
        dev_key,
        #[cfg(feature = "insecure-dev")]
        import_dev_state,
    })
}

impl Args {
    fn sealing_source(&self) -> Result<SealingSource, BootError> {
        if let Some(aws) = &self.aws {
            let owner = format!("party-{}", self.party);
            let mut config = KmsConfig::aws(&aws.region, &aws.key_arn, &owner)
                .map_err(|e| BootError::Usage(e.to_string()))?;
            if let Some(h) = &aws.endpoint_host {
                config.endpoint_host = h.clone();
            }
            #[cfg(feature = "insecure-dev")]
            let roots = match &aws.dev_ca {
                None => production_roots(),
                Some(path) => {
                    tracing::warn!(
                        "developer mode: trusting {} for the AWS KMS endpoint",
                        path.display()
                    );
                    let mut roots = rustls::RootCertStore::empty();
                    roots
                        .add(read(path)?.into())
                        .map_err(|e| BootError::Usage(format!("--dev-aws-kms-ca: {e}")))?;
                    roots
                }
            };
            #[cfg(not(feature = "insecure-dev"))]
            let roots = production_roots();
            return Ok(SealingSource::AwsKms { config, roots });
        }
        #[cfg(feature = "insecure-dev")]
        if let Some(path) = &self.dev_key {
            return Ok(SealingSource::DevKeyFile(path.clone()));
        }
        Err(BootError::Usage("no sealing key source".into()))
    }

    /// The attestation provider.
    fn nsm(&self) -> Result<Arc<dyn kms_nsm::Nsm>, BootError> {
        match &self.nsm {
            NsmSource::Device => Ok(Arc::new(kms_nsm::DeviceNsm::open()?)),
            #[cfg(feature = "insecure-dev")]
            NsmSource::Mock(root_ca) => {
                tracing::warn!("developer mode: mock NSM; NOT a production enclave");
                let raw = read(root_ca)?;
                let (cert, pkcs8) =
                    split_root(&raw).ok_or_else(|| BootError::Usage("root CA file".into()))?;
                let now_unix = || {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or(Duration::ZERO)
                };
                let root = kms_nsm::MockRootCa::from_parts(cert, pkcs8)
                    .map_err(|e| BootError::Tls(e.to_string()))?;
                let party = self.party;
                Ok(Arc::new(
                    kms_nsm::MockNsm::new(root, &format!("i-party-{party}"), DEV_PCRS, now_unix)
                        .map_err(|e| BootError::Tls(e.to_string()))?,
                ))
            }
        }
    }
}

fn need<T>(v: Option<T>, name: &str) -> Result<T, BootError> {
    v.ok_or_else(|| BootError::Usage(format!("{name} is required")))
}

#[cfg(feature = "insecure-dev")]
fn read(path: &PathBuf) -> Result<Vec<u8>, BootError> {
    std::fs::read(path).map_err(|e| BootError::File(path.clone(), e))
}

async fn ask(ch: &EnclaveChannel, req: HostRequest) -> Result<Option<Vec<u8>>, BootError> {
    match ch.request(req).await {
        Ok(HostResponse::Blob(b)) => Ok(b),
        Ok(HostResponse::Stored) => Ok(None),
        Ok(
            HostResponse::Chunk { .. } | HostResponse::AwsCredentials(_) | HostResponse::Nonce(_),
        ) => Err(BootError::Host("an answer to another question".into())),
        Ok(HostResponse::Failed(e)) => Err(BootError::Host(e)),
        Err(e) => Err(BootError::Channel(e.to_string())),
    }
}

fn failure(e: &RuntimeError) -> Failure {
    let kind = match e {
        RuntimeError::NotProven(_) => FailureKind::NotProven,
        RuntimeError::CiphertextsNotApproved | RuntimeError::ClientKeyNotApproved => {
            FailureKind::InputsNotApproved
        }
        RuntimeError::Unsupported(_) | RuntimeError::NoMaterial(_) => FailureKind::Unsupported,
        RuntimeError::Threshold(_) => FailureKind::Protocol,
        RuntimeError::Nonce(_) => FailureKind::Retry,
        _ => FailureKind::Internal,
    };
    Failure {
        kind,
        detail: e.to_string(),
    }
}

/// Answers a health check: the phase, attested with the host's challenge as nonce.
fn health_responder(
    nsm: Arc<dyn kms_nsm::Nsm>,
    party: u32,
    serving: Arc<std::sync::atomic::AtomicBool>,
) -> kms_channel::mux::HealthResponder {
    Arc::new(move |challenge: &[u8]| {
        let phase = if serving.load(std::sync::atomic::Ordering::Acquire) {
            Phase::Serving
        } else {
            Phase::Booting
        };
        let document = nsm
            .attest(&kms_nsm::AttestationRequest {
                user_data: Some(phase.user_data(party)),
                nonce: Some(challenge.to_vec()),
                public_key: None,
            })
            .map_err(|e| Failure {
                kind: FailureKind::Internal,
                detail: format!("attestation: {e}"),
            })?;
        Ok(HealthReport { phase, document })
    })
}

/// Boots and serves until the channel closes.
pub async fn boot(args: Args) -> Result<(), BootError> {
    // No attestation provider, no enclave: nothing is asked of the host before this.
    let nsm = args.nsm()?;
    tracing::info!(nsm = nsm.kind(), "attestation provider");
    let socket = args
        .channel
        .connect_from_enclave()
        .await
        .map_err(|e| BootError::Channel(e.to_string()))?;
    // Health checks are answered from here on, with an attestation document that binds the
    // host's challenge and the phase.
    let serving = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (channel, mut jobs, mut accepted) = EnclaveChannel::start_with_health(
        socket,
        Some(health_responder(nsm.clone(), args.party, serving.clone())),
    );
    let party = args.party as usize;

    // The data key, then the sealed state, through the host.
    let source = args.sealing_source()?;
    #[cfg(feature = "insecure-dev")]
    let imported = if args.import_dev_state {
        Some(import_dev_state(&channel, &args, &source, nsm.clone()).await?)
    } else {
        None
    };
    #[cfg(not(feature = "insecure-dev"))]
    let imported = None;
    let key = match imported {
        Some(key) => key,
        None => sealing::open_data_key(&channel, &source, nsm.clone()).await?,
    };
    tracing::info!(
        source = match source {
            SealingSource::AwsKms { .. } => "AWS KMS (attested recipient)",
            #[cfg(feature = "insecure-dev")]
            SealingSource::DevKeyFile(_) => "local key file (developer mode)",
        },
        "data key obtained"
    );
    let blobs = SealedBlobs::new(channel.clone(), Arc::new(AeadSealer::new(&key)), args.party);
    let plain = blobs.get("state").await?.ok_or(BootError::NoState)?;
    let mut state = PartyState::decode(&plain)?;
    if state.party != args.party {
        return Err(BootError::Setup(format!(
            "the sealed state is party {}'s",
            state.party
        )));
    }
    tracing::info!(
        party = state.party,
        n = state.n,
        t = state.t,
        keys = state.keys.len(),
        "state unsealed"
    );

    // The trust root: the sealed genesis validators; block 1 must verify against them.
    let n = state.n as usize;
    let vals: Vec<tendermint::validator::Info> = serde_json::from_slice(&state.genesis_validators)
        .map_err(|e| BootError::LightClient(e.to_string()))?;
    let genesis = tendermint::validator::Set::without_proposer(vals);
    // Trusted time: the enclave clock, checked against a fresh NSM document at every reading.
    let clock = Arc::new(AttestedClock::new(nsm.clone(), MAX_CLOCK_SKEW));
    let now = clock
        .now()
        .map_err(|e| BootError::LightClient(e.to_string()))?;
    let options = Options {
        trust_threshold: Default::default(),
        trusting_period: Duration::from_secs(14 * 24 * 3600),
        clock_drift: Duration::from_secs(10),
    };
    // The light client resumes from its sealed trusted block if there is one (a restart after
    // the chain outgrew the trusting period must not need block 1), else from genesis.
    let light_client = match blobs.get(LIGHT_CLIENT).await? {
        Some(raw) => {
            let block: LightBlock =
                serde_json::from_slice(&raw).map_err(|e| BootError::LightClient(e.to_string()))?;
            if block.signed_header.header.chain_id.as_str() != state.chain_id {
                return Err(BootError::LightClient(
                    "sealed block of another chain".into(),
                ));
            }
            let lc = LightClient::from_trusted(block, options)
                .map_err(|e| BootError::LightClient(e.to_string()))?;
            lc.check_not_expired(now)
                .map_err(|e| BootError::LightClient(e.to_string()))?;
            lc
        }
        None => {
            let first: LightBlock = serde_json::from_slice(
                &ask(&channel, HostRequest::LightBlock { height: 1 })
                    .await?
                    .ok_or_else(|| BootError::LightClient("no block 1".into()))?,
            )
            .map_err(|e| BootError::LightClient(e.to_string()))?;
            LightClient::from_genesis(&state.chain_id, 1, &genesis, first, options, now)
                .map_err(|e| BootError::LightClient(e.to_string()))?
                .0
        }
    };
    // The parties as the config contract registers them, proven to the light client: a
    // party is the identity key registered for it on chain, not what the host or the
    // provisioning said.
    let identity = kms_attested_tls::IdentityKey::from_pkcs8_der(&state.identity_key)
        .map_err(|e| BootError::Tls(e.to_string()))?;
    let mut light_client = light_client;
    let evidence: ConfigEvidence = serde_json::from_slice(
        &ask(&channel, HostRequest::ConfigEvidence)
            .await?
            .ok_or_else(|| BootError::LightClient("no config evidence".into()))?,
    )
    .map_err(|e| BootError::LightClient(e.to_string()))?;
    // Recent state only: a host must not boot the enclave on a party set from days ago.
    let config = light_client
        .verify_config(&evidence, now, MAX_CONFIG_AGE)
        .map_err(|e| BootError::LightClient(e.to_string()))?;
    let signer_address = kms_eip712::SigningKey::from_bytes(&state.signer_key)
        .map_err(|e| BootError::Setup(e.to_string()))?
        .address();
    let registered = registered_identities(
        &config,
        state.party,
        state.n,
        state.t,
        signer_address,
        identity.digest(),
    )?;

    // The attested mesh over connections the host relays: each peer is trusted as the
    // releases the config contract names for it, nothing hard-coded here.
    let policies = party_policies(&config)?;
    let tls = kms_transport::tls::PartyTls::for_party_per_party(
        nsm,
        party,
        &registered,
        &policies,
        identity,
    )
    .map_err(|e| BootError::Tls(e.to_string()))?;
    let (in_tx, in_rx) = tokio::sync::mpsc::channel::<kms_transport::tls::BoxIo>(64);
    tokio::spawn(async move {
        while let Some(io) = accepted.recv().await {
            if in_tx.send(Box::new(io)).await.is_err() {
                return;
            }
        }
    });
    let dial_channel = channel.clone();
    let dial: kms_transport::tls::Dial = Arc::new(move |p| {
        let ch = dial_channel.clone();
        Box::pin(async move {
            let p = u32::try_from(p).map_err(std::io::Error::other)?;
            ch.dial(p)
                .await
                .map(|io| Box::new(io) as kms_transport::tls::BoxIo)
                .map_err(std::io::Error::other)
        })
    });
    let net = Arc::new(kms_transport::grpc::GrpcParty::start_tls_relayed(
        party, n, in_rx, dial, tls,
    ));

    // The key set (one per runtime for now) and its server key, checked by digest.
    let entry = state
        .keys
        .pop()
        .ok_or_else(|| BootError::Setup("the state holds no key share".into()))?;
    tracing::info!(key = %entry.key_id, epoch = %entry.epoch, "key share");
    let sk_bytes = fetch_large(&channel, entry.server_key_digest, MAX_SERVER_KEY_BYTES)
        .await?
        .ok_or_else(|| BootError::ServerKey(hex::encode(entry.server_key_digest)))?;
    let server_key: kms_engine::tfhe::CompressedServerKey =
        kms_engine::deserialize_public(&sk_bytes)
            .map_err(|e| BootError::ServerKey(e.to_string()))?;
    let server_key = tokio::task::spawn_blocking(move || server_key.decompress())
        .await
        .map_err(|e| BootError::Setup(e.to_string()))?;
    let signer = kms_eip712::SigningKey::from_bytes(&state.signer_key)
        .map_err(|e| BootError::Setup(e.to_string()))?;
    let flooding = FloodingParams::for_param_set(
        entry.params,
        n,
        state.t as usize,
        entry.share.message_modulus,
        entry.share.carry_modulus,
    )
    .map_err(|e| BootError::Setup(e.to_string()))?;
    let prss = kms_algebra::prss::Prss::new(party, n, state.t as usize, &state.prss)
        .map_err(|e| BootError::Setup(e.to_string()))?;
    let domain = state.domain.clone();
    let material = BTreeMap::from([(entry.key_id, entry.material.clone())]);
    let runtime = Arc::new(PartyRuntime::new(RuntimeParts {
        chain_id: state.chain_id.clone(),
        light_client,
        party: Arc::new(ThresholdParty {
            prss,
            key: HeldKey::new(entry.epoch, entry.share),
            flooding,
            params: entry.params,
            signer,
            domain,
            // What this party served survives restarts: sealed records its host keeps.
            served: ServedLog::new(crate::served_store::SealedServedStore::new(blobs.clone())),
        }),
        server_key,
        material,
        clock,
        net,
        nonces: Arc::new(channel.clone()),
        shares: Arc::new(crate::share_store::SealedShareStore::new(blobs.clone())),
        round_deadline: Duration::from_secs(60),
    }));
    // While idle, the light client follows the chain so its trust never ages out.
    {
        let (rt, ch, blobs) = (runtime.clone(), channel.clone(), blobs.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LIGHT_CLIENT_REFRESH).await;
                match ask(&ch, HostRequest::LightBlock { height: 0 }).await {
                    Ok(Some(raw)) => match serde_json::from_slice::<LightBlock>(&raw) {
                        Ok(block) => match rt.advance(block) {
                            Ok(()) => seal_trust(&rt, &blobs).await,
                            Err(e) => tracing::warn!("light-client refresh refused: {e}"),
                        },
                        Err(e) => tracing::warn!("light-client refresh: {e}"),
                    },
                    Ok(None) => {}
                    Err(e) => tracing::warn!("light-client refresh: {e}"),
                }
            }
        });
    }
    tracing::info!(party, "serving");
    serving.store(true, std::sync::atomic::Ordering::Release);
    while let Some(incoming) = jobs.recv().await {
        let (job, replier) = incoming.into_parts();
        let result = runtime.serve_job(job).await;
        if let Err(e) = &result {
            tracing::warn!("job refused: {e}");
        }
        if replier
            .reply(result.map_err(|e| failure(&e)))
            .await
            .is_err()
        {
            break;
        }
        seal_trust(&runtime, &blobs).await;
    }
    tracing::info!("channel closed; exiting");
    Ok(())
}

/// How often an idle enclave advances its light client.
pub const LIGHT_CLIENT_REFRESH: Duration = Duration::from_secs(3600);

/// Name of the sealed blob holding the light client's trusted block.
const LIGHT_CLIENT: &str = "light-client";

/// Seals the light client's trusted block and hands it to the host (a restart resumes there).
async fn seal_trust(runtime: &PartyRuntime, blobs: &SealedBlobs) {
    let sealed = match serde_json::to_vec(&runtime.trusted_block()) {
        Ok(raw) => blobs
            .put(LIGHT_CLIENT, &raw)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = sealed {
        tracing::warn!("sealing the light client's trust: {e}");
    }
}

#[cfg(feature = "insecure-dev")]
/// A first boot under AWS KMS in developer mode: the dealer sealed this party's state under a
/// local provisioning key; the enclave gets a new data key from AWS KMS, reseals the state
/// under it and stores it, after which the provisioning key is no longer needed. Idempotent: if
/// the data key exists and the state opens under it, the import happened already. (Until the
/// DKG issue lands, a dealer provisions every party; with the DKG the state is created here.)
async fn import_dev_state(
    channel: &EnclaveChannel,
    args: &Args,
    source: &SealingSource,
    nsm: Arc<dyn kms_nsm::Nsm>,
) -> Result<zeroize::Zeroizing<[u8; 32]>, BootError> {
    let SealingSource::AwsKms { config, roots } = source else {
        return Err(BootError::Usage(
            "--import-dev-state needs AWS KMS sealing".into(),
        ));
    };
    let context = PartyState::context(args.party, "state");
    let sealed = ask(
        channel,
        HostRequest::GetSealed {
            name: "state".into(),
        },
    )
    .await?
    .ok_or(BootError::NoState)?;
    let key = match sealing::open_data_key(channel, source, nsm.clone()).await {
        Ok(key) => {
            if AeadSealer::new(&key).unseal(&context, &sealed).is_ok() {
                tracing::info!("state already sealed under AWS KMS; nothing to import");
                return Ok(key);
            }
            key
        }
        Err(SealingError::NoRecord) => {
            sealing::create_data_key(channel, config.clone(), roots.clone(), nsm).await?
        }
        Err(e) => return Err(e.into()),
    };
    let dev_key = args
        .dev_key
        .as_ref()
        .ok_or_else(|| BootError::Usage("--import-dev-state needs --dev-sealing-key".into()))?;
    let plain = AeadSealer::new(&sealing::key_file(dev_key)?).unseal(&context, &sealed)?;
    let resealed = AeadSealer::new(&key).seal(&context, &plain)?;
    ask(
        channel,
        HostRequest::PutSealed {
            name: "state".into(),
            bytes: resealed,
        },
    )
    .await?;
    tracing::info!("dealer-provisioned state resealed under the AWS KMS data key");
    Ok(key)
}

/// Largest server key the enclave fetches (the default parameters' is about 360 MiB).
pub const MAX_SERVER_KEY_BYTES: u64 = 768 << 20;

/// Fetches a blob too large for one frame, piece by piece, and checks its digest; `None` if the
/// host has no such blob or what it served does not hash to `digest`.
async fn fetch_large(
    channel: &EnclaveChannel,
    digest: [u8; 32],
    max: u64,
) -> Result<Option<Vec<u8>>, BootError> {
    let mut out = Vec::new();
    loop {
        let request = HostRequest::FetchChunk {
            digest,
            offset: out.len() as u64,
            len: kms_channel::wire::CHUNK_BYTES,
        };
        match channel.request(request).await {
            Ok(HostResponse::Chunk { total, bytes }) => {
                if total > max {
                    return Err(BootError::ServerKey(format!("{total} bytes exceed {max}")));
                }
                if bytes.is_empty() && (out.len() as u64) < total {
                    return Err(BootError::Host("empty piece".into()));
                }
                out.extend_from_slice(&bytes);
                if out.len() as u64 >= total {
                    break;
                }
            }
            Ok(HostResponse::Blob(None)) => return Ok(None),
            Ok(HostResponse::Failed(e)) => return Err(BootError::Host(e)),
            Ok(other) => return Err(BootError::Host(format!("unexpected answer {other:?}"))),
            Err(e) => return Err(BootError::Channel(e.to_string())),
        }
    }
    Ok((kms_types::sha3_256(&out) == digest).then_some(out))
}

/// The dev root CA file: 4-byte big-endian certificate length, certificate DER, PKCS#8 key.
#[cfg(feature = "insecure-dev")]
fn split_root(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = raw.split_first_chunk::<4>()?;
    let len = u32::from_be_bytes(*len) as usize;
    (rest.len() > len).then(|| rest.split_at(len))
}

/// Runs the process: logging to stderr, the command line `args`, an exit code.
pub async fn main_with(args: impl IntoIterator<Item = String>) -> std::process::ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let result = match parse_args(args) {
        Ok(a) => boot(a).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("kms-enclave: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
