//! How the page keeps a large model file in Cache Storage so that a download that breaks off (a
//! closed tab, a dropped connection, a reload) resumes where it stopped.
//!
//! A file of another origin larger than one part is stored as parts: a manifest under
//! [`manifest_key`] (its size, the part size, the server's `ETag` when it shows one) and part `k`,
//! bytes `[k·part, (k+1)·part)`, under [`part_key`], each put as soon as its last byte arrives. A
//! later load reads the parts present from the first on, and asks the server for the rest with
//! `Range: bytes=N-` (a header a cross-origin request may send without a preflight). A server
//! that answers the whole file instead (200), or a different `ETag`, starts the file over.
//!
//! The browser glue (`browser::fetch`) does the I/O; this is its arithmetic, tested natively.

use serde::{Deserialize, Serialize};

/// The smallest part: a file of at most this many bytes is stored whole.
pub const MIN_PART: u64 = 64 << 10;
/// The largest part: a 1.2 GB file is 36 parts, each a request's worth of work lost at most.
pub const MAX_PART: u64 = 32 << 20;
/// A file is cut into about this many parts, within [`MIN_PART`]..=[`MAX_PART`].
pub const TARGET_PARTS: u64 = 16;

/// The part size for a file of `size` bytes; `None` when it is stored whole.
pub fn part_size(size: u64) -> Option<u64> {
    (size > MIN_PART).then(|| size.div_ceil(TARGET_PARTS).clamp(MIN_PART, MAX_PART))
}

/// What Cache Storage holds about a file kept in parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The file's size in bytes.
    pub size: u64,
    /// Bytes per part (the last may be shorter).
    pub part: u64,
    /// The server's `ETag` for the file, when it showed one: a resumed answer with another is a
    /// different file, and the parts are dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl Manifest {
    /// The manifest of a file of `size` bytes, or `None` when it is stored whole.
    pub fn new(size: u64, etag: Option<String>) -> Option<Self> {
        part_size(size).map(|part| Self { size, part, etag })
    }

    /// How many parts the file has.
    pub fn parts(&self) -> u64 {
        self.size.div_ceil(self.part)
    }

    /// The byte range of part `k`.
    pub fn range(&self, k: u64) -> std::ops::Range<u64> {
        let start = k * self.part;
        start..(start + self.part).min(self.size)
    }

    /// Whether these numbers can describe a file: a part no smaller than [`MIN_PART`] (so a
    /// corrupted manifest cannot ask for millions of parts) and no larger than the file.
    pub fn is_sane(&self) -> bool {
        self.size > 0 && self.part >= MIN_PART && self.part <= self.size.max(MIN_PART)
    }

    /// The parts that become complete when the bytes held grow from `before` to `after`.
    pub fn completed(&self, before: u64, after: u64) -> std::ops::Range<u64> {
        let done = |n: u64| {
            if n >= self.size {
                self.parts()
            } else {
                n / self.part
            }
        };
        done(before)..done(after)
    }

    /// Whether an answer with `etag` may continue these parts.
    pub fn same_file(&self, etag: Option<&str>) -> bool {
        match (&self.etag, etag) {
            (Some(kept), Some(now)) => kept == now,
            _ => true,
        }
    }
}

/// `url` with one more query parameter (a key no server is ever asked for).
fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// Where a file's manifest is kept.
pub fn manifest_key(url: &str) -> String {
    with_param(url, "unmask-parts")
}

/// Where part `k` of a file is kept.
pub fn part_key(url: &str, k: u64) -> String {
    with_param(url, &format!("unmask-part={k}"))
}

/// The first byte a `Content-Range: bytes START-END/TOTAL` answer holds.
pub fn range_start(header: &str) -> Option<u64> {
    let rest = header.trim().strip_prefix("bytes ")?;
    rest.split_once('-')?.0.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_a_file_exactly_once() {
        assert_eq!(part_size(MIN_PART), None, "small files are stored whole");
        // The test fixture's weights: 162.6 kB in three parts of 64 KiB.
        let m = Manifest::new(162_612, None).unwrap();
        assert_eq!((m.part, m.parts()), (MIN_PART, 3));
        // The 0.6B model's bf16 weights: parts of the largest size.
        let big = Manifest::new(1_192_000_000, None).unwrap();
        assert_eq!((big.part, big.parts()), (MAX_PART, 36));
        // A mid-sized file: about TARGET_PARTS parts.
        assert_eq!(
            Manifest::new(100 << 20, None).unwrap().parts(),
            TARGET_PARTS
        );
        for m in [m, big] {
            let mut next = 0;
            for k in 0..m.parts() {
                let r = m.range(k);
                assert_eq!(r.start, next);
                assert!(r.end > r.start && r.end - r.start <= m.part);
                next = r.end;
            }
            assert_eq!(next, m.size);
            assert!(m.is_sane());
        }
    }

    #[test]
    fn parts_complete_as_their_last_byte_arrives() {
        let m = Manifest::new(162_612, None).unwrap();
        assert_eq!(m.completed(0, MIN_PART - 1), 0..0);
        assert_eq!(m.completed(0, MIN_PART), 0..1);
        assert_eq!(m.completed(MIN_PART, 2 * MIN_PART + 5), 1..2);
        // The last, short part completes with the file.
        assert_eq!(m.completed(2 * MIN_PART, m.size - 1), 2..2);
        assert_eq!(m.completed(2 * MIN_PART, m.size), 2..3);
        assert_eq!(m.completed(0, m.size), 0..3);
    }

    #[test]
    fn keys_manifests_and_ranges_read_back() {
        assert_eq!(
            part_key("https://h/o/n/resolve/main/model.safetensors", 3),
            "https://h/o/n/resolve/main/model.safetensors?unmask-part=3"
        );
        assert_eq!(
            manifest_key("https://h/m.safetensors?x=1"),
            "https://h/m.safetensors?x=1&unmask-parts"
        );
        let m = Manifest::new(1 << 30, Some("\"abc\"".into())).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
        assert!(m.same_file(Some("\"abc\"")) && m.same_file(None));
        assert!(!m.same_file(Some("\"def\"")));
        let bad = Manifest {
            size: 1 << 40,
            part: 1,
            etag: None,
        };
        assert!(
            !bad.is_sane(),
            "a part of one byte would be a trillion cache entries"
        );
        assert_eq!(range_start("bytes 65536-162611/162612"), Some(65536));
        assert_eq!(range_start("bytes */162612"), None);
    }
}
