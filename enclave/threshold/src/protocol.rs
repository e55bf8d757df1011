//! The decryption round over a [`Transport`]: compute, broadcast, gather until the deadline,
//! combine. A party that is silent past the deadline, or whose message does not decode, counts
//! as absent; one whose shares are wrong is named as a cheater.
//!
//! Round logic and the opening rule: the party waits for every other party's shares until the
//! deadline (never opening on the first `t + 1` that arrive, which could be its own and `t`
//! corrupt ones), then opens only if at least `2t + 1` received shares agree; otherwise it
//! refuses with [`ThresholdError::Open`] naming the missing parties.

use crate::wire::{decode_partials, encode_partials};
use crate::{
    combine, partial_decrypt, DecryptionSession, FloodingParams, SnsKeyShare, SquashedCiphertext,
    ThresholdError,
};
use kms_algebra::prss::Prss;
use kms_engine::Plaintext;
use kms_transport::{broadcast, gather, Transport};
use std::time::Duration;

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
    let mine = encode_partials(&partial_decrypt(key, prss, fp, session, ct)?);
    let sid = session.id();
    broadcast(net, &sid, &mine).await;
    let mut got = gather(net, &sid, deadline).await;
    if let Some(slot) = got.get_mut(net.me().wrapping_sub(1)) {
        *slot = Some(mine);
    }
    let received: Vec<Option<Vec<crate::Share>>> = got
        .iter()
        .map(|m| m.as_ref().and_then(|b| decode_partials(b, ct.blocks.len())))
        .collect();
    let absent = received
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_none())
        .map(|(i, _)| i + 1)
        .collect();
    let (plaintext, cheaters) = combine(&received, fp, &ct.layout())?;
    Ok(RoundOutcome {
        plaintext,
        cheaters,
        absent,
    })
}
