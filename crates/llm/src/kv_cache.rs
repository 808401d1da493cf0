//! The key/value cache on the device, shared by every architecture.

use burn::tensor::{Device, Tensor};

/// Keys and values of every position seen so far, per block: `[kv_heads, capacity, head_dim]`.
pub struct KvCache {
    /// Keys and values per block.
    pub(crate) layers: Vec<(Tensor<3>, Tensor<3>)>,
    pub(crate) len: usize,
    capacity: usize,
    max: usize,
}

impl KvCache {
    /// An empty cache of `blocks` layers for up to `max` positions.
    pub(crate) fn new(blocks: usize, kv_heads: usize, head_dim: usize, max: usize, device: &Device) -> Self {
        let empty = || Tensor::<3>::zeros([kv_heads, 0, head_dim], device);
        Self { layers: (0..blocks).map(|_| (empty(), empty())).collect(), len: 0, capacity: 0, max: max.max(1) }
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
        self.layers.iter().map(|(k, v)| (k.shape().num_elements() + v.shape().num_elements()) * 4).sum()
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
                let fresh = Tensor::<3>::zeros([heads, new_capacity, dim], &old.device());
                if self.len == 0 { fresh } else { fresh.slice_assign([0..heads, 0..self.len, 0..dim], old.clone().slice([0..heads, 0..self.len, 0..dim])) }
            };
            *k = grow(k);
            *v = grow(v);
        }
        self.capacity = new_capacity;
    }
}
