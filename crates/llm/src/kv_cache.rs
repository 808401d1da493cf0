//! The key/value cache on the device, shared by every architecture.
//!
//! Keys and values are kept in f32, or in f16 on a GPU with `shader-f16` (half the memory and
//! half the bytes attention reads per position; the kernels still compute in f32).

use burn::tensor::{DType, Device, Tensor};

/// The type a cache keeps its keys and values in (a load option: see
/// [`crate::Generator::set_kv_precision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvPrecision {
    /// f16 where the device is a GPU with `shader-f16`, else f32.
    #[default]
    Auto,
    /// f32 everywhere.
    F32,
}

impl KvPrecision {
    /// The element type a cache on `device` keeps under this choice.
    pub fn dtype_on(self, device: &Device) -> DType {
        if self == Self::Auto && is_gpu(device) && device.supports_dtype(DType::F16) { DType::F16 } else { DType::F32 }
    }
}

/// Whether `device` is a GPU (the CPU backend keeps f32: its kernels read f32 slices).
fn is_gpu(device: &Device) -> bool {
    #[cfg(feature = "cpu")]
    if matches!(device.as_dispatch(), burn::backend::DispatchDevice::Flex(_)) {
        return false;
    }
    #[cfg(not(any(feature = "wgpu", feature = "webgpu")))]
    let _ = device;
    cfg!(any(feature = "wgpu", feature = "webgpu"))
}

/// Keys and values of every position seen so far, per block: `[kv_heads, capacity, head_dim]`.
pub struct KvCache {
    /// Keys and values per block.
    pub(crate) layers: Vec<(Tensor<3>, Tensor<3>)>,
    pub(crate) len: usize,
    capacity: usize,
    max: usize,
    dtype: DType,
}

impl KvCache {
    /// An empty cache of `blocks` layers for up to `max` positions, its values of `dtype`
    /// (f32, or f16 where the device computes with it).
    pub(crate) fn new(blocks: usize, kv_heads: usize, head_dim: usize, max: usize, device: &Device, dtype: DType) -> Self {
        let empty = || Tensor::<3>::zeros([kv_heads, 0, head_dim], (device, dtype));
        Self { layers: (0..blocks).map(|_| (empty(), empty())).collect(), len: 0, capacity: 0, max: max.max(1), dtype }
    }

    /// The type of the cached keys and values.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most positions this cache will hold (the model's context length, or less).
    pub fn max_len(&self) -> usize {
        self.max
    }

    /// Forget every position from `len` on; the first `len` stay valid for reuse.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Device bytes held by the cache.
    pub fn device_bytes(&self) -> usize {
        self.layers.iter().map(|(k, v)| (k.shape().num_elements() + v.shape().num_elements()) * self.dtype.size()).sum()
    }

    /// Make room for `needed` positions, doubling so appends stay amortised O(1).
    pub(crate) fn reserve(&mut self, needed: usize) {
        if needed <= self.capacity {
            return;
        }
        let new_capacity = needed.max(self.capacity * 2).max(256).next_multiple_of(64).min(self.max);
        for (k, v) in &mut self.layers {
            let [heads, _, dim] = k.dims();
            let grow = |old: &Tensor<3>| {
                let fresh = Tensor::<3>::zeros([heads, new_capacity, dim], (&old.device(), self.dtype));
                if self.len == 0 { fresh } else { fresh.slice_assign([0..heads, 0..self.len, 0..dim], old.clone().slice([0..heads, 0..self.len, 0..dim])) }
            };
            *k = grow(k);
            *v = grow(v);
        }
        self.capacity = new_capacity;
    }
}
