//! FHE parameter sets.

use crate::EngineError;
use kms_types::ParamSetName;
use tfhe::shortint::parameters::{
    ClassicPBSParameters, NoiseSquashingParameters,
    COMP_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
    NOISE_SQUASHING_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
    PARAM_KEYSWITCH_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
    PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
    PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
};
#[cfg(feature = "insecure-dev")]
use tfhe::shortint::parameters::{
    DynamicDistribution, GlweDimension, LweDimension, NoiseSquashingClassicParameters,
    PolynomialSize,
};
use tfhe::{Config, ConfigBuilder};

/// Parameters of a [`ParamSetName`].
pub trait ParamSetExt {
    /// The block (computation) parameters.
    fn block_params(self) -> ClassicPBSParameters;
    /// The noise-squashing parameters.
    fn noise_squashing_params(self) -> NoiseSquashingParameters;
}

/// Whether a parameter set can be used by this build. `test-insecure` exists only in builds
/// with the `insecure-dev` feature (tests, developer mode); a production build refuses it at
/// every entry point (key generation, CRS generation, loading a stored key).
pub fn require_available(name: ParamSetName) -> Result<(), EngineError> {
    match name {
        ParamSetName::Default => Ok(()),
        ParamSetName::TestInsecure if cfg!(feature = "insecure-dev") => Ok(()),
        ParamSetName::TestInsecure => Err(EngineError::InvalidRequest(
            "test-insecure parameters exist only in insecure-dev builds".into(),
        )),
    }
}

/// Insecure computation parameters: the production set with a tiny LWE dimension and smaller
/// polynomials. Decryption stays exact (the noise is no larger than in production) but there is
/// no security at all. Used only where protocol logic, not parameter size, is under test.
#[cfg(feature = "insecure-dev")]
fn test_insecure_block_params() -> ClassicPBSParameters {
    let mut p = PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128;
    p.lwe_dimension = LweDimension(64);
    p.glwe_dimension = GlweDimension(1);
    p.polynomial_size = PolynomialSize(1024);
    p.lwe_noise_distribution = DynamicDistribution::new_t_uniform(0);
    p.glwe_noise_distribution = DynamicDistribution::new_t_uniform(0);
    p
}

#[cfg(feature = "insecure-dev")]
fn test_insecure_noise_squashing_params() -> NoiseSquashingParameters {
    match NOISE_SQUASHING_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128 {
        NoiseSquashingParameters::Classic(c) => {
            NoiseSquashingParameters::Classic(NoiseSquashingClassicParameters {
                glwe_dimension: GlweDimension(1),
                polynomial_size: PolynomialSize(1024),
                glwe_noise_distribution: DynamicDistribution::new_t_uniform(0),
                ..c
            })
        }
        other => other,
    }
}

impl ParamSetExt for ParamSetName {
    fn block_params(self) -> ClassicPBSParameters {
        match self {
            ParamSetName::Default => PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
            #[cfg(feature = "insecure-dev")]
            ParamSetName::TestInsecure => test_insecure_block_params(),
            // Without insecure-dev no entry point gets here (`require_available`); should one
            // ever, it gets the production parameters, never insecure ones.
            #[cfg(not(feature = "insecure-dev"))]
            ParamSetName::TestInsecure => PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
        }
    }

    fn noise_squashing_params(self) -> NoiseSquashingParameters {
        match self {
            ParamSetName::Default => NOISE_SQUASHING_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
            #[cfg(feature = "insecure-dev")]
            ParamSetName::TestInsecure => test_insecure_noise_squashing_params(),
            #[cfg(not(feature = "insecure-dev"))]
            ParamSetName::TestInsecure => {
                NOISE_SQUASHING_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128
            }
        }
    }
}

/// The compact-public-key encryption parameters of a parameter set (the ones clients encrypt and
/// prove under, and so the ones a CRS is for). Both sets use the production ones.
pub fn compact_pke_params(
    _name: ParamSetName,
) -> tfhe::shortint::parameters::CompactPublicKeyEncryptionParameters {
    PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128
}

/// The tfhe configuration of a parameter set: computation parameters, noise squashing (needed by
/// threshold decryption), the dedicated compact-public-key parameters used by fhEVM clients for
/// proven encryption, and (production) compression.
pub fn config_for(name: ParamSetName) -> Config {
    // Both sets use the production compact-public-key parameters: clients encrypt and prove under
    // them, and a key-switch casts into the computation parameters.
    let builder = ConfigBuilder::with_custom_parameters(name.block_params())
        .enable_noise_squashing(name.noise_squashing_params())
        .use_dedicated_compact_public_key_parameters((
            compact_pke_params(name),
            PARAM_KEYSWITCH_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128,
        ));
    match name {
        ParamSetName::Default => builder
            .enable_compression(COMP_PARAM_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128)
            .build(),
        ParamSetName::TestInsecure => builder.build(),
    }
}
