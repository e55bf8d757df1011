//! Deterministic newc (`070701`) cpio archives: the format the Linux kernel unpacks as its
//! initial ramfs.
//!
//! An [`Archive`] holds its entries by path, so the bytes never depend on the order files were
//! added or found on disk: entries are written in byte order of their paths (a directory before
//! what it holds), with inode numbers counted from 1 in that order, owner and group 0, mtime 0,
//! no device numbers except a character device's own, and the permission bits given. Nothing of
//! the build machine's file system (owners, times, umask, inode numbers) can reach an archive.

use std::collections::BTreeMap;

/// The trailer entry's name.
const TRAILER: &str = "TRAILER!!!";
/// newc header length.
const HEADER_LEN: usize = 110;

/// File type bits.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

/// Why an entry cannot be added or the archive written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpioError {
    /// Not a clean relative path (`a/b`: no leading `/`, no `.`, `..` or empty components, no
    /// NUL).
    #[error("bad path {0:?}")]
    Path(String),
    /// Two entries with one path.
    #[error("duplicate entry {0:?}")]
    Duplicate(String),
    /// An entry whose parent directory is not in the archive.
    #[error("{0:?} has no parent directory entry")]
    NoParent(String),
    /// Permission bits beyond `0o7777`.
    #[error("bad mode {0:#o}")]
    Mode(u32),
    /// A file over 4 GiB (newc sizes are 32-bit).
    #[error("{0:?} is too large for newc")]
    TooLarge(String),
}

/// One entry.
#[derive(Clone, PartialEq, Eq)]
enum Node {
    Dir { perm: u32 },
    File { perm: u32, data: Vec<u8> },
    CharDevice { perm: u32, major: u32, minor: u32 },
}

/// A newc archive under construction.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Archive {
    entries: BTreeMap<String, Node>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries.keys()).finish()
    }
}

fn check_path(path: &str) -> Result<(), CpioError> {
    let bad = path.is_empty()
        || path == TRAILER
        || path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(CpioError::Path(path.to_string()))
    } else {
        Ok(())
    }
}

fn check_perm(perm: u32) -> Result<u32, CpioError> {
    if perm > 0o7777 {
        Err(CpioError::Mode(perm))
    } else {
        Ok(perm)
    }
}

impl Archive {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&mut self, path: &str, node: Node) -> Result<(), CpioError> {
        check_path(path)?;
        if self.entries.contains_key(path) {
            return Err(CpioError::Duplicate(path.to_string()));
        }
        self.entries.insert(path.to_string(), node);
        Ok(())
    }

    /// Adds a directory.
    pub fn dir(&mut self, path: &str, perm: u32) -> Result<(), CpioError> {
        let perm = check_perm(perm)?;
        self.add(path, Node::Dir { perm })
    }

    /// Adds a regular file.
    pub fn file(&mut self, path: &str, perm: u32, data: Vec<u8>) -> Result<(), CpioError> {
        let perm = check_perm(perm)?;
        if u32::try_from(data.len()).is_err() {
            return Err(CpioError::TooLarge(path.to_string()));
        }
        self.add(path, Node::File { perm, data })
    }

    /// Adds a character device node (e.g. `dev/console`, 5:1).
    pub fn char_device(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        let perm = check_perm(perm)?;
        self.add(path, Node::CharDevice { perm, major, minor })
    }

    /// Paths in the archive, in the order they are written.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The archive's bytes. Every entry's parent must be a directory entry of the archive.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CpioError> {
        for path in self.entries.keys() {
            if let Some((parent, _)) = path.rsplit_once('/') {
                if !matches!(self.entries.get(parent), Some(Node::Dir { .. })) {
                    return Err(CpioError::NoParent(path.clone()));
                }
            }
        }
        let mut out = Vec::new();
        let mut ino = 0u32;
        for (path, node) in &self.entries {
            ino += 1;
            let (mode, nlink, data, rdev): (u32, u32, &[u8], (u32, u32)) = match node {
                Node::Dir { perm } => (S_IFDIR | perm, 2, &[], (0, 0)),
                Node::File { perm, data } => (S_IFREG | perm, 1, data, (0, 0)),
                Node::CharDevice { perm, major, minor } => {
                    (S_IFCHR | perm, 1, &[], (*major, *minor))
                }
            };
            write_entry(&mut out, ino, mode, nlink, path, data, rdev)?;
        }
        write_entry(&mut out, 0, 0, 1, TRAILER, &[], (0, 0))?;
        Ok(out)
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn write_entry(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    name: &str,
    data: &[u8],
    rdev: (u32, u32),
) -> Result<(), CpioError> {
    let too_large = || CpioError::TooLarge(name.to_string());
    let size = u32::try_from(data.len()).map_err(|_| too_large())?;
    let namesize = u32::try_from(name.len() + 1).map_err(|_| too_large())?;
    let fields = [
        ino, mode, 0, // uid
        0, // gid
        nlink, 0, // mtime
        size, 0, // devmajor
        0, // devminor
        rdev.0, rdev.1, namesize, 0, // check
    ];
    let start = out.len();
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    debug_assert_eq!(out.len() - start, HEADER_LEN);
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Archive {
        let mut a = Archive::new();
        a.dir("dev", 0o755).unwrap();
        a.char_device("dev/console", 0o600, 5, 1).unwrap();
        a.file("init", 0o755, b"#!init".to_vec()).unwrap();
        a
    }

    #[test]
    fn the_bytes_do_not_depend_on_insertion_order() {
        let mut b = Archive::new();
        b.file("init", 0o755, b"#!init".to_vec()).unwrap();
        b.dir("dev", 0o755).unwrap();
        b.char_device("dev/console", 0o600, 5, 1).unwrap();
        assert_eq!(sample().to_bytes().unwrap(), b.to_bytes().unwrap());
    }

    #[test]
    fn entries_have_the_fixed_fields_and_are_aligned() {
        let bytes = sample().to_bytes().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let first = std::str::from_utf8(&bytes[..HEADER_LEN]).unwrap();
        // ino 1, a directory 0755, uid 0, gid 0, nlink 2, mtime 0, size 0.
        let want: String = ["070701", "00000001", "000041ED", "00000000", "00000000"]
            .into_iter()
            .chain(["00000002", "00000000", "00000000"])
            .collect();
        assert_eq!(&first[..want.len()], want);
        // namesize 4 ("dev" and its NUL), check 0.
        assert_eq!(&first[94..], "0000000400000000");
        assert!(bytes.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[test]
    fn bad_paths_modes_and_orphans_are_refused() {
        let mut a = Archive::new();
        for p in ["", "/abs", "a/../b", "a//b", "./a", "a/", TRAILER] {
            assert!(matches!(a.dir(p, 0o755), Err(CpioError::Path(_))), "{p:?}");
        }
        assert!(matches!(
            a.file("x", 0o10000, vec![]),
            Err(CpioError::Mode(_))
        ));
        a.file("lonely/file", 0o644, vec![1]).unwrap();
        assert!(matches!(a.to_bytes(), Err(CpioError::NoParent(_))));
        let mut d = Archive::new();
        d.dir("x", 0o755).unwrap();
        assert!(matches!(
            d.file("x", 0o644, vec![]),
            Err(CpioError::Duplicate(_))
        ));
    }
}
