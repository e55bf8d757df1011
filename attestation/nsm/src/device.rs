//! The real NSM device.

use crate::{AttestationRequest, Nsm, NsmError, PcrState};
use aws_nitro_enclaves_nsm_api::api::{Request, Response};
use aws_nitro_enclaves_nsm_api::driver::{nsm_exit, nsm_init, nsm_process_request};
use kms_attestation::PinnedRoot;
use serde_bytes::ByteBuf;

/// `/dev/nsm` inside a Nitro Enclave. Documents chain to the AWS Nitro Enclaves root.
#[derive(Debug)]
pub struct DeviceNsm {
    fd: i32,
}

impl DeviceNsm {
    /// Opens the device; fails outside an enclave.
    pub fn open() -> Result<Self, NsmError> {
        let fd = nsm_init();
        if fd < 0 {
            return Err(NsmError::Unavailable(
                "cannot open /dev/nsm (not inside a Nitro Enclave?)".into(),
            ));
        }
        Ok(Self { fd })
    }

    fn call(&self, req: Request) -> Result<Response, NsmError> {
        match nsm_process_request(self.fd, req) {
            Response::Error(code) => Err(NsmError::Device(format!("{code:?}"))),
            r => Ok(r),
        }
    }
}

impl Drop for DeviceNsm {
    fn drop(&mut self) {
        nsm_exit(self.fd);
    }
}

fn unexpected(r: Response) -> NsmError {
    NsmError::Device(format!("unexpected response {r:?}"))
}

impl Nsm for DeviceNsm {
    fn attest(&self, req: &AttestationRequest) -> Result<Vec<u8>, NsmError> {
        req.check()?;
        match self.call(Request::Attestation {
            user_data: req.user_data.clone().map(ByteBuf::from),
            nonce: req.nonce.clone().map(ByteBuf::from),
            public_key: req.public_key.clone().map(ByteBuf::from),
        })? {
            Response::Attestation { document } => Ok(document),
            r => Err(unexpected(r)),
        }
    }

    fn describe_pcr(&self, index: u16) -> Result<PcrState, NsmError> {
        match self.call(Request::DescribePCR { index })? {
            Response::DescribePCR { lock, data } => Ok(PcrState {
                locked: lock,
                value: data,
            }),
            r => Err(unexpected(r)),
        }
    }

    fn extend_pcr(&self, index: u16, data: &[u8]) -> Result<Vec<u8>, NsmError> {
        match self.call(Request::ExtendPCR {
            index,
            data: data.to_vec(),
        })? {
            Response::ExtendPCR { data } => Ok(data),
            r => Err(unexpected(r)),
        }
    }

    fn lock_pcr(&self, index: u16) -> Result<(), NsmError> {
        match self.call(Request::LockPCR { index })? {
            Response::LockPCR => Ok(()),
            r => Err(unexpected(r)),
        }
    }

    fn get_random(&self) -> Result<Vec<u8>, NsmError> {
        match self.call(Request::GetRandom)? {
            Response::GetRandom { random } => Ok(random),
            r => Err(unexpected(r)),
        }
    }

    fn trusted_root(&self) -> PinnedRoot {
        PinnedRoot::aws()
    }

    fn kind(&self) -> &'static str {
        "device"
    }
}
