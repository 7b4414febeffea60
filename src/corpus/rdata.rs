//! Character vectors out of an R lazy-load database (`data/Rdata.rdb`), without R.
//!
//! A package's lazy-load database is a run of records, one per object, each compressed on its
//! own: a 4-byte big-endian uncompressed length, then a zlib stream (R's `R_compress1`, used by
//! `lazyLoadDBinsertValue`; the `.rdx` index only lists the records' offsets, which reading them
//! in order makes unnecessary). Each record is one object in R's serialization format
//! (R source `src/main/serialize.c`; "R Internals", section 1.8 "Serialization formats"):
//!
//! - the format: `X\n` (XDR: big-endian);
//! - three `i32`: the format version (3), the writer's R version and the oldest R that reads it;
//! - version 3 adds the native encoding: an `i32` length and its bytes (`UTF-8`);
//! - then the object. Each item starts with an `i32` of flags: bits 0–7 the `SEXPTYPE`, bit 8
//!   "is an object", bit 9 "has attributes", bit 10 "has a tag", bits 12–27 the `gp` levels
//!   (for strings: the encoding).
//!
//! Only what janeaustenr's data holds is read: a plain character vector (`STRSXP`, flags `0x10`,
//! no attributes), its `i32` length, then per element a `CHARSXP`: flags, an `i32` byte length
//! (`-1` for `NA`) and the bytes. Anything else is an error that says what was found.

use flate2::{Decompress, FlushDecompress, Status};

/// `SEXPTYPE` of a character vector.
const STRSXP: u32 = 16;
/// `SEXPTYPE` of one string.
const CHARSXP: u32 = 9;
/// The bits of an item's flags that hold its `SEXPTYPE`.
const TYPE_MASK: u32 = 0xff;
/// "Is an object", "has attributes" and "has a tag": none may be set on what we read.
const OBJECT_ATTRIBUTE_TAG_MASK: u32 = 0b111 << 8;
/// The `gp` levels start at bit 12.
const LEVELS_SHIFT: u32 = 12;
/// `gp` bit: the string is Latin-1.
const LATIN1_MASK: u32 = 1 << 2;
/// `gp` bit: the string is raw bytes.
const BYTES_MASK: u32 = 1 << 1;
/// Byte length that stands for `NA_character_`.
const NA_LENGTH: i32 = -1;
/// XDR (big-endian binary) serialization.
const XDR_FORMAT: &[u8] = b"X\n";
/// The only serialization version read here (R ≥ 3.5 writes it).
const SERIALIZATION_VERSION: i32 = 3;
/// The native encoding every string must be in.
const NATIVE_ENCODING: &[u8] = b"UTF-8";
/// Bytes of the big-endian length that precedes each record's zlib stream.
const RECORD_LENGTH_BYTES: usize = 4;

/// One element of a character vector: `None` is `NA`.
pub type RString = Option<String>;

/// Reads every record of a lazy-load database, each as a character vector.
///
/// Errors name the record and the byte where the format was not what janeaustenr ships.
pub fn read_string_vectors(db: &[u8]) -> Result<Vec<Vec<RString>>, String> {
    let mut vectors = Vec::new();
    let mut rest = db;
    while !rest.is_empty() {
        let record = vectors.len();
        let (serialized, used) =
            inflate_record(rest).map_err(|e| format!("record {record}: {e}"))?;
        vectors
            .push(parse_string_vector(&serialized).map_err(|e| format!("record {record}: {e}"))?);
        rest = &rest[used..];
    }
    Ok(vectors)
}

/// Decompresses the record at the start of `bytes`; returns it and the bytes it took.
fn inflate_record(bytes: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let header: [u8; RECORD_LENGTH_BYTES] = bytes
        .get(..RECORD_LENGTH_BYTES)
        .and_then(|h| h.try_into().ok())
        .ok_or("truncated record header")?;
    let length = u32::from_be_bytes(header) as usize;
    let stream = &bytes[RECORD_LENGTH_BYTES..];
    let mut inflater = Decompress::new(true);
    let mut out = Vec::with_capacity(length);
    let status = inflater
        .decompress_vec(stream, &mut out, FlushDecompress::Finish)
        .map_err(|e| format!("bad zlib stream: {e}"))?;
    if status != Status::StreamEnd || out.len() != length {
        return Err(format!(
            "the zlib stream does not hold the {length} bytes its header announces"
        ));
    }
    Ok((out, RECORD_LENGTH_BYTES + inflater.total_in() as usize))
}

/// Parses one serialized object, which must be a character vector without attributes.
pub fn parse_string_vector(bytes: &[u8]) -> Result<Vec<RString>, String> {
    let mut reader = XdrReader { bytes, at: 0 };
    if reader.take(XDR_FORMAT.len())? != XDR_FORMAT {
        return Err("not R's XDR serialization (no \"X\\n\" header)".into());
    }
    let version = reader.i32()?;
    if version != SERIALIZATION_VERSION {
        return Err(format!(
            "serialization version {version}, expected {SERIALIZATION_VERSION}"
        ));
    }
    let _writer_version = reader.i32()?;
    let _minimal_reader_version = reader.i32()?;
    let encoding_length = reader.length()?;
    let encoding = reader.take(encoding_length)?;
    if encoding != NATIVE_ENCODING {
        return Err(format!(
            "native encoding {:?}, expected UTF-8",
            String::from_utf8_lossy(encoding)
        ));
    }
    let flags = reader.u32()?;
    if flags != STRSXP {
        return Err(format!(
            "object flags {flags:#010x} at byte {}: expected a plain character vector ({STRSXP:#010x})",
            reader.at - 4
        ));
    }
    let length = reader.length()?;
    let strings = (0..length)
        .map(|_| reader.string())
        .collect::<Result<Vec<_>, _>>()?;
    if reader.at != bytes.len() {
        return Err(format!(
            "{} bytes after the character vector (attributes?)",
            bytes.len() - reader.at
        ));
    }
    Ok(strings)
}

/// A cursor over big-endian serialized data.
struct XdrReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> XdrReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let slice = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        self.at += n;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let word = self.take(4)?;
        Ok(u32::from_be_bytes([word[0], word[1], word[2], word[3]]))
    }

    fn i32(&mut self) -> Result<i32, String> {
        self.u32().map(|w| w as i32)
    }

    /// A non-negative `i32` length (R writes `-1` here only for vectors longer than 2³¹ − 1).
    fn length(&mut self) -> Result<usize, String> {
        let at = self.at;
        let length = self.i32()?;
        usize::try_from(length).map_err(|_| format!("negative length {length} at byte {at}"))
    }

    /// One `CHARSXP`: UTF-8 or ASCII text, or `NA`.
    fn string(&mut self) -> Result<RString, String> {
        let at = self.at;
        let flags = self.u32()?;
        let levels = flags >> LEVELS_SHIFT;
        if flags & TYPE_MASK != CHARSXP || flags & OBJECT_ATTRIBUTE_TAG_MASK != 0 {
            return Err(format!(
                "element flags {flags:#010x} at byte {at}: expected a string (CHARSXP)"
            ));
        }
        if levels & (LATIN1_MASK | BYTES_MASK) != 0 {
            return Err(format!(
                "string at byte {at} is Latin-1 or raw bytes; only UTF-8 and ASCII are read"
            ));
        }
        let length = self.i32()?;
        if length == NA_LENGTH {
            return Ok(None);
        }
        let length = usize::try_from(length)
            .map_err(|_| format!("string length {length} at byte {}", at + 4))?;
        let text = std::str::from_utf8(self.take(length)?)
            .map_err(|e| format!("string at byte {at} is not UTF-8: {e}"))?;
        Ok(Some(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::ZlibEncoder};
    use std::io::Write;

    /// Flags of an ASCII string and of a UTF-8 one, as R writes them.
    const ASCII_CHARSXP: u32 = 0x0004_0009;
    const UTF8_CHARSXP: u32 = 0x0000_8009;

    fn serialize(flags: u32, elements: &[Option<&str>]) -> Vec<u8> {
        let mut out = b"X\n".to_vec();
        for word in [3, 0x0004_0201, 0x0003_0500, 5] {
            out.extend_from_slice(&(word as u32).to_be_bytes());
        }
        out.extend_from_slice(b"UTF-8");
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&(elements.len() as u32).to_be_bytes());
        for element in elements {
            match element {
                None => {
                    out.extend_from_slice(&CHARSXP.to_be_bytes());
                    out.extend_from_slice(&NA_LENGTH.to_be_bytes());
                }
                Some(s) => {
                    let flags = if s.is_ascii() {
                        ASCII_CHARSXP
                    } else {
                        UTF8_CHARSXP
                    };
                    out.extend_from_slice(&flags.to_be_bytes());
                    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
        out
    }

    fn record(serialized: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(serialized).unwrap();
        let mut out = (serialized.len() as u32).to_be_bytes().to_vec();
        out.extend(encoder.finish().unwrap());
        out
    }

    #[test]
    fn reads_consecutive_records_of_string_vectors() {
        let first = serialize(STRSXP, &[Some("EMMA"), Some(""), Some("her £20,000"), None]);
        let second = serialize(STRSXP, &[Some("PERSUASION")]);
        let db = [record(&first), record(&second)].concat();
        let vectors = read_string_vectors(&db).unwrap();
        assert_eq!(
            vectors,
            vec![
                vec![
                    Some("EMMA".to_owned()),
                    Some(String::new()),
                    Some("her £20,000".to_owned()),
                    None
                ],
                vec![Some("PERSUASION".to_owned())],
            ]
        );
    }

    #[test]
    fn rejects_what_is_not_a_plain_character_vector() {
        // A character vector with attributes (bit 9), e.g. names.
        let with_attributes = serialize(STRSXP | 1 << 9, &[Some("a")]);
        assert!(
            parse_string_vector(&with_attributes)
                .unwrap_err()
                .contains("character vector")
        );
        // An integer vector (INTSXP = 13).
        assert!(parse_string_vector(&serialize(13, &[])).is_err());
        // Version 2 (no native encoding).
        let mut old = serialize(STRSXP, &[]);
        old[5] = 2;
        assert!(parse_string_vector(&old).unwrap_err().contains("version 2"));
        // Truncated.
        let full = serialize(STRSXP, &[Some("abc")]);
        assert!(
            parse_string_vector(&full[..full.len() - 1])
                .unwrap_err()
                .contains("truncated")
        );
        // A record whose header announces more than its stream holds.
        let mut bad = record(&full);
        bad[3] += 1;
        assert!(read_string_vectors(&bad).unwrap_err().contains("record 0"));
    }
}
