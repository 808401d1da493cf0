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
use crate::kernels::{LlmKernels, QuantLayout};

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

/// A weight matrix `[out, in]` used as `y = x · Wᵀ`.
#[derive(Clone, Debug)]
pub enum Linear {
    Quant(QuantMatrix),
    /// Stored transposed, `[in, out]`, so the product is a plain matmul.
    Dense(Tensor<2>),
}

impl Linear {
    pub fn out_features(&self) -> usize {
        match self {
            Self::Quant(q) => q.layout.rows,
            Self::Dense(w) => w.dims()[1],
        }
    }

    pub fn in_features(&self) -> usize {
        match self {
            Self::Quant(q) => q.layout.cols,
            Self::Dense(w) => w.dims()[0],
        }
    }

    /// `x [t, in] → [t, out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Quant(q) => Tensor::from_dispatch(Dispatch::quant_matmul(x.into_dispatch(), q.packed(), q.scales(), q.layout)),
            Self::Dense(w) => x.matmul(w.clone()),
        }
    }

    /// `residual + x · Wᵀ` (one kernel when quantized).
    pub fn forward_add(&self, x: Tensor<2>, residual: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Quant(q) => {
                Tensor::from_dispatch(Dispatch::quant_matmul_add(x.into_dispatch(), q.packed(), q.scales(), residual.into_dispatch(), q.layout))
            }
            Self::Dense(w) => residual + x.matmul(w.clone()),
        }
    }

    /// For a matrix holding a gate projection stacked on an up projection (see
    /// [`Linear::stack_rows`]): `silu(x · gateᵀ) * (x · upᵀ)`, one kernel when quantized.
    pub fn swiglu_stacked(&self, x: Tensor<2>) -> Tensor<2> {
        let half = self.out_features() / 2;
        match self {
            Self::Quant(q) => Tensor::from_dispatch(Dispatch::quant_swiglu(x.into_dispatch(), q.packed(), q.scales(), q.layout)),
            Self::Dense(w) => {
                let both = x.matmul(w.clone());
                let [t, _] = both.dims();
                let gate = both.clone().slice([0..t, 0..half]);
                let up = both.slice([0..t, half..2 * half]);
                burn::tensor::activation::silu(gate) * up
            }
        }
    }

    /// One matrix holding the rows of `parts` in order, when they share a layout, so one
    /// kernel computes all their products (query, key and value; gate and up).
    pub fn stack_rows(parts: &[&Linear]) -> Option<Linear> {
        let first = parts.first()?;
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
                        Self::Quant(_) => None,
                    })
                    .collect::<Option<_>>()?;
                Some(Self::Dense(Tensor::cat(dense, 1)))
            }
        }
    }

    /// Rows `ids` of the matrix as f32 `[ids.len(), in]`: the embedding look-up.
    pub fn rows(&self, ids: Tensor<1, Int>) -> Tensor<2> {
        match self {
            Self::Quant(q) => Tensor::from_dispatch(Dispatch::quant_rows(ids.into_dispatch(), q.packed(), q.scales(), q.layout)),
            Self::Dense(w) => w.clone().transpose().select(0, ids),
        }
    }

    /// Bytes the matrix takes on the device.
    pub fn device_bytes(&self) -> usize {
        match self {
            Self::Quant(q) => q.layout.bytes(),
            Self::Dense(w) => w.shape().num_elements() * 4,
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

/// Reads named tensors out of a GGUF held in memory and uploads them.
pub struct WeightLoader<'a> {
    pub gguf: &'a Gguf,
    pub file: &'a [u8],
    pub device: &'a Device,
}

impl WeightLoader<'_> {
    pub fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.gguf.tensor(name).ok_or_else(|| LlmError::Format(gguf::GgufError::MissingTensor(name.into())))
    }

    pub fn has(&self, name: &str) -> bool {
        self.gguf.tensor(name).is_some()
    }

    fn data(&self, info: &TensorInfo) -> Result<&[u8]> {
        Ok(self.gguf.tensor_data(self.file, info)?)
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
        let values = gguf::dequantize(info.ty, self.data(info)?)?;
        Ok(Tensor::from_data(TensorData::new(values, [len]), self.device))
    }

    /// A `[rows, cols]` weight matrix, quantized on the device when its type allows.
    pub fn linear(&self, name: &str, rows: usize, cols: usize) -> Result<Linear> {
        let info = self.info(name)?;
        Self::check_shape(info, &[rows, cols])?;
        let data = self.data(info)?;
        if is_quantized_on_device(info.ty) {
            let groups = gguf::unpack(info.ty, data)?;
            let bits = if groups.bits <= 4 { 4 } else { 8 };
            let per_word = 32 / bits as usize;
            // Groups span whole words and rows hold whole groups, so words never straddle rows.
            let packed: Vec<i32> = groups
                .q
                .chunks_exact(per_word)
                .map(|chunk| chunk.iter().enumerate().fold(0u32, |w, (i, &q)| w | (q as u32) << (i as u32 * bits)) as i32)
                .collect();
            let words = packed.len();
            let scales: Vec<f32> = groups.scale.iter().zip(&groups.offset).flat_map(|(&s, &o)| [s, o]).collect();
            let scale_count = scales.len();
            Ok(Linear::Quant(QuantMatrix {
                // i32 whatever the backend's default int type: the kernels read 32-bit words.
                packed: Tensor::from_data(TensorData::new(packed, [words]), (self.device, DType::I32)),
                scales: Tensor::from_data(TensorData::new(scales, [scale_count]), self.device),
                layout: QuantLayout { rows, cols, bits, group: groups.group, k_quant: matches!(info.ty, GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K) },
            }))
        } else if is_loadable(info.ty) {
            let values = gguf::dequantize(info.ty, data)?;
            let w = Tensor::<2>::from_data(TensorData::new(values, [rows, cols]), self.device);
            Ok(Linear::Dense(w.transpose()))
        } else {
            Err(LlmError::Unsupported(format!("tensor {} has type {}, which this engine cannot run", info.name, info.ty)))
        }
    }
}
