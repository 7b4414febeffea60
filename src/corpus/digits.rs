//! The handwritten digits of the Gaussian diffusion family: scikit-learn's bundled copy of the UCI
//! "Optical Recognition of Handwritten Digits" test set (Alpaydin & Kaynak 1998; CC BY 4.0,
//! doi:10.24432/C50P49): 1,797 images of 8×8 pixels with values 0–16, and their class 0–9.
//!
//! `unmask prepare --digits` reads `sklearn/datasets/data/digits.csv.gz` straight out of the
//! scikit-learn wheel that `scripts/digits-source.sh` downloads from PyPI (the wheel's SHA-256 is
//! pinned: [`WHEEL_SHA256`]), and writes [`DEFAULT_DIGITS_DIR`]: `train.csv.gz` and
//! `valid.csv.gz` — one image a line, its class then its 64 pixels row-major — and
//! `manifest.json` with the checksums, counts and licence. Image `i` (its row in the source) goes
//! to validation when the first byte of SHA-256(`digits/i`) is below `valid_share` × 256.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::{Compression, GzBuilder, read::GzDecoder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{CorpusError, Split, hex};

/// Pixels along a side.
pub const SIDE: usize = 8;
/// Pixels in an image.
pub const PIXELS: usize = SIDE * SIDE;
/// The largest pixel value (the data's 0–16 scale: 4×4 blocks of 32×32 binary scans, counted).
pub const MAX_VALUE: u8 = 16;
/// Classes: the digits 0–9.
pub const CLASSES: usize = 10;
/// Images in the source.
pub const SOURCE_IMAGES: usize = 1797;
/// The wheel `scripts/digits-source.sh` downloads.
pub const WHEEL_FILE: &str =
    "scikit_learn-1.5.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";
/// Its SHA-256, checked before it is read.
pub const WHEEL_SHA256: &str = "f8b0ccd4a902836493e026c03256e8b206656f91fbcc4fde28c57a5b752561f1";
/// The member holding the digits.
pub const WHEEL_MEMBER: &str = "sklearn/datasets/data/digits.csv.gz";
/// Where the prepared digits are kept in the repository.
pub const DEFAULT_DIGITS_DIR: &str = "data/digits";
/// Where `scripts/digits-source.sh` keeps the wheel unless told otherwise.
pub const DEFAULT_WHEEL_DIR: &str = "/var/tmp/unmask-digits";
/// Expected share of images held out for validation.
pub const DEFAULT_DIGITS_VALID_SHARE: f64 = 0.1;
/// The manifest's file name.
pub const DIGITS_MANIFEST: &str = "manifest.json";
/// The licence, as the manifest records it.
pub const LICENCE: &str = "CC BY 4.0: E. Alpaydin and C. Kaynak, Optical Recognition of Handwritten Digits, UCI Machine Learning Repository, 1998, doi:10.24432/C50P49 (the test set of 1,797 images, as bundled with scikit-learn)";
/// The script that downloads the wheel.
const SOURCE_SCRIPT: &str = "scripts/digits-source.sh";

/// One image and its class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digit {
    /// Row-major pixels, 0–[`MAX_VALUE`].
    pub pixels: [u8; PIXELS],
    /// The digit shown, 0–9.
    pub label: u8,
}

impl Digit {
    /// The pixels on the diffusion's scale, −1 (blank) to 1 (ink): x / 8 − 1.
    pub fn scaled(&self) -> [f32; PIXELS] {
        self.pixels
            .map(|p| f32::from(p) / (f32::from(MAX_VALUE) / 2.0) - 1.0)
    }

    /// One CSV line: the class, then the pixels.
    fn line(&self) -> String {
        let mut out = self.label.to_string();
        for p in self.pixels {
            out.push(',');
            out.push_str(&p.to_string());
        }
        out
    }
}

/// Reads lines of 65 whole numbers: `pixels_first` (the source's order: 64 pixels, then the class)
/// or the prepared files' (class first).
fn parse(text: &str, pixels_first: bool, path: &Path) -> Result<Vec<Digit>, CorpusError> {
    let damaged = |line: usize, detail: String| CorpusError::Damaged {
        path: path.to_path_buf(),
        detail: format!("line {}: {detail}", line + 1),
    };
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let values: Vec<u8> = line
            .split(',')
            .map(|v| v.trim().parse::<u8>())
            .collect::<Result<_, _>>()
            .map_err(|e| damaged(i, format!("not a number from 0 to 255 ({e})")))?;
        if values.len() != PIXELS + 1 {
            return Err(damaged(
                i,
                format!("{} values, not {}", values.len(), PIXELS + 1),
            ));
        }
        let (label, pixels) = if pixels_first {
            (values[PIXELS], &values[..PIXELS])
        } else {
            (values[0], &values[1..])
        };
        if usize::from(label) >= CLASSES || pixels.iter().any(|&p| p > MAX_VALUE) {
            return Err(damaged(i, "a class above 9 or a pixel above 16".into()));
        }
        let mut image = [0; PIXELS];
        image.copy_from_slice(pixels);
        out.push(Digit {
            pixels: image,
            label,
        });
    }
    Ok(out)
}

/// What `manifest.json` records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigitsManifest {
    /// The command that wrote it.
    pub command: String,
    /// The wheel and its SHA-256.
    pub wheel: String,
    /// The wheel's SHA-256.
    pub wheel_sha256: String,
    /// The member read and the SHA-256 of its uncompressed CSV.
    pub member: String,
    /// SHA-256 of the member's CSV.
    pub member_sha256: String,
    /// The share held out, as asked.
    pub valid_share: f64,
    /// Images per split and class: `[train, valid]`, each ten counts.
    pub per_class: [[usize; CLASSES]; 2],
    /// SHA-256 of each split's uncompressed lines, `[train, valid]`.
    pub sha256: [String; 2],
    /// The data's licence.
    pub licence: String,
}

/// The prepared split's file.
pub fn split_file(split: Split) -> &'static str {
    match split {
        Split::Train => "train.csv.gz",
        Split::Valid => "valid.csv.gz",
    }
}

/// The page's real digits: the first validation image of each class, in class order.
pub fn examples(valid: &[Digit]) -> crate::page::images::DigitExamples {
    let mut images: Vec<crate::page::images::DigitExample> = Vec::new();
    for class in 0..CLASSES {
        if let Some(d) = valid.iter().find(|d| usize::from(d.label) == class) {
            images.push(crate::page::images::DigitExample {
                class,
                x: d.scaled().to_vec(),
            });
        }
    }
    crate::page::images::DigitExamples {
        licence: LICENCE.into(),
        side: SIDE,
        images,
    }
}

/// Reads the wheel, checks it and writes the prepared digits to `out`.
pub fn prepare_digits(
    wheel: &Path,
    out: &Path,
    valid_share: f64,
    command: &str,
) -> Result<DigitsManifest, CorpusError> {
    if !(0.0..1.0).contains(&valid_share) {
        return Err(CorpusError::Settings(format!(
            "--valid-share must be in [0, 1), got {valid_share}"
        )));
    }
    let bytes = std::fs::read(wheel).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => CorpusError::MissingWheel {
            path: wheel.to_path_buf(),
        },
        _ => CorpusError::Read {
            path: wheel.to_path_buf(),
            source,
        },
    })?;
    let sha = hex(&Sha256::digest(&bytes));
    if sha != WHEEL_SHA256 {
        return Err(CorpusError::Damaged {
            path: wheel.to_path_buf(),
            detail: format!("SHA-256 {sha}, expected {WHEEL_SHA256}; run {SOURCE_SCRIPT} again"),
        });
    }
    let damaged = |detail: String| CorpusError::Damaged {
        path: wheel.to_path_buf(),
        detail,
    };
    let member = super::zip::member(&bytes, WHEEL_MEMBER).map_err(damaged)?;
    let mut csv = String::new();
    GzDecoder::new(&member[..])
        .read_to_string(&mut csv)
        .map_err(|e| damaged(format!("{WHEEL_MEMBER}: {e}")))?;
    let digits = parse(&csv, true, wheel)?;
    if digits.len() != SOURCE_IMAGES {
        return Err(damaged(format!(
            "{} images, not {SOURCE_IMAGES}",
            digits.len()
        )));
    }
    let mut splits: [Vec<&Digit>; 2] = [Vec::new(), Vec::new()];
    let mut per_class = [[0; CLASSES]; 2];
    for (i, d) in digits.iter().enumerate() {
        let split = Split::of_key(&format!("digits/{i}"), valid_share);
        splits[split.index()].push(d);
        per_class[split.index()][usize::from(d.label)] += 1;
    }
    std::fs::create_dir_all(out).map_err(|source| CorpusError::Write {
        path: out.to_path_buf(),
        source,
    })?;
    let mut sha256 = [String::new(), String::new()];
    for split in Split::ALL {
        let lines: Vec<String> = splits[split.index()].iter().map(|d| d.line()).collect();
        sha256[split.index()] = write_lines(&out.join(split_file(split)), &lines)?;
    }
    let manifest = DigitsManifest {
        command: command.to_owned(),
        wheel: WHEEL_FILE.into(),
        wheel_sha256: sha,
        member: WHEEL_MEMBER.into(),
        member_sha256: hex(&Sha256::digest(csv.as_bytes())),
        valid_share,
        per_class,
        sha256,
        licence: LICENCE.into(),
    };
    let mut json = serde_json::to_string_pretty(&manifest)
        .map_err(|e| CorpusError::Settings(format!("cannot serialize the manifest: {e}")))?;
    json.push('\n');
    let path = out.join(DIGITS_MANIFEST);
    std::fs::write(&path, json).map_err(|source| CorpusError::Write { path, source })?;
    Ok(manifest)
}

/// Writes `lines` gzip-compressed without a timestamp; returns the SHA-256 of the plain text.
fn write_lines(path: &Path, lines: &[String]) -> Result<String, CorpusError> {
    let failed = |source| CorpusError::Write {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(failed)?;
    let mut gzip = GzBuilder::new().mtime(0).write(
        std::io::BufWriter::new(file),
        Compression::new(super::GZIP_LEVEL),
    );
    let mut hasher = Sha256::new();
    for line in lines {
        for bytes in [line.as_bytes(), b"\n"] {
            hasher.update(bytes);
            gzip.write_all(bytes).map_err(failed)?;
        }
    }
    gzip.finish().map_err(failed)?.flush().map_err(failed)?;
    Ok(hex(&hasher.finalize()))
}

/// The manifest of prepared digits.
pub fn read_manifest(dir: &Path) -> Result<DigitsManifest, CorpusError> {
    let path: PathBuf = dir.join(DIGITS_MANIFEST);
    let bytes = std::fs::read(&path).map_err(|_| CorpusError::MissingDigits {
        path: path.clone(),
        dir: dir.to_path_buf(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| CorpusError::Damaged {
        path,
        detail: e.to_string(),
    })
}

/// The prepared digits of one split.
pub fn read_digits(dir: &Path, split: Split) -> Result<Vec<Digit>, CorpusError> {
    let path: PathBuf = dir.join(split_file(split));
    let file = std::fs::File::open(&path).map_err(|_| CorpusError::MissingDigits {
        path: path.clone(),
        dir: dir.to_path_buf(),
    })?;
    let mut text = String::new();
    GzDecoder::new(file)
        .read_to_string(&mut text)
        .map_err(|e| CorpusError::Damaged {
            path: path.clone(),
            detail: e.to_string(),
        })?;
    parse(&text, false, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_in_both_orders_and_bad_values_are_refused() {
        let path = Path::new("x.csv");
        let mut pixels_first: Vec<String> = (0..PIXELS).map(|i| (i % 17).to_string()).collect();
        pixels_first.push("7".into());
        let source = pixels_first.join(",");
        let d = parse(&source, true, path).unwrap();
        assert_eq!(d[0].label, 7);
        assert_eq!(d[0].pixels[16], 16);
        let again = parse(&d[0].line(), false, path).unwrap();
        assert_eq!(again, d);
        assert_eq!(d[0].scaled()[0], -1.0);
        assert_eq!(d[0].scaled()[16], 1.0);
        for bad in [
            source.replace(",7", ",10"),
            source.replacen("16", "17", 1),
            "1,2,3".to_string(),
            source.replacen('1', "x", 1),
        ] {
            assert!(parse(&bad, true, path).is_err(), "{bad}");
        }
    }
}
