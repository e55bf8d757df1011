//! The host process (`kms-host`, and `kms host` in the developer CLI): one party's untrusted
//! host.
//!
//! It listens for its enclave on the channel socket, relays the enclave's party connections
//! (TCP on `--listen` in, out to the endpoints the config contract registers), stores the enclave's sealed blobs under
//! `--data-dir/sealed` without being able to read them, serves public blobs from `--blobs`,
//! follows the KMS chain at `--rpc` and hands each approved request to the enclave, and
//! broadcasts what the enclave signed. When the enclave goes away it waits for it to come back
//! and resumes from its cursor.

use crate::{Blobs, PartyHost, Served};
use kms_channel::addr::ChannelAddr;
use kms_channel::mux::{BoxIo, Dialer, Handler, HostChannel};
use kms_channel::wire::{Destination, HostRequest, HostResponse};
use kms_connector::{ChainRpc, Follower};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why the host process stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Bad command line.
    #[error("usage: {0}")]
    Usage(String),
    /// A socket or file.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The chain.
    #[error("chain: {0}")]
    Chain(#[from] kms_connector::ConnectorError),
}

/// The host's command line.
pub struct Args {
    channel: ChannelAddr,
    listen: String,
    rpc: String,
    data_dir: PathBuf,
    blobs: PathBuf,
    signer: [u8; 20],
    poll: Duration,
    aws_kms: Option<String>,
}

fn need<T>(v: Option<T>, name: &str) -> Result<T, ProcessError> {
    v.ok_or_else(|| ProcessError::Usage(format!("{name} is required")))
}

/// Parses the command line (`--channel unix:PATH|vsock:CID:PORT --listen ADDR --rpc URL
/// --data-dir DIR --blobs DIR --signer 0x… [--poll-ms N] [--aws-kms-endpoint HOST:PORT]`).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, ProcessError> {
    let mut it = args.into_iter();
    let (mut channel, mut listen, mut rpc, mut data_dir, mut blobs, mut signer) =
        (None, None, None, None, None, None);
    let mut poll = Duration::from_millis(250);
    let mut aws_kms = None;
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| ProcessError::Usage(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--channel" => {
                channel = Some(
                    val()?
                        .parse::<ChannelAddr>()
                        .map_err(|e| ProcessError::Usage(e.to_string()))?,
                )
            }
            "--listen" => listen = Some(val()?),
            "--rpc" => rpc = Some(val()?),
            "--data-dir" => data_dir = Some(PathBuf::from(val()?)),
            "--blobs" => blobs = Some(PathBuf::from(val()?)),
            "--signer" => {
                let v = val()?;
                let b = hex::decode(v.trim_start_matches("0x"))
                    .ok()
                    .and_then(|b| <[u8; 20]>::try_from(b).ok())
                    .ok_or_else(|| ProcessError::Usage("--signer 0x<20 bytes>".into()))?;
                signer = Some(b);
            }
            "--poll-ms" => {
                poll = Duration::from_millis(
                    val()?
                        .parse()
                        .map_err(|_| ProcessError::Usage("--poll-ms N".into()))?,
                )
            }
            "--aws-kms-endpoint" => aws_kms = Some(val()?),
            // Accepted for symmetry with the enclave's command line; the host does not need it.
            "--party" => {
                val()?;
            }
            other => return Err(ProcessError::Usage(format!("unknown argument {other}"))),
        }
    }
    Ok(Args {
        channel: need(channel, "--channel")?,
        listen: need(listen, "--listen")?,
        rpc: need(rpc, "--rpc")?,
        data_dir: need(data_dir, "--data-dir")?,
        blobs: need(blobs, "--blobs")?,
        signer: need(signer, "--signer")?,
        poll,
        aws_kms,
    })
}

/// Where the host relays its enclave's connections: party `p` to the endpoint the config
/// contract registers for it (read from the chain at each dial, so a changed party set is
/// followed), AWS KMS to `aws_kms` (`HOST:PORT`) if configured; nothing else.
pub fn dialer(rpc: ChainRpc, aws_kms: Option<String>) -> Dialer {
    let routes = Arc::new((rpc, aws_kms));
    Arc::new(move |to| {
        let routes = routes.clone();
        Box::pin(async move {
            let (rpc, aws_kms) = &*routes;
            let addr = match to {
                Destination::Party(p) => rpc
                    .config()
                    .await
                    .map_err(std::io::Error::other)?
                    .parties
                    .into_iter()
                    .find(|party| party.index == p)
                    .map(|party| party.endpoint),
                Destination::AwsKms => aws_kms.clone(),
            }
            .ok_or_else(|| std::io::Error::other(format!("no address for {to:?}")))?;
            let s = tokio::net::TcpStream::connect(addr).await?;
            Ok(Box::new(s) as BoxIo)
        })
    })
}

/// Sealed-blob names are short and plain (no paths).
fn sealed_path(dir: &std::path::Path, name: &str) -> Option<PathBuf> {
    (!name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then(|| dir.join("sealed").join(name))
}

/// How the host answers its enclave: sealed blobs under `data_dir/sealed`, public blobs from
/// `blobs`, light blocks from `rpc`, AWS credentials from the SDK's default chain.
pub fn handler(data_dir: PathBuf, blobs: Blobs, rpc: ChainRpc) -> Handler {
    Arc::new(move |req| {
        let (data_dir, blobs, rpc) = (data_dir.clone(), blobs.clone(), rpc.clone());
        Box::pin(async move {
            match req {
                HostRequest::GetSealed { name } => match sealed_path(&data_dir, &name) {
                    None => HostResponse::Failed(format!("bad name {name:?}")),
                    Some(p) => match tokio::fs::read(&p).await {
                        Ok(b) => HostResponse::Blob(Some(b)),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            HostResponse::Blob(None)
                        }
                        Err(e) => HostResponse::Failed(e.to_string()),
                    },
                },
                HostRequest::PutSealed { name, bytes } => match sealed_path(&data_dir, &name) {
                    None => HostResponse::Failed(format!("bad name {name:?}")),
                    Some(p) => {
                        let tmp = p.with_extension("tmp");
                        let write = async {
                            if let Some(d) = p.parent() {
                                tokio::fs::create_dir_all(d).await?;
                            }
                            tokio::fs::write(&tmp, &bytes).await?;
                            tokio::fs::rename(&tmp, &p).await
                        };
                        match write.await {
                            Ok(()) => HostResponse::Stored,
                            Err(e) => HostResponse::Failed(e.to_string()),
                        }
                    }
                },
                HostRequest::FetchChunk {
                    digest,
                    offset,
                    len,
                } => match blobs
                    .get_range(&digest, offset, len.min(kms_channel::wire::CHUNK_BYTES))
                    .await
                {
                    Ok(Some((total, bytes))) => HostResponse::Chunk { total, bytes },
                    Ok(None) => HostResponse::Blob(None),
                    Err(e) => HostResponse::Failed(e.to_string()),
                },
                HostRequest::Fetch { digest } => match blobs.get(&digest).await {
                    Ok(b) => HostResponse::Blob(b),
                    Err(e) => HostResponse::Failed(e.to_string()),
                },
                HostRequest::AwsCredentials => crate::aws::credentials().await,
                HostRequest::ConfigEvidence => match async {
                    // The state after the block before the latest: its proof needs the
                    // latest block's header (so wait for a young chain's second block).
                    let mut latest = rpc.latest_height().await?;
                    for _ in 0..100 {
                        if latest >= 2 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        latest = rpc.latest_height().await?;
                    }
                    rpc.config_evidence(latest.saturating_sub(1).max(1)).await
                }
                .await
                {
                    Ok(ev) => match serde_json::to_vec(&ev) {
                        Ok(b) => HostResponse::Blob(Some(b)),
                        Err(e) => HostResponse::Failed(e.to_string()),
                    },
                    Err(e) => HostResponse::Failed(e.to_string()),
                },
                HostRequest::LightBlock { height } => match async {
                    let h = if height == 0 {
                        rpc.latest_height().await?
                    } else {
                        height
                    };
                    rpc.light_block(h).await
                }
                .await
                {
                    Ok(lb) => match serde_json::to_vec(&lb) {
                        Ok(b) => HostResponse::Blob(Some(b)),
                        Err(e) => HostResponse::Failed(e.to_string()),
                    },
                    Err(e) => HostResponse::Failed(e.to_string()),
                },
            }
        })
    })
}

/// Runs the host until it fails.
pub async fn run(a: Args) -> Result<(), ProcessError> {
    let channel_listener = a
        .channel
        .listen()
        .map_err(|e| ProcessError::Usage(e.to_string()))?;
    let peer_listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| ProcessError::Io(a.listen.clone(), e))?;
    let rpc = ChainRpc::new(&a.rpc)?;
    let blobs = Blobs::new(&a.blobs);
    let dial = dialer(rpc.clone(), a.aws_kms.clone());
    // The current enclave's channel; incoming party connections go to it.
    let current: Arc<tokio::sync::RwLock<Option<HostChannel>>> = Arc::default();
    let relay_to = current.clone();
    let limiter =
        crate::limit::PeerLimiter::new(crate::limit::MAX_PER_ADDRESS, crate::limit::MAX_INCOMING);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, from)) = peer_listener.accept().await else {
                // Out of descriptors or the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let Some(permit) = limiter.admit(from.ip()) else {
                tracing::warn!(%from, "too many relayed connections from one address; refused");
                continue;
            };
            let tcp = crate::limit::Counted::new(tcp, permit);
            match relay_to.read().await.as_ref() {
                Some(ch) => {
                    if let Err(e) = ch.relay_incoming(Box::new(tcp)).await {
                        tracing::warn!("relay: {e}");
                    }
                }
                None => drop(tcp),
            }
        }
    });
    let cursor = a.data_dir.join("cursor");
    tokio::fs::create_dir_all(&a.data_dir)
        .await
        .map_err(|e| ProcessError::Io(a.data_dir.display().to_string(), e))?;
    loop {
        tracing::info!("waiting for the enclave on {}", a.channel);
        let socket = channel_listener
            .accept()
            .await
            .map_err(|e| ProcessError::Io(a.channel.to_string(), e))?;
        let ch = HostChannel::start(
            socket,
            dial.clone(),
            handler(a.data_dir.clone(), blobs.clone(), rpc.clone()),
        );
        *current.write().await = Some(ch.clone());
        let follower = Follower::start(rpc.clone(), 1, Some(cursor.clone()), a.poll).await?;
        let mut host = PartyHost::new(follower, Arc::new(ch.clone()), blobs.clone(), a.signer);
        loop {
            let step = tokio::select! {
                s = host.step() => s,
                () = ch.closed() => break,
            };
            match step {
                Ok((h, served)) => {
                    for s in &served {
                        println!("{}", describe(h, s));
                    }
                }
                Err(e @ crate::HostError::EnclaveUnavailable { .. }) => {
                    tracing::warn!("{e}");
                    break;
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    tokio::time::sleep(a.poll).await;
                }
            }
        }
        tracing::warn!("the enclave went away");
        *current.write().await = None;
    }
}

fn describe(h: u64, s: &Served<kms_channel::mux::ChannelFailure>) -> String {
    match s {
        Served::Broadcast { id, tx_hash } => format!("height {h}: {id} answered (tx {tx_hash})"),
        Served::Skipped { id, skip } => format!("height {h}: {id} skipped ({skip:?})"),
        Served::EnclaveRefused { id, error } => {
            format!("height {h}: {id} refused by the enclave: {error}")
        }
        Served::NotBroadcast { id, error } => format!("height {h}: {id} not broadcast: {error}"),
        Served::InputMissing { id, digest, .. } => {
            format!("height {h}: {id} input {} missing", hex::encode(digest))
        }
        Served::NoEvidence { id, error } => format!("height {h}: {id} no evidence: {error}"),
    }
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
        Ok(a) => run(a).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("kms-host: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
