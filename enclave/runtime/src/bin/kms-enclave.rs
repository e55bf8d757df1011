//! `kms-enclave`: one party's enclave process (see `kms_runtime::process`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    kms_runtime::process::main_with(std::env::args().skip(1)).await
}
