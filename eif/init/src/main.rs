//! `kms-init`: PID 1 of the enclave image.
//!
//! 1. Mounts devtmpfs, proc, sysfs and a tmpfs, and writes its log to `/dev/console`.
//! 2. Loads the kernel modules the image lists (`lib/modules/load.list`), if any: a kernel with
//!    the NSM, virtio-mmio and vsock drivers built in needs none.
//! 3. Sends the Nitro heartbeat (`0xB7` to the parent, CID 3 port 9000, echoed back). The
//!    Nitro CLI waits for it; it is not fatal here, because a host that does not answer can
//!    only deny service, which it can anyway. Under QEMU's vhost-user-vsock the host is CID 2,
//!    tried next.
//! 4. Runs the runtime with the arguments fixed in the image (`etc/kms-enclave/args`, measured
//!    into PCR2), reaps every child, and when the runtime ends, reboots, which ends the enclave.
//!
//! A panic here would panic the kernel: nothing unwraps, every failure is logged and the init
//! ends the enclave.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use kms_init::{
    is_compressed_module, lines, ARGS_PATH, HEARTBEAT, HEARTBEAT_PORT, HOST_CID, MODULES_DIR,
    MODULES_LIST, PARENT_CID, RUNTIME_PATH,
};
use nix::mount::{mount, MsFlags};
use std::fs::File;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

/// The init's log: the console, or nowhere if it cannot be opened.
struct Log(Option<File>);

impl Log {
    fn line(&mut self, msg: &str) {
        if let Some(f) = self.0.as_mut() {
            let _ = writeln!(f, "kms-init: {msg}");
        }
    }

    fn stdio(&self) -> Stdio {
        match self.0.as_ref().and_then(|f| f.try_clone().ok()) {
            Some(f) => Stdio::from(f),
            None => Stdio::null(),
        }
    }
}

fn mount_fs(log: &mut Log, fstype: &str, target: &str, flags: MsFlags) {
    let _ = std::fs::create_dir_all(target);
    if let Err(e) = mount(Some(fstype), target, Some(fstype), flags, None::<&str>) {
        // devtmpfs may already be mounted by the kernel (CONFIG_DEVTMPFS_MOUNT).
        if e != nix::errno::Errno::EBUSY {
            log.line(&format!("mount {fstype} on {target}: {e}"));
        }
    }
}

fn load_modules(log: &mut Log) {
    let list = match std::fs::read_to_string(format!("/{MODULES_LIST}")) {
        Ok(l) => l,
        Err(_) => return,
    };
    for name in lines(&list) {
        let path = format!("/{MODULES_DIR}/{name}");
        let flags = if is_compressed_module(&name) {
            // MODULE_INIT_COMPRESSED_FILE: the kernel decompresses (CONFIG_MODULE_DECOMPRESS).
            nix::kmod::ModuleInitFlags::from_bits_retain(4)
        } else {
            nix::kmod::ModuleInitFlags::empty()
        };
        let result = File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| nix::kmod::finit_module(&f, c"", flags).map_err(|e| e.to_string()));
        match result {
            Ok(()) => log.line(&format!("loaded {name}")),
            Err(e) if e.contains("EEXIST") => {}
            Err(e) => log.line(&format!("module {name}: {e}")),
        }
    }
}

fn heartbeat(log: &mut Log) {
    for cid in [PARENT_CID, HOST_CID] {
        let beat =
            vsock::VsockStream::connect_with_cid_port(cid, HEARTBEAT_PORT).and_then(|mut s| {
                s.write_all(&[HEARTBEAT])?;
                let mut echo = [0u8; 1];
                s.read_exact(&mut echo)?;
                Ok(echo == [HEARTBEAT])
            });
        match beat {
            Ok(true) => {
                log.line(&format!("heartbeat answered by CID {cid}"));
                return;
            }
            Ok(false) => log.line(&format!("heartbeat: CID {cid} echoed another byte")),
            Err(e) => log.line(&format!("heartbeat to CID {cid}: {e}")),
        }
    }
}

fn run_runtime(log: &mut Log) {
    let args = match std::fs::read_to_string(format!("/{ARGS_PATH}")) {
        Ok(a) => lines(&a),
        Err(e) => {
            log.line(&format!("no runtime arguments: {e}"));
            return;
        }
    };
    let child = Command::new(format!("/{RUNTIME_PATH}"))
        .args(&args)
        .env_clear()
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.stdio())
        .stderr(log.stdio())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            log.line(&format!("cannot start the runtime: {e}"));
            return;
        }
    };
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    log.line(&format!("runtime started (pid {pid})"));
    // PID 1 reaps every orphan; it stops when the runtime itself ends.
    loop {
        match nix::sys::wait::waitpid(None, None) {
            Ok(status) if status.pid() == Some(pid) => {
                log.line(&format!("runtime ended: {status:?}"));
                return;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                log.line(&format!("wait: {e}"));
                return;
            }
        }
    }
}

fn main() {
    let mut boot = Log(None);
    mount_fs(&mut boot, "devtmpfs", "/dev", MsFlags::MS_NOSUID);
    let mut log = Log(std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/console")
        .ok());
    let quiet = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs(&mut log, "proc", "/proc", quiet);
    mount_fs(&mut log, "sysfs", "/sys", quiet);
    mount_fs(
        &mut log,
        "tmpfs",
        "/tmp",
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    );
    load_modules(&mut log);
    heartbeat(&mut log);
    run_runtime(&mut log);
    log.line("rebooting (ends the enclave)");
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
    // Only reached if reboot failed; returning from PID 1 panics the kernel, which ends the
    // enclave as well.
}
