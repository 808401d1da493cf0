//! GGUFs split in parts, as llama.cpp's `gguf-split` writes them (`NAME-00001-of-00003.gguf`):
//! every part is a GGUF of its own, the first holds all the model's metadata, and each part
//! lists `split.no` (u16, from 0), `split.count` (u16) and `split.tensors.count` (i32, the
//! tensors of all parts) beside the tensors it carries, whose offsets are relative to its own
//! data section.
//!
//! [`Gguf::merge_splits`] makes one header of the parts' headers, laid out as if the parts were
//! concatenated in order: a reader of tensor bytes then serves part `i` at the sum of the
//! lengths of the parts before it. [`split_gguf`] writes parts as `gguf-split` does (for tests
//! and fixtures).

use std::collections::HashMap;

use crate::error::{GgufError, Result};
use crate::reader::{DEFAULT_ALIGNMENT, Gguf};
use crate::value::Value;
use crate::writer::GgufWriter;

pub const KEY_SPLIT_NO: &str = "split.no";
pub const KEY_SPLIT_COUNT: &str = "split.count";
pub const KEY_SPLIT_TENSORS_COUNT: &str = "split.tensors.count";

/// Where a part stands among its split: `no` counts from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitPart {
    pub no: u16,
    pub count: u16,
    pub tensors: u64,
}

fn split_error(reason: impl Into<String>) -> GgufError {
    GgufError::Split(reason.into())
}

impl Gguf {
    /// This file's place in a split (`None` for a whole file, or a split of one part).
    pub fn split_part(&self) -> Result<Option<SplitPart>> {
        let Some(count) = self.get(KEY_SPLIT_COUNT) else { return Ok(None) };
        let int = |key: &str, value: Option<&Value>| {
            value.and_then(Value::as_u64).ok_or_else(|| GgufError::BadMetadata { key: key.into(), reason: "expected an integer".into() })
        };
        let count = int(KEY_SPLIT_COUNT, Some(count))?;
        let no = int(KEY_SPLIT_NO, self.get(KEY_SPLIT_NO))?;
        let tensors = int(KEY_SPLIT_TENSORS_COUNT, self.get(KEY_SPLIT_TENSORS_COUNT))?;
        let (Ok(count), Ok(no)) = (u16::try_from(count), u16::try_from(no)) else {
            return Err(split_error(format!("part {no} of {count} is out of range")));
        };
        if count <= 1 {
            return Ok(None);
        }
        if no >= count {
            return Err(split_error(format!("part number {no} is not below the part count {count}")));
        }
        Ok(Some(SplitPart { no, count, tensors }))
    }

    /// One header for the parts of a split, in order (`parts[i]` with `split.no` = i, each
    /// parsed with its own file length). Metadata comes from the first part without the
    /// `split.*` keys; every tensor's offset is rebased so that the data of part `i` starts at
    /// the sum of the lengths of the parts before it; `file_len` is the parts' total.
    pub fn merge_splits(parts: &[Gguf]) -> Result<Gguf> {
        let first = parts.first().ok_or_else(|| split_error("no parts given"))?;
        let Some(head) = first.split_part()? else {
            return if parts.len() == 1 { Ok(first.clone()) } else { Err(split_error("the first file is not part of a split")) };
        };
        if usize::from(head.count) != parts.len() {
            return Err(split_error(format!("the model is in {} parts, {} were given", head.count, parts.len())));
        }
        let mut tensors = Vec::with_capacity(usize::try_from(head.tensors).unwrap_or(0).min(1 << 20));
        let mut base = 0u64;
        for (i, part) in parts.iter().enumerate() {
            let place = part.split_part()?.ok_or_else(|| split_error(format!("part {} has no split metadata", i + 1)))?;
            if usize::from(place.no) != i || place.count != head.count || place.tensors != head.tensors {
                return Err(split_error(format!(
                    "part {} says it is part {} of {} with {} tensors; expected part {} of {} with {}",
                    i + 1,
                    place.no + 1,
                    place.count,
                    place.tensors,
                    i + 1,
                    head.count,
                    head.tensors
                )));
            }
            // Each part's tensors must lie inside that part, not run into the next one.
            part.check_data(part.file_len)?;
            for info in &part.tensors {
                let at = base
                    .checked_add(part.data_offset)
                    .and_then(|a| a.checked_add(info.offset))
                    .and_then(|a| a.checked_sub(first.data_offset))
                    .ok_or_else(|| split_error(format!("tensor {:?} lies outside the parts", info.name)))?;
                tensors.push(crate::reader::TensorInfo { offset: at, ..info.clone() });
            }
            base = base.checked_add(part.file_len).ok_or_else(|| split_error("the parts' lengths overflow"))?;
        }
        if tensors.len() as u64 != head.tensors {
            return Err(split_error(format!("the parts hold {} tensors; split.tensors.count says {}", tensors.len(), head.tensors)));
        }
        let metadata: Vec<(String, Value)> = first.metadata.iter().filter(|(key, _)| !key.starts_with("split.")).cloned().collect();
        let mut tensor_index = HashMap::with_capacity(tensors.len());
        for (i, info) in tensors.iter().enumerate() {
            if tensor_index.insert(info.name.clone(), i).is_some() {
                return Err(GgufError::Duplicate { what: "tensor name", name: info.name.clone() });
            }
        }
        Ok(Gguf::from_parts(first.version, metadata, tensors, tensor_index, first.alignment, first.data_offset, base))
    }
}

/// The header of a split's parts held end to end in `file`, `part_lens` their lengths in order.
pub fn parse_parts(file: &[u8], part_lens: &[u64]) -> Result<Gguf> {
    let mut headers = Vec::with_capacity(part_lens.len());
    let mut start = 0usize;
    for (i, &len) in part_lens.iter().enumerate() {
        let end = usize::try_from(len).ok().and_then(|len| start.checked_add(len)).filter(|&end| end <= file.len());
        let end = end.ok_or_else(|| split_error(format!("part {} ends past the {} bytes given", i + 1, file.len())))?;
        headers.push(Gguf::parse(&file[start..end])?);
        start = end;
    }
    if start != file.len() {
        return Err(split_error(format!("the parts' lengths add up to {start} bytes, not the {} given", file.len())));
    }
    Gguf::merge_splits(&headers)
}

/// The file name of part `no` (from 0) of `count`, given the first part's name
/// (`NAME-00001-of-0000N.gguf`, as `gguf-split` names them); `None` when the name is not so.
pub fn split_part_name(first: &str, no: u16, count: u16) -> Option<String> {
    let suffix = format!("-00001-of-{count:05}.gguf");
    let stem = first.strip_suffix(&suffix)?;
    Some(format!("{stem}-{:05}-of-{count:05}.gguf", u32::from(no) + 1))
}

/// Split a GGUF (whole, in memory) into parts of at most `max_tensors` tensors each, as
/// `gguf-split --split-max-tensors` does: all metadata in the first part, the `split.*` keys in
/// every part, tensor data padded to 32 bytes. Files with another `general.alignment` are refused.
pub fn split_gguf(file: &[u8], max_tensors: usize) -> Result<Vec<Vec<u8>>> {
    let gguf = Gguf::parse(file)?;
    if gguf.alignment != DEFAULT_ALIGNMENT {
        return Err(split_error(format!("alignment {} (only {DEFAULT_ALIGNMENT} is written)", gguf.alignment)));
    }
    let chunks: Vec<_> = gguf.tensors.chunks(max_tensors.max(1)).collect();
    let count = u16::try_from(chunks.len().max(1)).map_err(|_| split_error(format!("{} parts is more than a split can have", chunks.len())))?;
    let total = i32::try_from(gguf.tensors.len()).map_err(|_| split_error("too many tensors"))?;
    let mut parts = Vec::with_capacity(chunks.len());
    for (no, chunk) in chunks.iter().enumerate() {
        let mut writer = GgufWriter::new();
        if no == 0 {
            for (key, value) in gguf.metadata.iter().filter(|(key, _)| !key.starts_with("split.")) {
                writer.metadata(key, value.clone());
            }
        }
        writer.metadata(KEY_SPLIT_NO, Value::U16(no as u16)).metadata(KEY_SPLIT_COUNT, Value::U16(count)).metadata(KEY_SPLIT_TENSORS_COUNT, Value::I32(total));
        for info in *chunk {
            writer.tensor(&info.name, &info.dims, info.ty, gguf.tensor_data(file, info)?.to_vec());
        }
        let mut bytes = writer.to_bytes();
        // As gguf-split pads every tensor: the next part then starts aligned when concatenated.
        bytes.resize((bytes.len() as u64).next_multiple_of(DEFAULT_ALIGNMENT) as usize, 0);
        parts.push(bytes);
    }
    Ok(parts)
}
