//! Weight-only block quantization of the decoder transformers (`unmask quantize`): every matrix —
//! the projections, the MLP, the untied head and the embedding (tied or not) — stored as 8- or
//! 4-bit integers with one f16 scale per block of [`QUANT_BLOCK`] weights along its input axis;
//! norms and biases stay as they were, and every reduction runs in the float dtype.
//!
//! The scheme is llama.cpp's `Q8_0` / `Q4_0` idea (symmetric blocks of 32 with an f16 scale,
//! `ggml-quants.c` `quantize_row_q8_0_ref` / `quantize_row_q4_0_ref`), with the 4-bit values
//! signed instead of offset by 8 and laid out row-major, so that a file's bytes are already the
//! bytes burn's quantized tensors hold (`QuantValue::Q8S` / `Q4S`, `QuantStore::PackedU32(0)`,
//! block `[1, 32]` with f16 scales): loading copies them to a GPU as they are — the weights are
//! never expanded to f32 there — and burn's `q_matmul` (cubecl's quantized matmul) dequantizes
//! inside the matmul. The CPU backend gets them expanded to f32 at load instead: burn-flex
//! dequantizes a whole matrix per call, which made the 0.6B model's forward 20× slower
//! (BENCHMARKS.md); on the CPU the format saves the download and the disk, not the memory.
//!
//! ## Layout
//!
//! A weight stored as `PREFIX.weight` `[out, in]` (PyTorch's layout) becomes two tensors:
//!
//! | key | dtype | shape | holds |
//! |---|---|---|---|
//! | `PREFIX.qweight` | `I8` (q8) | `[out, in]` | q in −127..=127 |
//! | `PREFIX.qweight` | `U8` (q4) | `[out, in / 2]` | q in −7..=7, two's complement nibbles, column 2j in the low nibble of byte j, 2j + 1 in the high one |
//! | `PREFIX.scales` | `F16` | `[out, in / 32]` | s of columns 32b..32b + 31 of each row |
//!
//! and w ≈ q · s, with s = max |w| / 127 (q8) or / 7 (q4) over the block, rounded to f16 before
//! q = round(w / s) is taken. config.json declares it: `"quantization": {"format": "q8",
//! "block_size": 32}`.

use burn::tensor::quantization::{QuantScheme, QuantStore, QuantValue, ScaleDtype};
use burn::tensor::{DType, Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Weights per block, along a matrix's input axis: one f16 scale each.
pub const QUANT_BLOCK: usize = 32;

/// How a checkpoint's matrices are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuantFormat {
    /// 8-bit integers: a quarter of f32, half of f16.
    Q8,
    /// 4-bit integers, two to a byte.
    Q4,
}

impl QuantFormat {
    /// The largest |q|: the scale maps a block's largest |w| onto it.
    pub fn max_level(self) -> f32 {
        match self {
            QuantFormat::Q8 => 127.0,
            QuantFormat::Q4 => 7.0,
        }
    }

    /// Stored values per byte.
    pub fn per_byte(self) -> usize {
        match self {
            QuantFormat::Q8 => 1,
            QuantFormat::Q4 => 2,
        }
    }

    /// The safetensors dtype of the values.
    pub fn dtype(self) -> safetensors::Dtype {
        match self {
            QuantFormat::Q8 => safetensors::Dtype::I8,
            QuantFormat::Q4 => safetensors::Dtype::U8,
        }
    }

    /// Its name (`q8`, `q4`).
    pub fn name(self) -> &'static str {
        match self {
            QuantFormat::Q8 => "q8",
            QuantFormat::Q4 => "q4",
        }
    }

    /// burn's scheme for these bytes, as a `[rows, cols]` tensor blocked along `cols`.
    fn scheme(self) -> QuantScheme {
        let value = match self {
            QuantFormat::Q8 => QuantValue::Q8S,
            QuantFormat::Q4 => QuantValue::Q4S,
        };
        QuantScheme::default()
            .with_value(value)
            .with_store(QuantStore::PackedU32(0))
            .per_block([1, QUANT_BLOCK as u8], ScaleDtype::F16)
    }
}

/// config.json's `quantization`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantization {
    /// `q8` or `q4`.
    pub format: QuantFormat,
    /// Weights per scale; [`QUANT_BLOCK`] is the only size read.
    pub block_size: usize,
}

impl Quantization {
    /// `format` in blocks of [`QUANT_BLOCK`].
    pub fn new(format: QuantFormat) -> Self {
        Self {
            format,
            block_size: QUANT_BLOCK,
        }
    }
}

/// The two keys that replace a quantized weight's `PREFIX.weight`: `PREFIX.qweight` and
/// `PREFIX.scales` (a key without `.weight` gets the suffixes appended).
pub fn quantized_keys(weight: &str) -> (String, String) {
    let prefix = weight.strip_suffix(".weight").unwrap_or(weight);
    (format!("{prefix}.qweight"), format!("{prefix}.scales"))
}

/// The stored shapes of a quantized `[rows, cols]` matrix: values, then scales.
pub fn quantized_shapes(format: QuantFormat, rows: usize, cols: usize) -> ([usize; 2], [usize; 2]) {
    ([rows, cols / format.per_byte()], [rows, cols / QUANT_BLOCK])
}

/// Why a matrix cannot be quantized.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// Its input axis is not a whole number of blocks.
    #[error("`{key}` has {cols} columns, not a multiple of the block of {QUANT_BLOCK}")]
    Blocks {
        /// The tensor.
        key: String,
        /// Its input size.
        cols: usize,
    },
    /// A NaN or infinite weight, which no scale represents.
    #[error("`{key}` holds a non-finite weight; the checkpoint is broken")]
    NonFinite {
        /// The tensor.
        key: String,
    },
    /// A weight so large that its block's scale overflows f16 (|w| above 65,504 × the
    /// largest level).
    #[error("`{key}` holds a weight of {largest}, beyond what an f16 scale reaches")]
    Range {
        /// The tensor.
        key: String,
        /// Its largest |w|.
        largest: f32,
    },
    /// Stored bytes that do not fill the matrix's shape.
    #[error("`{key}`: {found} bytes where a [{rows}, {cols}] matrix stores {expected}")]
    Length {
        /// The tensor.
        key: String,
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Bytes it stores.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
}

/// A quantized `[rows, cols]` matrix: the values' bytes and the scales' bytes, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuantizedMatrix {
    /// `qweight`'s bytes (row-major).
    pub values: Vec<u8>,
    /// `scales`' bytes (f16, little-endian, row-major over `[rows, cols / 32]`).
    pub scales: Vec<u8>,
}

/// Quantizes `w` (`[rows, cols]`, row-major) block by block (see the module's docs).
pub fn quantize_matrix(
    key: &str,
    w: &[f32],
    rows: usize,
    cols: usize,
    format: QuantFormat,
) -> Result<QuantizedMatrix, QuantError> {
    if cols == 0 || !cols.is_multiple_of(QUANT_BLOCK) {
        return Err(QuantError::Blocks {
            key: key.to_owned(),
            cols,
        });
    }
    let elements = rows.checked_mul(cols).filter(|&n| n == w.len());
    if elements.is_none() {
        return Err(QuantError::Length {
            key: key.to_owned(),
            rows,
            cols,
            expected: rows.saturating_mul(cols).saturating_mul(4),
            found: w.len().saturating_mul(4),
        });
    }
    if w.iter().any(|x| !x.is_finite()) {
        return Err(QuantError::NonFinite {
            key: key.to_owned(),
        });
    }
    let max_level = format.max_level();
    let mut levels = Vec::with_capacity(rows * cols);
    let mut scales = Vec::with_capacity(rows * cols / QUANT_BLOCK * 2);
    for block in w.chunks_exact(QUANT_BLOCK) {
        let largest = block.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = half::f16::from_f32(largest / max_level);
        if !scale.is_finite() {
            return Err(QuantError::Range {
                key: key.to_owned(),
                largest,
            });
        }
        scales.extend_from_slice(&scale.to_le_bytes());
        let s = scale.to_f32();
        levels.extend(block.iter().map(|&x| {
            if s > 0.0 {
                (x / s).round().clamp(-max_level, max_level) as i8
            } else {
                0
            }
        }));
    }
    Ok(QuantizedMatrix {
        values: pack_levels(&levels, format),
        scales,
    })
}

/// Signed levels (one per weight, row-major) as `format` stores them: a byte each (q8), or two
/// to a byte, column 2j in the low nibble (q4; levels in −8..=7).
pub fn pack_levels(levels: &[i8], format: QuantFormat) -> Vec<u8> {
    match format {
        QuantFormat::Q8 => levels.iter().map(|&q| q as u8).collect(),
        QuantFormat::Q4 => levels
            .chunks_exact(2)
            .map(|pair| (pair[0] as u8 & 0x0F) | ((pair[1] as u8 & 0x0F) << 4))
            .collect(),
    }
}

/// The weights `levels` stand for: each times its block's scale (`scales`: f16 little-endian,
/// one per [`QUANT_BLOCK`] levels).
pub fn scale_levels(levels: &[i8], scales: &[u8]) -> Vec<f32> {
    let scales: Vec<f32> = scales
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    levels
        .iter()
        .enumerate()
        .map(|(i, &q)| q as f32 * scales[i / QUANT_BLOCK])
        .collect()
}

/// Checks that `values` and `scales` store a `[rows, cols]` matrix (`key` names it in the
/// error).
fn check_stored(
    key: &str,
    values: &[u8],
    scales: &[u8],
    rows: usize,
    cols: usize,
    format: QuantFormat,
) -> Result<(), QuantError> {
    let (v, s) = quantized_shapes(format, rows, cols);
    let expected =
        (v[0].checked_mul(v[1])).zip(s[0].checked_mul(s[1]).and_then(|n| n.checked_mul(2)));
    let found = (values.len(), scales.len());
    match expected {
        Some(e) if e == found && cols.is_multiple_of(QUANT_BLOCK) => Ok(()),
        _ => Err(QuantError::Length {
            key: key.to_owned(),
            rows,
            cols,
            expected: expected.map_or(usize::MAX, |(v, s)| v.saturating_add(s)),
            found: found.0.saturating_add(found.1),
        }),
    }
}

/// The weights a quantized matrix stands for, `[rows, cols]` row-major (tests, drift reports).
pub fn dequantize_matrix(
    m: &QuantizedMatrix,
    rows: usize,
    cols: usize,
    format: QuantFormat,
) -> Result<Vec<f32>, QuantError> {
    dequantize("matrix", &m.values, &m.scales, rows, cols, format)
}

/// The weights the stored `values` and `scales` of matrix `key` stand for (see
/// [`dequantize_matrix`]).
pub fn dequantize(
    key: &str,
    values: &[u8],
    scales: &[u8],
    rows: usize,
    cols: usize,
    format: QuantFormat,
) -> Result<Vec<f32>, QuantError> {
    check_stored(key, values, scales, rows, cols, format)?;
    let levels: Vec<i8> = match format {
        QuantFormat::Q8 => values.iter().map(|&b| b as i8).collect(),
        // Shift each nibble to the top of a byte and back: the sign extends.
        QuantFormat::Q4 => values
            .iter()
            .flat_map(|&b| [((b << 4) as i8) >> 4, (b as i8) >> 4])
            .collect(),
    };
    Ok(scale_levels(&levels, scales))
}

/// The matrix `key` as a burn tensor `[rows, cols]` that stays quantized on `device`: the
/// stored bytes, uploaded as they are, once their lengths are checked against the shape.
pub fn quantized_tensor(
    key: &str,
    values: &[u8],
    scales: &[u8],
    rows: usize,
    cols: usize,
    format: QuantFormat,
    device: &Device,
) -> Result<Tensor<2>, QuantError> {
    check_stored(key, values, scales, rows, cols, format)?;
    let mut bytes = Vec::with_capacity(values.len() + scales.len());
    bytes.extend_from_slice(values);
    bytes.extend_from_slice(scales);
    let data = TensorData::from_bytes_vec(bytes, [rows, cols], DType::QFloat(format.scheme()));
    Ok(Tensor::from_data(data, device))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i / cols) as f32))
            .collect()
    }

    #[test]
    fn blocks_round_trip_within_half_a_level() {
        let (rows, cols) = (3, 64);
        let w = matrix(rows, cols);
        for format in [QuantFormat::Q8, QuantFormat::Q4] {
            let q = quantize_matrix("w", &w, rows, cols, format).unwrap();
            let (values, scales) = quantized_shapes(format, rows, cols);
            assert_eq!(q.values.len(), values[0] * values[1]);
            assert_eq!(q.scales.len(), scales[0] * scales[1] * 2);
            let back = dequantize_matrix(&q, rows, cols, format).unwrap();
            for (b, block) in w.chunks(QUANT_BLOCK).enumerate() {
                let largest = block.iter().fold(0f32, |m, x| m.max(x.abs()));
                let step = largest / format.max_level();
                for (k, &x) in block.iter().enumerate() {
                    let err = (back[b * QUANT_BLOCK + k] - x).abs();
                    // Half a level, plus the f16 rounding of the scale.
                    assert!(
                        err <= step * 0.5 + largest * 1e-3,
                        "{format:?} {b}/{k}: {err}"
                    );
                }
            }
        }
    }

    #[test]
    fn q4_nibbles_are_signed_low_first() {
        let mut w = vec![0f32; QUANT_BLOCK];
        (w[0], w[1], w[2]) = (-7.0, 7.0, -1.0);
        let q = quantize_matrix("w", &w, 1, QUANT_BLOCK, QuantFormat::Q4).unwrap();
        // Scale 1: −7 is 0b1001 in the low nibble, 7 is 0b0111 in the high one.
        assert_eq!(q.values[0], 0x79);
        assert_eq!(q.values[1], 0x0F);
        assert_eq!(
            half::f16::from_le_bytes([q.scales[0], q.scales[1]]).to_f32(),
            1.0
        );
    }

    #[test]
    fn unquantizable_matrices_are_named() {
        let err = quantize_matrix("a.weight", &[0.0; 48], 1, 48, QuantFormat::Q8).unwrap_err();
        assert!(
            err.to_string().contains("`a.weight` has 48 columns"),
            "{err}"
        );
        let mut w = vec![0.0; 32];
        w[5] = f32::NAN;
        let err = quantize_matrix("b.weight", &w, 1, 32, QuantFormat::Q4).unwrap_err();
        assert!(matches!(err, QuantError::NonFinite { .. }), "{err}");
        w[5] = 1e7;
        let err = quantize_matrix("c.weight", &w, 1, 32, QuantFormat::Q4).unwrap_err();
        assert!(matches!(err, QuantError::Range { .. }), "{err}");
        let err = quantize_matrix("d.weight", &w, 2, 32, QuantFormat::Q8).unwrap_err();
        assert!(matches!(err, QuantError::Length { .. }), "{err}");
        let short = QuantizedMatrix {
            values: vec![0; 31],
            scales: vec![0; 2],
        };
        assert!(dequantize_matrix(&short, 1, 32, QuantFormat::Q8).is_err());
    }

    #[test]
    fn the_device_tensor_is_the_dequantized_matrix() {
        let device = crate::backend::init(crate::backend::BackendKind::Cpu).unwrap();
        let (rows, cols) = (4, 64);
        let w = matrix(rows, cols);
        for format in [QuantFormat::Q8, QuantFormat::Q4] {
            let q = quantize_matrix("w", &w, rows, cols, format).unwrap();
            let want = dequantize_matrix(&q, rows, cols, format).unwrap();
            let t =
                quantized_tensor("w", &q.values, &q.scales, rows, cols, format, &device).unwrap();
            assert!(matches!(t.dtype(), DType::QFloat(_)), "{:?}", t.dtype());
            // Through a matmul with the identity, transposed as a linear layer holds it.
            let identity: Vec<f32> = (0..cols * cols)
                .map(|i| if i / cols == i % cols { 1.0 } else { 0.0 })
                .collect();
            let eye = Tensor::<2>::from_data(TensorData::new(identity, [cols, cols]), &device);
            let got = eye
                .matmul(t.transpose())
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .unwrap();
            for c in 0..cols {
                for r in 0..rows {
                    let (g, x) = (got[c * rows + r], want[r * cols + c]);
                    assert!((g - x).abs() < 1e-5, "{format:?} [{r}, {c}]: {g} vs {x}");
                }
            }
        }
    }
}
