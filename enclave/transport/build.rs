//! Compiles the party protocol with protox (no system protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=protos");
    let fds = protox::compile(["party.proto"], ["protos"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
