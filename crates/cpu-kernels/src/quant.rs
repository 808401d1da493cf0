//! The two operands of the quantized matmul: weights in the engine's packed group layout
//! ([`QuantMatrix`]) and activations quantized to int8 blocks the way llama.cpp does it
//! ([`Q8Activations`]).

use half::f16;
use rayon::prelude::*;

use crate::error::{KernelError, Result};

/// Activation values per quantization block (ggml's `QK8_1`).
pub const BLOCK: usize = 32;

/// A quantized weight matrix `[rows, cols]`, used as `y = x · Wᵀ`, borrowed from the caller.
///
/// Element `i = r * cols + c` is the unsigned value `q` in word `i / (32 / bits)` of `packed` at
/// bit `(i % (32 / bits)) * bits`; group `k` (of `group` consecutive elements of a row) has the
/// scale `scales[2k]` and offset `scales[2k + 1]`, and `w = scale * q + offset`. This is the
/// layout the GPU kernels read too (crates/llm/src/weights.rs builds it from `gguf::unpack`).
#[derive(Clone, Copy, Debug)]
pub struct QuantMatrix<'a> {
    packed: &'a [u32],
    scales: &'a [f32],
    rows: usize,
    cols: usize,
    bits: u32,
    group: usize,
}

impl<'a> QuantMatrix<'a> {
    /// Checks the format and that both slices have exactly the length `rows × cols` implies.
    /// Supported: 4-bit values in groups of 32 (Q4_0, Q4_1, Q4_K) and 8-bit values in groups of
    /// 32 (Q5_0, Q5_1, Q5_K, Q8_0) or 16 (Q6_K); `cols` must be a positive multiple of 32.
    pub fn new(packed: &'a [u32], scales: &'a [f32], rows: usize, cols: usize, bits: u32, group: usize) -> Result<Self> {
        if !matches!((bits, group), (4, 32) | (8, 32) | (8, 16)) {
            return Err(KernelError::UnsupportedFormat { bits, group });
        }
        if cols == 0 || !cols.is_multiple_of(BLOCK) {
            return Err(KernelError::NotMultiple { what: "matrix columns", value: cols, multiple: BLOCK });
        }
        let elements = rows.checked_mul(cols).ok_or_else(|| KernelError::Shape(format!("{rows} × {cols} overflows")))?;
        let words = elements / (32 / bits as usize);
        if packed.len() != words {
            return Err(KernelError::Length { what: "packed weights (u32 words)", expected: words, got: packed.len() });
        }
        let groups = elements / group * 2;
        if scales.len() != groups {
            return Err(KernelError::Length { what: "scales (scale, offset per group)", expected: groups, got: scales.len() });
        }
        Ok(Self { packed, scales, rows, cols, bits, group })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }

    pub fn group(&self) -> usize {
        self.group
    }

    pub fn packed(&self) -> &'a [u32] {
        self.packed
    }

    pub fn scales(&self) -> &'a [f32] {
        self.scales
    }

    /// Bytes of one packed row.
    pub(crate) fn row_bytes(&self) -> usize {
        self.cols * self.bits as usize / 8
    }

    /// The packed words as bytes: on a little-endian machine byte `j` of a 4-bit row holds
    /// elements `2j` (low nibble) and `2j + 1` (high nibble), and byte `j` of an 8-bit row is
    /// element `j`, which is what every kernel here reads.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        words_as_bytes(self.packed)
    }

    /// Value `q` of element `(r, c)`; the readable definition the tests check kernels against.
    /// Panics if `(r, c)` is outside the matrix, as slice indexing does.
    pub fn q(&self, r: usize, c: usize) -> u8 {
        let per_word = 32 / self.bits as usize;
        let i = r * self.cols + c;
        ((self.packed[i / per_word] >> ((i % per_word) as u32 * self.bits)) & ((1u32 << self.bits) - 1)) as u8
    }

    /// Element `(r, c)` dequantized: `scale * q + offset`.
    pub fn value(&self, r: usize, c: usize) -> f32 {
        let g = (r * self.cols + c) / self.group;
        self.scales[2 * g] * self.q(r, c) as f32 + self.scales[2 * g + 1]
    }
}

// The kernels read packed words byte by byte, which matches the layout only on little-endian
// machines; every target this engine runs on (x86_64, aarch64, wasm32) is one.
#[cfg(target_endian = "big")]
compile_error!("confidant-cpu-kernels reads packed weights as little-endian bytes");

fn words_as_bytes(words: &[u32]) -> &[u8] {
    // SAFETY: u8 has alignment 1 and every byte pattern is a valid u8; the byte slice covers
    // exactly the memory of `words` and borrows it for the same lifetime.
    unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 4) }
}

/// Activation rows quantized to int8 in blocks of 32 (ggml's `quantize_row_q8_1_ref`), kept for
/// reuse so a caller allocates once: call [`Q8Activations::quantize`] before each product.
///
/// Per block: `d = max|x| / 127`, `q = round(x / d)` computed as `x * (1/d)` (0 when `d = 0`),
/// and `d` is kept rounded to f16 as ggml stores it. Within a block the values are ordered for
/// the weights they meet: for 4-bit weights the even elements first, then the odd ones, so the
/// low and high nibbles of 16 packed bytes line up with them without shuffles; for 8-bit
/// weights in natural order.
#[derive(Clone, Debug, Default)]
pub struct Q8Activations {
    rows: usize,
    cols: usize,
    bits: u32,
    /// `rows × cols` values, block by block, in the order above.
    pub(crate) qs: Vec<i8>,
    /// The values widened to i16 once, for SIMD128, which has no int8 dot product: the matmul
    /// reads each block many times.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    pub(crate) qs16: Vec<i16>,
    /// `d` of each block (the f16 value, as f32), `rows × cols / 32`.
    pub(crate) d: Vec<f32>,
    /// Each `d` eight times: the AVX2 kernel multiplies it into the weight scales with one
    /// full-width multiply per weight row instead of a scalar multiply and a broadcast.
    #[cfg(target_arch = "x86_64")]
    pub(crate) d8: Vec<f32>,
    /// Per block `[0, d · Σq]`: dotted with a row's interleaved `[scale, offset]` of groups of 32
    /// it gives `Σ offset · d · Σq` with one contiguous dot product.
    pub(crate) dsz32: Vec<f32>,
    /// Per block `[0, d · Σq(first 16), 0, d · Σq(last 16)]`, the same for groups of 16.
    pub(crate) dsz16: Vec<f32>,
}

impl Q8Activations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The weight bit width the values are ordered for (0 before the first `quantize`).
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// Quantizes `x` (`rows × cols` row-major, `rows = x.len() / cols`) for a product with
    /// `bits`-bit weights (4 or 8: [`QuantMatrix::bits`]). Reuses the buffers.
    pub fn quantize(&mut self, x: &[f32], cols: usize, bits: u32) -> Result<()> {
        self.quantize_scheme(x, cols, bits, Scheme::Block)
    }

    /// As [`Self::quantize`], but as llama.cpp quantizes activations for its K-quant weights
    /// (ggml's `quantize_row_q8_K_ref`): one scale per 256 values, `d = max / -127` for the
    /// value of largest magnitude (kept in f32), `q = nearest_int(x / d)` rounding half to even,
    /// at most 127. Coarser than blocks of 32, but it is what those weights were tuned and
    /// checked against. `cols` must be a multiple of 256.
    pub fn quantize_superblocks(&mut self, x: &[f32], cols: usize, bits: u32) -> Result<()> {
        if !cols.is_multiple_of(SUPER_BLOCK) {
            return Err(KernelError::NotMultiple { what: "activation columns", value: cols, multiple: SUPER_BLOCK });
        }
        self.quantize_scheme(x, cols, bits, Scheme::SuperBlock)
    }

    fn quantize_scheme(&mut self, x: &[f32], cols: usize, bits: u32, scheme: Scheme) -> Result<()> {
        if bits != 4 && bits != 8 {
            return Err(KernelError::UnsupportedBits { bits });
        }
        if cols == 0 || !cols.is_multiple_of(BLOCK) {
            return Err(KernelError::NotMultiple { what: "activation columns", value: cols, multiple: BLOCK });
        }
        if !x.len().is_multiple_of(cols) {
            return Err(KernelError::NotMultiple { what: "activation length", value: x.len(), multiple: cols });
        }
        let rows = x.len() / cols;
        let blocks = cols / BLOCK;
        self.rows = rows;
        self.cols = cols;
        self.bits = bits;
        self.qs.resize(rows * cols, 0);
        self.d.resize(rows * blocks, 0.0);
        self.dsz32.resize(rows * blocks * 2, 0.0);
        self.dsz16.resize(rows * blocks * 4, 0.0);
        let chunk = if scheme == Scheme::SuperBlock { SUPER_BLOCK } else { BLOCK };
        let row = |(((x, qs), d), (dsz32, dsz16)): RowParts<'_>| {
            for (c, (x, qs)) in x.chunks_exact(chunk).zip(qs.chunks_exact_mut(chunk)).enumerate() {
                let scale = (scheme == Scheme::SuperBlock).then(|| superblock_scale(x));
                for (i, (x, qs)) in x.chunks_exact(BLOCK).zip(qs.chunks_exact_mut(BLOCK)).enumerate() {
                    let b = c * (chunk / BLOCK) + i;
                    let (db, sums) = match scale {
                        None => quantize_block(x, bits, qs),
                        Some(scale) => quantize_with(x, bits, qs, scale, round_half_even),
                    };
                    d[b] = db;
                    dsz32[2 * b..2 * b + 2].copy_from_slice(&[0.0, db * (sums[0] + sums[1]) as f32]);
                    dsz16[4 * b..4 * b + 4].copy_from_slice(&[0.0, db * sums[0] as f32, 0.0, db * sums[1] as f32]);
                }
            }
        };
        // A decode row is a few microseconds of work: not worth handing to another thread.
        if rows * cols >= 1 << 15 {
            x.par_chunks(cols)
                .zip(self.qs.par_chunks_mut(cols))
                .zip(self.d.par_chunks_mut(blocks))
                .zip(self.dsz32.par_chunks_mut(2 * blocks).zip(self.dsz16.par_chunks_mut(4 * blocks)))
                .with_min_len(4)
                .for_each(row);
        } else {
            x.chunks(cols)
                .zip(self.qs.chunks_mut(cols))
                .zip(self.d.chunks_mut(blocks))
                .zip(self.dsz32.chunks_mut(2 * blocks).zip(self.dsz16.chunks_mut(4 * blocks)))
                .for_each(row);
        }
        #[cfg(target_arch = "x86_64")]
        {
            self.d8.clear();
            self.d8.extend(self.d.iter().flat_map(|&d| [d; 8]));
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            self.qs16.clear();
            self.qs16.extend(self.qs.iter().map(|&q| q as i16));
        }
        Ok(())
    }

    /// The quantized value of element `(r, c)` (natural order) and its block's `d`:
    /// the activation is `d * q`. For tests and references; panics outside the matrix.
    pub fn value(&self, r: usize, c: usize) -> (i8, f32) {
        let block = c / BLOCK;
        let within = c % BLOCK;
        let stored = if self.bits == 4 { (within % 2) * (BLOCK / 2) + within / 2 } else { within };
        (self.qs[r * self.cols + block * BLOCK + stored], self.d[r * (self.cols / BLOCK) + block])
    }
}

/// One row's input and outputs, as the zipped chunk iterators in `quantize` yield them.
type RowParts<'a> = (((&'a [f32], &'a mut [i8]), &'a mut [f32]), (&'a mut [f32], &'a mut [f32]));

/// `f32::round` (half away from zero) for `|v| < 2^23`, by integer truncation: the quantized
/// values are at most 127 in magnitude, and unlike `round` this vectorizes on baseline x86_64
/// (no SSE4.1) and in wasm.
#[inline(always)]
fn round_half_away(v: f32) -> i32 {
    let t = v as i32;
    let frac = v - t as f32;
    t + (frac >= 0.5) as i32 - (frac <= -0.5) as i32
}

/// How activations are scaled: per block of 32 with an f16 scale (ggml's Q8_0/Q8_1), or per 256
/// with an f32 one (ggml's Q8_K, for K-quant weights).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Block,
    SuperBlock,
}

/// Values per super-block of [`Q8Activations::quantize_superblocks`].
pub const SUPER_BLOCK: usize = 256;

/// `(1 / d, d)` of a super-block, as ggml's `quantize_row_q8_K_ref`: `d = max / -127` for the
/// value of largest magnitude (negative scales included), 0 for an all-zero block.
fn superblock_scale(x: &[f32]) -> (f32, f32) {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        return (0.0, 0.0);
    }
    let iscale = -127.0 / max;
    (iscale, 1.0 / iscale)
}

/// ggml's `nearest_int`: round half to even, for `|v| < 2^22`.
#[inline(always)]
fn round_half_even(v: f32) -> i32 {
    let shifted = v + 12_582_912.0;
    (shifted.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// One block of 32 values: writes `q` in the order for `bits`, returns `d` (f16-rounded) and the
/// sums of the first and last 16 stored values.
fn quantize_block(x: &[f32], bits: u32, out: &mut [i8]) -> (f32, [i32; 2]) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = f16::from_f32(amax / 127.0).to_f32();
    let d_exact = amax / 127.0;
    let id = if d_exact != 0.0 { 1.0 / d_exact } else { 0.0 };
    quantize_with(x, bits, out, (id, d), round_half_away)
}

/// `q = round(x · id)` (at most 127) written in the order for `bits`; returns `d` and the sums
/// of the first and last 16 stored values.
#[inline(always)]
fn quantize_with(x: &[f32], bits: u32, out: &mut [i8], (id, d): (f32, f32), round: fn(f32) -> i32) -> (f32, [i32; 2]) {
    let mut q = [0i8; BLOCK];
    for (q, &v) in q.iter_mut().zip(x) {
        *q = round(v * id).min(127) as i8;
    }
    if bits == 4 {
        for j in 0..BLOCK / 2 {
            out[j] = q[2 * j];
            out[BLOCK / 2 + j] = q[2 * j + 1];
        }
    } else {
        out.copy_from_slice(&q);
    }
    let sum = |s: &[i8]| s.iter().map(|&v| v as i32).sum::<i32>();
    (d, [sum(&out[..16]), sum(&out[16..])])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_matches_std() {
        let mut v = -130.0f32;
        while v < 130.0 {
            for e in [v, v + 0.5, v - 0.5, f32::from_bits((v + 0.5).to_bits() + 1), f32::from_bits((v + 0.5).to_bits().wrapping_sub(1))] {
                assert_eq!(round_half_away(e), e.round() as i32, "{e}");
            }
            v += 0.125;
        }
        // A pseudo-random sweep over the range the quantizer sees.
        let mut s = 1u32;
        for _ in 0..200_000 {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let e = (s >> 8) as f32 / (1u32 << 24) as f32 * 256.0 - 128.0;
            assert_eq!(round_half_away(e), e.round() as i32, "{e}");
        }
    }

    #[test]
    fn quantize_matches_ggml_definition() {
        // Block 0: max |x| = 2.54, so d = 0.02 and q = round(x / 0.02) (computed as x · 50).
        // Block 1: all zero, so d = 0 and every q = 0.
        let mut x = vec![0f32; 64];
        x[0] = 2.54;
        x[1] = -1.0;
        x[2] = 0.011; // 0.55 → 1
        x[3] = -0.009; // -0.45 → 0
        x[4] = 0.03; // 1.5 → 2 (half away from zero)
        x[31] = -2.54;
        let mut a = Q8Activations::new();
        a.quantize(&x, 64, 8).unwrap();
        let d = 2.54f32 / 127.0;
        let id = 1.0 / d;
        let (q0, d0) = a.value(0, 0);
        assert_eq!(d0, f16::from_f32(d).to_f32());
        assert_eq!(q0, 127);
        let expect = |v: f32| (v * id).round() as i8;
        assert_eq!(a.value(0, 1).0, -50);
        assert_eq!(a.value(0, 2).0, 1);
        assert_eq!(a.value(0, 3).0, 0);
        assert_eq!(a.value(0, 4).0, expect(0.03));
        assert_eq!(a.value(0, 31).0, -127);
        for c in 32..64 {
            assert_eq!(a.value(0, c), (0, 0.0));
        }
        // Sums: block 0 first half 127 - 50 + 1 + 0 + q(0.03), second half -127.
        let s_lo = 127 - 50 + 1 + expect(0.03) as i32;
        assert_eq!(a.dsz16[..4], [0.0, d0 * s_lo as f32, 0.0, d0 * -127.0]);
        assert_eq!(a.dsz32[..4], [0.0, d0 * (s_lo - 127) as f32, 0.0, 0.0]);

        // The 4-bit order stores evens then odds; values are the same.
        let mut b = Q8Activations::new();
        b.quantize(&x, 64, 4).unwrap();
        for c in 0..64 {
            assert_eq!(b.value(0, c), a.value(0, c));
        }
        assert_eq!(&b.qs[..4], &[127, 1, expect(0.03), 0]);
        assert_eq!(b.qs[16], -50);
        assert_eq!(b.dsz32[..2], a.dsz32[..2]);
    }

    #[test]
    fn superblocks_match_ggml_q8_k() {
        // Super-block 0: the largest magnitude is -2.54, so iscale = -127 / -2.54 = 50 and d =
        // 0.02; halves round to even. Super-block 1: largest +2.0, so d is negative. Then zeros.
        let mut x = vec![0f32; 768];
        x[5] = -2.54;
        x[6] = 0.03; // 1.5 → 2
        x[7] = 0.01; // 0.5 → 0
        x[8] = -0.03; // -1.5 → -2
        x[40] = 1.0; // 50
        x[256] = 2.0;
        x[300] = -1.0; // 63.5 → 64
        let mut a = Q8Activations::new();
        a.quantize_superblocks(&x, 768, 8).unwrap();
        let iscale = -127.0f32 / -2.54;
        assert_eq!(a.value(0, 5), (-127, 1.0 / iscale));
        assert_eq!(a.value(0, 40), (50, 1.0 / iscale), "every block of the super-block shares d");
        assert_eq!([a.value(0, 6).0, a.value(0, 7).0, a.value(0, 8).0], [2, 0, -2]);
        let d1 = 1.0 / (-127.0f32 / 2.0);
        assert!(d1 < 0.0);
        assert_eq!(a.value(0, 256), (-127, d1));
        assert_eq!(a.value(0, 300), (64, d1));
        for c in 512..768 {
            assert_eq!(a.value(0, c), (0, 0.0));
        }
        assert!(a.quantize_superblocks(&x[..64], 64, 8).is_err(), "rows must be whole super-blocks");
    }

    #[test]
    fn checked_sizes() {
        let mut a = Q8Activations::new();
        assert!(a.quantize(&[0.0; 48], 48, 4).is_err());
        assert!(a.quantize(&[0.0; 48], 32, 4).is_err());
        assert!(a.quantize(&[0.0; 32], 32, 5).is_err());
        assert!(QuantMatrix::new(&[0; 4], &[0.0; 2], 1, 32, 4, 32).is_ok());
        assert!(QuantMatrix::new(&[0; 3], &[0.0; 2], 1, 32, 4, 32).is_err());
        assert!(QuantMatrix::new(&[0; 4], &[0.0; 4], 1, 32, 4, 32).is_err());
        assert!(QuantMatrix::new(&[0; 4], &[0.0; 2], 1, 32, 4, 16).is_err());
        assert!(QuantMatrix::new(&[0; 8], &[0.0; 4], 1, 32, 8, 16).is_ok());
        assert!(QuantMatrix::new(&[0; 4], &[0.0; 2], 1, 16, 4, 32).is_err());
    }
}
