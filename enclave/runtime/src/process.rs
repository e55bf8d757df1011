//! The enclave process (`kms-enclave`, and `kms enclave` in the developer CLI). Its only I/O
//! is the channel to its host.
//!
//! Boot: connect to the host's channel, fetch the sealed state through it (a missing or
//! unopenable blob is fatal: the enclave never invents a new identity), unseal it, fetch and
//! check each key set's server key by digest, anchor the light client at the sealed genesis
//! validators (checking the chain's first block), bring up the attested TLS mesh over relayed
//! connections, then serve the host's jobs one at a time.
//!
//! Developer mode only for now (this binary needs the `insecure-dev` feature): the NSM is the
//! mock (its root CA from `--dev-root-ca`) and the sealing key a local file
//! (`--dev-sealing-key`). Production (`/dev/nsm`, AWS KMS sealing, vsock) is not built yet.

use crate::state::{AeadSealer, PartyState};
use crate::{AttestedClock, Clock, PartyRuntime, RuntimeError, RuntimeParts};
use kms_attestation::{Policy, Release};
use kms_channel::addr::ChannelAddr;
use kms_channel::mux::EnclaveChannel;
use kms_channel::wire::{Failure, FailureKind, HostRequest, HostResponse};
use kms_light_client::{LightBlock, LightClient, Options};
use kms_threshold::{FloodingParams, ServedLog, ThresholdParty};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

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
    /// Something else in setting up the runtime.
    #[error("{0}")]
    Setup(String),
}

/// The enclave's command line.
pub struct Args {
    party: u32,
    channel: ChannelAddr,
    sealing_key: PathBuf,
    root_ca: PathBuf,
}

/// Parses the command line (`--party N --channel unix:PATH|vsock:CID:PORT --dev-sealing-key FILE
/// --dev-root-ca FILE`).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, BootError> {
    let mut it = args.into_iter();
    let (mut party, mut channel, mut sealing_key, mut root_ca) = (None, None, None, None);
    while let Some(a) = it.next() {
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
            "--dev-sealing-key" => sealing_key = Some(PathBuf::from(val()?)),
            "--dev-root-ca" => root_ca = Some(PathBuf::from(val()?)),
            other => return Err(BootError::Usage(format!("unknown argument {other}"))),
        }
    }
    Ok(Args {
        party: need(party, "--party")?,
        channel: need(channel, "--channel")?,
        sealing_key: need(sealing_key, "--dev-sealing-key")?,
        root_ca: need(root_ca, "--dev-root-ca")?,
    })
}

fn need<T>(v: Option<T>, name: &str) -> Result<T, BootError> {
    v.ok_or_else(|| BootError::Usage(format!("{name} is required")))
}

fn read(path: &PathBuf) -> Result<Vec<u8>, BootError> {
    std::fs::read(path).map_err(|e| BootError::File(path.clone(), e))
}

async fn ask(ch: &EnclaveChannel, req: HostRequest) -> Result<Option<Vec<u8>>, BootError> {
    match ch.request(req).await {
        Ok(HostResponse::Blob(b)) => Ok(b),
        Ok(HostResponse::Stored) => Ok(None),
        Ok(HostResponse::Chunk { .. }) => {
            Err(BootError::Host("a piece where a blob was asked".into()))
        }
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
        _ => FailureKind::Internal,
    };
    Failure {
        kind,
        detail: e.to_string(),
    }
}

/// Boots and serves until the channel closes.
pub async fn boot(args: Args) -> Result<(), BootError> {
    tracing::warn!("developer mode: mock NSM, local sealing key; NOT a production enclave");
    let socket = args
        .channel
        .connect()
        .await
        .map_err(|e| BootError::Channel(e.to_string()))?;
    let (channel, mut jobs, mut accepted) = EnclaveChannel::start(socket);

    // Sealed state, through the host.
    let key_bytes = Zeroizing::new(read(&args.sealing_key)?);
    let key: Zeroizing<[u8; 32]> = Zeroizing::new(
        hex_key(&key_bytes)
            .ok_or_else(|| BootError::Usage("sealing key: 64 hex characters".into()))?,
    );
    let sealer = Arc::new(AeadSealer::new(&key));
    let sealed = ask(
        &channel,
        HostRequest::GetSealed {
            name: "state".into(),
        },
    )
    .await?
    .ok_or(BootError::NoState)?;
    let plain = sealer.unseal(&PartyState::context(args.party, "state"), &sealed)?;
    let mut state = PartyState::decode(&plain)?;
    tracing::info!(
        party = state.party,
        n = state.n,
        t = state.t,
        keys = state.keys.len(),
        "state unsealed"
    );

    // The trust root: the sealed genesis validators; block 1 must verify against them.
    let (n, party) = (state.n as usize, state.party as usize);
    let vals: Vec<tendermint::validator::Info> = serde_json::from_slice(&state.genesis_validators)
        .map_err(|e| BootError::LightClient(e.to_string()))?;
    let genesis = tendermint::validator::Set::without_proposer(vals);
    let root_raw = read(&args.root_ca)?;
    let (cert, pkcs8) =
        split_root(&root_raw).ok_or_else(|| BootError::Usage("root CA file".into()))?;
    let now_unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    };
    let root =
        kms_nsm::MockRootCa::from_parts(cert, pkcs8).map_err(|e| BootError::Tls(e.to_string()))?;
    let nsm = Arc::new(
        kms_nsm::MockNsm::new(root, &format!("i-party-{party}"), DEV_PCRS, now_unix)
            .map_err(|e| BootError::Tls(e.to_string()))?,
    );
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
    let sealed_lc = ask(
        &channel,
        HostRequest::GetSealed {
            name: "light-client".into(),
        },
    )
    .await?;
    let light_client = match sealed_lc {
        Some(sealed) => {
            let raw = sealer.unseal(&PartyState::context(args.party, "light-client"), &sealed)?;
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
    // The attested mesh over connections the host relays.
    let identity = kms_attested_tls::IdentityKey::from_pkcs8_der(&state.identity_key)
        .map_err(|e| BootError::Tls(e.to_string()))?;
    let policy = Policy::production(vec![Release::from_image("kms dev", DEV_PCRS)], 300);
    let tls =
        kms_transport::tls::PartyTls::for_party(nsm, party, &state.registered, identity, policy)
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
            key: entry.share,
            flooding,
            params: entry.params,
            signer,
            domain,
            // What this party served survives restarts: sealed records its host keeps.
            served: ServedLog::new(crate::served_store::SealedServedStore::new(
                channel.clone(),
                sealer.clone(),
                state.party,
            )),
        }),
        server_key,
        material,
        clock,
        net,
        round_deadline: Duration::from_secs(60),
    }));
    // While idle, the light client follows the chain so its trust never ages out.
    {
        let (rt, ch, sealer, me) = (runtime.clone(), channel.clone(), sealer.clone(), args.party);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LIGHT_CLIENT_REFRESH).await;
                match ask(&ch, HostRequest::LightBlock { height: 0 }).await {
                    Ok(Some(raw)) => match serde_json::from_slice::<LightBlock>(&raw) {
                        Ok(block) => match rt.advance(block) {
                            Ok(()) => seal_trust(&rt, &ch, &sealer, me).await,
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
        seal_trust(&runtime, &channel, &sealer, args.party).await;
    }
    tracing::info!("channel closed; exiting");
    Ok(())
}

/// How often an idle enclave advances its light client.
pub const LIGHT_CLIENT_REFRESH: Duration = Duration::from_secs(3600);

/// Seals the light client's trusted block and hands it to the host (a restart resumes there).
async fn seal_trust(
    runtime: &PartyRuntime,
    channel: &EnclaveChannel,
    sealer: &AeadSealer,
    party: u32,
) {
    let sealed = serde_json::to_vec(&runtime.trusted_block())
        .map_err(|e| e.to_string())
        .and_then(|raw| {
            sealer
                .seal(&PartyState::context(party, "light-client"), &raw)
                .map_err(|e| e.to_string())
        });
    match sealed {
        Ok(bytes) => {
            let put = HostRequest::PutSealed {
                name: "light-client".into(),
                bytes,
            };
            if let Err(e) = ask(channel, put).await {
                tracing::warn!("sealing the light client's trust: {e}");
            }
        }
        Err(e) => tracing::warn!("sealing the light client's trust: {e}"),
    }
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

fn hex_key(raw: &[u8]) -> Option<[u8; 32]> {
    let s = std::str::from_utf8(raw).ok()?.trim();
    let mut key = [0u8; 32];
    hex::decode_to_slice(s, &mut key).ok()?;
    Some(key)
}

/// The dev root CA file: 4-byte big-endian certificate length, certificate DER, PKCS#8 key.
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
