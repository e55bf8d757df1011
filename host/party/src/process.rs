//! The host process (`kms-host`, and `kms host` in the developer CLI): one party's untrusted
//! host.
//!
//! It listens for its enclaves on their channel sockets (one `--channel` per enclave: the
//! party's enclave slots), relays the enclaves' party connections (TCP on `--listen` in, out to
//! the endpoints the config contract registers), stores the enclaves' sealed blobs under
//! `--data-dir/sealed` without being able to read them, serves public blobs from `--blobs`,
//! follows the KMS chain at `--rpc` and hands each approved request to the enclave of its slot
//! ([`crate::slot_of`]), and broadcasts what the enclave signed. When an enclave goes away it
//! waits for it to come back and hands the unfinished block over again.
//!
//! **Slots and the mesh.** Slot `s` of every party forms its own attested mesh: a host opens
//! each relayed party connection with a two-byte preamble, the dialing enclave's slot and the
//! slot count, and the accepting host relays it to its own enclave of that slot. The preamble
//! is routing only (the host is untrusted either way; a misrouted connection reaches an enclave
//! that holds no session for its messages). A peer announcing another slot count is refused:
//! every party must run the same number of enclaves.

use crate::nonce::{NonceLease, Nonces};
use crate::{Blobs, PartyHost, Served, Slot};
use kms_channel::addr::ChannelAddr;
use kms_channel::mux::{BoxIo, ChannelError, ChannelFailure, Dialer, Handler, HostChannel};
use kms_channel::wire::{Destination, HostRequest, HostResponse};
use kms_channel::{Enclave, Job, NonceSource, Outcome};
use kms_connector::{ChainRpc, Follower};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    channels: Vec<ChannelAddr>,
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

/// Parses the command line (`--channel unix:PATH|vsock:CID:PORT [--channel …] --listen ADDR
/// --rpc URL --data-dir DIR --blobs DIR --signer 0x… [--poll-ms N]
/// [--aws-kms-endpoint HOST:PORT]`; one `--channel` per enclave, at most [`MAX_SLOTS`]).
pub fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, ProcessError> {
    let mut it = args.into_iter();
    let mut channels = Vec::new();
    let (mut listen, mut rpc, mut data_dir, mut blobs, mut signer) = (None, None, None, None, None);
    let mut poll = Duration::from_millis(250);
    let mut aws_kms = None;
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .ok_or_else(|| ProcessError::Usage(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--channel" => channels.push(
                val()?
                    .parse::<ChannelAddr>()
                    .map_err(|e| ProcessError::Usage(e.to_string()))?,
            ),
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
    if channels.is_empty() || channels.len() > MAX_SLOTS {
        return Err(ProcessError::Usage(format!(
            "one to {MAX_SLOTS} --channel (one per enclave)"
        )));
    }
    Ok(Args {
        channels,
        listen: need(listen, "--listen")?,
        rpc: need(rpc, "--rpc")?,
        data_dir: need(data_dir, "--data-dir")?,
        blobs: need(blobs, "--blobs")?,
        signer: need(signer, "--signer")?,
        poll,
        aws_kms,
    })
}

/// Most enclaves one host drives.
pub const MAX_SLOTS: usize = 16;

/// How long a peer host has to send its preamble.
const PREAMBLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which enclave slot a relayed party connection belongs to: the dialing enclave's slot and the
/// dialing host's slot count, the connection's first two bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preamble {
    /// The slot (below `slots`).
    pub slot: u8,
    /// How many enclaves the dialing party runs.
    pub slots: u8,
}

impl Preamble {
    /// The two bytes on the wire.
    pub fn to_bytes(self) -> [u8; 2] {
        [self.slot, self.slots]
    }

    /// Reads a peer's preamble and checks it against this host's slot count.
    pub async fn read(io: &mut BoxIo, slots: usize) -> Result<Self, PreambleError> {
        let mut b = [0u8; 2];
        tokio::time::timeout(PREAMBLE_TIMEOUT, io.read_exact(&mut b))
            .await
            .map_err(|_| PreambleError::Timeout)?
            .map_err(PreambleError::Io)?;
        let [slot, theirs] = b;
        if usize::from(theirs) != slots {
            return Err(PreambleError::SlotCount {
                theirs,
                ours: slots,
            });
        }
        if usize::from(slot) >= slots {
            return Err(PreambleError::NoSuchSlot(slot));
        }
        Ok(Self {
            slot,
            slots: theirs,
        })
    }
}

/// Why a relayed party connection was refused before reaching an enclave.
#[derive(Debug, thiserror::Error)]
pub enum PreambleError {
    /// No preamble in time.
    #[error("no preamble within {PREAMBLE_TIMEOUT:?}")]
    Timeout,
    /// The connection failed.
    #[error("reading the preamble: {0}")]
    Io(std::io::Error),
    /// The peer runs another number of enclaves: slot meshes would not match.
    #[error("the peer runs {theirs} enclaves, this party {ours}")]
    SlotCount {
        /// The peer's count.
        theirs: u8,
        /// Ours.
        ours: usize,
    },
    /// A slot this party does not have.
    #[error("no slot {0}")]
    NoSuchSlot(u8),
}

/// Where the host relays the connections of its enclave in slot `preamble.slot`: party `p` to
/// the endpoint the config contract registers for it (read from the chain at each dial, so a
/// changed party set is followed; the preamble sent first), AWS KMS to `aws_kms` (`HOST:PORT`)
/// if configured; nothing else.
pub fn dialer(rpc: ChainRpc, aws_kms: Option<String>, preamble: Preamble) -> Dialer {
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
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            if let Destination::Party(_) = to {
                s.write_all(&preamble.to_bytes()).await?;
            }
            Ok(Box::new(s) as BoxIo)
        })
    })
}

/// Sealed-blob names are short and plain (no paths).
/// Sealed-blob writes so far (names their temporary files).
static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn sealed_path(dir: &std::path::Path, name: &str) -> Option<PathBuf> {
    (!name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then(|| dir.join("sealed").join(name))
}

/// Stores sealed blob `name` whole: written to a temporary file of its own, then renamed over
/// the old one (one temporary file per write: a party's enclaves write the same names, such as
/// its light client's trust or a resharing's new state, at the same time).
async fn put_sealed(data_dir: &std::path::Path, name: &str, bytes: &[u8]) -> HostResponse {
    let Some(p) = sealed_path(data_dir, name) else {
        return HostResponse::Failed(format!("bad name {name:?}"));
    };
    let tmp = p.with_extension(format!(
        "tmp-{}",
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let write = async {
        if let Some(d) = p.parent() {
            tokio::fs::create_dir_all(d).await?;
        }
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, &p).await
    };
    match write.await {
        Ok(()) => HostResponse::Stored,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            HostResponse::Failed(e.to_string())
        }
    }
}

/// How the host answers its enclave: sealed blobs under `data_dir/sealed`, public blobs from
/// `blobs`, light blocks from `rpc`, AWS credentials from the SDK's default chain, nonces from
/// the enclave's lease `nonces`.
pub fn handler(data_dir: PathBuf, blobs: Blobs, rpc: ChainRpc, nonces: Arc<NonceLease>) -> Handler {
    Arc::new(move |req| {
        let (data_dir, blobs, rpc) = (data_dir.clone(), blobs.clone(), rpc.clone());
        let nonces = nonces.clone();
        Box::pin(async move {
            match req {
                HostRequest::Nonce => match nonces.next_nonce().await {
                    Ok(n) => HostResponse::Nonce(n),
                    Err(e) => HostResponse::Failed(e.to_string()),
                },
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
                HostRequest::PutSealed { name, bytes } => {
                    put_sealed(&data_dir, &name, &bytes).await
                }
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

/// One enclave slot of the host: the channel of the enclave connected to it now, if any.
pub struct EnclaveSlot {
    current: tokio::sync::watch::Sender<Option<HostChannel>>,
}

impl Default for EnclaveSlot {
    fn default() -> Self {
        Self {
            current: tokio::sync::watch::Sender::new(None),
        }
    }
}

impl EnclaveSlot {
    /// The live channel, if an enclave is connected.
    pub fn channel(&self) -> Option<HostChannel> {
        self.current.borrow().clone().filter(|c| !c.is_closed())
    }

    /// An enclave connected (replacing any earlier one).
    pub fn connect(&self, ch: HostChannel) {
        self.current.send_replace(Some(ch));
    }

    /// Resolves once an enclave is connected.
    pub async fn ready(&self) {
        let mut rx = self.current.subscribe();
        let _ = rx
            .wait_for(|c| c.as_ref().is_some_and(|c| !c.is_closed()))
            .await;
    }
}

#[async_trait::async_trait]
impl Enclave for EnclaveSlot {
    type Error = ChannelFailure;

    async fn serve(&self, job: Job) -> Result<Outcome, ChannelFailure> {
        let ch = self
            .channel()
            .ok_or(ChannelFailure::Channel(ChannelError::Closed))?;
        tokio::select! {
            r = Enclave::serve(&ch, job) => r,
            // An enclave that dies with the job in hand may never answer it.
            () = ch.closed() => Err(ChannelFailure::Channel(ChannelError::Closed)),
        }
    }

    fn unavailable(error: &ChannelFailure) -> bool {
        HostChannel::unavailable(error)
    }
}

/// Runs the host until it fails.
pub async fn run(a: Args) -> Result<(), ProcessError> {
    let peer_listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .map_err(|e| ProcessError::Io(a.listen.clone(), e))?;
    let rpc = ChainRpc::new(&a.rpc)?;
    let blobs = Blobs::new(&a.blobs);
    let nonces = Nonces::new(rpc.clone(), a.signer);
    tokio::fs::create_dir_all(&a.data_dir)
        .await
        .map_err(|e| ProcessError::Io(a.data_dir.display().to_string(), e))?;
    let count = a.channels.len();
    let count_u8 = u8::try_from(count).map_err(|_| ProcessError::Usage("too many slots".into()))?;
    let mut slots = Vec::with_capacity(count);
    for (i, addr) in a.channels.iter().enumerate() {
        let listener = addr
            .listen()
            .map_err(|e| ProcessError::Usage(e.to_string()))?;
        let slot = Arc::new(EnclaveSlot::default());
        let lease = Arc::new(nonces.lease());
        let preamble = Preamble {
            slot: u8::try_from(i).map_err(|_| ProcessError::Usage("too many slots".into()))?,
            slots: count_u8,
        };
        let dial = dialer(rpc.clone(), a.aws_kms.clone(), preamble);
        let answer = handler(
            a.data_dir.clone(),
            blobs.clone(),
            rpc.clone(),
            lease.clone(),
        );
        let (to, addr) = (slot.clone(), addr.clone());
        tokio::spawn(async move {
            loop {
                tracing::info!(slot = i, "waiting for an enclave on {addr}");
                match listener.accept().await {
                    Ok(socket) => {
                        to.connect(HostChannel::start(socket, dial.clone(), answer.clone()));
                        tracing::info!(slot = i, "enclave connected");
                    }
                    Err(e) => {
                        tracing::warn!(slot = i, "channel {addr}: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        slots.push(Slot {
            enclave: slot,
            nonces: lease,
        });
    }
    let enclaves: Vec<Arc<EnclaveSlot>> = slots.iter().map(|s| s.enclave.clone()).collect();
    let relay_to = Arc::new(enclaves.clone());
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
            let mut tcp: BoxIo = Box::new(crate::limit::Counted::new(tcp, permit));
            let relay_to = relay_to.clone();
            tokio::spawn(async move {
                let slot = match Preamble::read(&mut tcp, relay_to.len()).await {
                    Ok(p) => usize::from(p.slot),
                    Err(e) => {
                        tracing::warn!(%from, "party connection refused: {e}");
                        return;
                    }
                };
                match relay_to.get(slot).and_then(|s| s.channel()) {
                    Some(ch) => {
                        if let Err(e) = ch.relay_incoming(tcp).await {
                            tracing::warn!("relay: {e}");
                        }
                    }
                    None => drop(tcp),
                }
            });
        }
    });
    let cursor = a.data_dir.join("cursor");
    let follower = Follower::start(rpc.clone(), 1, Some(cursor), a.poll).await?;
    let mut host = PartyHost::new(follower, slots, blobs.clone());
    loop {
        // Every enclave up before a block is handed over (each request has one slot).
        for s in &enclaves {
            s.ready().await;
        }
        match host.step().await {
            Ok((h, served)) => {
                for s in &served {
                    println!("{}", describe(h, s));
                }
            }
            Err(e) => {
                tracing::warn!("{e}");
                tokio::time::sleep(a.poll).await;
            }
        }
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
        Served::PublishFailed { id, error } => format!("height {h}: {id} not published: {error}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn preamble_of(bytes: &[u8], slots: usize) -> Result<Preamble, PreambleError> {
        let (mut peer, ours) = tokio::io::duplex(64);
        peer.write_all(bytes).await.unwrap();
        let mut ours: BoxIo = Box::new(ours);
        Preamble::read(&mut ours, slots).await
    }

    #[tokio::test]
    async fn a_preamble_routes_to_a_slot_of_a_peer_with_the_same_count() {
        let p = Preamble { slot: 1, slots: 2 };
        assert_eq!(preamble_of(&p.to_bytes(), 2).await.unwrap(), p);
        assert_eq!(
            preamble_of(&[0, 1], 1).await.unwrap(),
            Preamble { slot: 0, slots: 1 }
        );
    }

    /// Two enclaves of a party write the same sealed name at once (each seals its light
    /// client's trust after every job; both may take a resharing's new state up): every write
    /// succeeds and the blob is one of them whole. With one shared temporary file, writes
    /// failed (renamed away under them) or left a torn blob.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_of_one_sealed_name_all_land_whole() {
        let dir = tempfile::tempdir().unwrap();
        let contents: Vec<Vec<u8>> = (0..16u8).map(|i| vec![i; 256 << 10]).collect();
        let writes: Vec<_> = contents
            .iter()
            .cloned()
            .map(|c| {
                let d = dir.path().to_path_buf();
                tokio::spawn(async move { put_sealed(&d, "state", &c).await })
            })
            .collect();
        for w in writes {
            assert!(matches!(w.await.unwrap(), HostResponse::Stored));
        }
        let stored = std::fs::read(dir.path().join("sealed").join("state")).unwrap();
        assert!(contents.contains(&stored), "a torn blob");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("sealed"))
            .unwrap()
            .collect();
        assert_eq!(left.len(), 1, "temporary files left behind");
    }

    #[tokio::test]
    async fn a_peer_with_another_slot_count_or_slot_is_refused() {
        assert!(matches!(
            preamble_of(&[0, 2], 1).await,
            Err(PreambleError::SlotCount { theirs: 2, ours: 1 })
        ));
        assert!(matches!(
            preamble_of(&[2, 2], 2).await,
            Err(PreambleError::NoSuchSlot(2))
        ));
    }

    #[tokio::test]
    async fn a_peer_that_hangs_up_before_its_preamble_is_refused() {
        let (peer, ours) = tokio::io::duplex(64);
        drop(peer);
        let mut ours: BoxIo = Box::new(ours);
        assert!(matches!(
            Preamble::read(&mut ours, 2).await,
            Err(PreambleError::Io(_))
        ));
    }

    #[test]
    fn every_slot_gets_requests() {
        let mut per_slot = [0usize; 3];
        for i in 0u8..=255 {
            let id = kms_types::RequestId::from_bytes(
                kms_types::sha3_256(&[i])[..20].try_into().unwrap(),
            );
            per_slot[crate::slot_of(&id, 3)] += 1;
        }
        assert!(per_slot.iter().all(|n| *n > 50), "{per_slot:?}");
        let id = kms_types::RequestId::from_bytes([7; 20]);
        assert_eq!(crate::slot_of(&id, 1), 0);
    }
}
