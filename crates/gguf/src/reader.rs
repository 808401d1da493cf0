//! Parsing the GGUF header: magic, version, metadata, tensor infos.
//!
//! Every count and length read from the file is checked against the bytes that remain before
//! anything is allocated for it, so a hostile header cannot make the reader allocate more than
//! the input's own size.

use std::collections::HashMap;

use crate::error::{GgufError, Result};
use crate::types::GgmlType;
use crate::value::{Array, Value};

const MAGIC: [u8; 4] = *b"GGUF";
/// ggml's GGML_MAX_DIMS.
pub const MAX_DIMS: usize = 4;
/// Alignment of tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Arrays of arrays deeper than this are refused (real files use one level).
const MAX_ARRAY_DEPTH: usize = 8;

/// One tensor's description from the header. `offset` is relative to the start of the data
/// section ([`Gguf::data_offset`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the innermost (contiguous) one.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    pub offset: u64,
}

impl TensorInfo {
    pub fn element_count(&self) -> u64 {
        // Checked at parse time not to overflow.
        self.dims.iter().product()
    }

    /// Size of the tensor's data in bytes; `None` for a type without a known layout.
    pub fn byte_size(&self) -> Option<u64> {
        self.ty.byte_size(self.element_count())
    }
}

/// A parsed GGUF header. Tensor data is not copied: slice it out of the file's bytes with
/// [`Gguf::tensor_data`].
#[derive(Debug, Clone)]
pub struct Gguf {
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    index: HashMap<String, usize>,
    pub tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    pub alignment: u64,
    /// Absolute file offset of the tensor data section.
    pub data_offset: u64,
    /// Length of the whole file: the bytes parsed, or the length given to
    /// [`Gguf::parse_prefix`]. Sizes read from the header can be checked against it before
    /// the tensor data is at hand.
    pub file_len: u64,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Length of the whole file, of which `bytes` may be a prefix. Counts are bounded by it.
    file_len: u64,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Bytes left in the whole file, which bound every count and length.
    fn remaining_in_file(&self) -> u64 {
        self.file_len.saturating_sub(self.pos as u64)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what.to_string(),
                needed: self.pos as u64 + n as u64,
                available: self.bytes.len() as u64,
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let slice = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A count of items each at least `min_item_bytes` long, checked against what remains.
    fn count(&mut self, min_item_bytes: usize, what: &str) -> Result<usize> {
        let count = self.u64(what)?;
        let available = self.remaining_in_file();
        if count.saturating_mul(min_item_bytes as u64) > available {
            return Err(GgufError::AbsurdCount { what: what.to_string(), count, available });
        }
        // Bounded by the file length, which a caller holding it in memory has as usize; the
        // prefix may be shorter, and then the reads themselves report truncation.
        usize::try_from(count).map_err(|_| GgufError::AbsurdCount { what: what.to_string(), count, available })
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        if len > self.remaining_in_file() {
            return Err(GgufError::Truncated {
                what: what.to_string(),
                needed: (self.pos as u64).saturating_add(len),
                available: self.bytes.len() as u64,
            });
        }
        let len = usize::try_from(len).map_err(|_| GgufError::Truncated {
            what: what.to_string(),
            needed: (self.pos as u64).saturating_add(len),
            available: self.bytes.len() as u64,
        })?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| GgufError::BadUtf8 { what: what.to_string() })
    }
}

/// Smallest encoded size of one value of a GGUF value type, used to bound counts.
fn min_value_size(value_type: u32) -> usize {
    match value_type {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4 | 5 | 6 => 4,
        8 => 8,      // string: its u64 length
        9 => 4 + 8,  // array: element type and count
        10..=12 => 8,
        _ => 1,
    }
}

fn read_value(cur: &mut Cursor, key: &str, value_type: u32, depth: usize) -> Result<Value> {
    let what = key;
    Ok(match value_type {
        0 => Value::U8(cur.u8(what)?),
        1 => Value::I8(cur.u8(what)? as i8),
        2 => Value::U16(cur.u16(what)?),
        3 => Value::I16(cur.u16(what)? as i16),
        4 => Value::U32(cur.u32(what)?),
        5 => Value::I32(cur.u32(what)? as i32),
        6 => Value::F32(f32::from_bits(cur.u32(what)?)),
        7 => Value::Bool(cur.u8(what)? != 0),
        8 => Value::String(cur.string(what)?),
        9 => Value::Array(read_array(cur, key, depth + 1)?),
        10 => Value::U64(cur.u64(what)?),
        11 => Value::I64(cur.u64(what)? as i64),
        12 => Value::F64(f64::from_bits(cur.u64(what)?)),
        other => return Err(GgufError::UnknownValueType { key: key.to_string(), value_type: other }),
    })
}

fn read_array(cur: &mut Cursor, key: &str, depth: usize) -> Result<Array> {
    if depth > MAX_ARRAY_DEPTH {
        return Err(GgufError::TooDeep(MAX_ARRAY_DEPTH));
    }
    let elem_type = cur.u32(key)?;
    if elem_type > 12 {
        return Err(GgufError::UnknownValueType { key: key.to_string(), value_type: elem_type });
    }
    let min_size = min_value_size(elem_type);
    let n = cur.count(min_size, key)?;
    // Reserve only what the bytes in hand can hold; a prefix may hold fewer than `n`.
    let reserve = n.min(cur.remaining() / min_size);
    macro_rules! fixed {
        ($variant:ident, $read:expr) => {{
            let mut v = Vec::with_capacity(reserve);
            for _ in 0..n {
                v.push($read(&mut *cur)?);
            }
            Array::$variant(v)
        }};
    }
    Ok(match elem_type {
        0 => Array::U8(cur.take(n, key)?.to_vec()),
        1 => Array::I8(cur.take(n, key)?.iter().map(|&b| b as i8).collect()),
        2 => fixed!(U16, |c: &mut Cursor| c.u16(key)),
        3 => fixed!(I16, |c: &mut Cursor| c.u16(key).map(|v| v as i16)),
        4 => fixed!(U32, |c: &mut Cursor| c.u32(key)),
        5 => fixed!(I32, |c: &mut Cursor| c.u32(key).map(|v| v as i32)),
        6 => fixed!(F32, |c: &mut Cursor| c.u32(key).map(f32::from_bits)),
        7 => Array::Bool(cur.take(n, key)?.iter().map(|&b| b != 0).collect()),
        8 => fixed!(String, |c: &mut Cursor| c.string(key)),
        9 => fixed!(Array, |c: &mut Cursor| read_array(c, key, depth + 1)),
        10 => fixed!(U64, |c: &mut Cursor| c.u64(key)),
        11 => fixed!(I64, |c: &mut Cursor| c.u64(key).map(|v| v as i64)),
        12 => fixed!(F64, |c: &mut Cursor| c.u64(key).map(f64::from_bits)),
        _ => unreachable!("element type checked above"),
    })
}

impl Gguf {
    /// Parse the header from the start of `bytes`. `bytes` may be the whole file or only a
    /// prefix of it: if the prefix ends inside the header the error is
    /// [`GgufError::Truncated`] with a lower bound on the bytes needed. Tensor data is not
    /// checked here; [`Gguf::check_data`] does that once the file's length is known.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        Self::parse_prefix(bytes, bytes.len() as u64)
    }

    /// Parse the header from `prefix`, the first bytes of a file of `file_len` bytes. Counts
    /// and lengths are checked against `file_len`; running off the end of `prefix` gives
    /// [`GgufError::Truncated`], which asks for a longer prefix.
    pub fn parse_prefix(prefix: &[u8], file_len: u64) -> Result<Self> {
        let bytes = prefix;
        let file_len = file_len.max(prefix.len() as u64);
        let mut cur = Cursor { bytes, pos: 0, file_len };
        let magic = cur.array::<4>("magic")?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic { found: magic });
        }
        let version = cur.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        // A tensor info is at least name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
        let tensor_count = {
            let count = cur.u64("tensor count")?;
            // The metadata count comes first in the remaining bytes, so bound loosely here and
            // exactly once metadata has been read.
            let absurd = || GgufError::AbsurdCount { what: "tensor count".into(), count, available: cur.remaining_in_file() };
            if count.saturating_mul(32) > cur.remaining_in_file() {
                return Err(absurd());
            }
            usize::try_from(count).map_err(|_| absurd())?
        };
        // A key-value pair is at least key length (8) + value type (4) + one byte.
        let kv_count = cur.count(13, "metadata count")?;

        let mut metadata = Vec::new();
        let mut index = HashMap::new();
        for _ in 0..kv_count {
            let key = cur.string("metadata key")?;
            let value_type = cur.u32(&key)?;
            let value = read_value(&mut cur, &key, value_type, 0)?;
            if index.insert(key.clone(), metadata.len()).is_some() {
                return Err(GgufError::Duplicate { what: "metadata key", name: key });
            }
            metadata.push((key, value));
        }

        let alignment = match index.get("general.alignment").map(|&i| &metadata[i].1) {
            None => DEFAULT_ALIGNMENT,
            Some(v) => {
                let a = v.as_u64().ok_or_else(|| GgufError::BadMetadata {
                    key: "general.alignment".into(),
                    reason: format!("expected an integer, found {}", v.type_name()),
                })?;
                if a == 0 || !a.is_power_of_two() {
                    return Err(GgufError::BadAlignment(a));
                }
                a
            }
        };

        if (tensor_count as u64).saturating_mul(32) > cur.remaining_in_file() {
            return Err(GgufError::AbsurdCount {
                what: "tensor count".into(),
                count: tensor_count as u64,
                available: cur.remaining_in_file(),
            });
        }
        let mut tensors = Vec::with_capacity(tensor_count.min(cur.remaining() / 32));
        let mut tensor_index = HashMap::new();
        for _ in 0..tensor_count {
            let info = read_tensor_info(&mut cur, alignment)?;
            if tensor_index.insert(info.name.clone(), tensors.len()).is_some() {
                return Err(GgufError::Duplicate { what: "tensor name", name: info.name });
            }
            tensors.push(info);
        }

        let data_offset = (cur.pos as u64).next_multiple_of(alignment);
        Ok(Self { version, metadata, index, tensors, tensor_index, alignment, data_offset, file_len })
    }

    /// A header put together from its pieces (merging a split's parts), indexes built by the caller.
    pub(crate) fn from_parts(
        version: u32,
        metadata: Vec<(String, Value)>,
        tensors: Vec<TensorInfo>,
        tensor_index: HashMap<String, usize>,
        alignment: u64,
        data_offset: u64,
        file_len: u64,
    ) -> Self {
        let index = metadata.iter().enumerate().map(|(i, (key, _))| (key.clone(), i)).collect();
        Self { version, metadata, index, tensors, tensor_index, alignment, data_offset, file_len }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.metadata[i].1)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// Absolute byte range of a tensor's data in the file, checked against `file_len`.
    pub fn tensor_range(&self, info: &TensorInfo, file_len: u64) -> Result<core::ops::Range<usize>> {
        let size = info.byte_size().ok_or_else(|| GgufError::BadTensor {
            name: info.name.clone(),
            reason: format!("no known layout for {}", info.ty),
        })?;
        let start = self.data_offset.checked_add(info.offset);
        let end = start.and_then(|s| s.checked_add(size));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => match (usize::try_from(start), usize::try_from(end)) {
                (Ok(start), Ok(end)) => Ok(start..end),
                // Only where a file is longer than the address space (wasm32): it cannot be held.
                _ => Err(GgufError::BadTensor {
                    name: info.name.clone(),
                    reason: format!("its data ends at byte {end}, past what this machine can address"),
                }),
            },
            _ => Err(GgufError::Truncated {
                what: format!("tensor {:?}", info.name),
                needed: end.unwrap_or(u64::MAX),
                available: file_len,
            }),
        }
    }

    /// A tensor's raw bytes, sliced from the whole file.
    pub fn tensor_data<'a>(&self, file: &'a [u8], info: &TensorInfo) -> Result<&'a [u8]> {
        Ok(&file[self.tensor_range(info, file.len() as u64)?])
    }

    /// Check that every tensor's data lies inside a file of `file_len` bytes and that no two
    /// tensors overlap. Tensors of unknown types are reported by name.
    pub fn check_data(&self, file_len: u64) -> Result<()> {
        let mut ranges = Vec::with_capacity(self.tensors.len());
        for info in &self.tensors {
            let range = self.tensor_range(info, file_len)?;
            ranges.push((range, &info.name));
        }
        ranges.sort_by_key(|(r, _)| r.start);
        for pair in ranges.windows(2) {
            if pair[0].0.end > pair[1].0.start {
                return Err(GgufError::BadTensor {
                    name: pair[1].1.clone(),
                    reason: format!("its data overlaps tensor {:?}", pair[0].1),
                });
            }
        }
        Ok(())
    }

    /// Total file size implied by the header: the end of the last tensor's data.
    pub fn expected_file_len(&self) -> Option<u64> {
        self.tensors.iter().try_fold(self.data_offset, |acc, t| {
            let end = self.data_offset.checked_add(t.offset)?.checked_add(t.byte_size()?)?;
            Some(acc.max(end))
        })
    }
}

fn read_tensor_info(cur: &mut Cursor, alignment: u64) -> Result<TensorInfo> {
    let name = cur.string("tensor name")?;
    let n_dims = cur.u32(&name)? as usize;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return Err(GgufError::BadTensor {
            name,
            reason: format!("{n_dims} dimensions (1 to {MAX_DIMS} allowed)"),
        });
    }
    let mut dims = Vec::with_capacity(n_dims);
    for _ in 0..n_dims {
        dims.push(cur.u64(&name)?);
    }
    if dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).is_none_or(|n| n > i64::MAX as u64) {
        return Err(GgufError::BadTensor { name, reason: format!("dimensions {dims:?} overflow") });
    }
    let type_id = cur.u32(&name)?;
    let ty = GgmlType::from_id(type_id);
    let offset = cur.u64(&name)?;
    if offset % alignment != 0 {
        return Err(GgufError::BadTensor {
            name,
            reason: format!("data offset {offset} is not a multiple of the alignment {alignment}"),
        });
    }
    let info = TensorInfo { name, dims, ty, offset };
    if let Some(block) = ty.block_size() {
        if info.dims[0] % block as u64 != 0 {
            return Err(GgufError::BadTensor {
                name: info.name,
                reason: format!("row length {} is not a multiple of {ty}'s block size {block}", info.dims[0]),
            });
        }
    }
    Ok(info)
}
