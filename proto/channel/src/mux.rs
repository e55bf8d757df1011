//! One stream, many uses: the channel multiplexer. Each side runs a reader task (frames in,
//! dispatched) and a writer task (frames out, from a bounded queue). Relayed party connections
//! appear on each side as ordinary byte streams ([`BoxIo`]), so TLS runs over them unchanged:
//! the enclave's attested TLS terminates in the enclave and the host sees only ciphertext.

use crate::wire::{
    self, Destination, Failure, FailureKind, HealthReport, HostRequest, HostResponse, PeerFrame,
    ToEnclave, ToHost, WireError, HEALTH_CHALLENGE_BYTES, PEER_CHUNK_BYTES,
};
use crate::{Job, Outcome};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// A byte stream (a socket, or one relayed connection).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A boxed byte stream.
pub type BoxIo = Box<dyn Io>;

/// Frames waiting to be written, per side.
const OUT_QUEUE: usize = 256;
/// Chunks waiting to be written into one relayed connection.
const CONN_QUEUE: usize = 64;
/// Buffer of the in-memory pipe behind each relayed connection.
const PIPE_BYTES: usize = 256 << 10;
/// Longest the enclave waits for its host to answer a request.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// Most relayed connections open at once on one channel.
pub const MAX_CONNS: usize = 256;
/// Most relayed bytes received and not yet read, over all connections of one side (the other
/// side controls them: without a shared budget, [`MAX_CONNS`] connections that are never read
/// could hold `MAX_CONNS × CONN_QUEUE × PEER_CHUNK_BYTES` = 1 GiB). A connection whose chunk does
/// not fit is closed.
pub const INBOUND_BUDGET_BYTES: usize = 64 << 20;

type Chunk = (Vec<u8>, tokio::sync::OwnedSemaphorePermit);

/// One relayed connection as the multiplexer holds it.
struct Relay {
    /// Chunks for its local end.
    tx: mpsc::Sender<Chunk>,
    /// Ends its inbound task at once: queued chunks dropped (their budget returned), the local
    /// end sees end-of-stream.
    kill: Arc<tokio::sync::Notify>,
}

/// Why the channel failed.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Reading or writing a frame failed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The channel is closed.
    #[error("channel closed")]
    Closed,
    /// Too many relayed connections are open.
    #[error("too many relayed connections")]
    TooManyConns,
    /// A connection ID already in use.
    #[error("relayed connection {0} already open")]
    DuplicateConn(u64),
    /// The other side did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
}

/// Wraps a relayed party frame into this side's outgoing message.
trait Side: Send + Sync + 'static {
    type Out: serde::Serialize + Send + Sync;
    fn peer(frame: PeerFrame) -> Self::Out;
}

struct EnclaveSide;
impl Side for EnclaveSide {
    type Out = ToHost;
    fn peer(frame: PeerFrame) -> ToHost {
        ToHost::Peer(frame)
    }
}

struct HostSide;
impl Side for HostSide {
    type Out = ToEnclave;
    fn peer(frame: PeerFrame) -> ToEnclave {
        ToEnclave::Peer(frame)
    }
}

/// What both sides share: the outgoing queue and the relayed connections.
struct Core<S: Side> {
    out: mpsc::Sender<Vec<u8>>,
    conns: Mutex<HashMap<u64, Relay>>,
    inbound: Arc<tokio::sync::Semaphore>,
    next_conn: AtomicU64,
    _side: std::marker::PhantomData<S>,
}

impl<S: Side> Core<S> {
    fn new(out: mpsc::Sender<Vec<u8>>, first_conn: u64) -> Arc<Self> {
        Arc::new(Self {
            out,
            conns: Mutex::new(HashMap::new()),
            inbound: Arc::new(tokio::sync::Semaphore::new(INBOUND_BUDGET_BYTES)),
            next_conn: AtomicU64::new(first_conn),
            _side: std::marker::PhantomData,
        })
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Relay>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn send(&self, msg: &S::Out) -> Result<(), ChannelError> {
        let frame = wire::encode(msg)?;
        self.out.send(frame).await.map_err(|_| ChannelError::Closed)
    }

    /// A new connection ID of this side (odd for the enclave, even for the host).
    fn next_id(&self) -> u64 {
        self.next_conn.fetch_add(2, Ordering::Relaxed)
    }

    /// Registers relayed connection `conn` and returns its local end: what is written to it
    /// goes out as frames, what arrives in frames can be read from it.
    fn open(self: &Arc<Self>, conn: u64) -> Result<BoxIo, ChannelError> {
        let (tx, mut rx) = mpsc::channel::<Chunk>(CONN_QUEUE);
        let kill = Arc::new(tokio::sync::Notify::new());
        {
            let mut conns = self.conns();
            if conns.len() >= MAX_CONNS {
                return Err(ChannelError::TooManyConns);
            }
            if conns.contains_key(&conn) {
                return Err(ChannelError::DuplicateConn(conn));
            }
            conns.insert(
                conn,
                Relay {
                    tx,
                    kill: kill.clone(),
                },
            );
        }
        let (local, pipe) = tokio::io::duplex(PIPE_BYTES);
        let (mut pipe_read, mut pipe_write) = tokio::io::split(pipe);
        let core = self.clone();
        // Outbound: local writes → frames.
        tokio::spawn(async move {
            let mut buf = vec![0u8; PEER_CHUNK_BYTES];
            loop {
                match pipe_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let bytes = buf.get(..n).map(<[u8]>::to_vec).unwrap_or_default();
                        if core
                            .send(&S::peer(PeerFrame::Data { conn, bytes }))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
            let _ = core.send(&S::peer(PeerFrame::Closed { conn })).await;
            core.conns().remove(&conn);
        });
        // Inbound: frames → local reads.
        tokio::spawn(async move {
            // Each chunk's share of the budget is returned once it is in the pipe, or when the
            // connection is killed (its queue dropped).
            loop {
                let next = tokio::select! {
                    () = kill.notified() => break,
                    next = rx.recv() => next,
                };
                let Some((bytes, _permit)) = next else { break };
                tokio::select! {
                    () = kill.notified() => break,
                    written = pipe_write.write_all(&bytes) => if written.is_err() { break },
                }
            }
            drop(rx);
            let _ = pipe_write.shutdown().await;
        });
        Ok(Box::new(local))
    }

    /// Ends every relayed connection (the channel is gone: a party relayed to a dead enclave
    /// must see its connection close, not hang).
    fn close_all(&self) {
        self.conns().clear();
    }

    /// Ends relayed connection `conn` now: its queued bytes are dropped (their budget
    /// returned), its local end sees end-of-stream, and the other side is told (best effort:
    /// never waiting on a full outgoing queue).
    fn kill(&self, conn: u64) {
        if let Some(relay) = self.conns().remove(&conn) {
            relay.kill.notify_one();
        }
        if let Ok(frame) = wire::encode(&S::peer(PeerFrame::Closed { conn })) {
            let _ = self.out.try_send(frame);
        }
    }

    /// Delivers a relayed frame that arrived.
    async fn deliver(&self, frame: PeerFrame) {
        match frame {
            PeerFrame::Data { conn, bytes } => {
                let tx = self.conns().get(&conn).map(|r| r.tx.clone());
                if let Some(tx) = tx {
                    // An oversized chunk, a connection whose reader does not keep up, or bytes
                    // beyond the shared budget end that connection; the channel's one reader
                    // never waits on it.
                    let permit = u32::try_from(bytes.len())
                        .ok()
                        .filter(|_| bytes.len() <= PEER_CHUNK_BYTES)
                        .and_then(|n| self.inbound.clone().try_acquire_many_owned(n).ok());
                    let sent = permit.is_some_and(|p| tx.try_send((bytes, p)).is_ok());
                    if !sent {
                        tracing::warn!(conn, "relayed connection overflowed; closed");
                        self.kill(conn);
                    }
                }
            }
            PeerFrame::Closed { conn } => {
                self.conns().remove(&conn);
            }
        }
    }
}

fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(mut w: W, mut rx: mpsc::Receiver<Vec<u8>>) {
    tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if w.write_all(&frame).await.is_err() || w.flush().await.is_err() {
                break;
            }
        }
    });
}

/// A job the host sent, with the way to answer it.
pub struct IncomingJob {
    /// The job.
    pub job: Job,
    corr: u64,
    core: Arc<Core<EnclaveSide>>,
}

impl IncomingJob {
    /// Sends the enclave's answer back to the host.
    pub async fn reply(self, result: Result<Outcome, Failure>) -> Result<(), ChannelError> {
        self.into_parts().1.reply(result).await
    }

    /// The job and the way to answer it, apart (so the job can be moved, not copied).
    pub fn into_parts(self) -> (Job, Replier) {
        (
            self.job,
            Replier {
                corr: self.corr,
                core: self.core,
            },
        )
    }
}

/// Answers one job.
pub struct Replier {
    corr: u64,
    core: Arc<Core<EnclaveSide>>,
}

impl Replier {
    /// Sends the enclave's answer back to the host.
    pub async fn reply(self, result: Result<Outcome, Failure>) -> Result<(), ChannelError> {
        self.core
            .send(&ToHost::Served {
                corr: self.corr,
                result,
            })
            .await
    }
}

type Waiting<T> = Arc<Mutex<HashMap<u64, oneshot::Sender<T>>>>;

/// How the enclave answers a health check: given the host's challenge, its report.
pub type HealthResponder = Arc<dyn Fn(&[u8]) -> Result<HealthReport, Failure> + Send + Sync>;

/// Most health checks the enclave handles at once, refusals included (each answer waits for room
/// in the bounded outgoing queue, and an accepted one costs an attestation document). Past that
/// a check is dropped unanswered: a host flooding checks only gets timeouts, and the enclave's
/// memory stays bounded whether or not the host reads its socket.
pub const MAX_HEALTH_IN_FLIGHT: usize = 4;

fn answer_health(
    core: &Arc<Core<EnclaveSide>>,
    responder: &Option<HealthResponder>,
    slots: &Arc<tokio::sync::Semaphore>,
    corr: u64,
    challenge: Vec<u8>,
) {
    // The permit lives until the answer is queued.
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        tracing::warn!("health check dropped: {MAX_HEALTH_IN_FLIGHT} already in flight");
        return;
    };
    let fail = |kind, detail: &str| {
        Err(Failure {
            kind,
            detail: detail.to_string(),
        })
    };
    let (core, responder) = (core.clone(), responder.clone());
    tokio::spawn(async move {
        let report = if challenge.len() != HEALTH_CHALLENGE_BYTES {
            fail(FailureKind::Protocol, "a health challenge is 32 bytes")
        } else if let Some(respond) = responder {
            tokio::task::spawn_blocking(move || respond(&challenge))
                .await
                .unwrap_or_else(|_| fail(FailureKind::Internal, "health responder failed"))
        } else {
            fail(FailureKind::Unsupported, "no health responder")
        };
        let _ = core.send(&ToHost::Health { corr, report }).await;
        drop(permit);
    });
}

fn take<T>(w: &Waiting<T>, corr: u64) -> Option<oneshot::Sender<T>> {
    w.lock().unwrap_or_else(|p| p.into_inner()).remove(&corr)
}

/// Registers `corr` in `waiting`, sends the question with `send`, and waits for its answer (at
/// most `timeout`, if given). The registration never outlives the call: it is removed when the
/// send fails or the wait times out (and by the reader when the answer arrives).
async fn await_answer<T>(
    waiting: &Waiting<T>,
    corr: u64,
    send: impl Future<Output = Result<(), ChannelError>>,
    timeout: Option<std::time::Duration>,
) -> Result<T, ChannelError> {
    let (tx, rx) = oneshot::channel();
    waiting
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(corr, tx);
    if let Err(e) = send.await {
        take(waiting, corr);
        return Err(e);
    }
    let answer = match timeout {
        None => rx.await,
        Some(t) => match tokio::time::timeout(t, rx).await {
            Ok(r) => r,
            Err(_) => {
                take(waiting, corr);
                return Err(ChannelError::Timeout(t));
            }
        },
    };
    answer.map_err(|_| ChannelError::Closed)
}

/// The enclave's end of the channel.
#[derive(Clone)]
pub struct EnclaveChannel {
    core: Arc<Core<EnclaveSide>>,
    requests: Waiting<HostResponse>,
    next_corr: Arc<AtomicU64>,
}

impl EnclaveChannel {
    /// Runs the enclave's end over `io`. Returns the channel (to dial parties), the jobs the host
    /// sends, and the party connections the host accepted for the enclave. Health checks are
    /// refused as unsupported.
    pub fn start(io: BoxIo) -> (Self, mpsc::Receiver<IncomingJob>, mpsc::Receiver<BoxIo>) {
        Self::start_with_health(io, None)
    }

    /// [`Self::start`], answering the host's health checks with `health` from the moment the
    /// channel is up (before the enclave serves anything, so a host can tell a booting enclave
    /// from a dead one).
    pub fn start_with_health(
        io: BoxIo,
        health: Option<HealthResponder>,
    ) -> (Self, mpsc::Receiver<IncomingJob>, mpsc::Receiver<BoxIo>) {
        let health_slots = Arc::new(tokio::sync::Semaphore::new(MAX_HEALTH_IN_FLIGHT));
        let (read, write) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
        spawn_writer(write, out_rx);
        let core = Core::<EnclaveSide>::new(out_tx, 1);
        // At most two jobs wait (each up to a frame): the host hands them one at a time anyway.
        let (jobs_tx, jobs_rx) = mpsc::channel(2);
        let (peers_tx, peers_rx) = mpsc::channel(64);
        let requests: Waiting<HostResponse> = Arc::new(Mutex::new(HashMap::new()));
        let (reader_core, reader_requests) = (core.clone(), requests.clone());
        tokio::spawn(async move {
            let mut read = read;
            loop {
                match wire::read::<ToEnclave, _>(&mut read).await {
                    Ok(Some(ToEnclave::Response { corr, response })) => {
                        if let Some(w) = take(&reader_requests, corr) {
                            let _ = w.send(response);
                        }
                    }
                    Ok(Some(ToEnclave::Serve { corr, job })) => {
                        let job = IncomingJob {
                            job: *job,
                            corr,
                            core: reader_core.clone(),
                        };
                        if jobs_tx.send(job).await.is_err() {
                            break;
                        }
                    }
                    Ok(Some(ToEnclave::PeerAccepted { conn })) => {
                        // Host-side IDs are even; anything else is the host misbehaving.
                        if conn % 2 != 0 {
                            tracing::warn!(conn, "host announced an odd connection ID");
                            continue;
                        }
                        match reader_core.open(conn) {
                            Ok(io) => {
                                let _ = peers_tx.send(io).await;
                            }
                            Err(e) => tracing::warn!(conn, "relayed connection refused: {e}"),
                        }
                    }
                    Ok(Some(ToEnclave::Peer(frame))) => reader_core.deliver(frame).await,
                    Ok(Some(ToEnclave::Health { corr, challenge })) => {
                        answer_health(&reader_core, &health, &health_slots, corr, challenge)
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!("channel from the host: {e}");
                        break;
                    }
                }
            }
            reader_requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            reader_core.close_all();
        });
        (
            Self {
                core,
                requests,
                next_corr: Arc::new(AtomicU64::new(1)),
            },
            jobs_rx,
            peers_rx,
        )
    }

    /// Asks the host for something and waits for the answer.
    pub async fn request(&self, request: HostRequest) -> Result<HostResponse, ChannelError> {
        let corr = self.next_corr.fetch_add(1, Ordering::Relaxed);
        let question = ToHost::Request { corr, request };
        let send = self.core.send(&question);
        await_answer(&self.requests, corr, send, Some(REQUEST_TIMEOUT)).await
    }

    /// Opens a relayed connection to party `party`.
    pub async fn dial(&self, party: u32) -> Result<BoxIo, ChannelError> {
        self.connect(Destination::Party(party)).await
    }

    /// Opens a relayed connection to `to` (the host maps it to an address).
    pub async fn connect(&self, to: Destination) -> Result<BoxIo, ChannelError> {
        let conn = self.core.next_id();
        let io = self.core.open(conn)?;
        self.core.send(&ToHost::Connect { conn, to }).await?;
        Ok(io)
    }
}

/// Why the host gave no nonce.
#[derive(Debug, thiserror::Error)]
enum NonceAnswer {
    #[error("the host failed: {0}")]
    Failed(String),
    #[error("the host answered another question")]
    Unexpected,
}

#[async_trait::async_trait]
impl crate::NonceSource for EnclaveChannel {
    async fn next_nonce(&self) -> Result<u64, crate::NonceError> {
        match self.request(HostRequest::Nonce).await {
            Ok(HostResponse::Nonce(n)) => Ok(n),
            Ok(HostResponse::Failed(e)) => Err(crate::NonceError::new(NonceAnswer::Failed(e))),
            Ok(_) => Err(crate::NonceError::new(NonceAnswer::Unexpected)),
            Err(e) => Err(crate::NonceError::new(e)),
        }
    }
}

/// How the host reaches a [`Destination`] (party `p`: a TCP connection to the address on
/// record; AWS KMS: its configured endpoint).
pub type Dialer = Arc<
    dyn Fn(Destination) -> Pin<Box<dyn Future<Output = std::io::Result<BoxIo>> + Send>>
        + Send
        + Sync,
>;

type Pending = Waiting<Result<Outcome, Failure>>;
type HealthPending = Waiting<Result<HealthReport, Failure>>;

/// How the host answers its enclave's [`HostRequest`]s.
pub type Handler =
    Arc<dyn Fn(HostRequest) -> Pin<Box<dyn Future<Output = HostResponse> + Send>> + Send + Sync>;

/// The host's end of the channel.
#[derive(Clone)]
pub struct HostChannel {
    core: Arc<Core<HostSide>>,
    pending: Pending,
    health: HealthPending,
    next_corr: Arc<AtomicU64>,
    closed: tokio::sync::watch::Receiver<bool>,
}

/// Copies between a relayed connection and a socket until either direction ends, then drops
/// both (a connection the enclave closed does not linger on the host's socket).
async fn splice(a: BoxIo, b: BoxIo) {
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    tokio::select! {
        _ = tokio::io::copy(&mut ar, &mut bw) => {}
        _ = tokio::io::copy(&mut br, &mut aw) => {}
    }
}

impl HostChannel {
    /// Runs the host's end over `io`; the enclave's requests to reach party p are served with
    /// `dial`, its storage and fetch requests with `handle`.
    pub fn start(io: BoxIo, dial: Dialer, handle: Handler) -> Self {
        let (read, write) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(OUT_QUEUE);
        spawn_writer(write, out_rx);
        let core = Core::<HostSide>::new(out_tx, 2);
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let health: HealthPending = Arc::new(Mutex::new(HashMap::new()));
        let (reader_core, reader_pending) = (core.clone(), pending.clone());
        let reader_health = health.clone();
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let mut read = read;
            loop {
                match wire::read::<ToHost, _>(&mut read).await {
                    Ok(Some(ToHost::Request { corr, request })) => {
                        let (handle, core) = (handle.clone(), reader_core.clone());
                        tokio::spawn(async move {
                            let response = handle(request).await;
                            let _ = core.send(&ToEnclave::Response { corr, response }).await;
                        });
                    }
                    Ok(Some(ToHost::Served { corr, result })) => {
                        let waiter = reader_pending
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&corr);
                        if let Some(w) = waiter {
                            let _ = w.send(result);
                        }
                    }
                    Ok(Some(ToHost::Connect { conn, to })) => {
                        if conn % 2 != 1 {
                            tracing::warn!(conn, "enclave asked for an even connection ID");
                            continue;
                        }
                        let local = match reader_core.open(conn) {
                            Ok(io) => io,
                            Err(e) => {
                                tracing::warn!(?to, "relay refused: {e}");
                                continue;
                            }
                        };
                        let dial = dial.clone();
                        tokio::spawn(async move {
                            match dial(to).await {
                                Ok(remote) => splice(local, remote).await,
                                Err(e) => tracing::warn!(?to, "cannot reach destination: {e}"),
                            }
                        });
                    }
                    Ok(Some(ToHost::Peer(frame))) => reader_core.deliver(frame).await,
                    Ok(Some(ToHost::Health { corr, report })) => {
                        if let Some(w) = take(&reader_health, corr) {
                            let _ = w.send(report);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!("channel from the enclave: {e}");
                        break;
                    }
                }
            }
            reader_health
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            // The enclave is gone: every waiting job fails.
            reader_pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            reader_core.close_all();
            let _ = closed_tx.send(true);
        });
        Self {
            core,
            pending,
            health,
            next_corr: Arc::new(AtomicU64::new(1)),
            closed,
        }
    }

    /// Sends a health check with `challenge` and waits (at most `timeout`) for the report. The
    /// report is the enclave's claim: the caller verifies its document (nonce, user data, root,
    /// PCRs).
    pub async fn health(
        &self,
        challenge: [u8; HEALTH_CHALLENGE_BYTES],
        timeout: std::time::Duration,
    ) -> Result<Result<HealthReport, Failure>, ChannelError> {
        let corr = self.next_corr.fetch_add(1, Ordering::Relaxed);
        let check = ToEnclave::Health {
            corr,
            challenge: challenge.to_vec(),
        };
        await_answer(&self.health, corr, self.core.send(&check), Some(timeout)).await
    }

    /// Whether the enclave's end is gone.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves once the enclave's end is gone.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Relays a party connection the host accepted to its enclave.
    pub async fn relay_incoming(&self, socket: BoxIo) -> Result<(), ChannelError> {
        if self.is_closed() {
            return Err(ChannelError::Closed);
        }
        let conn = self.core.next_id();
        let local = self.core.open(conn)?;
        self.core.send(&ToEnclave::PeerAccepted { conn }).await?;
        tokio::spawn(splice(local, socket));
        Ok(())
    }

    /// Hands a job to the enclave and waits for its answer.
    pub async fn serve(&self, job: Job) -> Result<Result<Outcome, Failure>, ChannelError> {
        let corr = self.next_corr.fetch_add(1, Ordering::Relaxed);
        let job = ToEnclave::Serve {
            corr,
            job: Box::new(job),
        };
        await_answer(&self.pending, corr, self.core.send(&job), None).await
    }
}

#[async_trait::async_trait]
impl crate::Enclave for HostChannel {
    type Error = ChannelFailure;

    async fn serve(&self, job: Job) -> Result<Outcome, ChannelFailure> {
        match HostChannel::serve(self, job).await {
            Ok(Ok(o)) => Ok(o),
            Ok(Err(f)) => Err(ChannelFailure::Enclave(f)),
            Err(e) => Err(ChannelFailure::Channel(e)),
        }
    }

    fn unavailable(error: &ChannelFailure) -> bool {
        matches!(
            error,
            ChannelFailure::Channel(_)
                | ChannelFailure::Enclave(Failure {
                    kind: crate::wire::FailureKind::Retry,
                    ..
                })
        )
    }
}

/// Why a job sent over the channel produced no outcome.
#[derive(Debug, thiserror::Error)]
pub enum ChannelFailure {
    /// The enclave refused or failed it.
    #[error("enclave: {0}")]
    Enclave(Failure),
    /// The channel failed.
    #[error("channel: {0}")]
    Channel(ChannelError),
}
