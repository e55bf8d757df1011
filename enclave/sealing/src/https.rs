//! The AWS SDK's HTTP client inside the enclave: each request goes over a connection the host
//! relays (the enclave names the destination, the host picks the address) and TLS that
//! terminates here, so the host sees ciphertext and cannot forge an answer.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use http_body_util::{BodyExt, Full, Limited};
use rustls::pki_types::ServerName;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A byte stream the host relays.
pub trait RelayIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> RelayIo for T {}

/// Opens a relayed connection to the service.
pub type Dial = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = std::io::Result<Box<dyn RelayIo>>> + Send>>
        + Send
        + Sync,
>;

/// Largest response body read (KMS answers are a few KiB).
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Longest a request may take, connection and TLS handshake included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// HTTPS over relayed connections, one connection per request.
#[derive(Clone)]
pub struct RelayedHttps {
    dial: Dial,
    tls: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for RelayedHttps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayedHttps")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Why the client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpsError {
    /// The server name is not a valid DNS name.
    #[error("invalid server name {0:?}")]
    ServerName(String),
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

impl RelayedHttps {
    /// A client for `server_name`, trusting `roots`, reaching it with `dial`.
    pub fn new(
        dial: Dial,
        roots: rustls::RootCertStore,
        server_name: &str,
    ) -> Result<Self, HttpsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpsError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|_| HttpsError::ServerName(server_name.into()))?;
        Ok(Self {
            dial,
            tls: Arc::new(tls),
            server_name,
        })
    }

    async fn exchange(&self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let request = request
            .try_into_http1x()
            .map_err(|e| ConnectorError::other(e.into(), None))?;
        let (mut parts, body) = request.into_parts();
        let body = body
            .bytes()
            .map(bytes::Bytes::copy_from_slice)
            .ok_or_else(|| {
                ConnectorError::other("streaming request bodies are not sent".into(), None)
            })?;
        // Origin form on the wire; the host header the request was signed with stays.
        if let Some(authority) = parts.uri.authority().cloned() {
            if !parts.headers.contains_key(http::header::HOST) {
                let host = http::HeaderValue::from_str(authority.as_str())
                    .map_err(|e| ConnectorError::other(e.into(), None))?;
                parts.headers.insert(http::header::HOST, host);
            }
        }
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<http::Uri>()
            .map_err(|e| ConnectorError::other(e.into(), None))?;
        parts.uri = path;
        let request = http::Request::from_parts(parts, Full::new(body));

        let io = (self.dial)()
            .await
            .map_err(|e| ConnectorError::io(e.into()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(self.server_name.clone(), io)
            .await
            .map_err(|e| ConnectorError::io(e.into()))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
        // The connection task ends with this call, whatever its outcome.
        let _driver = AbortOnDrop(tokio::spawn(connection));
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| ConnectorError::io(e.into()))?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(ConnectorError::io)?
            .to_bytes();
        HttpResponse::try_from(http::Response::from_parts(parts, SdkBody::from(body)))
            .map_err(|e| ConnectorError::other(e.into(), None))
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl HttpConnector for RelayedHttps {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, this.exchange(request)).await {
                Ok(result) => result,
                Err(_) => Err(ConnectorError::timeout(
                    format!("no answer within {REQUEST_TIMEOUT:?}").into(),
                )),
            }
        })
    }
}

impl HttpClient for RelayedHttps {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}
