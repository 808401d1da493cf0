//! Every backend against f64 references: the matmul for each weight format and odd shapes,
//! the f32 kernels, and the thread split.

use crate::*;

/// SplitMix64: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f() * scale).collect()
    }
}

/// A random matrix in the packed layout: `q` over the whole range of `bits` (so 8-bit values
/// reach 255, where a saturating u8 × i8 product would be wrong), scales and offsets of the
/// size real models have.
fn matrix(rng: &mut Rng, rows: usize, cols: usize, bits: u32, group: usize) -> (Vec<u32>, Vec<f32>) {
    let per_word = 32 / bits as usize;
    let mut packed = vec![0u32; rows * cols / per_word];
    for (i, word) in packed.iter_mut().enumerate() {
        for e in 0..per_word {
            // Every tenth word all-max, to hit the extremes.
            let q = if i % 10 == 3 { (1u64 << bits) - 1 } else { rng.next() % (1 << bits) };
            *word |= (q as u32) << (e as u32 * bits);
        }
    }
    let scales = (0..rows * cols / group).flat_map(|_| [0.01 + 0.02 * rng.f().abs(), -0.1 * rng.f().abs() * (1 << bits) as f32 / 16.0]).collect();
    (packed, scales)
}

/// The f64 product of the dequantized weights with the dequantized activations, and per
/// output `Σ |w · x|`, the scale rounding errors are relative to.
fn reference(x: &Q8Activations, w: &QuantMatrix<'_>) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0f64; x.rows() * w.rows()];
    let mut mag = vec![0f64; x.rows() * w.rows()];
    let wd: Vec<f64> = (0..w.rows() * w.cols()).map(|i| w.value(i / w.cols(), i % w.cols()) as f64).collect();
    for t in 0..x.rows() {
        let xd: Vec<f64> = (0..x.cols()).map(|c| {
            let (q, d) = x.value(t, c);
            q as f64 * d as f64
        }).collect();
        for n in 0..w.rows() {
            let row = &wd[n * w.cols()..(n + 1) * w.cols()];
            out[t * w.rows() + n] = row.iter().zip(&xd).map(|(a, b)| a * b).sum();
            mag[t * w.rows() + n] = row.iter().zip(&xd).map(|(a, b)| (a * b).abs()).sum();
        }
    }
    (out, mag)
}

/// Runs `f` in a pool of `threads` threads; where threads cannot be made (wasm), a single
/// thread is the calling one and more threads are skipped.
fn with_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> Option<R> {
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => Some(pool.install(f)),
        Err(_) if threads == 1 => Some(f()),
        Err(_) => None,
    }
}

const FORMATS: [(u32, usize); 3] = [(4, 32), (8, 32), (8, 16)];

#[test]
fn matmul_matches_reference_on_every_backend() {
    let mut rng = Rng(7);
    for (bits, group) in FORMATS {
        for (rows, cols) in [(1, 32), (5, 96), (13, 64), (67, 576)] {
            let (packed, scales) = matrix(&mut rng, rows, cols, bits, group);
            let w = QuantMatrix::new(&packed, &scales, rows, cols, bits, group).unwrap();
            for t in [1, 3, 17, 64, 70] {
                let input = rng.vec(t * cols, 2.0);
                let mut x = Q8Activations::new();
                x.quantize(&input, cols, bits).unwrap();
                let (want, mag) = reference(&x, &w);
                for backend in Backend::available() {
                    let mut out = vec![f32::NAN; t * rows];
                    quant_matmul_with(backend, &x, &w, &mut out).unwrap();
                    for (k, ((&got, &want), &mag)) in out.iter().zip(&want).zip(&mag).enumerate() {
                        let err = (got as f64 - want).abs();
                        assert!(
                            err <= 1e-5 * mag + 1e-6,
                            "{backend:?} {bits}-bit/{group} {t}×{cols}·{rows}ᵀ at ({}, {}): {got} vs {want} (|w·x| {mag})",
                            k / rows,
                            k % rows
                        );
                    }
                }
            }
        }
    }
}

/// Against the unquantized activations the error is what int8 rounding implies: each
/// activation is off by at most half a step `d / 2` plus the f16 rounding of `d`
/// (`127 · d · 2^-11`).
#[test]
fn matmul_error_is_the_quantization_error() {
    let mut rng = Rng(11);
    let (rows, cols, t) = (40, 256, 6);
    for (bits, group) in FORMATS {
        let (packed, scales) = matrix(&mut rng, rows, cols, bits, group);
        let w = QuantMatrix::new(&packed, &scales, rows, cols, bits, group).unwrap();
        let input = rng.vec(t * cols, 3.0);
        let mut x = Q8Activations::new();
        x.quantize(&input, cols, bits).unwrap();
        let mut out = vec![0f32; t * rows];
        quant_matmul(&x, &w, &mut out).unwrap();
        for tt in 0..t {
            for n in 0..rows {
                let mut exact = 0f64;
                let mut bound = 0f64;
                for c in 0..cols {
                    let wv = w.value(n, c) as f64;
                    let xv = input[tt * cols + c] as f64;
                    exact += wv * xv;
                    let d = x.value(tt, c).1 as f64;
                    bound += wv.abs() * (0.5 + 127.0 / 2048.0) * d * 1.001;
                }
                let got = out[tt * rows + n] as f64;
                assert!((got - exact).abs() <= bound + 1e-4, "{bits}/{group} ({tt}, {n}): {got} vs {exact}, bound {bound}");
            }
        }
    }
}

/// The split across threads changes nothing: every output is computed the same way whatever
/// tile or chunk it falls in.
#[test]
fn matmul_is_the_same_on_one_and_two_threads() {
    let mut rng = Rng(3);
    let (rows, cols) = (200, 96);
    for (bits, group) in FORMATS {
        let (packed, scales) = matrix(&mut rng, rows, cols, bits, group);
        let w = QuantMatrix::new(&packed, &scales, rows, cols, bits, group).unwrap();
        for t in [1, 9] {
            let mut x = Q8Activations::new();
            x.quantize(&rng.vec(t * cols, 1.0), cols, bits).unwrap();
            let mut results = Vec::new();
            for threads in [1, 2] {
                let mut out = vec![0f32; t * rows];
                if with_threads(threads, || quant_matmul(&x, &w, &mut out)).is_some() {
                    results.push(out);
                }
            }
            for r in &results[1..] {
                assert_eq!(r, &results[0]);
            }
        }
    }
}

#[test]
fn matmul_checks_its_arguments() {
    let packed = vec![0u32; 4 * 64 / 8];
    let scales = vec![0f32; 4 * 2 * 2];
    let w = QuantMatrix::new(&packed, &scales, 4, 64, 4, 32).unwrap();
    let mut x = Q8Activations::new();
    x.quantize(&[0.5; 128], 64, 8).unwrap();
    let mut out = vec![0f32; 8];
    assert!(matches!(quant_matmul(&x, &w, &mut out), Err(KernelError::OrderMismatch { .. })));
    x.quantize(&[0.5; 128], 64, 4).unwrap();
    assert!(matches!(quant_matmul(&x, &w, &mut out[..7]), Err(KernelError::Length { .. })));
    quant_matmul(&x, &w, &mut out).unwrap();
    x.quantize(&[0.5; 128], 32, 4).unwrap();
    assert!(matches!(quant_matmul(&x, &w, &mut [0f32; 16]), Err(KernelError::InnerDim { .. })));
    x.quantize(&[], 64, 4).unwrap();
    quant_matmul(&x, &w, &mut []).unwrap();
}

#[test]
fn exp_is_close_to_f64() {
    let mut x = -87.0f32;
    while x < 88.0 {
        let want = (x as f64).exp();
        let got = ops::exp(x) as f64;
        assert!(((got - want) / want).abs() < 3e-7, "exp({x}) = {got}, want {want}");
        x += 0.0137;
    }
    assert!(ops::exp(-1000.0) < 2e-38);
    assert!(ops::exp(1000.0).is_finite());
}

#[test]
fn rms_norm_and_silu_match_f64() {
    let mut rng = Rng(5);
    let (rows, dim) = (70, 576);
    let x = rng.vec(rows * dim, 3.0);
    let weight = rng.vec(dim, 1.0);
    for backend in Backend::available() {
        let mut out = vec![0f32; rows * dim];
        rms_norm_with(backend, &x, &weight, 1e-5, &mut out).unwrap();
        for r in 0..rows {
            let row = &x[r * dim..(r + 1) * dim];
            let mean = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / dim as f64;
            let scale = 1.0 / (mean + 1e-5).sqrt();
            for c in 0..dim {
                let want = row[c] as f64 * scale * weight[c] as f64;
                let got = out[r * dim + c] as f64;
                assert!((got - want).abs() <= 1e-6 * (1.0 + want.abs()), "{backend:?} rms_norm ({r}, {c}): {got} vs {want}");
            }
        }
        let n = 40_000 + 7; // over the parallel threshold, with a tail
        let gate = rng.vec(n, 12.0);
        let up = rng.vec(n, 2.0);
        let mut out = vec![0f32; n];
        silu_mul_with(backend, &gate, &up, &mut out).unwrap();
        for i in 0..n {
            let g = gate[i] as f64;
            let want = g / (1.0 + (-g).exp()) * up[i] as f64;
            assert!((out[i] as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()), "{backend:?} silu_mul {i}: {} vs {want}", out[i]);
        }
    }
    assert!(rms_norm(&x[..10], &weight, 1e-5, &mut [0.0; 10]).is_err());
    assert!(silu_mul(&[1.0; 3], &[1.0; 2], &mut [0.0; 3]).is_err());
}

fn attention_f64(q: &[f32], k: &[f32], v: &[f32], start: usize, s: AttnShape) -> Vec<f64> {
    attention_window_f64(q, k, v, start, s, None)
}

/// Plain f64 attention; with a window, query position `i` sees positions `i - window + 1 ..= i`.
fn attention_window_f64(q: &[f32], k: &[f32], v: &[f32], start: usize, s: AttnShape, window: Option<usize>) -> Vec<f64> {
    let AttnShape { heads, kv_heads, head_dim: hd } = s;
    let t = q.len() / (heads * hd);
    let capacity = k.len() / (kv_heads * hd);
    let mut out = vec![0f64; q.len()];
    for i in 0..t {
        for h in 0..heads {
            let kvh = h / (heads / kv_heads);
            let qv = &q[(i * heads + h) * hd..][..hd];
            let first = window.map_or(0, |w| (start + i + 1).saturating_sub(w));
            let scores: Vec<f64> = (first..=start + i)
                .map(|p| {
                    let kp = &k[(kvh * capacity + p) * hd..][..hd];
                    qv.iter().zip(kp).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>() / (hd as f64).sqrt()
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            for (p, ep) in (first..).zip(&e) {
                let vp = &v[(kvh * capacity + p) * hd..][..hd];
                for (o, &vv) in out[(i * heads + h) * hd..][..hd].iter_mut().zip(vp) {
                    *o += ep / sum * vv as f64;
                }
            }
        }
    }
    out
}

#[test]
fn attention_matches_f64() {
    let mut rng = Rng(9);
    // SmolLM2's heads; a ratio over 4 with a head size the AVX2 path leaves to the portable one;
    // multi-head with a size both SIMD paths leave to it.
    let cases = [
        (AttnShape { heads: 9, kv_heads: 3, head_dim: 64 }, 1100, &[(1, 0), (1, 4), (5, 7), (1, 1050)][..]),
        (AttnShape { heads: 10, kv_heads: 2, head_dim: 40 }, 600, &[(3, 2), (1, 530)][..]),
        (AttnShape { heads: 4, kv_heads: 4, head_dim: 36 }, 40, &[(6, 0)][..]),
    ];
    // (rows, start): one new token, a prompt continued from an offset, a long decode that the
    // two-thread pool splits into position ranges.
    for (shape, capacity, runs) in cases {
        let k = rng.vec(shape.kv_heads * capacity * shape.head_dim, 1.0);
        let v = rng.vec(shape.kv_heads * capacity * shape.head_dim, 1.0);
        for &(t, start) in runs {
            let q = rng.vec(t * shape.heads * shape.head_dim, 2.0);
            let want = attention_f64(&q, &k, &v, start, shape);
            for threads in [1, 2] {
                for backend in Backend::available() {
                    let mut out = vec![f32::NAN; q.len()];
                    let Some(result) = with_threads(threads, || attention_with(backend, &q, &k, &v, start, shape, &mut out)) else { continue };
                    result.unwrap();
                    for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
                        assert!((got as f64 - want).abs() < 2e-6, "{backend:?} {shape:?} t={t} start={start} threads={threads} [{i}]: {got} vs {want}");
                    }
                }
            }
        }
    }
    let shape = AttnShape { heads: 9, kv_heads: 3, head_dim: 64 };
    let capacity = 1100;
    let k = vec![0f32; 3 * capacity * 64];
    let v = k.clone();
    let q = vec![0f32; 2 * 9 * 64];
    let mut out = vec![0f32; q.len()];
    assert!(attention(&q, &k, &v, capacity - 1, shape, &mut out).is_err());
    assert!(attention(&q, &k, &v, 0, AttnShape { heads: 9, kv_heads: 2, head_dim: 64 }, &mut out).is_err());
}

/// Sliding windows: narrower than the prompt, one position, wider than everything seen, and
/// a long decode split into position ranges (two threads) inside the window.
#[test]
fn windowed_attention_matches_f64() {
    let mut rng = Rng(12);
    let shape = AttnShape { heads: 4, kv_heads: 2, head_dim: 32 };
    let capacity = 1100;
    let k = rng.vec(shape.kv_heads * capacity * shape.head_dim, 1.0);
    let v = rng.vec(shape.kv_heads * capacity * shape.head_dim, 1.0);
    for (t, start, window) in [(9, 0, 4), (6, 3, 1), (5, 2, 500), (1, 1050, 700), (1, 1050, 3)] {
        let q = rng.vec(t * shape.heads * shape.head_dim, 2.0);
        let want = attention_window_f64(&q, &k, &v, start, shape, Some(window));
        for threads in [1, 2] {
            for backend in Backend::available() {
                let mut out = vec![f32::NAN; q.len()];
                let Some(result) = with_threads(threads, || attention_window_with(backend, &q, &k, &v, start, shape, Some(window), &mut out)) else {
                    continue;
                };
                result.unwrap();
                for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
                    assert!((got as f64 - want).abs() < 2e-6, "{backend:?} t={t} start={start} window={window} threads={threads} [{i}]: {got} vs {want}");
                }
            }
        }
        // The window changes the result wherever it hides a position.
        if start + t > window {
            let full = attention_f64(&q, &k, &v, start, shape);
            assert!(full.iter().zip(&want).any(|(a, b)| (a - b).abs() > 1e-3), "window {window} made no difference");
        }
    }
    let q = rng.vec(shape.heads * shape.head_dim, 1.0);
    assert!(attention_window(&q, &k, &v, 0, shape, Some(0), &mut vec![0.0; q.len()]).is_err());
}

/// GELU as ggml's f16 table gives it: the tanh formula at the f16-rounded input, rounded to f16.
#[test]
fn gelu_mul_follows_ggml() {
    let gelu = |x: f64| 0.5 * x * (1.0 + (0.797_884_560_802_865_4 * x * (1.0 + 0.044_715 * x * x)).tanh());
    let xs: Vec<f32> = (-1200..=1200).map(|i| i as f32 * 0.01 + 0.003).collect();
    let up: Vec<f32> = xs.iter().map(|x| 1.5 - x * 0.1).collect();
    let mut out = vec![0f32; xs.len()];
    gelu_mul(&xs, &up, &mut out).unwrap();
    for ((&x, &u), &o) in xs.iter().zip(&up).zip(&out) {
        let want = if x <= -10.0 {
            0.0
        } else if x >= 10.0 {
            x as f64 * u as f64
        } else {
            half::f16::from_f64(gelu(half::f16::from_f32(x).to_f64())).to_f64() * u as f64
        };
        // One f16 step of the GELU value (f32 and f64 tanh may round to neighbouring f16
        // values), and near −5 the cancellation in 1 + tanh that ggml's f32 formula has too
        // (a few 1e-7).
        let tolerance = (want.abs() * 2f64.powi(-10)).max(4e-7 * (u as f64).abs());
        assert!((o as f64 - want).abs() <= tolerance, "gelu({x}) · {u} = {o}, want {want}");
    }
    assert_eq!(gelu_f16(-10.5), 0.0);
    assert_eq!(gelu_f16(12.25), 12.25);
    assert!(gelu_mul(&[1.0; 3], &[1.0; 2], &mut [0.0; 3]).is_err());
}

/// The SIMD backends this build and machine have are among those the tests above run.
#[test]
fn simd_backends_are_exercised_where_present() {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    assert!(Backend::available().contains(&Backend::Simd128));
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        assert!(Backend::available().contains(&Backend::Avx2));
    }
    assert_eq!(Backend::available()[0], Backend::Portable);
}
