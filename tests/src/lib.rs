//! Shared helpers of the end-to-end tests: a real S3-compatible server (moto) and dev servers.

#![forbid(unsafe_code)]

use kms_cli::devserver::{self, DevServer, DevServerConfig, PublicStore};
use kms_eip712::DomainConfig;
use kms_storage::S3Config;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto S3 server on a free loopback port, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts `moto_server` (from PyPI's `moto[server]`; `.ci/run` and `scripts/test` install it).
    /// Panics with an explanation if it is not installed: the S3 path must be tested for real.
    pub fn start() -> Moto {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
            l.local_addr().expect("local addr").port()
        };
        let bin = std::env::var("MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {bin}: {e}. Install it with: pip install 'moto[server]' (scripts/test does)")
            });
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start listening on {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, endpoint }
    }

    /// S3 settings for a bucket on this server.
    pub fn s3(&self, bucket: &str, prefix: &str) -> S3Config {
        S3Config {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            credentials: Some(("testing".into(), "testing".into())),
        }
    }
}

/// Starts a developer-mode server on an ephemeral port.
pub async fn dev_server(data_dir: &Path, public: PublicStore) -> DevServer {
    devserver::start(DevServerConfig {
        data_dir: data_dir.to_path_buf(),
        listen: ([127, 0, 0, 1], 0).into(),
        public,
        domain: DomainConfig::default(),
        parallel_jobs: 2,
    })
    .await
    .expect("start dev server")
}

/// The client key of `key_id` in a developer-mode core's data folder (tfhe-rs's own decryption
/// is the truth the tests compare with).
pub async fn dev_client_key(
    data_dir: &Path,
    key_id: &kms_types::RequestId,
) -> kms_engine::tfhe::ClientKey {
    devserver::dev_client_key(data_dir, key_id)
        .await
        .expect("developer-mode client key")
}
