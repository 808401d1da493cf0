//! x86_64 kernels with AVX2 and FMA (checked at run time before any of them runs).
//!
//! The matmul works on tiles of `NR` weight rows × `TR` activation rows: each weight block is
//! unpacked once per tile and each activation block loaded once per tile, and the `NR × TR`
//! accumulators stay in registers. 4-bit weights (0..15) meet the int8 activations in
//! `vpmaddubsw` (u8 × i8, pairs summed to i16: at most 2 · 15 · 127, no saturation); 8-bit
//! weights (up to 255) would saturate it, so both sides are widened to i16 and multiplied with
//! `vpmaddwd`, which sums pairs into i32 exactly.

use core::arch::x86_64::*;

use crate::quant::{BLOCK, Q8Activations, QuantMatrix};

/// 4-bit values, groups of 32.
const Q4: u8 = 0;
/// 8-bit values, groups of 32.
const Q8: u8 = 1;
/// 8-bit values, groups of 16.
const Q8G16: u8 = 2;

/// Activation rows per cache block: the weights of a column chunk are swept once per block
/// while its activations (at most 64 × 1536 bytes) stay in L2.
const T_BLOCK: usize = 64;

pub(crate) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

pub(crate) fn kernel(x: &Q8Activations, w: &QuantMatrix<'_>, n0: usize, out: &mut [&mut [f32]]) {
    if !available() {
        // Unreachable through `Backend`, which checks first; kept so this safe function is sound.
        return crate::matmul::portable_kernel(x, w, n0, out);
    }
    // SAFETY: AVX2 and FMA are available (checked above).
    unsafe {
        match (w.bits(), w.group()) {
            (4, _) => run::<Q4>(x, w, n0, out),
            (_, 32) => run::<Q8>(x, w, n0, out),
            _ => run::<Q8G16>(x, w, n0, out),
        }
    }
}

/// Pointers to the first weight row and the first activation row of a tile, and their strides.
#[derive(Clone, Copy)]
struct Tile {
    /// Packed weights of the first row; `w_stride` bytes per row.
    w: *const u8,
    w_stride: usize,
    /// Interleaved `[scale, offset]` of the first weight row; `s_stride` floats per row.
    s: *const f32,
    s_stride: usize,
    /// Activation values of the first row; `a_stride` values per row.
    a: *const i8,
    a_stride: usize,
    /// Block scales `d` of the first activation row, each eight times; `d_stride` blocks per row.
    d8: *const f32,
    d_stride: usize,
    /// Offset vectors of the first activation row (`s_stride` floats per row, like the scales).
    dsz: *const f32,
    blocks: usize,
}

/// Runs every tile of one column chunk.
///
/// # Safety
/// AVX2 and FMA must be available; `w` and `x` are consistent (checked by `quant_matmul_with`:
/// same columns, activations ordered for `w.bits()`), `out` has `x.rows()` rows of equal length
/// and `n0 + out[0].len() <= w.rows()`.
#[target_feature(enable = "avx2,fma")]
unsafe fn run<const K: u8>(x: &Q8Activations, w: &QuantMatrix<'_>, n0: usize, out: &mut [&mut [f32]]) {
    let t_rows = out.len();
    let n_cols = out.first().map_or(0, |r| r.len());
    let cols = w.cols();
    let blocks = cols / BLOCK;
    let s_stride = 2 * cols / w.group();
    let dsz = if K == Q8G16 { &x.dsz16 } else { &x.dsz32 };
    // One activation row: the weights stream from memory once whatever the tile, and one row at
    // a time keeps that stream simple for the prefetcher (measured fastest, also for 8-bit
    // weights, whose widened blocks take two registers each). Several: 2 weight rows ×
    // 4 activation rows, 8 accumulators (measured best of the shapes up to 4 × 8).
    let (nr_max, tr_max) = if t_rows == 1 { (1, 1) } else { (2, 4) };
    for t0 in (0..t_rows).step_by(T_BLOCK) {
        let t1 = (t0 + T_BLOCK).min(t_rows);
        let mut i = 0;
        while i < n_cols {
            let nr = nr_max.min(n_cols - i);
            let n = n0 + i;
            let mut j = t0;
            while j < t1 {
                let tr = tr_max.min(t1 - j);
                // SAFETY: rows n..n+nr of w and j..j+tr of x exist (see the function's contract);
                // every pointer below starts a row of the slice it points into.
                let tile = unsafe {
                    Tile {
                        w: w.bytes().as_ptr().add(n * w.row_bytes()),
                        w_stride: w.row_bytes(),
                        s: w.scales().as_ptr().add(n * s_stride),
                        s_stride,
                        a: x.qs.as_ptr().add(j * cols),
                        a_stride: cols,
                        d8: x.d8.as_ptr().add(j * blocks * 8),
                        d_stride: blocks,
                        dsz: dsz.as_ptr().add(j * s_stride),
                        blocks,
                    }
                };
                macro_rules! tiles {
                    ($(($a:literal, $b:literal)),*) => {
                        match (nr, tr) {
                            $(($a, $b) => store(unsafe { tile_kernel::<K, $a, $b>(tile) }, out, i, j),)*
                            _ => unreachable!("tile shapes are at most 2 × 4"),
                        }
                    };
                }
                tiles!((1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (2, 3), (2, 4));
                j += tr;
            }
            i += nr;
        }
    }
}

fn store<const NR: usize, const TR: usize>(r: [[f32; TR]; NR], out: &mut [&mut [f32]], i: usize, j: usize) {
    for (ii, row) in r.iter().enumerate() {
        for (jj, &v) in row.iter().enumerate() {
            out[j + jj][i + ii] = v;
        }
    }
}

/// The dot products of `NR` weight rows with `TR` activation rows.
///
/// # Safety
/// AVX2 and FMA available; `p` points at `NR` weight rows and `TR` activation rows of
/// `p.blocks` blocks each, with their scales, `d` and offset vectors, all in bounds.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // i and j index several arrays in step
unsafe fn tile_kernel<const K: u8, const NR: usize, const TR: usize>(p: Tile) -> [[f32; TR]; NR] {
    let mask = _mm256_set1_epi8(0x0F);
    // Shifts the copy of the 16 packed bytes in the upper lane to its high nibbles.
    let nibble_shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); TR]; NR];
    for b in 0..p.blocks {
        let mut wv = [(_mm256_setzero_si256(), _mm256_setzero_si256()); NR];
        let mut sc = [_mm256_setzero_ps(); NR];
        for i in 0..NR {
            // SAFETY: block b of weight row i and its scales are in bounds (contract).
            unsafe {
                let wp = p.w.add(i * p.w_stride);
                let sp = p.s.add(i * p.s_stride);
                if K == Q4 {
                    // 16 bytes → [low nibbles (even elements) | high nibbles (odd elements)].
                    let raw = _mm256_broadcastsi128_si256(_mm_loadu_si128(wp.add(b * 16).cast()));
                    wv[i].0 = _mm256_and_si256(_mm256_srlv_epi32(raw, nibble_shift), mask);
                } else {
                    wv[i].0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(wp.add(b * 32).cast()));
                    wv[i].1 = _mm256_cvtepu8_epi16(_mm_loadu_si128(wp.add(b * 32 + 16).cast()));
                }
                sc[i] = if K == Q8G16 {
                    // [s0, o0, s1, o1] → [s0, s0, s1, s1] in each lane, matching the hadd below.
                    _mm256_permute_ps::<0b10_10_00_00>(_mm256_broadcast_ps(&*sp.add(4 * b).cast::<__m128>()))
                } else {
                    _mm256_set1_ps(*sp.add(2 * b))
                };
            }
        }
        for j in 0..TR {
            // SAFETY: block b of activation row j and its d are in bounds (contract).
            let (a, d) = unsafe {
                let ap = p.a.add(j * p.a_stride + b * BLOCK);
                let a = if K == Q4 {
                    (_mm256_loadu_si256(ap.cast()), _mm256_setzero_si256())
                } else {
                    (_mm256_cvtepi8_epi16(_mm_loadu_si128(ap.cast())), _mm256_cvtepi8_epi16(_mm_loadu_si128(ap.add(16).cast())))
                };
                (a, _mm256_loadu_ps(p.d8.add((j * p.d_stride + b) * 8)))
            };
            for i in 0..NR {
                let prod = if K == Q4 {
                    _mm256_madd_epi16(_mm256_maddubs_epi16(wv[i].0, a.0), ones)
                } else if K == Q8 {
                    _mm256_add_epi32(_mm256_madd_epi16(wv[i].0, a.0), _mm256_madd_epi16(wv[i].1, a.1))
                } else {
                    // Lanes of the first product are group 2b, of the second 2b + 1:
                    // hadd gives [g0, g0, g1, g1] in each 128-bit lane.
                    _mm256_hadd_epi32(_mm256_madd_epi16(wv[i].0, a.0), _mm256_madd_epi16(wv[i].1, a.1))
                };
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(prod), _mm256_mul_ps(sc[i], d), acc[i][j]);
            }
        }
    }
    let mut r = [[0f32; TR]; NR];
    for i in 0..NR {
        for j in 0..TR {
            // SAFETY: scales of row i and offset vectors of row j have s_stride floats each.
            let offsets = unsafe { dot(p.s.add(i * p.s_stride), p.dsz.add(j * p.s_stride), p.s_stride) };
            r[i][j] = hsum(acc[i][j]) + offsets;
        }
    }
    r
}

#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps::<1>(s, s)))
}

/// `Σ a[k] · b[k]` for `k < n`.
///
/// # Safety
/// AVX2 and FMA available; `a` and `b` point at `n` floats each.
#[target_feature(enable = "avx2,fma")]
unsafe fn dot(a: *const f32, b: *const f32, n: usize) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut k = 0;
    while k + 8 <= n {
        // SAFETY: k + 8 <= n.
        acc = unsafe { _mm256_fmadd_ps(_mm256_loadu_ps(a.add(k)), _mm256_loadu_ps(b.add(k)), acc) };
        k += 8;
    }
    let mut s = hsum(acc);
    while k < n {
        // SAFETY: k < n.
        s += unsafe { *a.add(k) * *b.add(k) };
        k += 1;
    }
    s
}

/// Attention scores: `out[r · len + p] = scale · q_r · k_p` for the `q.len() / hd` query heads
/// `q_r` and the `len = k.len() / hd` keys `k_p`; `hd` a multiple of 8.
///
/// Positions go in fours, all heads for each four, so a key is read from memory once; the four
/// dot products of a head are reduced together with three `hadd`s.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn attn_scores(q: &[f32], k: &[f32], hd: usize, scale: f32, out: &mut [f32]) {
    let len = k.len() / hd;
    let load = |c: &[f32; 8]| {
        // SAFETY: `c` is 8 floats.
        unsafe { _mm256_loadu_ps(c.as_ptr()) }
    };
    let mut p = 0;
    while p + 4 <= len {
        let ks: [&[[f32; 8]]; 4] = core::array::from_fn(|i| k[(p + i) * hd..(p + i + 1) * hd].as_chunks::<8>().0);
        for (r, qr) in q.chunks_exact(hd).enumerate() {
            let mut acc = [_mm256_setzero_ps(); 4];
            for (c, qc) in qr.as_chunks::<8>().0.iter().enumerate() {
                let qv = load(qc);
                for i in 0..4 {
                    acc[i] = _mm256_fmadd_ps(qv, load(&ks[i][c]), acc[i]);
                }
            }
            // [Σ0 Σ1 Σ2 Σ3] of each 128-bit half, then the halves added.
            let h = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
            let s = _mm_mul_ps(_mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps::<1>(h)), _mm_set1_ps(scale));
            let dst = &mut out[r * len + p..r * len + p + 4];
            // SAFETY: `dst` is 4 floats.
            unsafe { _mm_storeu_ps(dst.as_mut_ptr(), s) };
        }
        p += 4;
    }
    for p in p..len {
        let kc = k[p * hd..(p + 1) * hd].as_chunks::<8>().0;
        for (r, qr) in q.chunks_exact(hd).enumerate() {
            let mut acc = _mm256_setzero_ps();
            for (qc, kc) in qr.as_chunks::<8>().0.iter().zip(kc) {
                acc = _mm256_fmadd_ps(load(qc), load(kc), acc);
            }
            out[r * len + p] = hsum(acc) * scale;
        }
    }
}

/// `acc[r] = Σ_p e[r · len + p] · v_p` for the `acc.len() / hd` heads and the `len` values
/// `v_p` (`v.len() / hd`); `hd` a multiple of 16.
///
/// The sums stay in registers: 16 columns of up to 4 heads at a time (8 accumulators) over all
/// positions, so each value row is read `hd / 16` times, from cache after the first.
#[target_feature(enable = "avx2,fma")]
pub(crate) fn attn_weighted_sum(e: &[f32], v: &[f32], hd: usize, acc: &mut [f32]) {
    let len = v.len() / hd;
    let heads = acc.len() / hd;
    let load = |s: &[f32]| {
        // SAFETY: every caller passes at least 8 floats (checked by slicing).
        unsafe { _mm256_loadu_ps(s[..8].as_ptr()) }
    };
    for h0 in (0..heads).step_by(4) {
        let hn = (heads - h0).min(4);
        for c in (0..hd).step_by(16) {
            let mut sum = [[_mm256_setzero_ps(); 2]; 4];
            for (p, vp) in v.chunks_exact(hd).enumerate() {
                let v0 = load(&vp[c..]);
                let v1 = load(&vp[c + 8..]);
                for (h, s) in sum.iter_mut().enumerate().take(hn) {
                    let w = _mm256_set1_ps(e[(h0 + h) * len + p]);
                    s[0] = _mm256_fmadd_ps(w, v0, s[0]);
                    s[1] = _mm256_fmadd_ps(w, v1, s[1]);
                }
            }
            for (h, s) in sum.iter().enumerate().take(hn) {
                let dst = &mut acc[(h0 + h) * hd + c..(h0 + h) * hd + c + 16];
                // SAFETY: `dst` is 16 floats.
                unsafe {
                    _mm256_storeu_ps(dst.as_mut_ptr(), s[0]);
                    _mm256_storeu_ps(dst.as_mut_ptr().add(8), s[1]);
                }
            }
        }
    }
}
