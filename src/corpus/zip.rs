//! Reads one member of a zip archive (a Python wheel): the end-of-central-directory record, the
//! central directory entry of that name, its local header, then the stored or deflated bytes.
//!
//! Follows PKWARE's APPNOTE.TXT (sections 4.3.7 local file header, 4.3.12 central directory
//! header, 4.3.16 end of central directory); no ZIP64, no encryption — a wheel needs neither.

use std::io::Read;

/// `PK\x05\x06`.
const END_SIGNATURE: u32 = 0x0605_4b50;
/// `PK\x01\x02`.
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
/// `PK\x03\x04`.
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;
/// Size of the end record without its comment.
const END_LEN: usize = 22;
/// Longest archive comment.
const MAX_COMMENT: usize = u16::MAX as usize;
/// Size of a central directory header before its name.
const CENTRAL_LEN: usize = 46;
/// Size of a local header before its name.
const LOCAL_LEN: usize = 30;
/// Compression methods.
const STORED: u16 = 0;
const DEFLATED: u16 = 8;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The uncompressed bytes of the member called `name`, or why not.
pub fn member(archive: &[u8], name: &str) -> Result<Vec<u8>, String> {
    let broken = |what: &str| format!("not a zip archive this reader knows ({what})");
    let lowest = archive.len().saturating_sub(END_LEN + MAX_COMMENT);
    let end = (lowest..=archive.len().saturating_sub(END_LEN))
        .rev()
        .find(|&at| u32_at(archive, at) == Some(END_SIGNATURE))
        .ok_or_else(|| broken("no end of central directory"))?;
    let entries = u16_at(archive, end + 10).ok_or_else(|| broken("end record"))?;
    let mut at = u32_at(archive, end + 16).ok_or_else(|| broken("end record"))? as usize;
    for _ in 0..entries {
        if u32_at(archive, at) != Some(CENTRAL_SIGNATURE) {
            return Err(broken("central directory"));
        }
        let field = |off: usize| u16_at(archive, at + off).map(usize::from);
        let (Some(method), Some(name_len), Some(extra_len), Some(comment_len)) =
            (u16_at(archive, at + 10), field(28), field(30), field(32))
        else {
            return Err(broken("central directory"));
        };
        let (Some(compressed), Some(size), Some(local)) = (
            u32_at(archive, at + 20),
            u32_at(archive, at + 24),
            u32_at(archive, at + 42),
        ) else {
            return Err(broken("central directory"));
        };
        let entry_name = archive
            .get(at + CENTRAL_LEN..at + CENTRAL_LEN + name_len)
            .ok_or_else(|| broken("central directory"))?;
        if entry_name == name.as_bytes() {
            let local = local as usize;
            if u32_at(archive, local) != Some(LOCAL_SIGNATURE) {
                return Err(broken("local header"));
            }
            let (Some(n), Some(e)) = (u16_at(archive, local + 26), u16_at(archive, local + 28))
            else {
                return Err(broken("local header"));
            };
            let start = local + LOCAL_LEN + usize::from(n) + usize::from(e);
            let data = archive
                .get(start..start + compressed as usize)
                .ok_or_else(|| broken("member cut short"))?;
            let out = match method {
                STORED => data.to_vec(),
                DEFLATED => {
                    let mut out = Vec::with_capacity(size as usize);
                    flate2::read::DeflateDecoder::new(data)
                        .take(u64::from(size) + 1)
                        .read_to_end(&mut out)
                        .map_err(|e| broken(&format!("deflate: {e}")))?;
                    out
                }
                other => return Err(broken(&format!("compression method {other}"))),
            };
            if out.len() != size as usize {
                return Err(broken("member size"));
            }
            return Ok(out);
        }
        at += CENTRAL_LEN + name_len + extra_len + comment_len;
    }
    Err(format!("the archive has no member {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-member archive, stored or deflated, written by hand from the same specification.
    fn archive(name: &str, body: &[u8], deflate: bool) -> Vec<u8> {
        use std::io::Write;
        let data = if deflate {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        } else {
            body.to_vec()
        };
        let method: u16 = if deflate { DEFLATED } else { STORED };
        let mut out = Vec::new();
        out.extend(LOCAL_SIGNATURE.to_le_bytes());
        out.extend([20, 0, 0, 0]);
        out.extend(method.to_le_bytes());
        out.extend([0; 8]); // time, date, crc
        out.extend((data.len() as u32).to_le_bytes());
        out.extend((body.len() as u32).to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(name.as_bytes());
        out.extend(&data);
        let central = out.len();
        out.extend(CENTRAL_SIGNATURE.to_le_bytes());
        out.extend([20, 0, 20, 0, 0, 0]);
        out.extend(method.to_le_bytes());
        out.extend([0; 8]);
        out.extend((data.len() as u32).to_le_bytes());
        out.extend((body.len() as u32).to_le_bytes());
        out.extend((name.len() as u16).to_le_bytes());
        out.extend([0; 12]); // extra, comment, disk, attributes
        out.extend(0u32.to_le_bytes()); // local header offset
        out.extend(name.as_bytes());
        let central_len = out.len() - central;
        out.extend(END_SIGNATURE.to_le_bytes());
        out.extend([0, 0, 0, 0, 1, 0, 1, 0]);
        out.extend((central_len as u32).to_le_bytes());
        out.extend((central as u32).to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out
    }

    #[test]
    fn stored_and_deflated_members_come_back_and_damage_is_an_error() {
        let body = b"0,1,2,3\n".repeat(50);
        for deflate in [false, true] {
            let zip = archive("a/b.csv", &body, deflate);
            assert_eq!(member(&zip, "a/b.csv").unwrap(), body);
            assert!(member(&zip, "a/c.csv").unwrap_err().contains("no member"));
            for cut in [0, 10, zip.len() / 2, zip.len() - 1] {
                assert!(member(&zip[..cut], "a/b.csv").is_err(), "cut at {cut}");
            }
        }
    }
}
