//! The image init's pure parts: the fixed paths of the image layout and the parsing of the
//! files the init reads (the module list and the runtime's arguments), shared with the image
//! builder so that both sides agree on them.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

/// Where the init is in the boot ramdisk (the kernel runs `/init`).
pub const INIT_PATH: &str = "init";
/// The directory of the kernel modules in the boot ramdisk.
pub const MODULES_DIR: &str = "lib/modules";
/// The list of modules to load, one file name per line, in order.
pub const MODULES_LIST: &str = "lib/modules/load.list";
/// Where the runtime is in the application ramdisk.
pub const RUNTIME_PATH: &str = "usr/bin/kms-enclave";
/// The runtime's arguments, one per line, in the application ramdisk.
pub const ARGS_PATH: &str = "etc/kms-enclave/args";
/// Nitro's heartbeat: the parent listens on this vsock port and echoes [`HEARTBEAT`].
pub const HEARTBEAT_PORT: u32 = 9000;
/// The heartbeat byte.
pub const HEARTBEAT: u8 = 0xB7;
/// The parent instance's CID on Nitro.
pub const PARENT_CID: u32 = 3;
/// The host's CID (`VMADDR_CID_HOST`): where a VM under QEMU's vhost-user-vsock reaches its host.
pub const HOST_CID: u32 = 2;

/// Most lines the init reads from one of its files (they are part of the measured image, but
/// the init stays bounded regardless).
pub const MAX_LINES: usize = 256;

/// Splits a newline-separated list: one entry per non-empty line, at most [`MAX_LINES`].
pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .take(MAX_LINES)
        .map(str::to_string)
        .collect()
}

/// The list file's text for `entries` (the inverse of [`lines`]).
pub fn to_lines(entries: &[String]) -> String {
    entries.iter().map(|e| format!("{e}\n")).collect()
}

/// Whether a module file is compressed (the kernel then decompresses it:
/// `MODULE_INIT_COMPRESSED_FILE`).
pub fn is_compressed_module(name: &str) -> bool {
    name.ends_with(".ko.xz") || name.ends_with(".ko.zst") || name.ends_with(".ko.gz")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_round_trip_and_skip_blank_lines() {
        let l = vec!["--party".to_string(), "1".to_string()];
        assert_eq!(lines(&to_lines(&l)), l);
        assert_eq!(lines("a\n\nb"), vec!["a", "b"]);
        assert!(is_compressed_module("vsock.ko.xz"));
        assert!(!is_compressed_module("vsock.ko"));
    }
}
