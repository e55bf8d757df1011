//! Shared by the image tests: the machine's VM tools and test kernel (from
//! `scripts/install-vm-tools`, exported by `scripts/test`), the workspace, and child processes
//! that are killed when dropped.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Child;

/// QEMU, the vsock backend and the test kernel.
pub struct VmTools {
    pub qemu: PathBuf,
    pub vhost_device_vsock: PathBuf,
    pub kernel: PathBuf,
    pub kernel_sha256: String,
    pub modules: Vec<PathBuf>,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests with scripts/test, which installs QEMU, \
             vhost-device-vsock and the test kernel (scripts/install-vm-tools) and exports them"
        )
    })
}

/// The tools, from the environment.
pub fn vm_tools() -> VmTools {
    VmTools {
        qemu: var("QEMU").into(),
        vhost_device_vsock: var("VHOST_DEVICE_VSOCK").into(),
        kernel: var("KMS_TEST_KERNEL").into(),
        kernel_sha256: var("KMS_TEST_KERNEL_SHA256"),
        modules: var("KMS_TEST_KERNEL_MODULES")
            .split(':')
            .map(PathBuf::from)
            .collect(),
    }
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")).unwrap()
}

/// Cargo's target directory (the one the tests were built in, so the image build reuses its
/// caches).
pub fn target_dir() -> PathBuf {
    let t = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    std::fs::create_dir_all(&t).unwrap();
    std::fs::canonicalize(t).unwrap()
}

/// Children killed (and reaped) on drop.
#[derive(Default)]
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
