//! Persistence of the devnet: the genesis (with the developer-mode validator keys) and an
//! append-only block log of (time, transactions, block ID). On restart the log is replayed through
//! a fresh app, which is deterministic, and every rebuilt block ID must equal the logged one, so a
//! corrupted or edited log is detected instead of silently forking the chain.

use crate::chain::{Chain, ChainError, Genesis, ValidatorKey};
use kms_chain_types::state::Config;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use tendermint::Time;

const GENESIS_FILE: &str = "devnet-genesis.json";
const LOG_FILE: &str = "blocks.jsonl";

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Filesystem.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A file does not parse.
    #[error("{path}: {msg}")]
    Format {
        /// File.
        path: PathBuf,
        /// Why.
        msg: String,
    },
    /// Replaying the log did not reproduce a logged block.
    #[error("block {height} does not replay to its logged block ID (log corrupted or edited)")]
    Diverged {
        /// Height.
        height: u64,
    },
    /// The chain refused the genesis.
    #[error(transparent)]
    Chain(#[from] ChainError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct GenesisFile {
    chain_id: String,
    genesis_time: Time,
    /// Developer mode only: the validator secret keys, hex.
    validator_keys: Vec<String>,
    app_config: Config,
}

#[derive(Serialize, Deserialize)]
struct LogEntry {
    height: u64,
    time: Time,
    txs: Vec<String>,
    block_id: String,
}

/// A chain bound to its data directory.
pub struct PersistentChain {
    chain: Chain,
    log: File,
    log_path: PathBuf,
}

impl PersistentChain {
    /// Opens the chain in `dir`, or creates it from `fresh` if `dir` holds none.
    pub fn open_or_create(
        dir: &Path,
        fresh: impl FnOnce() -> Genesis,
    ) -> Result<Self, PersistError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let gpath = dir.join(GENESIS_FILE);
        let genesis = if gpath.exists() {
            read_genesis(&gpath)?
        } else {
            let g = fresh();
            write_genesis(&gpath, &g)?;
            g
        };
        let mut chain = Chain::new(genesis)?;
        let log_path = dir.join(LOG_FILE);
        if log_path.exists() {
            replay(&mut chain, &log_path)?;
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(&log_path))?;
        Ok(Self {
            chain,
            log,
            log_path,
        })
    }

    /// The chain.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The chain, mutably (submitting transactions; blocks go through [`Self::produce_block`]).
    pub fn chain_mut(&mut self) -> &mut Chain {
        &mut self.chain
    }

    /// Produces a block and appends it to the log (flushed to disk before returning).
    pub fn produce_block(&mut self, now: Time) -> Result<u64, PersistError> {
        let h = self.chain.produce_block(now);
        let Some(b) = self.chain.block(h) else {
            return Ok(h);
        };
        let entry = LogEntry {
            height: h,
            time: b.block.header.time,
            txs: b.block.data().iter().map(hex::encode).collect(),
            block_id: b.block_id.hash.to_string(),
        };
        let mut line = serde_json::to_vec(&entry).map_err(|e| PersistError::Format {
            path: self.log_path.clone(),
            msg: e.to_string(),
        })?;
        line.push(b'\n');
        self.log.write_all(&line).map_err(io(&self.log_path))?;
        self.log.sync_data().map_err(io(&self.log_path))?;
        Ok(h)
    }
}

fn read_genesis(path: &Path) -> Result<Genesis, PersistError> {
    let bytes = fs::read(path).map_err(io(path))?;
    let g: GenesisFile = serde_json::from_slice(&bytes).map_err(|e| PersistError::Format {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let validators = g
        .validator_keys
        .iter()
        .map(|h| {
            let mut b = [0u8; 32];
            hex::decode_to_slice(h, &mut b).map_err(|e| PersistError::Format {
                path: path.to_path_buf(),
                msg: format!("validator key: {e}"),
            })?;
            Ok(ValidatorKey::from_bytes(b))
        })
        .collect::<Result<_, PersistError>>()?;
    Ok(Genesis {
        chain_id: g.chain_id,
        genesis_time: g.genesis_time,
        validators,
        app_config: g.app_config,
    })
}

fn write_genesis(path: &Path, g: &Genesis) -> Result<(), PersistError> {
    let file = GenesisFile {
        chain_id: g.chain_id.clone(),
        genesis_time: g.genesis_time,
        validator_keys: g
            .validators
            .iter()
            .map(|k| hex::encode(k.to_bytes()))
            .collect(),
        app_config: g.app_config.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(|e| PersistError::Format {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

fn replay(chain: &mut Chain, path: &Path) -> Result<(), PersistError> {
    let file = File::open(path).map_err(io(path))?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(io(path))?;
    let count = lines.len();
    for (i, line) in lines.iter().enumerate() {
        let entry: LogEntry = match serde_json::from_str(line) {
            Ok(e) => e,
            // A torn last line (crash while appending): that block was never acknowledged.
            Err(_) if i + 1 == count => {
                tracing::warn!("ignoring a torn last line in {}", path.display());
                truncate_to(path, &lines[..i])?;
                break;
            }
            Err(e) => {
                return Err(PersistError::Format {
                    path: path.to_path_buf(),
                    msg: format!("line {}: {e}", i + 1),
                })
            }
        };
        let txs = entry
            .txs
            .iter()
            .map(hex::decode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PersistError::Format {
                path: path.to_path_buf(),
                msg: format!("line {}: {e}", i + 1),
            })?;
        let h = chain.produce_block_with(entry.time, txs);
        let rebuilt = chain.block(h).map(|b| b.block_id.hash.to_string());
        if h != entry.height || rebuilt.as_deref() != Some(entry.block_id.as_str()) {
            return Err(PersistError::Diverged {
                height: entry.height,
            });
        }
    }
    Ok(())
}

fn truncate_to(path: &Path, good: &[String]) -> Result<(), PersistError> {
    let mut out = String::new();
    for l in good {
        out.push_str(l);
        out.push('\n');
    }
    fs::write(path, out).map_err(io(path))
}
