//! `kms-host`: one party's untrusted host process (see `kms_host::process`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    kms_host::process::main_with(std::env::args().skip(1)).await
}
