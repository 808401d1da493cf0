//! f32 kernels: RMSNorm, SwiGLU and causal grouped-query attention.
//!
//! The elementwise parts (RMSNorm, SiLU, softmax with its `exp`) are written once as
//! `#[inline(always)]` bodies over fixed-size lane arrays, which LLVM vectorizes: the AVX2
//! backend compiles the same body inside a `#[target_feature]` function (256-bit registers), a
//! wasm build with `+simd128` vectorizes it to SIMD128, and the portable backend is that body
//! compiled for the baseline target. The two products of attention (scores `q·k` and the
//! weighted sum of values) have explicit AVX2 and SIMD128 kernels (x86.rs, wasm.rs): LLVM
//! vectorized them poorly, and they are most of its time.

use core::ops::Range;

use rayon::prelude::*;

use crate::error::{KernelError, Result};
use crate::Backend;

/// Width of the lane arrays: two AVX2 registers, four SIMD128 ones. Independent lanes are
/// independent accumulators, so sums do not wait on one add chain.
const LANES: usize = 16;

/// Element count above which an elementwise kernel is split across threads: below it the
/// hand-off costs more than the work.
const PAR_ELEMENTS: usize = 1 << 15;

/// The head layout of one attention layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; query head `h` reads kv head `h / (heads / kv_heads)`.
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// `out[r] = x[r] / sqrt(mean(x[r]²) + eps) · weight` for each row `r` of `x` (rows of
/// `weight.len()` values), as ggml's `rms_norm` followed by the multiplication by the weight.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) -> Result<()> {
    rms_norm_with(Backend::best(), x, weight, eps, out)
}

/// [`rms_norm`] on a chosen backend.
pub fn rms_norm_with(backend: Backend, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) -> Result<()> {
    let backend = backend.check()?;
    let dim = weight.len();
    if dim == 0 || !x.len().is_multiple_of(dim) {
        return Err(KernelError::NotMultiple { what: "rms_norm input length", value: x.len(), multiple: dim });
    }
    if out.len() != x.len() {
        return Err(KernelError::Length { what: "rms_norm output", expected: x.len(), got: out.len() });
    }
    let row = |(x, out): (&[f32], &mut [f32])| rms_norm_row(backend, x, weight, eps, out);
    if x.len() >= PAR_ELEMENTS {
        x.par_chunks(dim).zip(out.par_chunks_mut(dim)).with_min_len(8).for_each(row);
    } else {
        x.chunks(dim).zip(out.chunks_mut(dim)).for_each(row);
    }
    Ok(())
}

/// `out = silu(gate) · up` elementwise, `silu(x) = x / (1 + e^-x)` (SwiGLU).
pub fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<()> {
    silu_mul_with(Backend::best(), gate, up, out)
}

/// [`silu_mul`] on a chosen backend.
pub fn silu_mul_with(backend: Backend, gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<()> {
    let backend = backend.check()?;
    for (what, len) in [("silu_mul up", up.len()), ("silu_mul output", out.len())] {
        if len != gate.len() {
            return Err(KernelError::Length { what, expected: gate.len(), got: len });
        }
    }
    let part = |((g, u), o): ((&[f32], &[f32]), &mut [f32])| silu_mul_part(backend, g, u, o);
    if gate.len() >= PAR_ELEMENTS {
        let chunk = PAR_ELEMENTS / 4;
        gate.par_chunks(chunk).zip(up.par_chunks(chunk)).zip(out.par_chunks_mut(chunk)).for_each(part);
    } else {
        part(((gate, up), out));
    }
    Ok(())
}

/// `out = gelu(gate) · up` elementwise (GeGLU), with the tanh approximation of GELU evaluated as
/// ggml's CPU backend evaluates it: the input rounded to f16, GELU of that, the result rounded
/// to f16 again (ggml looks it up in a table of all f16 values); below −10 the result is 0 and
/// above 10 it is the input. Matching that rounding keeps Gemma's logits within llama.cpp's.
pub fn gelu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) -> Result<()> {
    for (what, len) in [("gelu_mul up", up.len()), ("gelu_mul output", out.len())] {
        if len != gate.len() {
            return Err(KernelError::Length { what, expected: gate.len(), got: len });
        }
    }
    let part = |((g, u), o): ((&[f32], &[f32]), &mut [f32])| {
        for ((o, &g), &u) in o.iter_mut().zip(g).zip(u) {
            *o = gelu_f16(g) * u;
        }
    };
    if gate.len() >= PAR_ELEMENTS {
        let chunk = PAR_ELEMENTS / 4;
        gate.par_chunks(chunk).zip(up.par_chunks(chunk)).zip(out.par_chunks_mut(chunk)).for_each(part);
    } else {
        part(((gate, up), out));
    }
    Ok(())
}

/// ggml's `ggml_vec_geglu_f32` GELU (see [`gelu_mul`]).
#[inline]
pub fn gelu_f16(x: f32) -> f32 {
    use half::f16;
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    const GELU_COEF_A: f32 = 0.044_715;
    if x <= -10.0 {
        return 0.0;
    }
    if x >= 10.0 {
        return x;
    }
    let x = f16::from_f32(x).to_f32();
    let y = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x)).tanh());
    f16::from_f32(y).to_f32()
}

/// Causal grouped-query attention of `t` query rows at positions `start .. start + t`.
///
/// `q` and `out` are `[t, heads · head_dim]`; `k_cache` and `v_cache` are
/// `[kv_heads, capacity, head_dim]` and must already hold positions `0 .. start + t`. Query row
/// `i` attends to positions `0 ..= start + i` with scores `q·k / sqrt(head_dim)` and a softmax
/// that subtracts the row maximum. Work is split over (row, kv head) — the query heads of a kv
/// head share each key and value they read — and, when that gives the threads too little to do
/// (decoding), over ranges of positions whose partial softmaxes are merged.
pub fn attention(q: &[f32], k_cache: &[f32], v_cache: &[f32], start: usize, shape: AttnShape, out: &mut [f32]) -> Result<()> {
    attention_window_with(Backend::best(), q, k_cache, v_cache, start, shape, None, out)
}

/// [`attention`] on a chosen backend.
pub fn attention_with(backend: Backend, q: &[f32], k_cache: &[f32], v_cache: &[f32], start: usize, shape: AttnShape, out: &mut [f32]) -> Result<()> {
    attention_window_with(backend, q, k_cache, v_cache, start, shape, None, out)
}

/// [`attention`] where each query sees at most the last `window` positions, itself included
/// (sliding-window layers, as llama.cpp's standard window: position `p` is hidden from query
/// position `i` when `i − p ≥ window`); `None` sees every earlier position.
pub fn attention_window(q: &[f32], k_cache: &[f32], v_cache: &[f32], start: usize, shape: AttnShape, window: Option<usize>, out: &mut [f32]) -> Result<()> {
    attention_window_with(Backend::best(), q, k_cache, v_cache, start, shape, window, out)
}

/// [`attention_window`] on a chosen backend.
#[allow(clippy::too_many_arguments)]
pub fn attention_window_with(
    backend: Backend,
    q: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    start: usize,
    shape: AttnShape,
    window: Option<usize>,
    out: &mut [f32],
) -> Result<()> {
    let backend = backend.check()?;
    if window == Some(0) {
        return Err(KernelError::Shape("an attention window of 0 positions".into()));
    }
    // The first position query position `end - 1` sees.
    let first = |end: usize| window.map_or(0, |w| end.saturating_sub(w));
    let AttnShape { heads, kv_heads, head_dim: hd } = shape;
    if heads == 0 || kv_heads == 0 || hd == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(KernelError::Shape(format!("{heads} query heads cannot share {kv_heads} kv heads of dimension {hd}")));
    }
    let width = heads * hd;
    if !q.len().is_multiple_of(width) {
        return Err(KernelError::NotMultiple { what: "attention query length", value: q.len(), multiple: width });
    }
    if out.len() != q.len() {
        return Err(KernelError::Length { what: "attention output", expected: q.len(), got: out.len() });
    }
    if v_cache.len() != k_cache.len() {
        return Err(KernelError::Length { what: "value cache", expected: k_cache.len(), got: v_cache.len() });
    }
    if !k_cache.len().is_multiple_of(kv_heads * hd) {
        return Err(KernelError::NotMultiple { what: "key cache length", value: k_cache.len(), multiple: kv_heads * hd });
    }
    let t = q.len() / width;
    let capacity = k_cache.len() / (kv_heads * hd);
    if start + t > capacity {
        return Err(KernelError::Shape(format!("positions up to {} do not fit a cache of {capacity}", start + t)));
    }
    if t == 0 {
        return Ok(());
    }
    let group = heads / kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let head_cache = capacity * hd;
    let kv = |h: usize| (&k_cache[h * head_cache..(h + 1) * head_cache], &v_cache[h * head_cache..(h + 1) * head_cache]);
    let units = t * kv_heads;
    let longest = window.map_or(start + t, |w| w.min(start + t));
    let splits = position_splits(units, longest, rayon::current_num_threads());
    let job = Job { backend, hd, scale };

    if splits == 1 {
        // One task per (row, kv head): its query heads are contiguous in `q` and `out`.
        let task = |scratch: &mut Scratch, (u, o): (usize, &mut [f32])| {
            let (i, h) = (u / kv_heads, u % kv_heads);
            let (k, v) = kv(h);
            let qs = &q[i * width + h * group * hd..][..group * hd];
            scratch.stats.resize(group, (0.0, 0.0));
            job.attend(qs, k, v, first(start + i + 1)..start + i + 1, &mut scratch.scores, o, &mut scratch.stats);
            for (o, &(_, sum)) in o.chunks_exact_mut(hd).zip(&scratch.stats) {
                let inv = 1.0 / sum;
                o.iter_mut().for_each(|x| *x *= inv);
            }
        };
        if units == 1 {
            task(&mut Scratch::default(), (0, out));
        } else {
            out.par_chunks_mut(group * hd).enumerate().for_each_init(Scratch::default, task);
        }
        return Ok(());
    }

    // Positions split in `splits` ranges per unit; each task returns its unnormalized Σ e·v and
    // per head (max score, Σ e), merged below.
    let partials: Vec<Partial> = (0..units * splits)
        .into_par_iter()
        .map_init(Vec::new, |scores, task| {
            let (u, c) = (task / splits, task % splits);
            let (i, h) = (u / kv_heads, u % kv_heads);
            let end = start + i + 1;
            let lo = first(end);
            let per = (end - lo).div_ceil(splits);
            let range = (lo + c * per).min(end)..(lo + (c + 1) * per).min(end);
            let mut acc = vec![0f32; group * hd];
            let mut stats = vec![(f32::NEG_INFINITY, 0f32); group];
            if !range.is_empty() {
                let (k, v) = kv(h);
                job.attend(&q[i * width + h * group * hd..][..group * hd], k, v, range, scores, &mut acc, &mut stats);
            }
            (acc, stats)
        })
        .collect();
    for (u, (o, parts)) in out.chunks_exact_mut(group * hd).zip(partials.chunks_exact(splits)).enumerate() {
        debug_assert!(u < units);
        for r in 0..group {
            let max = parts.iter().map(|p| p.1[r].0).fold(f32::NEG_INFINITY, f32::max);
            let o = &mut o[r * hd..(r + 1) * hd];
            o.fill(0.0);
            let mut sum = 0f32;
            for (acc, stats) in parts {
                let (m, s) = stats[r];
                if s == 0.0 {
                    continue; // an empty range
                }
                let w = (m - max).exp();
                sum += s * w;
                o.iter_mut().zip(&acc[r * hd..(r + 1) * hd]).for_each(|(o, a)| *o += w * a);
            }
            let inv = 1.0 / sum;
            o.iter_mut().for_each(|x| *x *= inv);
        }
    }
    Ok(())
}

/// How many ranges to split each (row, kv head)'s positions into: 1 when there are enough
/// units for four per thread (prefill); otherwise enough splits for that, but with ranges of
/// at least 256 positions, below which the merge costs more than the parallelism gains.
fn position_splits(units: usize, longest: usize, threads: usize) -> usize {
    let want = 4 * threads;
    if threads <= 1 || units >= want {
        return 1;
    }
    want.div_ceil(units).min(longest / 256).max(1)
}

/// One range's unnormalized `Σ e·v` per query head, and per head (max score, `Σ e`).
type Partial = (Vec<f32>, Vec<(f32, f32)>);

#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    stats: Vec<(f32, f32)>,
}

#[derive(Clone, Copy)]
struct Job {
    backend: Backend,
    hd: usize,
    scale: f32,
}

impl Job {
    /// Attention of the `q.len() / hd` query heads in `q`, which share one kv head (`k` and `v`:
    /// `[capacity, hd]`), over the positions in `range`: `acc[r]` gets `Σ_p e_rp · v_p` with
    /// `e_rp = exp(score_rp − max_r)`, and `stats[r] = (max_r, Σ_p e_rp)`.
    #[allow(clippy::too_many_arguments)]
    fn attend(&self, q: &[f32], k: &[f32], v: &[f32], range: Range<usize>, scores: &mut Vec<f32>, acc: &mut [f32], stats: &mut [(f32, f32)]) {
        let hd = self.hd;
        let len = range.len();
        let (k, v) = (&k[range.start * hd..range.end * hd], &v[range.start * hd..range.end * hd]);
        scores.clear();
        scores.resize(q.len() / hd * len, 0.0);
        match self.backend {
            // SAFETY: the Avx2 backend is only chosen where AVX2 and FMA are available
            // (`Backend::check`).
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 if hd.is_multiple_of(16) => unsafe {
                crate::x86::attn_scores(q, k, hd, self.scale, scores);
                softmax_rows_avx2(scores, len, stats);
                crate::x86::attn_weighted_sum(scores, v, hd, acc);
            },
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Backend::Simd128 if hd.is_multiple_of(8) => {
                crate::wasm::attn_scores(q, k, hd, self.scale, scores);
                softmax_rows(scores, len, stats);
                crate::wasm::attn_weighted_sum(scores, v, hd, acc);
            }
            _ => {
                for (pi, kp) in k.chunks_exact(hd).enumerate() {
                    for (r, qr) in q.chunks_exact(hd).enumerate() {
                        scores[r * len + pi] = dot_body(qr, kp) * self.scale;
                    }
                }
                softmax_rows(scores, len, stats);
                acc.fill(0.0);
                for (pi, vp) in v.chunks_exact(hd).enumerate() {
                    for (r, a) in acc.chunks_exact_mut(hd).enumerate() {
                        axpy_body(scores[r * len + pi], vp, a);
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_rows_avx2(scores: &mut [f32], len: usize, stats: &mut [(f32, f32)]) {
    softmax_rows(scores, len, stats)
}

/// Each row of `len` scores becomes `exp(score − max)`; `stats[r] = (max, Σ exp)`.
#[inline(always)]
fn softmax_rows(scores: &mut [f32], len: usize, stats: &mut [(f32, f32)]) {
    for (s, st) in scores.chunks_exact_mut(len).zip(stats.iter_mut()) {
        let max = max_body(s);
        *st = (max, exp_sub_sum_body(s, max));
    }
}

fn rms_norm_row(backend: Backend, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    match backend {
        // SAFETY: the Avx2 backend is only chosen where AVX2 and FMA are available.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => unsafe { rms_norm_avx2(x, w, eps, out) },
        _ => rms_norm_body(x, w, eps, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn rms_norm_avx2(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    rms_norm_body(x, w, eps, out)
}

#[inline(always)]
fn rms_norm_body(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let mean = dot_body(x, x) / x.len() as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &x), &w) in out.iter_mut().zip(x).zip(w) {
        *o = x * scale * w;
    }
}

fn silu_mul_part(backend: Backend, g: &[f32], u: &[f32], o: &mut [f32]) {
    match backend {
        // SAFETY: the Avx2 backend is only chosen where AVX2 and FMA are available.
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => unsafe { silu_mul_avx2(g, u, o) },
        _ => silu_mul_body(g, u, o),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn silu_mul_avx2(g: &[f32], u: &[f32], o: &mut [f32]) {
    silu_mul_body(g, u, o)
}

#[inline(always)]
fn silu_mul_body(g: &[f32], u: &[f32], o: &mut [f32]) {
    let (gc, gr) = g.as_chunks::<LANES>();
    let (uc, ur) = u.as_chunks::<LANES>();
    let (oc, or) = o.as_chunks_mut::<LANES>();
    for ((o, g), u) in oc.iter_mut().zip(gc).zip(uc) {
        for k in 0..LANES {
            o[k] = g[k] / (1.0 + exp(-g[k])) * u[k];
        }
    }
    for ((o, &g), &u) in or.iter_mut().zip(gr).zip(ur) {
        *o = g / (1.0 + exp(-g)) * u;
    }
}

/// `Σ a·b` with `LANES` partial sums added pairwise at the end.
#[inline(always)]
pub(crate) fn dot_body(a: &[f32], b: &[f32]) -> f32 {
    let (ac, ar) = a.as_chunks::<LANES>();
    let (bc, br) = b.as_chunks::<LANES>();
    let mut acc = [0f32; LANES];
    for (x, y) in ac.iter().zip(bc) {
        for k in 0..LANES {
            acc[k] += x[k] * y[k];
        }
    }
    let mut s = reduce(acc);
    for (x, y) in ar.iter().zip(br) {
        s += x * y;
    }
    s
}

pub(crate) fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    dot_body(a, b)
}

#[inline(always)]
fn reduce(mut v: [f32; LANES]) -> f32 {
    let mut w = LANES;
    while w > 1 {
        w /= 2;
        for k in 0..w {
            v[k] += v[k + w];
        }
    }
    v[0]
}

/// `y += a · x`.
#[inline(always)]
fn axpy_body(a: f32, x: &[f32], y: &mut [f32]) {
    let (xc, xr) = x.as_chunks::<LANES>();
    let (yc, yr) = y.as_chunks_mut::<LANES>();
    for (y, x) in yc.iter_mut().zip(xc) {
        for k in 0..LANES {
            y[k] += a * x[k];
        }
    }
    for (y, x) in yr.iter_mut().zip(xr) {
        *y += a * x;
    }
}

#[inline(always)]
fn max_body(s: &[f32]) -> f32 {
    let (c, r) = s.as_chunks::<LANES>();
    let mut m = [f32::NEG_INFINITY; LANES];
    for x in c {
        for k in 0..LANES {
            m[k] = m[k].max(x[k]);
        }
    }
    m.iter().chain(r).fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

/// `s[i] = exp(s[i] − max)`, returning `Σ s[i]`.
#[inline(always)]
fn exp_sub_sum_body(s: &mut [f32], max: f32) -> f32 {
    let (c, r) = s.as_chunks_mut::<LANES>();
    let mut acc = [0f32; LANES];
    for x in c {
        for k in 0..LANES {
            x[k] = exp(x[k] - max);
            acc[k] += x[k];
        }
    }
    let mut sum = reduce(acc);
    for x in r {
        *x = exp(*x - max);
        sum += *x;
    }
    sum
}

/// `e^x` within 2 ulp of `expf` on [-87.3, 88.3], branch-free so it vectorizes: `x` is clamped
/// to that range (below it the result is ~1e-38 instead of 0, which no softmax or SiLU
/// notices), then `e^x = 2^n · e^r` with `n = round(x · log2 e)`, `r = x − n · ln 2` (two-part
/// ln 2 for precision) and `e^r` from Cephes' degree-6 `expf` polynomial; `2^n` is built from
/// its exponent bits.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23: adding it rounds to an integer that lands in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 1.666_666_5e-1) * r + 0.5;
    let e = p * (r * r) + r + 1.0;
    let n_int = t.to_bits() as i32 - ROUND.to_bits() as i32;
    e * f32::from_bits(((n_int + 127) << 23) as u32)
}
