//! The gRPC service over [`Core`].

use crate::{Core, CoreError, Output, RequestKind};
use kms_convert::{self as convert, ConvertError};
use kms_grpc::v1 as pb;
use kms_grpc::v1::core_service_server::{CoreService, CoreServiceServer};
use kms_types::{
    CanonicalRequest, CrsGenRequest, KeyGenRequest, ParamSetName, PublicDecryptionRequest,
    RequestId, UserDecryptionRequest,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The tonic service.
pub struct CoreServiceImpl {
    core: Arc<Core>,
    mode: &'static str,
}

impl CoreServiceImpl {
    /// Wraps a core; `mode` is reported by `Health` (e.g. `centralized-dev`).
    pub fn new(core: Arc<Core>, mode: &'static str) -> Self {
        Self { core, mode }
    }

    /// The tonic server with message limits raised for large ciphertext batches.
    pub fn into_server(self) -> CoreServiceServer<Self> {
        CoreServiceServer::new(self)
            .max_decoding_message_size(kms_grpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(kms_grpc::MAX_MESSAGE_BYTES)
    }
}

fn status(e: CoreError) -> Status {
    match e {
        CoreError::NotFound(_) => Status::not_found(e.to_string()),
        CoreError::Pending(..) => Status::unavailable(e.to_string()),
        CoreError::Conflict(_) => Status::already_exists(e.to_string()),
        CoreError::WrongKind(..) | CoreError::Invalid(_) => Status::invalid_argument(e.to_string()),
        CoreError::UnknownKey(_) => Status::not_found(e.to_string()),
        CoreError::Internal(_) => Status::internal(e.to_string()),
        CoreError::Busy => Status::resource_exhausted(e.to_string()),
    }
}

fn bad(e: ConvertError) -> Status {
    Status::invalid_argument(e.to_string())
}

fn params(s: &str) -> Result<ParamSetName, Status> {
    ParamSetName::parse(s).ok_or_else(|| {
        Status::invalid_argument(format!(
            "params must be \"default\" or \"test-insecure\", got {s:?}"
        ))
    })
}

/// The ID the caller sent must be the one derived from the request: a caller cannot occupy the
/// ID of another request (e.g. an expected production key with insecure parameters). The field
/// may be omitted; the derived ID is returned in the acknowledgement either way.
fn check_claimed_id(claimed: Option<&pb::RequestId>, derived: RequestId) -> Result<(), Status> {
    let Some(claimed) = claimed else {
        return Ok(());
    };
    let claimed = convert::id_from_pb("request_id", Some(claimed)).map_err(bad)?;
    if claimed == derived {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "request_id {claimed} is not the ID of this request ({derived})"
        )))
    }
}

fn ack(id: RequestId) -> Response<pb::Ack> {
    Response::new(pb::Ack {
        request_id: Some(convert::id_to_pb(&id)),
    })
}

impl CoreServiceImpl {
    async fn result(
        &self,
        req: Request<pb::RequestId>,
        kind: RequestKind,
    ) -> Result<(RequestId, Arc<Output>), Status> {
        let id = convert::id_from_pb("request_id", Some(req.get_ref())).map_err(bad)?;
        let out = self.core.result(&id, kind).await.map_err(status)?;
        Ok((id, out))
    }

    fn handle(&self, h: &kms_engine::SignedHandle) -> pb::PublicMaterialHandle {
        convert::handle_to_pb(h, &self.core.public_base_uri())
    }
}

fn unexpected() -> Status {
    Status::internal("result of unexpected kind")
}

#[tonic::async_trait]
impl CoreService for CoreServiceImpl {
    async fn health(
        &self,
        _: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        let b = self.core.backend();
        Ok(Response::new(pb::HealthResponse {
            status: "serving".into(),
            signer_address: b.signer_address().to_vec(),
            domain: Some(convert::domain_to_pb(b.domain())),
            mode: self.mode.into(),
            storage_base_uri: self.core.public_base_uri(),
        }))
    }

    async fn key_gen(&self, req: Request<pb::KeyGenRequest>) -> Result<Response<pb::Ack>, Status> {
        let r = req.into_inner();
        let kr = KeyGenRequest {
            params: params(&r.params)?,
            label: r.label,
        };
        check_claimed_id(r.request_id.as_ref(), kr.request_id())?;
        Ok(ack(self.core.keygen(kr).map_err(status)?))
    }

    async fn get_key_gen_result(
        &self,
        req: Request<pb::RequestId>,
    ) -> Result<Response<pb::KeyGenResult>, Status> {
        let (id, out) = self.result(req, RequestKind::KeyGen).await?;
        let Output::KeyGen(handles) = out.as_ref() else {
            return Err(unexpected());
        };
        Ok(Response::new(pb::KeyGenResult {
            request_id: Some(convert::id_to_pb(&id)),
            handles: handles.iter().map(|h| self.handle(h)).collect(),
        }))
    }

    async fn public_decrypt(
        &self,
        req: Request<pb::PublicDecryptionRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        let r = req.into_inner();
        let dr = PublicDecryptionRequest {
            key_id: convert::id_from_pb("key_id", r.key_id.as_ref()).map_err(bad)?,
            ciphertexts: convert::cts_from_pb(r.ciphertexts).map_err(bad)?,
        };
        check_claimed_id(r.request_id.as_ref(), dr.request_id())?;
        Ok(ack(self.core.public_decrypt(dr).await.map_err(status)?))
    }

    async fn get_public_decryption_result(
        &self,
        req: Request<pb::RequestId>,
    ) -> Result<Response<pb::PublicDecryptionResponse>, Status> {
        let (_, out) = self.result(req, RequestKind::PublicDecrypt).await?;
        let Output::PublicDecrypt(d) = out.as_ref() else {
            return Err(unexpected());
        };
        Ok(Response::new(convert::decryption_to_pb(d)))
    }

    async fn user_decrypt(
        &self,
        req: Request<pb::UserDecryptionRequest>,
    ) -> Result<Response<pb::Ack>, Status> {
        let r = req.into_inner();
        let ur = UserDecryptionRequest {
            key_id: convert::id_from_pb("key_id", r.key_id.as_ref()).map_err(bad)?,
            ciphertexts: convert::cts_from_pb(r.ciphertexts).map_err(bad)?,
            client_encryption_key: r.client_encryption_key,
        };
        check_claimed_id(r.request_id.as_ref(), ur.request_id())?;
        Ok(ack(self.core.user_decrypt(ur).await.map_err(status)?))
    }

    async fn get_user_decryption_result(
        &self,
        req: Request<pb::RequestId>,
    ) -> Result<Response<pb::UserDecryptionResponse>, Status> {
        let (id, out) = self.result(req, RequestKind::UserDecrypt).await?;
        let Output::UserDecrypt(s) = out.as_ref() else {
            return Err(unexpected());
        };
        Ok(Response::new(convert::user_response_to_pb(
            &id,
            s.envelope.as_bytes(),
            &s.response_signature,
            &self.core.backend().signer_address(),
        )))
    }

    async fn crs_gen(&self, req: Request<pb::CrsGenRequest>) -> Result<Response<pb::Ack>, Status> {
        let r = req.into_inner();
        let cr = CrsGenRequest {
            params: params(&r.params)?,
            max_num_bits: r.max_num_bits,
            label: r.label,
        };
        check_claimed_id(r.request_id.as_ref(), cr.request_id())?;
        Ok(ack(self.core.crs_gen(cr).map_err(status)?))
    }

    async fn get_crs_gen_result(
        &self,
        req: Request<pb::RequestId>,
    ) -> Result<Response<pb::CrsGenResult>, Status> {
        let (id, out) = self.result(req, RequestKind::CrsGen).await?;
        let Output::CrsGen(h) = out.as_ref() else {
            return Err(unexpected());
        };
        Ok(Response::new(pb::CrsGenResult {
            request_id: Some(convert::id_to_pb(&id)),
            handle: Some(self.handle(h)),
        }))
    }

    async fn get_public_material(
        &self,
        _: Request<pb::GetPublicMaterialRequest>,
    ) -> Result<Response<pb::PublicMaterialList>, Status> {
        Ok(Response::new(pb::PublicMaterialList {
            handles: self
                .core
                .public_handles()
                .iter()
                .map(|h| self.handle(h))
                .collect(),
        }))
    }
}
