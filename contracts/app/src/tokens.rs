//! Tokens: balances, the faucet, transfers, fee escrow and payouts.

use crate::ctx::Ctx;
use crate::error::TxError;
use kms_chain_types::state::{keys, Account};
use kms_chain_types::Address;

/// Loads an account (absent = empty).
pub fn account(ctx: &Ctx<'_>, addr: &Address) -> Result<Account, TxError> {
    Ok(ctx.get(&keys::account(addr))?.unwrap_or_default())
}

/// Stores an account.
pub fn store(ctx: &mut Ctx<'_>, addr: &Address, acct: &Account) {
    ctx.put(keys::account(addr), acct);
}

/// Adds tokens.
pub fn credit(ctx: &mut Ctx<'_>, addr: &Address, amount: u128) -> Result<(), TxError> {
    let mut a = account(ctx, addr)?;
    a.balance = a
        .balance
        .checked_add(amount)
        .ok_or_else(|| TxError::Invalid("balance overflow".into()))?;
    store(ctx, addr, &a);
    Ok(())
}

/// Removes tokens.
pub fn debit(ctx: &mut Ctx<'_>, addr: &Address, amount: u128) -> Result<(), TxError> {
    let mut a = account(ctx, addr)?;
    if a.balance < amount {
        return Err(TxError::InsufficientFunds {
            need: amount,
            have: a.balance,
        });
    }
    a.balance -= amount;
    store(ctx, addr, &a);
    Ok(())
}

/// Mints test tokens, at most `max` per call.
pub fn faucet(ctx: &mut Ctx<'_>, to: &Address, amount: u128, max: u128) -> Result<(), TxError> {
    if amount == 0 || amount > max {
        return Err(TxError::Invalid(format!(
            "faucet amount must be in 1..={max}, got {amount}"
        )));
    }
    credit(ctx, to, amount)?;
    ctx.emit(
        "faucet",
        &[("to", hex::encode(to)), ("amount", amount.to_string())],
    );
    Ok(())
}

/// Moves tokens.
pub fn transfer(
    ctx: &mut Ctx<'_>,
    from: &Address,
    to: &Address,
    amount: u128,
) -> Result<(), TxError> {
    debit(ctx, from, amount)?;
    credit(ctx, to, amount)
}

/// Splits `amount` among `payees` equally; the remainder goes to the first.
pub fn pay_out(ctx: &mut Ctx<'_>, amount: u128, payees: &[Address]) -> Result<(), TxError> {
    let Some(first) = payees.first() else {
        return Ok(());
    };
    let each = amount / payees.len() as u128;
    let rest = amount - each * payees.len() as u128;
    for p in payees {
        credit(ctx, p, each)?;
    }
    credit(ctx, first, rest)
}
