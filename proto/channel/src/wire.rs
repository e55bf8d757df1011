//! The messages on a party's host⇄enclave channel and their framing: a 4-byte big-endian
//! length, then the message in CBOR; a frame longer than [`MAX_FRAME_BYTES`] is refused before
//! it is read.

use crate::{Job, Outcome};
use serde::{Deserialize, Serialize};

/// Longest frame either side accepts (a job carries its ciphertexts; party traffic travels in
/// chunks of at most [`PEER_CHUNK_BYTES`]).
pub const MAX_FRAME_BYTES: usize = 64 << 20;

/// Largest piece of a blob fetched with [`HostRequest::FetchChunk`].
pub const CHUNK_BYTES: u32 = 32 << 20;

/// Largest piece of a relayed party connection per frame.
pub const PEER_CHUNK_BYTES: usize = 64 << 10;

/// Party traffic relayed by the host: opaque TLS bytes of one connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerFrame {
    /// Bytes of connection `conn`.
    Data {
        /// The connection (odd: dialed by the enclave, even: accepted by the host).
        conn: u64,
        /// The bytes.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Connection `conn` ended (either direction).
    Closed {
        /// The connection.
        conn: u64,
    },
}

/// How a job failed, as far as the host needs to know (it only logs it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind:?}: {detail}")]
pub struct Failure {
    /// The category.
    pub kind: FailureKind,
    /// The enclave's description (no secret ever goes here).
    pub detail: String,
}

/// Categories of [`Failure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// The evidence did not prove the request approved.
    NotProven,
    /// The inputs handed over are not the approved ones.
    InputsNotApproved,
    /// The enclave does not serve this kind of request.
    Unsupported,
    /// The protocol with the other parties failed or refused.
    Protocol,
    /// Anything else inside the enclave.
    Internal,
    /// Something the job needed from the host failed for now (no nonce for its transaction):
    /// the host hands the job over again.
    Retry,
}

/// What the enclave asks its host for (storage and public data; the host is untrusted, so
/// everything it returns is checked: sealed blobs by their AEAD, fetched blobs by digest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostRequest {
    /// A sealed blob by name.
    GetSealed {
        /// Its name.
        name: String,
    },
    /// Store a sealed blob under a name.
    PutSealed {
        /// Its name.
        name: String,
        /// The sealed bytes.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// A public blob by SHA3-256 digest (ciphertexts, public keys).
    Fetch {
        /// The digest.
        digest: [u8; 32],
    },
    /// A piece of a public blob too large for one frame (a server key): `len` bytes from
    /// `offset`; answered with [`HostResponse::Chunk`]. The enclave checks the whole blob's
    /// digest once assembled.
    FetchChunk {
        /// The blob's digest.
        digest: [u8; 32],
        /// Where the piece starts.
        offset: u64,
        /// Its length (at most [`CHUNK_BYTES`]).
        len: u32,
    },
    /// The chain's light block at `height` (CometBFT JSON), checked by the light client.
    LightBlock {
        /// The height (0: the latest).
        height: u64,
    },
    /// The config contract's record with its ICS23 proof as of a recent height, and the light
    /// block committing it (JSON of `kms_light_client::ConfigEvidence`), checked by the light
    /// client: the parties and their registered identities come from it.
    ConfigEvidence,
    /// The host's AWS credentials (its instance role's), for the enclave to sign its own AWS
    /// KMS requests with. They authorize nothing on their own: the key policy releases data keys
    /// only to an attested enclave, and only over TLS that terminates in the enclave.
    AwsCredentials,
    /// The nonce for the transaction the enclave is about to sign (see
    /// [`crate::NonceSource`]); answered with [`HostResponse::Nonce`].
    Nonce,
}

/// Where a relayed connection goes. The enclave names a destination; the host alone maps it to
/// an address (party addresses on record, the AWS KMS endpoint in its configuration), so the
/// enclave can reach nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Destination {
    /// Party `p`'s host (1-based), which relays to that party's enclave.
    Party(u32),
    /// The AWS KMS endpoint (TLS to it terminates in the enclave).
    AwsKms,
}

/// AWS credentials as the host hands them over (a role's temporary credentials).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwsCredentials {
    /// The access key ID.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token of temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The host's answer to a [`HostRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostResponse {
    /// The blob, if the host has it.
    Blob(#[serde(with = "serde_bytes")] Option<Vec<u8>>),
    /// A piece of a blob and the blob's total length.
    Chunk {
        /// The blob's length.
        total: u64,
        /// The piece.
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    /// Stored.
    Stored,
    /// The answer to [`HostRequest::AwsCredentials`].
    AwsCredentials(AwsCredentials),
    /// The answer to [`HostRequest::Nonce`].
    Nonce(u64),
    /// The host failed (its description).
    Failed(String),
}

/// Length of a health challenge.
pub const HEALTH_CHALLENGE_BYTES: usize = 32;

/// How far an enclave has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Connected to its host, not yet serving (unsealing, anchoring its light client, meshing).
    Booting,
    /// Serving jobs.
    Serving,
}

impl Phase {
    /// The user data the enclave of party `party` binds into its health document in this
    /// phase, so that the phase and the party it reports are attested too (a host running
    /// several enclaves cannot answer for one with another's document).
    pub fn user_data(self, party: u32) -> Vec<u8> {
        let phase = match self {
            Self::Booting => "booting",
            Self::Serving => "serving",
        };
        format!("kms-enclave health: party {party}, {phase}").into_bytes()
    }
}

/// The enclave's answer to a health check: its phase and an attestation document with the
/// host's challenge as nonce and [`Phase::user_data`] (phase and party) as user data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The phase.
    pub phase: Phase,
    /// The attestation document (COSE_Sign1).
    #[serde(with = "serde_bytes")]
    pub document: Vec<u8>,
}

/// Host → enclave.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToEnclave {
    /// The answer to [`ToHost::Request`] with the same `corr`.
    Response {
        /// Correlation number.
        corr: u64,
        /// The answer.
        response: HostResponse,
    },
    /// Serve a job; answer with [`ToHost::Served`] carrying the same `corr`.
    Serve {
        /// Correlation number.
        corr: u64,
        /// The job.
        job: Box<Job>,
    },
    /// The host accepted a party connection for the enclave (an even `conn`).
    PeerAccepted {
        /// The connection.
        conn: u64,
    },
    /// Relayed party traffic.
    Peer(PeerFrame),
    /// A health check: answer with [`ToHost::Health`] carrying the same `corr`.
    Health {
        /// Correlation number.
        corr: u64,
        /// The host's fresh challenge ([`HEALTH_CHALLENGE_BYTES`]).
        #[serde(with = "serde_bytes")]
        challenge: Vec<u8>,
    },
}

/// Enclave → host.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToHost {
    /// A request for the host; answered by [`ToEnclave::Response`] with the same `corr`.
    Request {
        /// Correlation number.
        corr: u64,
        /// What is asked.
        request: HostRequest,
    },
    /// The answer to [`ToEnclave::Serve`].
    Served {
        /// Its correlation number.
        corr: u64,
        /// What the enclave did.
        result: Result<Outcome, Failure>,
    },
    /// Open a relayed connection `conn` (odd) to `to`.
    Connect {
        /// The connection.
        conn: u64,
        /// Where to.
        to: Destination,
    },
    /// Relayed party traffic.
    Peer(PeerFrame),
    /// The answer to [`ToEnclave::Health`].
    Health {
        /// Its correlation number.
        corr: u64,
        /// The report, or why there is none.
        report: Result<HealthReport, Failure>,
    },
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The channel failed.
    #[error("channel I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A frame announced more than [`MAX_FRAME_BYTES`].
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    /// A frame does not decode as a message.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Encodes one message as a frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let mut body = Vec::new();
    ciborium::into_writer(msg, &mut body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME_BYTES {
        return Err(WireError::TooLarge(body.len()));
    }
    let len = u32::try_from(body.len()).map_err(|_| WireError::TooLarge(body.len()))?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// Reads one frame's message; `None` at a clean end of stream.
pub async fn read<T, R>(r: &mut R) -> Result<Option<T>, WireError>
where
    T: for<'de> Deserialize<'de>,
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME_BYTES {
        return Err(WireError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    ciborium::from_reader(body.as_slice())
        .map(Some)
        .map_err(|e| WireError::Malformed(e.to_string()))
}
