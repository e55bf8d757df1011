//! The EIP-712 domain.

use alloy_primitives::{Address as AlloyAddress, U256};
use alloy_sol_types::Eip712Domain;

/// The configurable EIP-712 domain: which contract and chain the signatures are meant for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DomainConfig {
    /// `name`, e.g. `"KMS"`.
    pub name: String,
    /// `version`, e.g. `"1"`.
    pub version: String,
    /// `chainId` of the chain holding the verifying contract.
    pub chain_id: u64,
    /// `verifyingContract`, the contract that checks the signatures.
    pub verifying_contract: [u8; 20],
}

impl Default for DomainConfig {
    /// The developer-mode domain: name `KMS`, version `1`, chain 31337 (local EVM), contract
    /// `0x…01`.
    fn default() -> Self {
        let mut c = [0u8; 20];
        c[19] = 1;
        Self {
            name: "KMS".into(),
            version: "1".into(),
            chain_id: 31337,
            verifying_contract: c,
        }
    }
}

impl DomainConfig {
    /// The alloy domain used for hashing.
    pub fn to_domain(&self) -> Eip712Domain {
        Eip712Domain::new(
            Some(self.name.clone().into()),
            Some(self.version.clone().into()),
            Some(U256::from(self.chain_id)),
            Some(AlloyAddress::from(self.verifying_contract)),
            None,
        )
    }

    /// The domain separator (`hashStruct(EIP712Domain)`).
    pub fn separator(&self) -> [u8; 32] {
        self.to_domain().separator().0
    }
}
