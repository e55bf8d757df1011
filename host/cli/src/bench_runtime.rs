//! `kms bench-runtime`: where the time of a public decryption goes, with the four parties as
//! enclave and host processes on a devnet (test parameters).
//!
//! Each run submits one public decryption of an `FheUint8` (`broadcast_tx_sync`) and polls the
//! chain every 20 ms until the request is complete. The parties' logs give, per party:
//! * **chain wait**: submission → the host hands the job to its enclave (inclusion in a block,
//!   the next block, whose header proves the state, the host's poll, fetching the evidence and
//!   the ciphertext);
//! * **verification**: the enclave's clock reading, light-client verification of the header
//!   chain and the ICS23 proof of approval;
//! * **squash**: noise squashing of the ciphertext under the party's server key;
//! * **MPC**: the threshold round (masked shares exchanged over attested TLS, robust opening,
//!   EIP-712 signing of the plaintext);
//! * **fulfillment**: signing the transaction, broadcasting it, inclusion, and the chain
//!   counting t + 1 agreeing results, until the client's poll sees completion.
//!
//! Per request, each phase is the median over the parties (fulfillment: completion minus the
//! median party's broadcast); the report gives the median over requests of each, next to the
//! median end-to-end latency, as a share of it. A phase's share is its ratio to that baseline.
//!
//! **Throughput** (`--batch N`, `--batch-runs R`): a batch of N public decryptions (one
//! `FheUint8` each) submitted back to back (`broadcast_tx_sync`, in nonce order), timed from the
//! first submission until the client's poll (every 20 ms) sees all N complete; R batches on a
//! network whose parties run one enclave each (the baseline), then R on a fresh network whose
//! parties run two, whose hosts hand each request to one of them by its ID. Ciphertext
//! encryption, blob upload and the ACL grant happen before the timed region; the network's
//! start and its keygen request outside it.

use crate::bench::Comparison;
use crate::demo_threshold::{DealtKeySet, TimedDecryption};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why the benchmark stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchRuntimeError {
    /// The network or a request failed.
    #[error("{0}")]
    Run(String),
    /// The parties' logs lack a line for a request.
    #[error("party {party} logged no {what} for request {request}")]
    MissingLog {
        /// The party.
        party: usize,
        /// Which line.
        what: &'static str,
        /// The request.
        request: String,
    },
}

/// What one party logged about one request, milliseconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartyTimes {
    /// Wall clock when its host handed the job over.
    pub handed_unix_ms: Option<u64>,
    /// Verification.
    pub verify_ms: Option<f64>,
    /// Squashing.
    pub squash_ms: Option<f64>,
    /// The threshold round.
    pub mpc_ms: Option<f64>,
    /// Signing the transaction.
    pub sign_ms: Option<f64>,
    /// Wall clock when its host broadcast the answer.
    pub broadcast_unix_ms: Option<u64>,
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=");
    let at = line.find(&key)? + key.len();
    line.get(at..)?.split_whitespace().next()
}

/// Reads the timing lines of a host's and an enclave's logs, by request ID.
pub fn read_logs(host_log: &str, enclave_log: &str) -> BTreeMap<String, PartyTimes> {
    let mut out: BTreeMap<String, PartyTimes> = BTreeMap::new();
    for raw in host_log.lines().chain(enclave_log.lines()) {
        let line = strip_ansi(raw);
        let Some(request) = field(&line, "request") else {
            continue;
        };
        let entry = out.entry(request.to_string()).or_default();
        let ms = |name| field(&line, name).and_then(|v| v.parse::<u64>().ok());
        let us = |name| ms(name).map(|v| v as f64 / 1e3);
        if line.contains("job handed to the enclave") {
            // The first hand-over (a host may hand a job again after its enclave restarts).
            entry.handed_unix_ms = entry.handed_unix_ms.or(ms("at_unix_ms"));
        } else if line.contains("fulfillment broadcast") {
            entry.broadcast_unix_ms = entry.broadcast_unix_ms.or(ms("at_unix_ms"));
        } else if line.contains("phase timings") {
            entry.verify_ms = us("verify_us");
            entry.squash_ms = us("squash_us");
            entry.mpc_ms = us("mpc_us");
            entry.sign_ms = us("sign_us");
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// One request's split, milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Split {
    /// Submission → job handed over.
    pub chain_wait: f64,
    /// Verification in the enclave.
    pub verify: f64,
    /// Squashing.
    pub squash: f64,
    /// The threshold round.
    pub mpc: f64,
    /// Signing, broadcast, inclusion, completion.
    pub fulfillment: f64,
    /// Submission → seen complete.
    pub total: f64,
}

/// The split of one timed request from the parties' times.
pub fn split(t: &TimedDecryption, parties: &[PartyTimes]) -> Option<Split> {
    let get = |f: &dyn Fn(&PartyTimes) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = parties.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(v))
    };
    let handed = get(&|p| p.handed_unix_ms.map(|v| v as f64))?;
    let broadcast = get(&|p| p.broadcast_unix_ms.map(|v| v as f64))?;
    let sign = get(&|p| p.sign_ms)?;
    Some(Split {
        chain_wait: handed - t.submitted_unix_ms as f64,
        verify: get(&|p| p.verify_ms)?,
        squash: get(&|p| p.squash_ms)?,
        mpc: get(&|p| p.mpc_ms)?,
        fulfillment: sign + (t.done_unix_ms as f64 - broadcast),
        total: t.elapsed.as_secs_f64() * 1e3,
    })
}

/// Peak and current resident memory of a process, KiB (`VmHWM`, `VmRSS`).
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let get = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((get("VmHWM:")?, get("VmRSS:")?))
}

/// The report: the phases as comparisons against the end-to-end latency, and each enclave's
/// and host's memory (peak, current; KiB).
pub struct Report {
    /// Median of each phase against the median end-to-end latency.
    pub phases: Vec<Comparison>,
    /// (party, enclave peak, enclave current, host peak, host current), KiB.
    pub memory: Vec<(usize, u64, u64, u64, u64)>,
    /// The batch with two enclaves per party against one, if a batch was asked for.
    pub batch: Option<BatchReport>,
}

/// Throughput of a batch of public decryptions with one and with two enclaves per party.
pub struct BatchReport {
    /// Requests per batch.
    pub size: usize,
    /// Two enclaves per party against one (median batch time of each).
    pub comparison: Comparison,
    /// Requests per second (median batch), one enclave per party.
    pub one_per_s: f64,
    /// Requests per second (median batch), two enclaves per party.
    pub two_per_s: f64,
    /// With two enclaves: (party, slot, enclave peak RSS KiB).
    pub memory: Vec<(usize, usize, u64)>,
}

/// `runs` batches of `size` public decryptions on a fresh network whose parties run
/// `enclaves` enclaves each; the batch times and each enclave's peak memory.
async fn batches(
    kms: &Path,
    dealt: &DealtKeySet,
    dir: &Path,
    block_ms: u64,
    size: usize,
    runs: usize,
    enclaves: usize,
) -> Result<(Vec<Duration>, Vec<(usize, usize, u64)>), BenchRuntimeError> {
    let err = |e: &dyn std::fmt::Display| BenchRuntimeError::Run(e.to_string());
    let mut net = dealt
        .start_network(
            kms,
            dir.to_path_buf(),
            Duration::from_millis(block_ms),
            enclaves,
        )
        .await
        .map_err(|e| err(&e))?;
    let mut times = Vec::with_capacity(runs);
    for run in 0..runs {
        let values: Vec<u128> = (0..size)
            .map(|i| ((run * size + i) % 251) as u128 + 1)
            .collect();
        let cts = values
            .iter()
            .map(|v| dealt.encrypt_uint8(*v).map_err(|e| err(&e)))
            .collect::<Result<Vec<_>, _>>()?;
        let b = net
            .timed_public_decryption_batch(cts)
            .await
            .map_err(|e| err(&e))?;
        for (got, want) in b.plaintexts.iter().zip(&values) {
            if *got != want.to_string() {
                return Err(BenchRuntimeError::Run(format!(
                    "decrypted {got}, encrypted {want}"
                )));
            }
        }
        times.push(b.elapsed);
    }
    let memory = (0..net.parties.parties.len())
        .flat_map(|i| {
            net.parties
                .enclave_pids(i)
                .into_iter()
                .enumerate()
                .filter_map(move |(s, pid)| Some((i + 1, s, memory_kib(pid?)?.0)))
        })
        .collect();
    Ok((times, memory))
}

/// The batch throughput with one and with two enclaves per party (see the module docs).
pub async fn batch_report(
    kms: &Path,
    dealt: &DealtKeySet,
    dir: &Path,
    block_ms: u64,
    size: usize,
    runs: usize,
) -> Result<BatchReport, BenchRuntimeError> {
    let (one, _) = batches(kms, dealt, &dir.join("one"), block_ms, size, runs, 1).await?;
    let (two, memory) = batches(kms, dealt, &dir.join("two"), block_ms, size, runs, 2).await?;
    let secs = |v: &[Duration]| median(v.iter().map(Duration::as_secs_f64).collect());
    let (t1, t2) = (secs(&one), secs(&two));
    let per_s = |t: f64| if t > 0.0 { size as f64 / t } else { 0.0 };
    Ok(BatchReport {
        size,
        comparison: Comparison {
            name: format!("batch of {size} public decryptions, 2 enclaves per party"),
            kms_s: t2,
            baseline_s: t1,
            baseline: "the same batch, 1 enclave per party".into(),
            ratio: if t1 > 0.0 { t2 / t1 } else { 0.0 },
            runs,
        },
        one_per_s: per_s(t1),
        two_per_s: per_s(t2),
        memory,
    })
}

/// Runs `runs` public decryptions on a devnet with `block_ms` between blocks and the parties
/// as processes of `kms`; then, if `batch` > 0, `batch_runs` batches of `batch` with one and
/// with two enclaves per party.
pub async fn run(
    kms: &Path,
    runs: usize,
    block_ms: u64,
    batch: usize,
    batch_runs: usize,
) -> Result<Report, BenchRuntimeError> {
    let err = |e: &dyn std::fmt::Display| BenchRuntimeError::Run(e.to_string());
    let dir = tempfile::tempdir().map_err(|e| err(&e))?;
    let dealt = DealtKeySet::test("bench-runtime").map_err(|e| err(&e))?;
    let mut net = dealt
        .start_network(
            kms,
            dir.path().join("net"),
            Duration::from_millis(block_ms),
            1,
        )
        .await
        .map_err(|e| err(&e))?;
    let mut timed = Vec::with_capacity(runs);
    for i in 0..runs {
        let value = (i % 200) as u128 + 1;
        let ct = dealt.encrypt_uint8(value).map_err(|e| err(&e))?;
        let t = net
            .timed_public_decryption_at(ct)
            .await
            .map_err(|e| err(&e))?;
        if t.plaintext != value.to_string() {
            return Err(BenchRuntimeError::Run(format!(
                "decrypted {}, encrypted {value}",
                t.plaintext
            )));
        }
        timed.push(t);
    }
    // Late answers (the parties beyond t + 1) are logged shortly after completion.
    tokio::time::sleep(Duration::from_millis(2 * block_ms + 500)).await;

    let dirs: Vec<PathBuf> = net.parties.parties.iter().map(|p| p.dir.clone()).collect();
    let logs: Vec<BTreeMap<String, PartyTimes>> = dirs
        .iter()
        .map(|d| {
            let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap_or_default();
            read_logs(&read("host.log"), &read("enclave.log"))
        })
        .collect();
    let mut splits = Vec::with_capacity(timed.len());
    for t in &timed {
        let key = t.id.to_string();
        let per_party: Vec<PartyTimes> = logs
            .iter()
            .map(|l| l.get(&key).cloned().unwrap_or_default())
            .collect();
        let s = split(t, &per_party).ok_or_else(|| BenchRuntimeError::MissingLog {
            party: per_party
                .iter()
                .position(|p| p.mpc_ms.is_none())
                .map_or(0, |i| i + 1),
            what: "timing line",
            request: key.clone(),
        })?;
        splits.push(s);
    }
    let memory = net
        .parties
        .pids()
        .iter()
        .enumerate()
        .filter_map(|(i, (host, enclave))| {
            let (ep, ec) = memory_kib((*enclave)?)?;
            let (hp, hc) = memory_kib((*host)?)?;
            Some((i + 1, ep, ec, hp, hc))
        })
        .collect();
    drop(net);

    let total = median(splits.iter().map(|s| s.total).collect()) / 1e3;
    let phase = |name: &str, f: fn(&Split) -> f64| {
        let v = median(splits.iter().map(f).collect()) / 1e3;
        Comparison {
            name: name.into(),
            kms_s: v,
            baseline_s: total,
            baseline: "end-to-end latency (median)".into(),
            ratio: if total > 0.0 { v / total } else { 0.0 },
            runs,
        }
    };
    Ok(Report {
        phases: vec![
            phase("chain wait", |s| s.chain_wait),
            phase("verification", |s| s.verify),
            phase("squash", |s| s.squash),
            phase("MPC", |s| s.mpc),
            phase("fulfillment", |s| s.fulfillment),
            phase("end to end", |s| s.total),
        ],
        memory,
        batch: if batch > 0 {
            Some(
                batch_report(
                    kms,
                    &dealt,
                    &dir.path().join("batch"),
                    block_ms,
                    batch,
                    batch_runs.max(1),
                )
                .await?,
            )
        } else {
            None
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_lines_the_host_and_the_enclave_write() {
        let host = "2026-12-07T06:50:00Z  \u{1b}[32m INFO\u{1b}[0m kms_host::serve: \u{1b}[3mrequest\u{1b}[0m\u{1b}[2m=\u{1b}[0mab12 \u{1b}[3mat_unix_ms\u{1b}[0m\u{1b}[2m=\u{1b}[0m1000 job handed to the enclave\n\
                    x INFO kms_host::serve: request=ab12 at_unix_ms=1900 fulfillment broadcast\n\
                    x INFO kms_host::serve: request=ab12 at_unix_ms=5000 job handed to the enclave\n";
        let enclave = "x INFO kms_runtime::party: phase timings request=ab12 verify_us=2500 squash_us=100000 mpc_us=600000 sign_us=300\n";
        let l = read_logs(host, enclave);
        assert_eq!(
            l.get("ab12"),
            Some(&PartyTimes {
                handed_unix_ms: Some(1000),
                verify_ms: Some(2.5),
                squash_ms: Some(100.0),
                mpc_ms: Some(600.0),
                sign_ms: Some(0.3),
                broadcast_unix_ms: Some(1900),
            })
        );
        let t = TimedDecryption {
            id: kms_types::RequestId::from_bytes([0; 20]),
            elapsed: Duration::from_millis(2400),
            submitted_unix_ms: 100,
            done_unix_ms: 2500,
            plaintext: "1".into(),
        };
        let s = split(&t, &[l["ab12"].clone()]).unwrap();
        assert_eq!(s.chain_wait, 900.0);
        assert_eq!(s.fulfillment, 600.3);
        assert_eq!(s.total, 2400.0);
    }
}
