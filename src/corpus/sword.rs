//! The entries of a SWORD zText Bible module, in canonical order.
//!
//! A zText module (SWORD's `zVerse` driver, `src/modules/common/zverse.cpp`; "SWORD module file
//! formats" on the CrossWire wiki) stores each testament (`ot`, `nt`) in three files:
//!
//! - `.bzs`, the blocks: 12-byte records of `u32` little-endian offset into `.bzz`, compressed
//!   size and uncompressed size;
//! - `.bzz`, the blocks themselves, each a zlib stream (`CompressType=ZIP`) holding the text of
//!   many entries back to back (`BlockType=BOOK`: about a book per block);
//! - `.bzv`, the entries: one 10-byte record per slot of the versification (module and testament
//!   headings, each book's and chapter's heading slot, then every verse), `u32` block, `u32`
//!   offset within the uncompressed block and `u16` size. Empty slots have size 0; linked verses
//!   repeat the same record.
//!
//! The `u16` size wraps for an entry of 64 KiB or more. osis2mod writes one when it piles a book
//! the versification lacks into a single slot (engWEB2015eb's "Daniel (Greek)", which sits in
//! Hosea's heading slot): such an entry is recognised by the next entry of the same block starting
//! a whole multiple of 64 KiB further than the recorded size says, and read to there.

use flate2::{Decompress, FlushDecompress, Status};

/// Bytes of a `.bzs` record.
const BLOCK_RECORD_BYTES: usize = 12;
/// Bytes of a `.bzv` record.
const ENTRY_RECORD_BYTES: usize = 10;
/// An entry size is a `u16`: sizes are recorded modulo this.
const ENTRY_SIZE_MODULUS: usize = 1 << 16;

/// One testament's three files, as read from disk.
pub struct Testament<'a> {
    /// `.bzs`: block offsets and sizes.
    pub blocks: &'a [u8],
    /// `.bzv`: entry locations.
    pub entries: &'a [u8],
    /// `.bzz`: the compressed blocks.
    pub data: &'a [u8],
}

/// Where an entry's text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    block: usize,
    offset: usize,
    size: usize,
}

/// The text of every non-empty entry of a testament, in versification order, linked verses once.
pub fn entries(testament: &Testament) -> Result<Vec<String>, String> {
    let blocks = decompress_blocks(testament.blocks, testament.data)?;
    let records = testament.entries.chunks_exact(ENTRY_RECORD_BYTES);
    if !records.remainder().is_empty() {
        return Err(format!(
            ".bzv is {} bytes, not a multiple of {ENTRY_RECORD_BYTES}",
            testament.entries.len()
        ));
    }
    let mut entries: Vec<Entry> = records
        .map(|r| Entry {
            block: u32::from_le_bytes([r[0], r[1], r[2], r[3]]) as usize,
            offset: u32::from_le_bytes([r[4], r[5], r[6], r[7]]) as usize,
            size: u16::from_le_bytes([r[8], r[9]]) as usize,
        })
        .filter(|e| e.size > 0)
        .collect();
    entries.dedup();
    let ends: Vec<usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| end_of(e, entries.get(i + 1)))
        .collect();
    entries
        .iter()
        .zip(ends)
        .enumerate()
        .map(|(i, (e, end))| {
            let block = blocks
                .get(e.block)
                .ok_or_else(|| format!("entry {i} names block {}, of {}", e.block, blocks.len()))?;
            let bytes = block.get(e.offset..end).ok_or_else(|| {
                format!(
                    "entry {i} ({}..{end}) overruns block {} ({} bytes)",
                    e.offset,
                    e.block,
                    block.len()
                )
            })?;
            String::from_utf8(bytes.to_vec())
                .map_err(|err| format!("entry {i} is not UTF-8: {err}"))
        })
        .collect()
}

/// Where an entry ends: its recorded size, unless that wrapped around `u16` (see the module docs).
fn end_of(entry: &Entry, next: Option<&Entry>) -> usize {
    let recorded = entry.offset + entry.size;
    match next {
        Some(next)
            if next.block == entry.block
                && next.offset > recorded
                && (next.offset - recorded).is_multiple_of(ENTRY_SIZE_MODULUS) =>
        {
            next.offset
        }
        _ => recorded,
    }
}

/// Decompresses every block named in `.bzs`.
fn decompress_blocks(index: &[u8], data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let records = index.chunks_exact(BLOCK_RECORD_BYTES);
    if !records.remainder().is_empty() {
        return Err(format!(
            ".bzs is {} bytes, not a multiple of {BLOCK_RECORD_BYTES}",
            index.len()
        ));
    }
    records
        .enumerate()
        .map(|(i, r)| {
            let word = |k: usize| u32::from_le_bytes([r[k], r[k + 1], r[k + 2], r[k + 3]]) as usize;
            let (offset, compressed, size) = (word(0), word(4), word(8));
            let stream = data
                .get(offset..offset + compressed)
                .ok_or_else(|| format!("block {i} overruns .bzz"))?;
            let mut inflater = Decompress::new(true);
            let mut out = Vec::with_capacity(size);
            let status = inflater
                .decompress_vec(stream, &mut out, FlushDecompress::Finish)
                .map_err(|e| format!("block {i}: bad zlib stream: {e}"))?;
            if status != Status::StreamEnd || out.len() != size {
                return Err(format!(
                    "block {i} does not hold the {size} bytes .bzs announces"
                ));
            }
            Ok(out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::ZlibEncoder};
    use std::io::Write;

    fn zlib(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn entry(block: u32, offset: u32, size: u16) -> Vec<u8> {
        [
            &block.to_le_bytes()[..],
            &offset.to_le_bytes(),
            &size.to_le_bytes(),
        ]
        .concat()
    }

    #[test]
    fn reads_entries_in_order_once_and_repairs_wrapped_sizes() {
        let long = "x".repeat(ENTRY_SIZE_MODULUS + 5);
        let blocks_text = [format!("ab{long}c"), "de".to_owned()];
        let mut data = Vec::new();
        let mut index = Vec::new();
        for text in &blocks_text {
            let z = zlib(text.as_bytes());
            for word in [data.len(), z.len(), text.len()] {
                index.extend_from_slice(&(word as u32).to_le_bytes());
            }
            data.extend(z);
        }
        let wrapped = (long.len() % ENTRY_SIZE_MODULUS) as u16;
        let bzv = [
            entry(0, 0, 0),
            entry(1, 0, 2),
            entry(0, 0, 2),
            entry(0, 0, 2),
            entry(0, 2, wrapped),
            entry(0, 2 + long.len() as u32, 1),
        ]
        .concat();
        let testament = Testament {
            blocks: &index,
            entries: &bzv,
            data: &data,
        };
        assert_eq!(
            entries(&testament).unwrap(),
            vec!["de".to_owned(), "ab".to_owned(), long, "c".to_owned()]
        );
    }
}
