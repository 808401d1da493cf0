//! wasm32 SIMD128 kernels (compiled in when the crate is built with `+simd128`).
//!
//! SIMD128 has no 8-bit dot product, so both sides meet as i16 in `i32x4.dot_i16x8_s`
//! (pairs summed into i32, exact): the activations are widened once when quantized
//! (`Q8Activations::qs16`), the weights of a block once per tile. Tiles are `NR` weight rows ×
//! `TR` activation rows as in the x86 kernels (shapes chosen by measurement, see `run`).

use core::arch::wasm32::*;

use crate::quant::{BLOCK, Q8Activations, QuantMatrix};

const Q4: u8 = 0;
const Q8: u8 = 1;
const Q8G16: u8 = 2;
const T_BLOCK: usize = 64;

pub(crate) fn kernel(x: &Q8Activations, w: &QuantMatrix<'_>, n0: usize, out: &mut [&mut [f32]]) {
    match (w.bits(), w.group()) {
        (4, _) => run::<Q4>(x, w, n0, out),
        (_, 32) => run::<Q8>(x, w, n0, out),
        _ => run::<Q8G16>(x, w, n0, out),
    }
}

#[derive(Clone, Copy)]
struct Tile {
    w: *const u8,
    w_stride: usize,
    s: *const f32,
    s_stride: usize,
    /// Widened activation values of the first row; `a_stride` per row.
    a: *const i16,
    a_stride: usize,
    d: *const f32,
    d_stride: usize,
    dsz: *const f32,
    blocks: usize,
}

/// Runs every tile of one column chunk. `quant_matmul_with` has checked that `w` and `x` agree
/// (columns, order) and that `out` is `x.rows()` rows of columns `n0 ..` of `w`; the slices
/// below are indexed with those sizes, so the pointers handed to the tiles are in bounds.
fn run<const K: u8>(x: &Q8Activations, w: &QuantMatrix<'_>, n0: usize, out: &mut [&mut [f32]]) {
    let t_rows = out.len();
    let n_cols = out.first().map_or(0, |r| r.len());
    let cols = w.cols();
    let blocks = cols / BLOCK;
    let s_stride = 2 * cols / w.group();
    let dsz = if K == Q8G16 { &x.dsz16 } else { &x.dsz32 };
    // Measured in Node (V8) on x86_64: one weight row at a time for a single activation row (the
    // weights stream once either way), 3 × 2 tiles for several, although 3 rows of widened
    // weights and 6 accumulators exceed x64's 16 vector registers.
    let (nr_max, tr_max) = if t_rows == 1 { (1, 1) } else { (3, 2) };
    for t0 in (0..t_rows).step_by(T_BLOCK) {
        let t1 = (t0 + T_BLOCK).min(t_rows);
        let mut i = 0;
        while i < n_cols {
            let nr = nr_max.min(n_cols - i);
            let n = n0 + i;
            let mut j = t0;
            while j < t1 {
                let tr = tr_max.min(t1 - j);
                // Slicing checks the starts of the rows the tile reads.
                let tile = Tile {
                    w: w.bytes()[n * w.row_bytes()..].as_ptr(),
                    w_stride: w.row_bytes(),
                    s: w.scales()[n * s_stride..].as_ptr(),
                    s_stride,
                    a: x.qs16[j * cols..].as_ptr(),
                    a_stride: cols,
                    d: x.d[j * blocks..].as_ptr(),
                    d_stride: blocks,
                    dsz: dsz[j * s_stride..].as_ptr(),
                    blocks,
                };
                macro_rules! tiles {
                    ($(($a:literal, $b:literal)),*) => {
                        match (nr, tr) {
                            // SAFETY: rows n..n+nr of w and j..j+tr of x exist (see above).
                            $(($a, $b) => store(unsafe { tile_kernel::<K, $a, $b>(tile) }, out, i, j),)*
                            _ => unreachable!("tile shapes are at most 3 × 2"),
                        }
                    };
                }
                tiles!((1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2));
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
/// `p` points at `NR` weight rows and `TR` activation rows of `p.blocks` blocks each, with
/// their scales, `d` and offset vectors, all in bounds.
#[inline]
#[allow(clippy::needless_range_loop)] // i and j index several arrays in step
unsafe fn tile_kernel<const K: u8, const NR: usize, const TR: usize>(p: Tile) -> [[f32; TR]; NR] {
    let zero = f32x4_splat(0.0);
    let mut acc = [[zero; TR]; NR];
    for b in 0..p.blocks {
        let mut wv = [[i16x8_splat(0); 4]; NR];
        let mut sc = [(zero, zero); NR];
        for i in 0..NR {
            // SAFETY: block b of weight row i and its scales are in bounds (contract).
            unsafe {
                let wp = p.w.add(i * p.w_stride);
                let sp = p.s.add(i * p.s_stride);
                if K == Q4 {
                    // 16 bytes: low nibbles are the even elements, high nibbles the odd ones.
                    let raw = v128_load(wp.add(b * 16).cast());
                    let lo = v128_and(raw, u8x16_splat(0x0F));
                    let hi = u8x16_shr(raw, 4);
                    wv[i] = [u16x8_extend_low_u8x16(lo), u16x8_extend_high_u8x16(lo), u16x8_extend_low_u8x16(hi), u16x8_extend_high_u8x16(hi)];
                } else {
                    let r0 = v128_load(wp.add(b * 32).cast());
                    let r1 = v128_load(wp.add(b * 32 + 16).cast());
                    wv[i] = [u16x8_extend_low_u8x16(r0), u16x8_extend_high_u8x16(r0), u16x8_extend_low_u8x16(r1), u16x8_extend_high_u8x16(r1)];
                }
                sc[i] = if K == Q8G16 { (f32x4_splat(*sp.add(4 * b)), f32x4_splat(*sp.add(4 * b + 2))) } else { (f32x4_splat(*sp.add(2 * b)), zero) };
            }
        }
        for j in 0..TR {
            // SAFETY: block b of activation row j and its d are in bounds (contract).
            let (a, d) = unsafe {
                let ap = p.a.add(j * p.a_stride + b * BLOCK);
                ([v128_load(ap.cast()), v128_load(ap.add(8).cast()), v128_load(ap.add(16).cast()), v128_load(ap.add(24).cast())], f32x4_splat(*p.d.add(j * p.d_stride + b)))
            };
            for i in 0..NR {
                let w = &wv[i];
                let lo = i32x4_add(i32x4_dot_i16x8(w[0], a[0]), i32x4_dot_i16x8(w[1], a[1]));
                let hi = i32x4_add(i32x4_dot_i16x8(w[2], a[2]), i32x4_dot_i16x8(w[3], a[3]));
                acc[i][j] = if K == Q8G16 {
                    // The first 16 values are group 2b, the last 16 group 2b + 1.
                    let acc = f32x4_add(acc[i][j], f32x4_mul(f32x4_convert_i32x4(lo), f32x4_mul(sc[i].0, d)));
                    f32x4_add(acc, f32x4_mul(f32x4_convert_i32x4(hi), f32x4_mul(sc[i].1, d)))
                } else {
                    f32x4_add(acc[i][j], f32x4_mul(f32x4_convert_i32x4(i32x4_add(lo, hi)), f32x4_mul(sc[i].0, d)))
                };
            }
        }
    }
    let mut r = [[0f32; TR]; NR];
    for i in 0..NR {
        for j in 0..TR {
            // SAFETY: scales of row i and offset vectors of row j have s_stride floats each.
            let offsets = unsafe { dot(p.s.add(i * p.s_stride), p.dsz.add(j * p.s_stride), p.s_stride) };
            let v = acc[i][j];
            r[i][j] = (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v)) + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v)) + offsets;
        }
    }
    r
}

/// `Σ a[k] · b[k]` for `k < n`.
///
/// # Safety
/// `a` and `b` point at `n` floats each.
#[inline]
unsafe fn dot(a: *const f32, b: *const f32, n: usize) -> f32 {
    // SAFETY: forwarded from the caller.
    let (a, b) = unsafe { (core::slice::from_raw_parts(a, n), core::slice::from_raw_parts(b, n)) };
    crate::ops::dot_portable(a, b)
}

/// Four floats from the start of `s` (which the slicing checks has at least four).
#[inline(always)]
fn load4(s: &[f32]) -> v128 {
    // SAFETY: `s[..4]` is four in-bounds floats; v128_load has no alignment requirement.
    unsafe { v128_load(s[..4].as_ptr().cast()) }
}

#[inline(always)]
fn store4(s: &mut [f32], v: v128) {
    // SAFETY: as in `load4`.
    unsafe { v128_store(s[..4].as_mut_ptr().cast(), v) }
}

/// `[Σa, Σb, Σc, Σd]`.
#[inline(always)]
fn hsum4(a: v128, b: v128, c: v128, d: v128) -> v128 {
    let ab = f32x4_add(i32x4_shuffle::<0, 4, 1, 5>(a, b), i32x4_shuffle::<2, 6, 3, 7>(a, b));
    let cd = f32x4_add(i32x4_shuffle::<0, 4, 1, 5>(c, d), i32x4_shuffle::<2, 6, 3, 7>(c, d));
    f32x4_add(i32x4_shuffle::<0, 1, 4, 5>(ab, cd), i32x4_shuffle::<2, 3, 6, 7>(ab, cd))
}

/// Attention scores as `x86::attn_scores` (positions in fours, all heads for each four);
/// `hd` a multiple of 4.
pub(crate) fn attn_scores(q: &[f32], k: &[f32], hd: usize, scale: f32, out: &mut [f32]) {
    let len = k.len() / hd;
    let scale4 = f32x4_splat(scale);
    let mut p = 0;
    while p + 4 <= len {
        let ks: [&[f32]; 4] = core::array::from_fn(|i| &k[(p + i) * hd..(p + i + 1) * hd]);
        for (r, qr) in q.chunks_exact(hd).enumerate() {
            let mut acc = [f32x4_splat(0.0); 4];
            for c in (0..hd).step_by(4) {
                let qv = load4(&qr[c..]);
                for (a, kp) in acc.iter_mut().zip(&ks) {
                    *a = f32x4_add(*a, f32x4_mul(qv, load4(&kp[c..])));
                }
            }
            store4(&mut out[r * len + p..], f32x4_mul(hsum4(acc[0], acc[1], acc[2], acc[3]), scale4));
        }
        p += 4;
    }
    for p in p..len {
        let kp = &k[p * hd..(p + 1) * hd];
        for (r, qr) in q.chunks_exact(hd).enumerate() {
            let mut acc = f32x4_splat(0.0);
            for c in (0..hd).step_by(4) {
                acc = f32x4_add(acc, f32x4_mul(load4(&qr[c..]), load4(&kp[c..])));
            }
            let s = hsum4(acc, acc, acc, acc);
            out[r * len + p] = f32x4_extract_lane::<0>(s) * scale;
        }
    }
}

/// `acc[r] = Σ_p e[r · len + p] · v_p` as `x86::attn_weighted_sum`: 8 columns of up to 4 heads
/// at a time in registers; `hd` a multiple of 8.
pub(crate) fn attn_weighted_sum(e: &[f32], v: &[f32], hd: usize, acc: &mut [f32]) {
    let len = v.len() / hd;
    let heads = acc.len() / hd;
    for h0 in (0..heads).step_by(4) {
        let hn = (heads - h0).min(4);
        for c in (0..hd).step_by(8) {
            let mut sum = [[f32x4_splat(0.0); 2]; 4];
            for (p, vp) in v.chunks_exact(hd).enumerate() {
                let v0 = load4(&vp[c..]);
                let v1 = load4(&vp[c + 4..]);
                for (h, s) in sum.iter_mut().enumerate().take(hn) {
                    let w = f32x4_splat(e[(h0 + h) * len + p]);
                    s[0] = f32x4_add(s[0], f32x4_mul(w, v0));
                    s[1] = f32x4_add(s[1], f32x4_mul(w, v1));
                }
            }
            for (h, s) in sum.iter().enumerate().take(hn) {
                let dst = &mut acc[(h0 + h) * hd + c..];
                store4(dst, s[0]);
                store4(&mut dst[4..], s[1]);
            }
        }
    }
}
