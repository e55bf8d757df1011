//! The EIF container.
//!
//! Layout (all integers big-endian), as `aws-nitro-enclaves-image-format` writes it and the
//! Nitro CLI and QEMU's `nitro-enclave` machine read it: a 548-byte header (magic `.eif`,
//! version 4, flags, default memory and CPUs, a reserved u16, the section count, 32 section
//! offsets and 32 section sizes, an unused u32, CRC32), then the sections in the order kernel, cmdline,
//! metadata, ramdisks, each a 12-byte section header (type, flags, size) followed by its
//! payload. The CRC32 (ISO-HDLC, as zlib's) covers every byte of the file but its own four.
//!
//! [`Eif::to_bytes`] fixes everything nitro-cli leaves to the build machine: the metadata is the
//! caller's [`Metadata`] (no build time, no docker information), and the header's defaults are
//! constants, so an image is a function of its kernel, command line, ramdisks and metadata.

use crate::pcr::Measurements;
use serde::{Deserialize, Serialize};

/// The file magic.
pub const MAGIC: [u8; 4] = *b".eif";
/// The format version written (4: with the metadata section); the oldest read.
pub const VERSION: u16 = 4;
/// Header length.
pub const HEADER_LEN: usize = 548;
/// Section header length.
pub const SECTION_HEADER_LEN: usize = 12;
/// Most sections an EIF can list.
pub const MAX_SECTIONS: usize = 32;
/// Memory nitro-cli's builder records as the image's default (1 GiB).
pub const DEFAULT_MEM: u64 = 1 << 30;
/// CPUs nitro-cli's builder records as the image's default.
pub const DEFAULT_CPUS: u64 = 2;

const KERNEL: u16 = 1;
const CMDLINE: u16 = 2;
const RAMDISK: u16 = 3;
const SIGNATURE: u16 = 4;
const METADATA: u16 = 5;

/// Why bytes are not an EIF this reader accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EifError {
    /// Shorter than a header, or a section runs past the end.
    #[error("truncated at byte {0}")]
    Truncated(usize),
    /// Not `.eif`.
    #[error("bad magic")]
    Magic,
    /// Not version 4 (the only version whose layout this reader knows).
    #[error("unsupported version {0}")]
    Version(u16),
    /// A reserved field or an unused section-table entry is not zero.
    #[error("{0} is not zero")]
    Reserved(&'static str),
    /// A header or section flag is set (only x86_64 images without flags are accepted).
    #[error("unsupported flags {0:#x}")]
    Flags(u16),
    /// The section count is 0 or over 32.
    #[error("bad section count {0}")]
    SectionCount(u16),
    /// The section table disagrees with the sections in the file.
    #[error("section {index}: {what}")]
    Section {
        /// Index in the table.
        index: usize,
        /// What disagrees.
        what: &'static str,
    },
    /// Bytes after the last listed section.
    #[error("{0} bytes after the last section")]
    Trailing(usize),
    /// Not exactly one kernel, one cmdline, one metadata, and one or more ramdisks, in the
    /// writer's order.
    #[error("sections out of order or missing: {0}")]
    Layout(&'static str),
    /// A signed image (PCR8): images here are pinned by PCR0–2 and never signed.
    #[error("signed images are not supported")]
    Signed,
    /// The CRC32 does not match.
    #[error("CRC32 mismatch: header {header:#010x}, computed {computed:#010x}")]
    Crc {
        /// In the header.
        header: u32,
        /// Over the file.
        computed: u32,
    },
    /// The metadata section is not the expected JSON.
    #[error("metadata: {0}")]
    Metadata(String),
    /// An input is too large for the format.
    #[error("section too large")]
    TooLarge,
}

/// The image's metadata section, in the key names nitro-cli uses (`EifIdentityInfo`). It is
/// covered by the CRC but by no PCR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Image name.
    #[serde(rename = "ImageName")]
    pub image_name: String,
    /// Image version.
    #[serde(rename = "ImageVersion")]
    pub image_version: String,
    /// Build information (constant fields: no clock).
    #[serde(rename = "BuildMetadata")]
    pub build: BuildMetadata,
    /// Always `null` (no docker).
    #[serde(rename = "DockerInfo")]
    pub docker_info: serde_json::Value,
    /// The project's own fields.
    #[serde(rename = "CustomMetadata")]
    pub custom: serde_json::Value,
}

/// `BuildMetadata` of [`Metadata`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildMetadata {
    /// Always the epoch: builds carry no time.
    #[serde(rename = "BuildTime")]
    pub build_time: String,
    /// The tool that wrote the image.
    #[serde(rename = "BuildTool")]
    pub build_tool: String,
    /// Its version.
    #[serde(rename = "BuildToolVersion")]
    pub build_tool_version: String,
    /// Operating system of the image.
    #[serde(rename = "OperatingSystem")]
    pub operating_system: String,
    /// Kernel version string.
    #[serde(rename = "KernelVersion")]
    pub kernel_version: String,
}

/// The build time every image records.
pub const BUILD_TIME: &str = "1970-01-01T00:00:00+00:00";

impl Metadata {
    /// Metadata with the constant build fields.
    pub fn new(image_name: &str, image_version: &str, kernel_version: &str) -> Self {
        Self {
            image_name: image_name.into(),
            image_version: image_version.into(),
            build: BuildMetadata {
                build_time: BUILD_TIME.into(),
                build_tool: "kms-eif".into(),
                build_tool_version: env!("CARGO_PKG_VERSION").into(),
                operating_system: "linux".into(),
                kernel_version: kernel_version.into(),
            },
            docker_info: serde_json::Value::Null,
            custom: serde_json::Value::Null,
        }
    }

    fn to_bytes(&self) -> Result<Vec<u8>, EifError> {
        serde_json::to_vec(self).map_err(|e| EifError::Metadata(e.to_string()))
    }
}

/// An enclave image: what the Nitro hypervisor boots and measures.
#[derive(Clone, PartialEq, Eq)]
pub struct Eif {
    /// The kernel (a bzImage).
    pub kernel: Vec<u8>,
    /// The kernel command line, byte for byte as measured (nitro-cli's ends in a newline).
    pub cmdline: Vec<u8>,
    /// The metadata.
    pub metadata: Metadata,
    /// The ramdisks: the first is the boot ramdisk (PCR1), the others the application (PCR2).
    pub ramdisks: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Eif {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eif")
            .field("kernel_len", &self.kernel.len())
            .field("cmdline", &String::from_utf8_lossy(&self.cmdline))
            .field("metadata", &self.metadata)
            .field(
                "ramdisk_lens",
                &self.ramdisks.iter().map(Vec::len).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn section_header(kind: u16, len: u64) -> [u8; SECTION_HEADER_LEN] {
    let [k0, k1] = kind.to_be_bytes();
    let [l0, l1, l2, l3, l4, l5, l6, l7] = len.to_be_bytes();
    // Flags (bytes 2 and 3) are always 0.
    [k0, k1, 0, 0, l0, l1, l2, l3, l4, l5, l6, l7]
}

impl Eif {
    /// The image's measurements.
    pub fn measurements(&self) -> Measurements {
        Measurements::of(&self.kernel, &self.cmdline, &self.ramdisks)
    }

    /// The EIF file.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EifError> {
        if self.ramdisks.is_empty() {
            return Err(EifError::Layout("an image needs a ramdisk"));
        }
        let metadata = self.metadata.to_bytes()?;
        let mut sections: Vec<(u16, &[u8])> = vec![
            (KERNEL, &self.kernel),
            (CMDLINE, &self.cmdline),
            (METADATA, &metadata),
        ];
        sections.extend(self.ramdisks.iter().map(|r| (RAMDISK, r.as_slice())));
        if sections.len() > MAX_SECTIONS {
            return Err(EifError::SectionCount(
                u16::try_from(sections.len()).unwrap_or(u16::MAX),
            ));
        }
        let mut offsets = [0u64; MAX_SECTIONS];
        let mut sizes = [0u64; MAX_SECTIONS];
        let mut at = HEADER_LEN as u64;
        for ((off, size), (_, payload)) in offsets.iter_mut().zip(sizes.iter_mut()).zip(&sections) {
            let len = u64::try_from(payload.len()).map_err(|_| EifError::TooLarge)?;
            *off = at;
            *size = len;
            at = at
                .checked_add(SECTION_HEADER_LEN as u64 + len)
                .ok_or(EifError::TooLarge)?;
        }
        let total = usize::try_from(at).map_err(|_| EifError::TooLarge)?;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes()); // flags: x86_64
        out.extend_from_slice(&DEFAULT_MEM.to_be_bytes());
        out.extend_from_slice(&DEFAULT_CPUS.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes()); // reserved
        let count = u16::try_from(sections.len()).map_err(|_| EifError::TooLarge)?;
        out.extend_from_slice(&count.to_be_bytes());
        for o in offsets {
            out.extend_from_slice(&o.to_be_bytes());
        }
        for s in sizes {
            out.extend_from_slice(&s.to_be_bytes());
        }
        out.extend_from_slice(&0u32.to_be_bytes()); // unused
        out.extend_from_slice(&0u32.to_be_bytes()); // the CRC, set below
        for (kind, payload) in &sections {
            out.extend_from_slice(&section_header(*kind, payload.len() as u64));
            out.extend_from_slice(payload);
        }
        let crc = crc_excluding_field(&out);
        if let Some(field) = out.get_mut(HEADER_LEN - 4..HEADER_LEN) {
            field.copy_from_slice(&crc.to_be_bytes());
        }
        Ok(out)
    }

    /// Reads an EIF, strictly: every field is checked and every length bounded by the input.
    pub fn parse(bytes: &[u8]) -> Result<Self, EifError> {
        let header = bytes
            .get(..HEADER_LEN)
            .ok_or(EifError::Truncated(bytes.len()))?;
        let mut r = Reader { buf: header, at: 0 };
        if r.take::<4>()? != MAGIC {
            return Err(EifError::Magic);
        }
        let version = u16::from_be_bytes(r.take()?);
        if version != VERSION {
            return Err(EifError::Version(version));
        }
        let flags = u16::from_be_bytes(r.take()?);
        if flags != 0 {
            return Err(EifError::Flags(flags));
        }
        let _default_mem = u64::from_be_bytes(r.take()?);
        let _default_cpus = u64::from_be_bytes(r.take()?);
        if u16::from_be_bytes(r.take()?) != 0 {
            return Err(EifError::Reserved("reserved"));
        }
        let count = u16::from_be_bytes(r.take()?);
        if count == 0 || usize::from(count) > MAX_SECTIONS {
            return Err(EifError::SectionCount(count));
        }
        let mut offsets = [0u64; MAX_SECTIONS];
        for o in offsets.iter_mut() {
            *o = u64::from_be_bytes(r.take()?);
        }
        let mut sizes = [0u64; MAX_SECTIONS];
        for s in sizes.iter_mut() {
            *s = u64::from_be_bytes(r.take()?);
        }
        if u32::from_be_bytes(r.take()?) != 0 {
            return Err(EifError::Reserved("unused"));
        }
        if offsets
            .iter()
            .zip(sizes.iter())
            .skip(usize::from(count))
            .any(|(&o, &s)| o != 0 || s != 0)
        {
            return Err(EifError::Reserved("section table entries past the count"));
        }
        let crc = u32::from_be_bytes(r.take()?);
        let computed = crc_excluding_field(bytes);
        if computed != crc {
            return Err(EifError::Crc {
                header: crc,
                computed,
            });
        }

        // The sections, in file order: each starts where the table says and where the previous
        // one ended.
        let mut at = HEADER_LEN;
        let mut found: Vec<(u16, &[u8])> = Vec::with_capacity(usize::from(count));
        for (index, (&off, &size)) in offsets
            .iter()
            .zip(sizes.iter())
            .take(usize::from(count))
            .enumerate()
        {
            let bad = |what| EifError::Section { index, what };
            if usize::try_from(off).ok() != Some(at) {
                return Err(bad("offset is not where the previous section ended"));
            }
            let head = bytes
                .get(at..at + SECTION_HEADER_LEN)
                .ok_or(EifError::Truncated(bytes.len()))?;
            let mut h = Reader { buf: head, at: 0 };
            let kind = u16::from_be_bytes(h.take()?);
            let sflags = u16::from_be_bytes(h.take()?);
            let len = u64::from_be_bytes(h.take()?);
            if sflags != 0 {
                return Err(EifError::Flags(sflags));
            }
            if len != size {
                return Err(bad("size disagrees with the section header"));
            }
            let start = at + SECTION_HEADER_LEN;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| start.checked_add(l))
                .ok_or(EifError::Truncated(bytes.len()))?;
            let payload = bytes
                .get(start..end)
                .ok_or(EifError::Truncated(bytes.len()))?;
            found.push((kind, payload));
            at = end;
        }
        if at != bytes.len() {
            return Err(EifError::Trailing(bytes.len() - at));
        }

        let mut it = found.into_iter().peekable();
        let kernel = match it.next() {
            Some((KERNEL, k)) => k.to_vec(),
            _ => return Err(EifError::Layout("the first section is not the kernel")),
        };
        let cmdline = match it.next() {
            Some((CMDLINE, c)) => c.to_vec(),
            _ => return Err(EifError::Layout("the second section is not the cmdline")),
        };
        let metadata = match it.next() {
            Some((METADATA, m)) => {
                serde_json::from_slice(m).map_err(|e| EifError::Metadata(e.to_string()))?
            }
            _ => return Err(EifError::Layout("the third section is not the metadata")),
        };
        let mut ramdisks = Vec::new();
        for (kind, payload) in it {
            match kind {
                RAMDISK => ramdisks.push(payload.to_vec()),
                SIGNATURE => return Err(EifError::Signed),
                _ => {
                    return Err(EifError::Layout(
                        "a section after the metadata is not a ramdisk",
                    ))
                }
            }
        }
        if ramdisks.is_empty() {
            return Err(EifError::Layout("no ramdisk"));
        }
        Ok(Self {
            kernel,
            cmdline,
            metadata,
            ramdisks,
        })
    }
}

/// CRC32 over the file without the header's CRC field.
fn crc_excluding_field(file: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(file.get(..HEADER_LEN - 4).unwrap_or(file));
    h.update(file.get(HEADER_LEN..).unwrap_or(&[]));
    h.finalize()
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], EifError> {
        let end = self.at + N;
        let s = self
            .buf
            .get(self.at..end)
            .ok_or(EifError::Truncated(self.at))?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        self.at = end;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Eif {
        Eif {
            kernel: b"kernel bytes".to_vec(),
            cmdline: b"console=ttyS0\n".to_vec(),
            metadata: Metadata::new("kms-enclave", "0.1.0", "test"),
            ramdisks: vec![b"boot".to_vec(), b"app".to_vec(), b"args".to_vec()],
        }
    }

    #[test]
    fn an_image_round_trips_and_keeps_its_layout() {
        let e = sample();
        let bytes = e.to_bytes().unwrap();
        assert_eq!(&bytes[..4], b".eif");
        assert_eq!(u16::from_be_bytes([bytes[4], bytes[5]]), 4);
        // magic 4, version 2, flags 2, memory 8, CPUs 8, reserved 2, then the section count:
        // 3 + 3 ramdisks.
        assert_eq!(
            u64::from_be_bytes(bytes[8..16].try_into().unwrap()),
            1 << 30
        );
        assert_eq!(u16::from_be_bytes([bytes[26], bytes[27]]), 6);
        // The kernel's section header is right after the header.
        assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + 2], &[0, 1]);
        assert_eq!(Eif::parse(&bytes).unwrap(), e);
        // Deterministic.
        assert_eq!(e.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn the_crc_covers_every_byte_but_its_own() {
        let bytes = sample().to_bytes().unwrap();
        for i in [0usize, 30, HEADER_LEN - 5, HEADER_LEN + 3, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[i] ^= 1;
            assert!(Eif::parse(&b).is_err(), "flip at {i} accepted");
        }
        let mut b = bytes.clone();
        b[HEADER_LEN - 1] ^= 1;
        assert!(matches!(Eif::parse(&b), Err(EifError::Crc { .. })));
    }

    #[test]
    fn other_versions_and_nonzero_reserved_fields_are_refused() {
        let bytes = sample().to_bytes().unwrap();
        let recrc = |mut b: Vec<u8>| {
            let crc = crc_excluding_field(&b);
            b[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&crc.to_be_bytes());
            b
        };
        let mut v5 = bytes.clone();
        v5[5] = 5;
        assert_eq!(Eif::parse(&recrc(v5)), Err(EifError::Version(5)));
        let mut reserved = bytes.clone();
        reserved[25] = 1;
        assert_eq!(
            Eif::parse(&recrc(reserved)),
            Err(EifError::Reserved("reserved"))
        );
        // A size in the table past the section count.
        let mut stray = bytes.clone();
        stray[28 + 8 * 32 + 8 * 10 + 7] = 1;
        assert!(matches!(
            Eif::parse(&recrc(stray)),
            Err(EifError::Reserved(_))
        ));
        // The writer's output is the only encoding of its image.
        let e = Eif::parse(&bytes).unwrap();
        assert_eq!(e.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn truncated_extended_and_signed_images_are_refused() {
        let bytes = sample().to_bytes().unwrap();
        for cut in [0, 10, HEADER_LEN, HEADER_LEN + 5, bytes.len() - 1] {
            assert!(Eif::parse(&bytes[..cut]).is_err(), "cut at {cut} accepted");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Eif::parse(&longer).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(0u8..=255, 0..2048)) {
            let _ = Eif::parse(&data);
        }

        #[test]
        fn any_image_round_trips(
            kernel in proptest::collection::vec(0u8..=255, 0..300),
            cmdline in proptest::collection::vec(0u8..=255, 0..50),
            ramdisks in proptest::collection::vec(proptest::collection::vec(0u8..=255, 0..100), 1..5),
        ) {
            let e = Eif { kernel, cmdline, metadata: Metadata::new("x", "y", "z"), ramdisks };
            proptest::prop_assert_eq!(Eif::parse(&e.to_bytes().unwrap()).unwrap(), e);
        }
    }
}
