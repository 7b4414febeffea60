//! llama.cpp's GGUF files, read: the header (metadata and tensor directory) and the tensors'
//! bytes, checked against the file before anything of a size the file names is allocated.
//!
//! Written from the format's description in ggml's `docs/gguf.md` and gguf-py
//! (`gguf-py/gguf/gguf_reader.py`, `constants.py`): a little-endian file of
//!
//! | field | type |
//! |---|---|
//! | magic | `GGUF` |
//! | version | u32 (2 or 3: counts are u64) |
//! | tensor count, metadata count | u64, u64 |
//! | metadata | key (string), value type (u32), value |
//! | tensor infos | name (string), dimensions (u32), each (u64, innermost first), ggml type (u32), offset (u64) |
//! | padding | to `general.alignment` (32 when absent) |
//! | tensor data | each tensor at its offset from here, aligned |
//!
//! A string is a u64 length and UTF-8 bytes; an array a u32 element type, a u64 count and the
//! elements. A tensor's dimensions run innermost first: PyTorch's `[out, in]` matrix is stored
//! `[in, out]`, so [`TensorInfo::shape`] reverses them.
//!
//! Of ggml's types, the floats (F32, F16, BF16) and the two block quantizations Unmask stores
//! itself (`Q8_0`, `Q4_0`: 32 weights and an f16 scale per block, `ggml-common.h`'s `block_q8_0`
//! and `block_q4_0`) are read; the others are named in the error ([`super::gguf_import`] turns a
//! file into a model folder).

use std::collections::BTreeMap;

use thiserror::Error;

/// The file's first four bytes.
pub const MAGIC: &[u8; 4] = b"GGUF";
/// `general.alignment` when the file does not set it.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most tensors a file may list: 2²⁰ (an 8B model has 291).
pub const MAX_TENSORS: u64 = 1 << 20;
/// Most metadata entries: 2²⁰ (a file has a few dozen; a vocabulary is one array).
pub const MAX_METADATA: u64 = 1 << 20;
/// Most dimensions of one tensor (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Deepest nesting of arrays in the metadata (gguf-py writes one level).
const MAX_ARRAY_DEPTH: usize = 2;
/// Longest metadata array: 2²² (a vocabulary and its merges are the longest, ≤ 2²⁰ tokens as
/// [`crate::limits::MAX_VOCAB_SIZE`] bounds them).
pub const MAX_ARRAY_LEN: u64 = 1 << 22;
/// Elements reserved ahead of reading them; an array grows past this as its bytes are read.
const RESERVE: u64 = 1 << 16;
/// The first read of [`Gguf::read`]: most headers fit (a 151,936-token vocabulary and its merges
/// take about 4 MB, read in a second turn).
pub const HEADER_CHUNK: u64 = 1 << 20;
/// Weights per block of `Q8_0` and `Q4_0` (`QK8_0`, `QK4_0`).
pub const GGML_BLOCK: usize = 32;

/// What can be wrong with a GGUF file.
#[derive(Debug, Error)]
pub enum GgufError {
    /// Not a GGUF file at all.
    #[error("not a GGUF file: it starts with {found:?}, not \"GGUF\"")]
    Magic {
        /// The first bytes.
        found: Vec<u8>,
    },
    /// A version this reader does not know.
    #[error("GGUF version {found} is not read (versions 2 and 3 are)")]
    Version {
        /// The file's version.
        found: u32,
    },
    /// The file ends inside something.
    #[error(
        "the file ends at byte {len} inside {what} (it needs {needed} bytes from {at}); it is truncated: download it again"
    )]
    Truncated {
        /// What was being read.
        what: String,
        /// Where it starts.
        at: u64,
        /// Bytes it needs.
        needed: u64,
        /// The file's length.
        len: u64,
    },
    /// A count beyond what any model file holds.
    #[error("{what} = {value} is more than Unmask reads (at most {max}); the file is damaged")]
    TooLarge {
        /// What was counted.
        what: String,
        /// The count.
        value: u64,
        /// The bound.
        max: u64,
    },
    /// A metadata value type ggml does not define.
    #[error("metadata `{key}` has value type {id}, which GGUF does not define")]
    ValueType {
        /// The entry.
        key: String,
        /// The type id.
        id: u32,
    },
    /// A string that is not UTF-8.
    #[error("{what} is not UTF-8")]
    Utf8 {
        /// Which string.
        what: String,
    },
    /// A tensor whose description does not hold together.
    #[error("tensor `{name}`: {why}")]
    Tensor {
        /// The tensor.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A tensor stored in a ggml type this reader does not decode.
    #[error(
        "tensor `{name}` is stored as {ty}; Unmask reads F32, F16, BF16, Q8_0, Q4_0 and Q6_K (re-quantize the file with `llama-quantize --pure` to Q8_0 or Q4_0, or convert it with `convert_hf_to_gguf.py --outtype q8_0`)"
    )]
    UnsupportedType {
        /// The tensor.
        name: String,
        /// ggml's name of its type.
        ty: String,
    },
    /// A metadata entry that is needed but absent.
    #[error(
        "the file has no metadata `{key}`; was it written by llama.cpp's convert_hf_to_gguf.py?"
    )]
    MissingKey {
        /// The key.
        key: String,
    },
    /// A metadata entry of the wrong type.
    #[error("metadata `{key}` is {found}, where {expected} is needed")]
    KeyType {
        /// The key.
        key: String,
        /// What it holds.
        found: &'static str,
        /// What it should hold.
        expected: &'static str,
    },
    /// The bytes given to [`Gguf::parse_prefix`] end before the header does: read up to
    /// `needed` and parse again ([`Gguf::read`] does).
    #[error("the header runs past the {have} bytes read (to byte {needed})")]
    Incomplete {
        /// Bytes given.
        have: u64,
        /// Bytes the header needs at least.
        needed: u64,
    },
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(String),
    /// An alignment that is no power of two.
    #[error("general.alignment = {value} is not a power of two")]
    Alignment {
        /// The value.
        value: u64,
    },
}

/// What a file's first bytes give ([`Gguf::from_prefix`]).
#[derive(Clone, Debug)]
pub enum Prefix {
    /// The whole header.
    Header(Gguf),
    /// Not yet: read this many bytes from the start, then try again.
    Read(u64),
}

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Any unsigned integer type (u8 … u64).
    Uint(u64),
    /// Any signed integer type (i8 … i64).
    Int(i64),
    /// f32 or f64.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
}

impl Value {
    /// What kind of value it is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Uint(_) | Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
        }
    }

    /// The value as a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Uint(v) => Some(v),
            Value::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

impl std::fmt::Display for Value {
    /// Numbers and booleans as they are, strings quoted, arrays by their length.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Uint(v) => write!(f, "{v}"),
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(s) => write!(f, "{s:?}"),
            Value::Array(items) => write!(f, "an array of {}", items.len()),
        }
    }
}

/// A tensor's storage type (ggml's `ggml_type` ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit floats (id 0).
    F32,
    /// 16-bit floats (id 1).
    F16,
    /// bfloat16 (id 30).
    Bf16,
    /// Blocks of 32: an f16 scale d, then 32 signed bytes q; w = q·d (id 8).
    Q8_0,
    /// Blocks of 32: an f16 scale d, then 16 bytes whose low nibbles are weights 0–15 and high
    /// nibbles weights 16–31, each q in 0..16; w = (q − 8)·d (id 2).
    Q4_0,
    /// Super-blocks of 256 (`block_q6_K`): 128 bytes of low nibbles, 64 of high bit pairs, 16
    /// signed 8-bit scales (one per 16 weights) and an f16 d; w = d·scale·(q − 32), q in 0..64
    /// (id 14). What llama-quantize gives `output.weight` in its Q4_0 and most other files.
    Q6K,
}

/// Weights per `Q6_K` super-block (`QK_K`).
const QK_K: usize = 256;

/// ggml's names of its type ids, for messages (`ggml.c`'s `type_traits`).
const GGML_TYPE_NAMES: [(u32, &str); 31] = [
    (0, "F32"),
    (1, "F16"),
    (2, "Q4_0"),
    (3, "Q4_1"),
    (6, "Q5_0"),
    (7, "Q5_1"),
    (8, "Q8_0"),
    (9, "Q8_1"),
    (10, "Q2_K"),
    (11, "Q3_K"),
    (12, "Q4_K"),
    (13, "Q5_K"),
    (14, "Q6_K"),
    (15, "Q8_K"),
    (16, "IQ2_XXS"),
    (17, "IQ2_XS"),
    (18, "IQ3_XXS"),
    (19, "IQ1_S"),
    (20, "IQ4_NL"),
    (21, "IQ3_S"),
    (22, "IQ2_S"),
    (23, "IQ4_XS"),
    (24, "I8"),
    (25, "I16"),
    (26, "I32"),
    (27, "I64"),
    (28, "F64"),
    (29, "IQ1_M"),
    (30, "BF16"),
    (34, "TQ1_0"),
    (35, "TQ2_0"),
];

impl GgmlType {
    /// The type of id `id`, or ggml's name for it (or its number) when it is not read here.
    fn from_id(id: u32) -> Result<Self, String> {
        match id {
            0 => Ok(GgmlType::F32),
            1 => Ok(GgmlType::F16),
            30 => Ok(GgmlType::Bf16),
            8 => Ok(GgmlType::Q8_0),
            2 => Ok(GgmlType::Q4_0),
            14 => Ok(GgmlType::Q6K),
            _ => Err(GGML_TYPE_NAMES
                .iter()
                .find(|(i, _)| *i == id)
                .map_or_else(|| format!("ggml type {id}"), |(_, n)| (*n).to_owned())),
        }
    }

    /// ggml's name.
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Bf16 => "BF16",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q6K => "Q6_K",
        }
    }

    /// Elements per block and bytes per block.
    fn block(self) -> (u64, u64) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::Bf16 => (1, 2),
            GgmlType::Q8_0 => (GGML_BLOCK as u64, 2 + GGML_BLOCK as u64),
            GgmlType::Q4_0 => (GGML_BLOCK as u64, 2 + GGML_BLOCK as u64 / 2),
            GgmlType::Q6K => (QK_K as u64, (QK_K / 2 + QK_K / 4 + QK_K / 16 + 2) as u64),
        }
    }

    /// The safetensors dtype of a float type (`None`: a block quantization).
    pub fn float_dtype(self) -> Option<safetensors::Dtype> {
        match self {
            GgmlType::F32 => Some(safetensors::Dtype::F32),
            GgmlType::F16 => Some(safetensors::Dtype::F16),
            GgmlType::Bf16 => Some(safetensors::Dtype::BF16),
            GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q6K => None,
        }
    }

    /// Whether it is a block quantization.
    pub fn is_quantized(self) -> bool {
        self.float_dtype().is_none()
    }

    /// Whether its blocks are Unmask's own (32 levels and an f16 scale: [`split_blocks`]), so
    /// that they can be kept as they are; a `Q6_K` tensor is decoded instead.
    pub fn keeps_blocks(self) -> bool {
        matches!(self, GgmlType::Q8_0 | GgmlType::Q4_0)
    }
}

/// One entry of the tensor directory.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Its name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Its dimensions as stored, innermost first.
    pub dims: Vec<u64>,
    /// How it is stored.
    pub ty: GgmlType,
    /// Where its bytes are in the file (absolute, checked to lie inside it).
    pub range: std::ops::Range<u64>,
}

impl TensorInfo {
    /// Its shape in PyTorch's order (outermost first): a matrix is `[rows, cols]`.
    pub fn shape(&self) -> Vec<usize> {
        // Each dimension was bounded by the file's length when the directory was read.
        self.dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect()
    }

    /// Its number of elements.
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// A parsed GGUF header: the metadata and the tensor directory, each tensor's bytes located.
#[derive(Clone, Debug)]
pub struct Gguf {
    /// The format version.
    pub version: u32,
    /// The metadata, by key.
    pub metadata: BTreeMap<String, Value>,
    /// The tensors, in the file's order.
    pub tensors: Vec<TensorInfo>,
}

/// A cursor over the file's bytes that names what it reads when the file ends.
/// A cursor over the first bytes of a file of `file_len` bytes: reading past them is
/// [`GgufError::Incomplete`] while the file goes on, [`GgufError::Truncated`] where it ends.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    file_len: u64,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        let have = self.bytes.len() as u64;
        match (self.at as u64).checked_add(n) {
            Some(end) if end <= have => {
                let slice = &self.bytes[self.at..end as usize];
                self.at = end as usize;
                Ok(slice)
            }
            Some(end) if end <= self.file_len => Err(GgufError::Incomplete { have, needed: end }),
            _ => Err(GgufError::Truncated {
                what: what(),
                at: self.at as u64,
                needed: n,
                len: self.file_len,
            }),
        }
    }

    /// Bytes of the file after the cursor.
    fn left(&self) -> u64 {
        self.file_len.saturating_sub(self.at as u64)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A count of items at least `min_bytes` each: refused when the rest of the file cannot hold
    /// them, so that nothing is reserved for a count the file does not back.
    fn count(
        &mut self,
        min_bytes: u64,
        max: u64,
        what: &dyn Fn() -> String,
    ) -> Result<u64, GgufError> {
        let n = self.u64(what)?;
        if n > max {
            return Err(GgufError::TooLarge {
                what: what(),
                value: n,
                max,
            });
        }
        if n.saturating_mul(min_bytes) > self.left() {
            return Err(GgufError::Truncated {
                what: what(),
                at: self.at as u64,
                needed: n.saturating_mul(min_bytes),
                len: self.file_len,
            });
        }
        Ok(n)
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::Utf8 { what: what() })
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<Value, GgufError> {
        let what = || format!("metadata `{key}`");
        Ok(match ty {
            0 => Value::Uint(self.array::<1>(&what)?[0] as u64),
            1 => Value::Int(self.array::<1>(&what)?[0] as i8 as i64),
            2 => Value::Uint(u16::from_le_bytes(self.array(&what)?) as u64),
            3 => Value::Int(i16::from_le_bytes(self.array(&what)?) as i64),
            4 => Value::Uint(self.u32(&what)? as u64),
            5 => Value::Int(i32::from_le_bytes(self.array(&what)?) as i64),
            6 => Value::Float(f32::from_le_bytes(self.array(&what)?) as f64),
            7 => Value::Bool(self.array::<1>(&what)?[0] != 0),
            8 => Value::String(self.string(&what)?),
            9 if depth < MAX_ARRAY_DEPTH => {
                let element = self.u32(&what)?;
                // Every element takes at least a byte (a string at least its length).
                let n = self.count(1, MAX_ARRAY_LEN, &what)?;
                let mut items = Vec::with_capacity(n.min(RESERVE) as usize);
                for _ in 0..n {
                    items.push(self.value(element, key, depth + 1)?);
                }
                Value::Array(items)
            }
            9 => {
                return Err(GgufError::TooLarge {
                    what: format!("the nesting of arrays in metadata `{key}`"),
                    value: depth as u64 + 1,
                    max: MAX_ARRAY_DEPTH as u64,
                });
            }
            10 => Value::Uint(self.u64(&what)?),
            11 => Value::Int(i64::from_le_bytes(self.array(&what)?)),
            12 => Value::Float(f64::from_le_bytes(self.array(&what)?)),
            id => {
                return Err(GgufError::ValueType {
                    key: key.to_owned(),
                    id,
                });
            }
        })
    }
}

impl Gguf {
    /// Reads the header of `bytes` (the whole file) and locates every tensor in it.
    pub fn parse(bytes: &[u8]) -> Result<Self, GgufError> {
        Self::parse_prefix(bytes, bytes.len() as u64)
    }

    /// Reads the header of a file of `file_len` bytes from its first bytes, `prefix`:
    /// [`GgufError::Incomplete`] when the header runs past them.
    pub fn parse_prefix(prefix: &[u8], file_len: u64) -> Result<Self, GgufError> {
        let mut r = Reader {
            bytes: prefix,
            at: 0,
            file_len,
        };
        let magic = match r.take(4, &|| "the magic number".into()) {
            Ok(magic) => magic,
            Err(e @ GgufError::Incomplete { .. }) => return Err(e),
            Err(_) => {
                return Err(GgufError::Magic {
                    found: prefix[..prefix.len().min(4)].to_vec(),
                });
            }
        };
        if magic != MAGIC {
            return Err(GgufError::Magic {
                found: magic.to_vec(),
            });
        }
        let version = r.u32(&|| "the version".into())?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::Version { found: version });
        }
        // A tensor info takes at least 8 + 4 + 4 + 8 bytes; a metadata entry 8 + 4 + 1.
        let tensor_count = r.count(0, MAX_TENSORS, &|| "the tensor count".into())?;
        let metadata_count = r.count(13, MAX_METADATA, &|| "the metadata count".into())?;
        let mut metadata = BTreeMap::new();
        for i in 0..metadata_count {
            let key = r.string(&|| format!("metadata entry {i}'s key"))?;
            let ty = r.u32(&|| format!("metadata `{key}`'s type"))?;
            let value = r.value(ty, &key, 0)?;
            metadata.insert(key, value);
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_u64() {
                Some(a) if a.is_power_of_two() => a,
                Some(a) => return Err(GgufError::Alignment { value: a }),
                None => {
                    return Err(GgufError::KeyType {
                        key: "general.alignment".into(),
                        found: v.kind(),
                        expected: "an integer",
                    });
                }
            },
        };
        let min_info = 24;
        if tensor_count.saturating_mul(min_info) > r.left() {
            return Err(GgufError::Truncated {
                what: "the tensor directory".into(),
                at: r.at as u64,
                needed: tensor_count.saturating_mul(min_info),
                len: file_len,
            });
        }
        let mut infos = Vec::with_capacity(tensor_count as usize);
        for i in 0..tensor_count {
            let name = r.string(&|| format!("tensor {i}'s name"))?;
            let what = || format!("tensor `{name}`'s description");
            let n_dims = r.u32(&what)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(GgufError::Tensor {
                    name,
                    why: format!("{n_dims} dimensions (1 to {MAX_DIMS} are possible)"),
                });
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64(&what)?);
            }
            let ty_id = r.u32(&what)?;
            let offset = r.u64(&what)?;
            infos.push((name, dims, ty_id, offset));
        }
        let data_start = (r.at as u64).next_multiple_of(alignment);
        let len = file_len;
        let mut tensors = Vec::with_capacity(infos.len());
        for (name, dims, ty_id, offset) in infos {
            let ty = GgmlType::from_id(ty_id).map_err(|ty| GgufError::UnsupportedType {
                name: name.clone(),
                ty,
            })?;
            let (per_block, block_bytes) = ty.block();
            let elements = dims
                .iter()
                .try_fold(1u64, |n, &d| n.checked_mul(d))
                .filter(|&n| n > 0);
            let Some(elements) = elements else {
                return Err(GgufError::Tensor {
                    name,
                    why: format!("dimensions {dims:?} hold no elements or overflow"),
                });
            };
            if dims[0] % per_block != 0 {
                return Err(GgufError::Tensor {
                    name,
                    why: format!(
                        "its rows of {} are not whole blocks of {per_block} ({})",
                        dims[0],
                        ty.name()
                    ),
                });
            }
            if offset % alignment != 0 {
                return Err(GgufError::Tensor {
                    name,
                    why: format!("its offset {offset} is not aligned to {alignment}"),
                });
            }
            let size = elements / per_block * block_bytes;
            let range = data_start
                .checked_add(offset)
                .and_then(|s| s.checked_add(size).map(|e| s..e))
                .filter(|r| r.end <= len);
            let Some(range) = range else {
                return Err(GgufError::Truncated {
                    what: format!("tensor `{name}`'s data"),
                    at: data_start.saturating_add(offset),
                    needed: size,
                    len,
                });
            };
            tensors.push(TensorInfo {
                name,
                dims,
                ty,
                range,
            });
        }
        Ok(Gguf {
            version,
            metadata,
            tensors,
        })
    }

    /// Reads the header of the file `file` a prefix at a time (1 MiB, then as much more as the
    /// header needs), never the tensors: a file of any size costs its header's bytes.
    pub fn read<R: std::io::Read + std::io::Seek>(file: &mut R) -> Result<Self, GgufError> {
        Self::read_from(file, HEADER_CHUNK)
    }

    /// [`Gguf::read`], reading `first` bytes first.
    fn read_from<R: std::io::Read + std::io::Seek>(
        file: &mut R,
        first: u64,
    ) -> Result<Self, GgufError> {
        use std::io::{Read, SeekFrom};
        let io = |e: std::io::Error| GgufError::Io(e.to_string());
        let len = file.seek(SeekFrom::End(0)).map_err(io)?;
        let mut prefix = Vec::new();
        let mut want = first.max(1).min(len);
        loop {
            let have = prefix.len() as u64;
            if have < want {
                file.seek(SeekFrom::Start(have)).map_err(io)?;
                file.by_ref()
                    .take(want - have)
                    .read_to_end(&mut prefix)
                    .map_err(io)?;
                if (prefix.len() as u64) < want {
                    return Err(GgufError::Io(format!(
                        "the file shrank to {} bytes while it was read",
                        prefix.len()
                    )));
                }
            }
            match Self::from_prefix(&prefix, len)? {
                Prefix::Header(header) => return Ok(header),
                Prefix::Read(more) => want = more,
            }
        }
    }

    /// The header from a file's first bytes, or how many of them to read before trying again
    /// (more than `prefix` holds, at most the file: each turn of a reader's loop reads more, at
    /// least twice as much). A reader starts with [`HEADER_CHUNK`] bytes.
    pub fn from_prefix(prefix: &[u8], file_len: u64) -> Result<Prefix, GgufError> {
        match Self::parse_prefix(prefix, file_len) {
            Ok(header) => Ok(Prefix::Header(header)),
            // `needed` lies past the prefix and within the file.
            Err(GgufError::Incomplete { needed, have }) => Ok(Prefix::Read(
                needed.max(have.saturating_mul(2)).min(file_len),
            )),
            Err(e) => Err(e),
        }
    }

    /// The bytes of `tensor` (one of this header's), read from `file`.
    pub fn read_tensor<R: std::io::Read + std::io::Seek>(
        file: &mut R,
        tensor: &TensorInfo,
    ) -> Result<Vec<u8>, GgufError> {
        use std::io::SeekFrom;
        let io = |e: std::io::Error| GgufError::Io(format!("tensor `{}`: {e}", tensor.name));
        file.seek(SeekFrom::Start(tensor.range.start)).map_err(io)?;
        let mut bytes = vec![0; (tensor.range.end - tensor.range.start) as usize];
        file.read_exact(&mut bytes).map_err(io)?;
        Ok(bytes)
    }

    /// The metadata `key`, which must be there.
    pub fn get(&self, key: &str) -> Result<&Value, GgufError> {
        self.metadata.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_owned(),
        })
    }

    /// The metadata `key` as a non-negative integer, which must be there.
    pub fn u64(&self, key: &str) -> Result<u64, GgufError> {
        let v = self.get(key)?;
        v.as_u64().ok_or_else(|| GgufError::KeyType {
            key: key.to_owned(),
            found: v.kind(),
            expected: "a non-negative integer",
        })
    }

    /// The metadata `key` as a float, if it is there.
    pub fn f64(&self, key: &str) -> Result<Option<f64>, GgufError> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(Value::Float(f)) => Ok(Some(*f)),
            Some(v) => Err(GgufError::KeyType {
                key: key.to_owned(),
                found: v.kind(),
                expected: "a float",
            }),
        }
    }

    /// The metadata `key` as a string, if it is there.
    pub fn str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(GgufError::KeyType {
                key: key.to_owned(),
                found: v.kind(),
                expected: "a string",
            }),
        }
    }

    /// The tensor `name`, if the file has it.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// A quantized matrix split into its levels and its scales, as Unmask stores them
/// ([`super::quant`]): one signed level per weight (Q4_0's offset of 8 removed, so −8..=7), and
/// the blocks' f16 scales as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocks {
    /// One level per weight, row-major.
    pub levels: Vec<i8>,
    /// The f16 scales' bytes, one per block, in order.
    pub scales: Vec<u8>,
}

/// The levels and scales of `bytes`, a tensor stored as `ty` (Q8_0 or Q4_0).
pub fn split_blocks(bytes: &[u8], ty: GgmlType) -> Blocks {
    let (_, block_bytes) = ty.block();
    let blocks = bytes.len() / block_bytes as usize;
    let mut levels = Vec::with_capacity(blocks * GGML_BLOCK);
    let mut scales = Vec::with_capacity(blocks * 2);
    for block in bytes.chunks_exact(block_bytes as usize) {
        scales.extend_from_slice(&block[..2]);
        let q = &block[2..];
        match ty {
            GgmlType::Q4_0 => {
                levels.extend(q.iter().map(|&b| (b & 0x0F) as i8 - 8));
                levels.extend(q.iter().map(|&b| (b >> 4) as i8 - 8));
            }
            _ => levels.extend(q.iter().map(|&b| b as i8)),
        }
    }
    Blocks { levels, scales }
}

/// The f32 values of `bytes`, a tensor stored as a float type (F32, F16 or BF16), or the
/// dequantized weights of a quantized one (w = q·d, as ggml's `dequantize_row_q8_0`; `Q6_K` as
/// [`decode_q6_k`]).
pub fn decode(bytes: &[u8], ty: GgmlType) -> Vec<f32> {
    match ty.float_dtype() {
        Some(dtype) => super::load::float_values(bytes, dtype).unwrap_or_default(),
        None if ty == GgmlType::Q6K => decode_q6_k(bytes),
        None => {
            let Blocks { levels, scales } = split_blocks(bytes, ty);
            super::quant::scale_levels(&levels, &scales)
        }
    }
}

/// The weights of `Q6_K` super-blocks (ggml-quants.c `dequantize_row_q6_K`): in each half of
/// 128 weights, group g (of 32) takes its low four bits from the half's `ql` bytes 0–31 (g = 0,
/// 2) or 32–63 (g = 1, 3), low nibble for g < 2 and high for g ≥ 2, and its top two bits from
/// bits 2g, 2g + 1 of the half's `qh` bytes; weight i is scaled by `d · scales[i / 16]`.
pub fn decode_q6_k(bytes: &[u8]) -> Vec<f32> {
    let (_, block_bytes) = GgmlType::Q6K.block();
    let mut out = Vec::with_capacity(bytes.len() / block_bytes as usize * QK_K);
    for block in bytes.chunks_exact(block_bytes as usize) {
        let (ql, rest) = block.split_at(QK_K / 2);
        let (qh, rest) = rest.split_at(QK_K / 4);
        let (scales, d) = rest.split_at(QK_K / 16);
        let d = half::f16::from_le_bytes([d[0], d[1]]).to_f32();
        for i in 0..QK_K {
            let (half, g, l) = (i / 128, (i % 128) / 32, i % 32);
            let low = ql[half * 64 + (g % 2) * 32 + l] >> (4 * (g / 2)) & 0x0F;
            let high = (qh[half * 32 + l] >> (2 * g)) & 0x03;
            let q = (low | (high << 4)) as i32 - 32;
            out.push(d * scales[i / 16] as i8 as f32 * q as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_low_nibbles_are_the_first_half_of_the_block() {
        let mut block = half::f16::from_f32(0.5).to_le_bytes().to_vec();
        block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let Blocks { levels, scales } = split_blocks(&block, GgmlType::Q4_0);
        let want: Vec<i8> = (0..16)
            .map(|j| j - 8)
            .chain((0..16).map(|j| 7 - j))
            .collect();
        assert_eq!(levels, want);
        assert_eq!(scales, block[..2]);
        let w = decode(&block, GgmlType::Q4_0);
        assert_eq!(w[0], -4.0);
        assert_eq!(w[16], 3.5);
    }

    #[test]
    fn q8_0_is_a_scale_then_signed_bytes() {
        let mut block = half::f16::from_f32(2.0).to_le_bytes().to_vec();
        block.extend((0..32).map(|j| (j as i8 - 16) as u8));
        let w = decode(&block, GgmlType::Q8_0);
        assert_eq!(w.len(), GGML_BLOCK);
        assert_eq!((w[0], w[31]), (-32.0, 30.0));
    }

    #[test]
    fn a_header_read_a_little_at_a_time_is_the_whole_files() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gguf/llada.q4_0.gguf"
        );
        let bytes = std::fs::read(path).unwrap();
        let whole = Gguf::parse(&bytes).unwrap();
        for first in [1, 64, 1000, bytes.len() as u64] {
            let mut file = std::io::Cursor::new(&bytes);
            let read = Gguf::read_from(&mut file, first).unwrap();
            assert_eq!(read.metadata, whole.metadata);
            assert_eq!(read.tensors, whole.tensors);
            let t = &whole.tensors[3];
            let data = Gguf::read_tensor(&mut file, t).unwrap();
            assert_eq!(data, bytes[t.range.start as usize..t.range.end as usize]);
        }
        // Cut short, it is truncated however it is read.
        let cut = &bytes[..bytes.len() - 1];
        for first in [1, 64] {
            let err = Gguf::read_from(&mut std::io::Cursor::new(cut), first).unwrap_err();
            assert!(matches!(err, GgufError::Truncated { .. }), "{err}");
        }
    }

    #[test]
    fn q6_k_super_blocks_read_as_gguf_py_reads_them() {
        // Random super-blocks and gguf-py's dequantization of them (scripts/make_gguf_fixtures.py).
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gguf/q6k.gguf");
        let bytes = std::fs::read(path).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        let data = |name: &str| {
            let t = g.tensor(name).unwrap();
            (t.ty, &bytes[t.range.start as usize..t.range.end as usize])
        };
        let (ty, q) = data("q6k");
        assert_eq!(ty, GgmlType::Q6K);
        let (_, want) = data("q6k.expected");
        assert_eq!(decode(q, ty), decode(want, GgmlType::F32));
    }

    #[test]
    fn unknown_types_are_named() {
        assert_eq!(GgmlType::from_id(12), Err("Q4_K".to_owned()));
        assert_eq!(GgmlType::from_id(99), Err("ggml type 99".to_owned()));
        assert_eq!(GgmlType::from_id(8), Ok(GgmlType::Q8_0));
    }
}
