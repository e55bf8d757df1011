/// Why a chain operation failed. The host retries or reports; it never decides anything from
/// these.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The RPC endpoint failed or answered with an error.
    #[error("CometBFT RPC: {0}")]
    Rpc(#[from] tendermint_rpc::Error),
    /// The endpoint's answer lacks something the call needs.
    #[error("RPC answer without {0}")]
    Missing(&'static str),
    /// The node refused a transaction (CheckTx) with this code.
    #[error("transaction refused by CheckTx (code {code}): {log}")]
    Refused {
        /// The app's code.
        code: u32,
        /// The app's log.
        log: String,
    },
    /// A height does not fit CometBFT's types.
    #[error("bad height {0}")]
    Height(u64),
    /// A stored account record does not decode.
    #[error("account record: {0}")]
    Account(String),
    /// The stored config record does not decode.
    #[error("config record: {0}")]
    Config(String),
    /// The cursor file could not be read or written.
    #[error("cursor {path}: {source}")]
    Cursor {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}
