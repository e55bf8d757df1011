//! EIP-712 typed results signed with secp256k1.
//!
//! Every result the KMS produces (public-material handles, public-decryption results,
//! user-decryption responses) is an EIP-712 typed struct signed by the party's secp256k1 key, so an
//! EVM contract can check it with `ecrecover` against the party's address stored in the config
//! contract. Signatures are 65 bytes `r ‖ s ‖ v` with `v ∈ {27, 28}` and low `s` (EIP-2).
//!
//! The typed structs are defined once, in [`types`], and documented in the README.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod domain;
mod signed;
mod signer;
pub mod types;

pub use domain::DomainConfig;
pub use signed::{public_decryption_struct, SignedDecryption, SignedHandle};
pub use signer::{
    recover_prehash, recover_signer, verify_signer, Address, Eip712Error, Signature, SigningKey,
};

pub use alloy_sol_types::SolStruct;
