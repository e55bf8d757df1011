//! Reads an EIF with AWS's `aws-nitro-enclaves-image-format` (the reader `nitro-cli
//! describe-eif` uses) and prints what it finds as JSON: the CRC check, the PCRs, the section
//! count and the metadata. The project's tests compare this with their own reader.

use aws_nitro_enclaves_image_format::utils::eif_reader::EifReader;
use aws_nitro_enclaves_image_format::utils::get_pcrs;

fn main() -> Result<(), String> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: kms-eif-cross-check IMAGE")?;
    let mut r = EifReader::from_eif(path)?;
    let crc_ok = r.check_crc();
    let pcrs = get_pcrs(
        &mut r.image_hasher,
        &mut r.bootstrap_hasher,
        &mut r.app_hasher,
        &mut r.cert_hasher,
        sha2::Sha384::default(),
        r.signature_section.is_some(),
    )?;
    let header = r.get_header();
    let out = serde_json::json!({
        "CheckCRC": crc_ok,
        "Version": header.version,
        "NumSections": header.num_sections,
        "PCR0": pcrs.get("PCR0"),
        "PCR1": pcrs.get("PCR1"),
        "PCR2": pcrs.get("PCR2"),
        "Metadata": r.get_metadata().map(|m| serde_json::to_value(m).ok()),
    });
    println!("{out}");
    Ok(())
}
