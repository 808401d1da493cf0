//! CPU compute kernels for the llama forward pass, free of any ML framework.
//!
//! - [`quant_matmul`]: `x · Wᵀ` with the weights kept in the engine's packed group layout
//!   ([`QuantMatrix`]: 4-bit values in groups of 32, 8-bit in groups of 32 or 16, each group
//!   with an f32 scale and offset) and the activations quantized to int8 blocks of 32 the way
//!   llama.cpp does it ([`Q8Activations`]); integer dot products, f32 accumulation.
//! - [`rms_norm`], [`attention`] (causal, grouped-query, over a KV cache) and [`silu_mul`]
//!   (SwiGLU) in f32.
//!
//! Each kernel has a portable scalar version, which is the reference, and SIMD versions:
//! AVX2 + FMA on x86_64 (detected at run time) and SIMD128 on wasm32 when the crate is built
//! with `-C target-feature=+simd128`. [`Backend::best`] picks one; the `*_with` functions take
//! one explicitly. Work is split across rayon's threads; without threads (wasm32 without
//! atomics, WASI) rayon runs it on the calling thread, so the code is the same everywhere.
//!
//! One product, as a layer does it (buffers kept across calls):
//!
//! ```
//! use cpu_kernels::{Q8Activations, QuantMatrix, quant_matmul};
//!
//! // A 2 × 32 matrix of 4-bit values (eight per word), one group of 32 per row:
//! // row 0 is all 1 · 0.5 − 0.25 = 0.25, row 1 all 2 · 0.5 − 0.25 = 0.75.
//! let packed = [[0x1111_1111u32; 4], [0x2222_2222; 4]].concat();
//! let scales = [0.5, -0.25, 0.5, -0.25];
//! let w = QuantMatrix::new(&packed, &scales, 2, 32, 4, 32)?;
//!
//! let mut x = Q8Activations::new();
//! x.quantize(&[1.0; 32], 32, w.bits())?; // one row; ordered for 4-bit weights
//! let mut out = [0.0f32; 2];
//! quant_matmul(&x, &w, &mut out)?;
//! // Exact but for the int8 rounding of x and the f16 rounding of its scale.
//! assert!((out[0] - 8.0).abs() < 0.01 && (out[1] - 24.0).abs() < 0.01);
//! # Ok::<(), cpu_kernels::KernelError>(())
//! ```
//!
//! Threads: call the kernels from inside a rayon pool (`ThreadPool::install`, or the global
//! pool's threads) so the calling thread takes part instead of waiting for the pool; a whole
//! forward pass inside one `install` avoids a hand-off per kernel.
//!
//! Run the tests natively with `cargo test -p confidant-cpu-kernels --release`, and under
//! wasm SIMD128 in Node with the command in this crate's README.md.

mod error;
mod matmul;
pub(crate) mod ops;
mod quant;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use error::{KernelError, Result};
pub use matmul::{quant_matmul, quant_matmul_with};
pub use ops::{
    AttnShape, attention, attention_window, attention_window_with, attention_with, gelu_f16, gelu_mul, rms_norm, rms_norm_with, silu_mul,
    silu_mul_with,
};
pub use quant::{BLOCK, Q8Activations, QuantMatrix, SUPER_BLOCK};

/// Threads the kernels split their work over (rayon's pool; 1 where there are no threads).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Which implementation runs a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Plain Rust, every target: the reference the others are tested against.
    Portable,
    /// x86_64 with AVX2 and FMA, detected at run time.
    Avx2,
    /// wasm32 built with `-C target-feature=+simd128`.
    Simd128,
}

impl Backend {
    /// Whether this backend can run here.
    pub fn is_available(self) -> bool {
        match self {
            Self::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => x86::available(),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Self::Simd128 => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The fastest backend available here.
    pub fn best() -> Self {
        if Self::Avx2.is_available() {
            Self::Avx2
        } else if Self::Simd128.is_available() {
            Self::Simd128
        } else {
            Self::Portable
        }
    }

    /// Every backend available here, the portable one first.
    pub fn available() -> Vec<Self> {
        [Self::Portable, Self::Avx2, Self::Simd128].into_iter().filter(|b| b.is_available()).collect()
    }

    fn check(self) -> Result<Self> {
        if self.is_available() { Ok(self) } else { Err(KernelError::BackendUnavailable(self)) }
    }

    fn kernel(self) -> Result<matmul::Kernel> {
        Ok(match self.check()? {
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => x86::kernel,
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Self::Simd128 => wasm::kernel,
            _ => matmul::portable_kernel,
        })
    }
}

#[cfg(test)]
mod tests;
