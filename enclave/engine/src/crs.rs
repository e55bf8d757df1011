//! CRS generation for tfhe's zero-knowledge proofs of encryption.

use crate::{config_for, EngineError};
use kms_types::ParamSetName;
use tfhe::zk::CompactPkeCrs;

/// Largest `max_num_bits` accepted (fhEVM uses 2048).
pub const MAX_CRS_BITS: u32 = 4096;

/// Generates a CRS for proofs covering up to `max_num_bits` plaintext bits under `params`.
///
/// This is the centralized generation (one party samples the trapdoor and forgets it). The
/// threshold ceremony, where every party contributes, replaces it in the DKG issue.
pub fn generate_crs(params: ParamSetName, max_num_bits: u32) -> Result<CompactPkeCrs, EngineError> {
    if max_num_bits == 0 || max_num_bits > MAX_CRS_BITS {
        return Err(EngineError::InvalidRequest(format!(
            "max_num_bits must be in 1..={MAX_CRS_BITS}, got {max_num_bits}"
        )));
    }
    crate::params::require_available(params)?;
    // tfhe refuses only parameter combinations it cannot prove for: a property of the request.
    CompactPkeCrs::from_config(config_for(params), max_num_bits as usize)
        .map_err(|e| EngineError::InvalidRequest(format!("no CRS for these parameters: {e}")))
}
