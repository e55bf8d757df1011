//! The decryption round over a [`Transport`]: compute, broadcast, gather until the deadline,
//! combine. A party that is silent past the deadline, or whose message does not decode, counts
//! as absent; one whose shares are wrong is named as a cheater.
//!
//! Round logic and the opening rule: a party never opens on the first `t + 1` shares that
//! arrive (they could be its own and `t` corrupt ones). It collects shares until one of:
//! * at least `2t + 1` usable shares arrived and they all agree, block by block (the opening
//!   rule is met and no further share can change the value; senders heard from later are not
//!   checked, so a corrupt party may go unnamed);
//! * every party delivered;
//! * the deadline passed.
//!
//! and then opens under the rule (at least `2t + 1` agreeing shares, correcting wrong ones), or
//! refuses with [`ThresholdError::Open`] naming the missing parties.

use crate::wire::{decode_partials, encode_partials};
use crate::{
    combine, partial_decrypt, DecryptionSession, FloodingParams, SnsKeyShare, SquashedCiphertext,
    ThresholdError,
};
use kms_algebra::prss::Prss;
use kms_engine::Plaintext;
use kms_party_net::{broadcast, Transport};
use std::time::Duration;

/// How often a round looks for newly arrived shares.
const POLL: Duration = Duration::from_millis(2);

/// The outcome of one party's run of a decryption round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundOutcome {
    /// The plaintext.
    pub plaintext: Plaintext,
    /// Parties whose shares were wrong.
    pub cheaters: Vec<usize>,
    /// Parties that sent nothing usable in time.
    pub absent: Vec<usize>,
}

/// Runs one threshold public-decryption round for this party.
pub async fn decrypt_round(
    net: &dyn Transport,
    key: &SnsKeyShare,
    prss: &Prss<u128, 4>,
    fp: &FloodingParams,
    session: &DecryptionSession,
    ct: &SquashedCiphertext,
    deadline: Duration,
) -> Result<RoundOutcome, ThresholdError> {
    let start = tokio::time::Instant::now();
    let partials = partial_decrypt(key, prss, fp, session, ct)?;
    let mine = encode_partials(&partials);
    let sid = session.id();
    broadcast(net, &sid, &mine).await;
    let (n, me) = (net.n(), net.me());
    let layout = ct.layout();
    // received[p − 1]: party p's decoded partials; heard[p − 1]: whether it sent anything.
    let mut received: Vec<Option<Vec<crate::Share>>> = vec![None; n];
    let mut heard = vec![false; n];
    if let (Some(r), Some(h)) = (
        received.get_mut(me.wrapping_sub(1)),
        heard.get_mut(me.wrapping_sub(1)),
    ) {
        *r = Some(partials);
        *h = true;
    }
    loop {
        let mut arrived = false;
        for from in (1..=n).filter(|&p| p != me) {
            let Some(h) = heard.get_mut(from - 1) else {
                continue;
            };
            if *h {
                continue;
            }
            if let Ok(m) = net.recv(from, &sid, Duration::ZERO).await {
                *h = true;
                arrived = true;
                if let Some(slot) = received.get_mut(from - 1) {
                    *slot = decode_partials(&m, ct.blocks.len());
                }
            }
        }
        if heard.iter().all(|h| *h) || start.elapsed() >= deadline {
            break;
        }
        let usable = received.iter().filter(|r| r.is_some()).count();
        if arrived && usable > 2 * fp.t {
            if let Ok((_, cheaters)) = combine(&received, fp, &layout) {
                if cheaters.is_empty() {
                    break;
                }
            }
        }
        tokio::time::sleep(POLL.min(deadline.saturating_sub(start.elapsed()))).await;
    }
    for (p, h) in heard.iter().enumerate() {
        if !h {
            tracing::warn!(
                from = p + 1,
                "no share by the time of opening; treating party as absent"
            );
        }
    }
    let absent = received
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_none())
        .map(|(i, _)| i + 1)
        .collect();
    let (plaintext, cheaters) = combine(&received, fp, &layout)?;
    Ok(RoundOutcome {
        plaintext,
        cheaters,
        absent,
    })
}
