//! Weights on the device, in the form the kernels read.
//!
//! A GGUF quantized matrix becomes a [`QuantMatrix`]: its values packed into `u32` words
//! (eight 4-bit or four 8-bit values each) plus one f32 scale and offset per group. ggml's
//! block formats all reduce to that form without changing a single weight (see
//! [`gguf::unpack`]): Q4_0, Q4_1 and Q4_K pack to 4 bits; Q5_0, Q5_1, Q5_K, Q6_K and Q8_0 to 8.
//! Float matrices (F32, F16, BF16) are kept as f32 and multiplied with burn's own matmul.

use burn::backend::Dispatch;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use gguf::{GgmlType, Gguf, TensorInfo};

use crate::error::{LlmError, Result};
use crate::kernels::{LlmKernels, Projection, QuantLayout};

/// A matrix whose values stay quantized on the device, in the layout of [`QuantLayout`].
#[derive(Clone, Debug)]
pub struct QuantMatrix {
    /// Packed values, `rows * cols / (32 / bits)` words (stored as i32: burn's int type).
    packed: Tensor<1, Int>,
    /// Scale and offset of each group, interleaved: `[s0, o0, s1, o1, …]`.
    scales: Tensor<1>,
    pub layout: QuantLayout,
}

impl QuantMatrix {
    fn packed(&self) -> burn::backend::DispatchTensor {
        self.packed.clone().into_dispatch()
    }

    fn scales(&self) -> burn::backend::DispatchTensor {
        self.scales.clone().into_dispatch()
    }

    /// Whether `other`'s rows can be stacked under this one's.
    fn stacks_with(&self, other: &QuantMatrix) -> bool {
        let (a, b) = (self.layout, other.layout);
        a.cols == b.cols && a.bits == b.bits && a.group == b.group && a.k_quant == b.k_quant
    }
}

/// Most bytes one weight buffer may take: WebGPU guarantees storage bindings of 128 MiB
/// (`maxStorageBufferBindingSize`) and lavapipe allocates no larger buffers. A larger matrix
/// (Gemma's 262144-token embedding table: 168 MB as Q8_0) is kept as blocks of rows.
pub const MAX_WEIGHT_BUFFER_BYTES: usize = 128 << 20;

/// A weight matrix `[out, in]` used as `y = x · Wᵀ`.
#[derive(Clone, Debug)]
pub enum Linear {
    Quant(QuantMatrix),
    /// Stored transposed, `[in, out]`, so the product is a plain matmul.
    Dense(Tensor<2>),
    /// Consecutive blocks of rows of one matrix too large for one buffer
    /// ([`MAX_WEIGHT_BUFFER_BYTES`]), each a `Quant` or `Dense` matrix.
    Split(Vec<Linear>),
}

impl Linear {
    pub fn out_features(&self) -> usize {
        match self {
            Self::Quant(q) => q.layout.rows,
            Self::Dense(w) => w.dims()[1],
            Self::Split(parts) => parts.iter().map(Linear::out_features).sum(),
        }
    }

    pub fn in_features(&self) -> usize {
        match self {
            Self::Quant(q) => q.layout.cols,
            Self::Dense(w) => w.dims()[0],
            Self::Split(parts) => parts.first().map_or(0, Linear::in_features),
        }
    }

    /// `x [t, in] → [t, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Quant(q) => Tensor::from_dispatch(Dispatch::quant_matmul(x.into_dispatch(), q.packed(), q.scales(), q.layout)),
            Self::Dense(w) => x.matmul(w.clone()),
            Self::Split(parts) => Tensor::cat(parts.iter().map(|p| p.forward(x.clone())).collect(), 1),
        }
    }

    /// `residual + x · Wᵀ` (one kernel when quantized).
    pub fn forward_add(&self, x: Tensor<2>, residual: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Quant(q) => {
                Tensor::from_dispatch(Dispatch::quant_matmul_add(x.into_dispatch(), q.packed(), q.scales(), residual.into_dispatch(), q.layout))
            }
            Self::Dense(_) | Self::Split(_) => residual + self.forward(x),
        }
    }

    /// For a matrix holding a gate projection stacked on an up projection (see
    /// [`Linear::stack_rows`]): `silu(x · gateᵀ) * (x · upᵀ)`, one kernel when quantized.
    pub fn swiglu_stacked(&self, x: Tensor<2>) -> Tensor<2> {
        let half = self.out_features() / 2;
        match self {
            Self::Quant(q) => Tensor::from_dispatch(Dispatch::quant_swiglu(x.into_dispatch(), q.packed(), q.scales(), q.layout)),
            Self::Dense(_) | Self::Split(_) => {
                let both = self.forward(x);
                let [t, _] = both.dims();
                let gate = both.clone().slice([0..t, 0..half]);
                let up = both.slice([0..t, half..2 * half]);
                burn::tensor::activation::silu(gate) * up
            }
        }
    }

    /// As [`Linear::swiglu_stacked`] with GELU (tanh approximation) for SiLU: Gemma's GeGLU.
    pub fn geglu_stacked(&self, x: Tensor<2>) -> Tensor<2> {
        let half = self.out_features() / 2;
        match self {
            Self::Quant(q) => Tensor::from_dispatch(Dispatch::quant_geglu(x.into_dispatch(), q.packed(), q.scales(), q.layout)),
            Self::Dense(_) | Self::Split(_) => {
                let both = self.forward(x);
                let [t, _] = both.dims();
                crate::ops::gelu_mul(both.clone().slice([0..t, 0..half]), both.slice([0..t, half..2 * half]))
            }
        }
    }

    /// `rms_norm(x, norm, eps)` followed by [`Linear::forward`], [`Linear::swiglu_stacked`] or
    /// [`Linear::geglu_stacked`] as `projection` says: one kernel when quantized (where the
    /// backend fuses them; see [`LlmKernels::normed_quant_matmul`]).
    pub fn normed(&self, x: Tensor<2>, norm: &Tensor<1>, eps: f32, projection: Projection) -> Tensor<2> {
        match self {
            Self::Quant(q) => Tensor::from_dispatch(Dispatch::normed_quant_matmul(
                x.into_dispatch(),
                norm.clone().into_dispatch(),
                eps,
                q.packed(),
                q.scales(),
                q.layout,
                projection,
            )),
            Self::Dense(_) | Self::Split(_) => {
                let h = crate::ops::rms_norm(x, norm, eps);
                match projection {
                    Projection::Plain => self.forward(h),
                    Projection::SwiGlu => self.swiglu_stacked(h),
                    Projection::GeGlu => self.geglu_stacked(h),
                }
            }
        }
    }

    /// One matrix holding the rows of `parts` in order, when they share a layout and together
    /// fit one buffer ([`MAX_WEIGHT_BUFFER_BYTES`]), so one kernel computes all their products
    /// (query, key and value; gate and up).
    pub fn stack_rows(parts: &[&Linear]) -> Option<Linear> {
        let first = parts.first()?;
        if parts.iter().map(|p| p.device_bytes()).sum::<usize>() > MAX_WEIGHT_BUFFER_BYTES {
            return None;
        }
        match first {
            Self::Quant(q0) => {
                let quants: Vec<&QuantMatrix> = parts
                    .iter()
                    .map(|p| match p {
                        Self::Quant(q) if q.stacks_with(q0) => Some(q),
                        _ => None,
                    })
                    .collect::<Option<_>>()?;
                Some(Self::Quant(QuantMatrix {
                    packed: Tensor::cat(quants.iter().map(|q| q.packed.clone()).collect(), 0),
                    scales: Tensor::cat(quants.iter().map(|q| q.scales.clone()).collect(), 0),
                    layout: QuantLayout { rows: quants.iter().map(|q| q.layout.rows).sum(), ..q0.layout },
                }))
            }
            Self::Dense(_) => {
                let dense: Vec<Tensor<2>> = parts
                    .iter()
                    .map(|p| match p {
                        Self::Dense(w) => Some(w.clone()),
                        Self::Quant(_) | Self::Split(_) => None,
                    })
                    .collect::<Option<_>>()?;
                Some(Self::Dense(Tensor::cat(dense, 1)))
            }
            Self::Split(_) => None,
        }
    }

    /// Rows `ids` of the matrix as f32 `[ids.len(), in]`: the embedding look-up. A split
    /// matrix needs the ids on the CPU: see [`Linear::rows_of`].
    pub fn rows(&self, ids: Tensor<1, Int>) -> Tensor<2> {
        match self {
            Self::Quant(q) => Tensor::from_dispatch(Dispatch::quant_rows(ids.into_dispatch(), q.packed(), q.scales(), q.layout)),
            Self::Dense(w) => w.clone().transpose().select(0, ids),
            Self::Split(_) => panic!("Linear::rows on a split matrix; use rows_of"),
        }
    }

    /// Rows `ids` (each below [`Linear::out_features`]) as f32 `[ids.len(), in]`. For a split
    /// matrix, one look-up per block holding any of them, then one reordering.
    pub fn rows_of(&self, ids: &[u32], device: &Device) -> Tensor<2> {
        let tensor = |ids: Vec<i32>| {
            let len = ids.len();
            crate::device_work::count_upload(len * 4);
            Tensor::<1, Int>::from_data(TensorData::new(ids, [len]), device)
        };
        let Self::Split(parts) = self else { return self.rows(tensor(ids.iter().map(|&i| i as i32).collect())) };
        let mut pieces = Vec::new();
        // Where each id's row lands among the pieces, in order.
        let mut position = vec![0i32; ids.len()];
        let (mut first_row, mut gathered) = (0u32, 0i32);
        for part in parts {
            let rows = part.out_features() as u32;
            let mine: Vec<usize> = (0..ids.len()).filter(|&i| (first_row..first_row + rows).contains(&ids[i])).collect();
            if !mine.is_empty() {
                for &i in &mine {
                    position[i] = gathered;
                    gathered += 1;
                }
                pieces.push(part.rows_of(&mine.iter().map(|&i| ids[i] - first_row).collect::<Vec<_>>(), device));
            }
            first_row += rows;
        }
        Tensor::cat(pieces, 0).select(0, tensor(position))
    }

    /// Bytes the matrix takes on the device.
    pub fn device_bytes(&self) -> usize {
        match self {
            Self::Quant(q) => q.layout.bytes(),
            Self::Dense(w) => w.shape().num_elements() * 4,
            Self::Split(parts) => parts.iter().map(Linear::device_bytes).sum(),
        }
    }
}

/// Tensor types whose matrices stay quantized on the device.
pub fn is_quantized_on_device(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q4K
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q5K
            | GgmlType::Q6K
            | GgmlType::Q8_0
    )
}

/// Tensor types this engine can load at all.
pub fn is_loadable(ty: GgmlType) -> bool {
    is_quantized_on_device(ty) || matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// Where a model's tensor bytes come from: the whole file in memory, or a reader that fetches
/// each tensor as it is uploaded ([`FileSource`]), so that the file is never in memory whole:
/// loading then holds the weights on the device plus one tensor's bytes.
pub trait TensorSource {
    /// Length of the whole file.
    fn file_len(&self) -> u64;
    /// The bytes of `range`, which lies inside the file.
    fn read(&self, range: std::ops::Range<usize>) -> Result<std::borrow::Cow<'_, [u8]>>;
}

impl TensorSource for &[u8] {
    fn file_len(&self) -> u64 {
        self.len() as u64
    }

    fn read(&self, range: std::ops::Range<usize>) -> Result<std::borrow::Cow<'_, [u8]>> {
        let len = self.len();
        self.get(range.clone()).map(std::borrow::Cow::Borrowed).ok_or_else(|| LlmError::Read(format!("bytes {range:?} of a {len}-byte file")))
    }
}

impl TensorSource for Vec<u8> {
    fn file_len(&self) -> u64 {
        self.as_slice().file_len()
    }

    fn read(&self, range: std::ops::Range<usize>) -> Result<std::borrow::Cow<'_, [u8]>> {
        let len = self.len();
        self.get(range.clone()).map(std::borrow::Cow::Borrowed).ok_or_else(|| LlmError::Read(format!("bytes {range:?} of a {len}-byte file")))
    }
}

/// A GGUF file on disk, read a tensor at a time; or a GGUF split in parts
/// (`NAME-00001-of-0000N.gguf`, as llama.cpp's gguf-split writes them), read as one file: the
/// parts laid end to end, as [`Gguf::merge_splits`] describes them.
#[cfg(not(target_arch = "wasm32"))]
pub struct FileSource {
    parts: Vec<FilePart>,
    len: u64,
}

#[cfg(not(target_arch = "wasm32"))]
struct FilePart {
    file: std::sync::Mutex<std::fs::File>,
    /// Where this part starts in the parts laid end to end.
    start: u64,
    len: u64,
}

#[cfg(not(target_arch = "wasm32"))]
impl FileSource {
    /// Open `path` and parse its header, reading a growing prefix until the header fits. When
    /// `path` is the first part of a split, the other parts (named beside it) are opened too and
    /// the header is the merged one.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<(Gguf, Self)> {
        let path = path.as_ref();
        let (header, first) = Self::open_part(path)?;
        let Some(place) = header.split_part()? else {
            let len = first.len;
            return Ok((header, Self { parts: vec![first], len }));
        };
        if place.no != 0 {
            return Err(LlmError::Read(format!("{} is part {} of {}: open the first part", path.display(), place.no + 1, place.count)));
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let mut headers = vec![header];
        let mut parts = vec![first];
        for no in 1..place.count {
            let part_name = gguf::split_part_name(name, no, place.count)
                .ok_or_else(|| LlmError::Read(format!("{}: a split in {} parts must be named NAME-00001-of-{:05}.gguf", path.display(), place.count, place.count)))?;
            let (header, mut part) = Self::open_part(&path.with_file_name(part_name))?;
            part.start = parts.iter().map(|p| p.len).sum();
            headers.push(header);
            parts.push(part);
        }
        let merged = Gguf::merge_splits(&headers)?;
        let len = merged.file_len;
        Ok((merged, Self { parts, len }))
    }

    fn open_part(path: &std::path::Path) -> Result<(Gguf, FilePart)> {
        let io = |e: std::io::Error| LlmError::Read(format!("{}: {e}", path.display()));
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let part = FilePart { file: std::sync::Mutex::new(file), start: 0, len };
        Ok((read_header(&part, 0, len)?, part))
    }
}

/// Parse the header of the GGUF of `len` bytes at `start` in `source`, reading a growing prefix
/// until the header fits (1 MiB first: most headers are smaller).
pub fn read_header(source: &dyn TensorSource, start: u64, len: u64) -> Result<Gguf> {
    let mut want = (1u64 << 20).min(len);
    loop {
        let range = usize::try_from(start).ok().zip(usize::try_from(start + want).ok()).ok_or_else(|| LlmError::Read(format!("byte {} is past what this machine can address", start + want)))?;
        let prefix = source.read(range.0..range.1)?;
        match Gguf::parse_prefix(&prefix, len) {
            Err(gguf::GgufError::Truncated { needed, .. }) if want < len => want = needed.max(want.saturating_mul(2)).min(len),
            parsed => return Ok(parsed?),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl TensorSource for FilePart {
    fn file_len(&self) -> u64 {
        self.len
    }

    /// `range` within this part.
    fn read(&self, range: std::ops::Range<usize>) -> Result<std::borrow::Cow<'_, [u8]>> {
        use std::io::{Read, Seek, SeekFrom};
        let io = |e: std::io::Error| LlmError::Read(format!("bytes {range:?} of the model file: {e}"));
        // A poisoned lock only means another read panicked; the file handle is still usable.
        let mut file = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        file.seek(SeekFrom::Start(range.start as u64)).map_err(io)?;
        let mut bytes = vec![0u8; range.len()];
        file.read_exact(&mut bytes).map_err(io)?;
        Ok(std::borrow::Cow::Owned(bytes))
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl TensorSource for FileSource {
    fn file_len(&self) -> u64 {
        self.len
    }

    fn read(&self, range: std::ops::Range<usize>) -> Result<std::borrow::Cow<'_, [u8]>> {
        let (start, end) = (range.start as u64, range.end as u64);
        // A tensor lies inside one part (checked when the parts were merged).
        let part = self
            .parts
            .iter()
            .find(|p| p.start <= start && end <= p.start + p.len)
            .ok_or_else(|| LlmError::Read(format!("bytes {range:?} do not lie inside one part of the model file")))?;
        let at = (start - part.start) as usize;
        part.read(at..at + range.len())
    }
}

/// Reads named tensors out of a GGUF (held in memory or read a tensor at a time) and uploads them.
pub struct WeightLoader<'a> {
    pub gguf: &'a Gguf,
    pub file: &'a dyn TensorSource,
    pub device: &'a Device,
}

impl WeightLoader<'_> {
    pub fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.gguf.tensor(name).ok_or_else(|| LlmError::Format(gguf::GgufError::MissingTensor(name.into())))
    }

    pub fn has(&self, name: &str) -> bool {
        self.gguf.tensor(name).is_some()
    }

    /// The bytes of a tensor.
    pub(crate) fn data(&self, info: &TensorInfo) -> Result<std::borrow::Cow<'_, [u8]>> {
        self.file.read(self.gguf.tensor_range(info, self.file.file_len())?)
    }

    pub(crate) fn check_shape(info: &TensorInfo, dims: &[usize]) -> Result<()> {
        // GGUF lists dims innermost first; callers give them outermost first.
        let want: Vec<u64> = dims.iter().rev().map(|&d| d as u64).collect();
        if info.dims != want {
            return Err(LlmError::Unsupported(format!(
                "tensor {} has shape {:?}, expected {:?} for this model's configuration",
                info.name,
                info.dims.iter().rev().collect::<Vec<_>>(),
                dims
            )));
        }
        Ok(())
    }

    /// A 1-D f32 vector (norm weights).
    pub fn vector(&self, name: &str, len: usize) -> Result<Tensor<1>> {
        let info = self.info(name)?;
        Self::check_shape(info, &[len])?;
        let values = gguf::dequantize(info.ty, &self.data(info)?)?;
        Ok(Tensor::from_data(TensorData::new(values, [len]), self.device))
    }

    /// A `[rows, cols]` weight matrix, quantized on the device when its type allows, in blocks
    /// of rows when it is larger than one buffer may be ([`MAX_WEIGHT_BUFFER_BYTES`]).
    pub fn linear(&self, name: &str, rows: usize, cols: usize) -> Result<Linear> {
        let linear = self.linear_in_blocks(name, rows, cols, MAX_WEIGHT_BUFFER_BYTES)?;
        // Hand the upload to the GPU now: the device records up to TASKS_PER_SUBMIT operations
        // before it submits, keeping their data until then, so a load would hold a few hundred
        // matrices at once (in a browser the wasm memory keeps that high-water mark). A no-op on
        // the CPU.
        self.device.flush().map_err(|e| LlmError::Device(format!("uploading {name}: {e:?}")))?;
        Ok(linear)
    }

    /// [`WeightLoader::linear`] with blocks of at most `max_bytes` of packed values (or f32s).
    pub fn linear_in_blocks(&self, name: &str, rows: usize, cols: usize, max_bytes: usize) -> Result<Linear> {
        let info = self.info(name)?;
        Self::check_shape(info, &[rows, cols])?;
        let data = self.data(info)?;
        // Each intermediate form is dropped as soon as the next exists: in a browser the wasm
        // memory keeps its high-water mark, so a load's peak is what stays reserved.
        if is_quantized_on_device(info.ty) {
            let gguf::Groups { group, bits: value_bits, q, scale, offset, .. } = gguf::unpack(info.ty, &data)?;
            drop(data);
            let bits = if value_bits <= 4 { 4 } else { 8 };
            let per_word = 32 / bits as usize;
            // Groups span whole words and rows hold whole groups, so words never straddle rows.
            let packed: Vec<i32> =
                q.chunks_exact(per_word).map(|chunk| chunk.iter().enumerate().fold(0u32, |w, (i, &q)| w | (q as u32) << (i as u32 * bits)) as i32).collect();
            drop(q);
            let scales: Vec<f32> = scale.iter().zip(&offset).flat_map(|(&s, &o)| [s, o]).collect();
            drop((scale, offset));
            let layout = QuantLayout { rows, cols, bits, group, k_quant: matches!(info.ty, GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K) };
            let (words_per_row, scales_per_row) = (packed.len() / rows, scales.len() / rows);
            let make = |r: std::ops::Range<usize>, packed: Vec<i32>, scales: Vec<f32>| {
                let (words, scale_count) = (packed.len(), scales.len());
                Linear::Quant(QuantMatrix {
                    // i32 whatever the backend's default int type: the kernels read 32-bit words.
                    packed: Tensor::from_data(TensorData::new(packed, [words]), (self.device, DType::I32)),
                    scales: Tensor::from_data(TensorData::new(scales, [scale_count]), self.device),
                    layout: QuantLayout { rows: r.len(), ..layout },
                })
            };
            let blocks = row_blocks(rows, words_per_row * 4, max_bytes);
            if blocks.len() == 1 {
                return Ok(make(0..rows, packed, scales));
            }
            Ok(Linear::Split(
                blocks
                    .into_iter()
                    .map(|r| {
                        let (p, s) = (packed[r.start * words_per_row..r.end * words_per_row].to_vec(), scales[r.start * scales_per_row..r.end * scales_per_row].to_vec());
                        make(r, p, s)
                    })
                    .collect(),
            ))
        } else if is_loadable(info.ty) {
            let values = gguf::dequantize(info.ty, &data)?;
            drop(data);
            let make = |r: std::ops::Range<usize>, block: Vec<f32>| Linear::Dense(Tensor::<2>::from_data(TensorData::new(block, [r.len(), cols]), self.device).transpose());
            let blocks = row_blocks(rows, cols * 4, max_bytes);
            if blocks.len() == 1 {
                return Ok(make(0..rows, values));
            }
            Ok(Linear::Split(blocks.into_iter().map(|r| make(r.clone(), values[r.start * cols..r.end * cols].to_vec())).collect()))
        } else {
            Err(LlmError::Unsupported(format!("tensor {} has type {}, which this engine cannot run", info.name, info.ty)))
        }
    }
}

/// Ranges of rows, `row_bytes` each, in blocks of at most `max_bytes` (one row at least): one
/// range when the whole matrix fits.
fn row_blocks(rows: usize, row_bytes: usize, max_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let per_block = (max_bytes / row_bytes.max(1)).max(1);
    (0..rows.max(1)).step_by(per_block).map(|r| r..(r + per_block).min(rows)).collect()
}
