//! The kernels of every backend (the GPU's CubeCL kernels, the CPU's) against plain
//! arithmetic: quantized matmul and row look-up for every supported GGUF type (through the same
//! loader the model uses), RMSNorm, rotary embeddings with the KV cache, and attention.
//!
//! The CPU backend quantizes activations to 8 bits per block of 32, as llama.cpp's CPU kernels
//! do, so its products are checked against the same arithmetic on those quantized activations
//! (tightly) and against the exact f32 product within what 8-bit activations allow.

mod common;

use burn::tensor::{Device, Int, Tensor, TensorData};
use gguf::{GgmlType, Gguf, GgufWriter};
use half::f16;
use llm::ops::Heads;
use llm::weights::{Linear, WeightLoader};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        (self.next() % 20_001) as f32 / 10_000.0 - 1.0
    }
}

/// Random bytes for `blocks` blocks of `ty`, with scales in a realistic range.
fn random_tensor(ty: GgmlType, elements: usize, rng: &mut Rng) -> Vec<u8> {
    if ty == GgmlType::F32 {
        return (0..elements).flat_map(|_| rng.unit().to_le_bytes()).collect();
    }
    let (block, size) = ty.block_layout().unwrap();
    let mut out = Vec::new();
    for _ in 0..elements / block {
        let mut b: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
        let scales: &[usize] = match ty {
            GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
            GgmlType::Q6K => &[208],
            _ => &[0],
        };
        for &i in scales {
            b[i..i + 2].copy_from_slice(&f16::from_f32(rng.unit() * 0.02).to_le_bytes());
        }
        out.extend(b);
    }
    out
}

/// Largest difference, relative to the value's size where that exceeds 1 (f32 sums of
/// hundreds of products carry relative, not absolute, rounding).
fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1.0)).fold(0.0, f32::max)
}

fn silu(v: f32) -> f32 {
    v / (1.0 + (-v).exp())
}

fn tensor2(v: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn tensor1(v: Vec<f32>, device: &Device) -> Tensor<1> {
    let len = v.len();
    Tensor::from_data(TensorData::new(v, [len]), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// `x [m, k] · wᵀ` on the CPU, `w [n, k]`.
fn matmul_cpu(x: &[f32], w: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for r in 0..m {
        for c in 0..n {
            out[r * n + c] = (0..k).map(|i| x[r * k + i] * w[c * k + i]).sum();
        }
    }
    out
}

/// Activations as an 8-bit kernel sees them, dequantized again: llama.cpp's
/// `quantize_row_q8_K` per 256 values for K-quant weights, else `quantize_row_q8_1` per block
/// of 32 (`d = max|x| / 127` kept as f16, `q = round(x / d)`).
fn q8_activations_for(ty: GgmlType, x: &[f32]) -> Vec<f32> {
    if matches!(ty, GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K) { q8k_activations(x) } else { q8_activations(x) }
}

/// ggml's `quantize_row_q8_K_ref`: `d = max / -127` for the value of largest magnitude, kept in
/// f32; `q = nearest_int(x / d)` (half to even), at most 127.
fn q8k_activations(x: &[f32]) -> Vec<f32> {
    x.chunks(256)
        .flat_map(|block| {
            let max = block.iter().copied().fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
            let iscale = if max == 0.0 { 0.0 } else { -127.0 / max };
            let d = if max == 0.0 { 0.0 } else { 1.0 / iscale };
            block.iter().map(move |v| ((v * iscale).round_ties_even().min(127.0)) * d)
        })
        .collect()
}

fn q8_activations(x: &[f32]) -> Vec<f32> {
    x.chunks(32)
        .flat_map(|block| {
            let d = block.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            let d16 = f16::from_f32(d).to_f32();
            block.iter().map(move |v| (v * id).round() * d16)
        })
        .collect()
}

/// The most 8-bit activations can move `x · wᵀ`: each value is off by at most half a step of
/// its block (of `block` values), plus the f16 rounding of the step times up to 127 steps
/// (2⁻¹¹ × 127 < 0.07 of a step), times the weight it meets.
fn q8_error_bound(x: &[f32], w: &[f32], m: usize, n: usize, k: usize, block: usize) -> Vec<f32> {
    let step: Vec<f32> = x.chunks(block).flat_map(|b| vec![b.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0; block / 32]).collect();
    let mut out = vec![0f32; m * n];
    for r in 0..m {
        for c in 0..n {
            out[r * n + c] = (0..k).map(|i| w[c * k + i].abs() * 0.57 * step[(r * k + i) / 32]).sum::<f32>() + 1e-4;
        }
    }
    out
}

#[test]
fn quantized_products_match_dequantized_math() {
    for (backend, device) in common::devices() {
        quantized_products_on(backend, &device);
    }
}

fn quantized_products_on(backend: &str, device: &Device) {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // k = 512 holds two k-quant super-blocks per row; n = 70 leaves a ragged last workgroup.
    let (n, k) = (70usize, 512usize);
    for ty in [
        GgmlType::F32,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ] {
        let GateUp { gate_w, up_w, gate, stacked } = gate_up(ty, n, k, &mut rng, device);

        // The CPU backend runs quantized weights against 8-bit activations, as llama.cpp does.
        let eight_bit = backend == "cpu" && ty != GgmlType::F32;
        // m = 1, 2, 3 and 9 take the GPU kernel's 1-, 2-, 4- and 8-row paths (9: a ragged last
        // block); 17 and 64 the CPU's row tiles.
        for m in [1usize, 2, 3, 9, 17, 64] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.unit()).collect();
            let seen = if eight_bit { q8_activations_for(ty, &x) } else { x.clone() };
            let residual: Vec<f32> = (0..m * n).map(|_| rng.unit()).collect();
            let want_gate = matmul_cpu(&seen, &gate_w, m, n, k);
            let want_up = matmul_cpu(&seen, &up_w, m, n, k);
            let what = format!("{backend} {ty} m={m}");

            let got = values(gate.forward(tensor2(x.clone(), [m, k], device)));
            let diff = max_abs_diff(&got, &want_gate);
            assert!(diff < 1e-3, "{what} matmul: max difference {diff}");
            if eight_bit {
                // And within what 8-bit activations can move the exact product.
                let exact = matmul_cpu(&x, &gate_w, m, n, k);
                let block = if matches!(ty, GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K) { 256 } else { 32 };
                let bound = q8_error_bound(&x, &gate_w, m, n, k, block);
                for (i, ((g, e), b)) in got.iter().zip(&exact).zip(&bound).enumerate() {
                    assert!((g - e).abs() <= *b, "{what} matmul [{i}]: {g} vs exact {e}, bound {b}");
                }
            }

            let got = values(gate.forward_add(tensor2(x.clone(), [m, k], device), tensor2(residual.clone(), [m, n], device)));
            let want: Vec<f32> = want_gate.iter().zip(&residual).map(|(a, b)| a + b).collect();
            assert!(max_abs_diff(&got, &want) < 1e-3, "{what} matmul + residual");

            let got = values(stacked.swiglu_stacked(tensor2(x.clone(), [m, k], device)));
            // silu(g)·u from sums g and u that are each within 1e-3 (relative above 1): the
            // error carries over scaled by the other factor (silu' < 1.1).
            for (i, (y, (g, u))) in got.iter().zip(want_gate.iter().zip(&want_up)).enumerate() {
                let (eg, eu) = (1e-3 * g.abs().max(1.0), 1e-3 * u.abs().max(1.0));
                let bound = 1.1 * eg * u.abs() + silu(*g).abs() * eu + eg * eu + 1e-5;
                let want = silu(*g) * u;
                assert!((y - want).abs() <= bound, "{what} swiglu [{i}]: {y}, want {want} (gate {g}, up {u})");
            }

            let got = values(stacked.forward(tensor2(x, [m, k], device)));
            let want: Vec<f32> = (0..m).flat_map(|r| want_gate[r * n..(r + 1) * n].iter().chain(&want_up[r * n..(r + 1) * n]).copied().collect::<Vec<_>>()).collect();
            assert!(max_abs_diff(&got, &want) < 1e-3, "{what} stacked");
        }

        let ids = [3i32, 0, 69, 3];
        let got = values(gate.rows(Tensor::<1, Int>::from_data(TensorData::new(ids.to_vec(), [4]), device)));
        let want: Vec<f32> = ids.iter().flat_map(|&i| gate_w[i as usize * k..(i as usize + 1) * k].to_vec()).collect();
        assert!(max_abs_diff(&got, &want) < 1e-6, "{backend} {ty} rows");
    }
}

#[test]
fn rms_norm_matches_plain_math() {
    for (backend, device) in common::devices() {
        let mut rng = Rng(5);
    let (m, d) = (3usize, 576usize);
    let x: Vec<f32> = (0..m * d).map(|_| rng.unit() * 4.0).collect();
    let w: Vec<f32> = (0..d).map(|_| rng.unit()).collect();
    let mut want = vec![0f32; m * d];
    for r in 0..m {
        let row = &x[r * d..(r + 1) * d];
        let inv = 1.0 / (row.iter().map(|v| v * v).sum::<f32>() / d as f32 + 1e-5).sqrt();
        for i in 0..d {
            want[r * d + i] = row[i] * inv * w[i];
        }
    }
    let weight = Tensor::<1>::from_data(TensorData::new(w, [d]), &device);
    let got = values(llm::ops::rms_norm(tensor2(x, [m, d], &device), &weight, 1e-5));
    assert!(max_abs_diff(&got, &want) < 1e-5, "{backend}");
    }
}

/// RMSNorm of each row of `x [m, d]` times `w`, in plain f32 math.
fn rms_norm_cpu(x: &[f32], w: &[f32], d: usize, eps: f32) -> Vec<f32> {
    x.chunks(d)
        .flat_map(|row| {
            let inv = 1.0 / (row.iter().map(|v| v * v).sum::<f32>() / d as f32 + eps).sqrt();
            row.iter().zip(w).map(move |(v, g)| v * inv * g)
        })
        .collect()
}

/// A random `[n, k]` gate and up matrix of `ty` as the model loads them: their dequantized
/// values, `gate` alone, and both stacked into one matrix (gate rows first).
struct GateUp {
    gate_w: Vec<f32>,
    up_w: Vec<f32>,
    gate: Linear,
    stacked: Linear,
}

fn gate_up(ty: GgmlType, n: usize, k: usize, rng: &mut Rng, device: &Device) -> GateUp {
    let (gate_data, up_data) = (random_tensor(ty, n * k, rng), random_tensor(ty, n * k, rng));
    let (gate_w, up_w) = (gguf::dequantize(ty, &gate_data).unwrap(), gguf::dequantize(ty, &up_data).unwrap());
    let mut writer = GgufWriter::new();
    writer.tensor("gate", &[k as u64, n as u64], ty, gate_data).tensor("up", &[k as u64, n as u64], ty, up_data);
    let file = writer.to_bytes();
    let gguf = Gguf::parse(&file).unwrap();
    let loader = WeightLoader { gguf: &gguf, file: &file, device };
    let gate = loader.linear("gate", n, k).unwrap();
    let stacked = Linear::stack_rows(&[&gate, &loader.linear("up", n, k).unwrap()]).expect("same layout stacks");
    assert_eq!(stacked.out_features(), 2 * n);
    GateUp { gate_w, up_w, gate, stacked }
}

/// The norm taken inside the product (`normed_quant_matmul`; on a GPU for up to 4 rows, by a
/// separate norm kernel above that) against plain math: the norm, then the product of the
/// dequantized weights (8-bit activations on the CPU backend, as its products use).
#[test]
fn normed_products_match_norm_then_product() {
    use llm::kernels::Projection;
    for (backend, device) in common::devices() {
        let mut rng = Rng(0x5eed_0000_0000_0017);
        let (n, k, eps) = (70usize, 256usize, 1e-5f32);
        for ty in [GgmlType::F32, GgmlType::Q4_1, GgmlType::Q8_0] {
            let GateUp { gate_w, up_w, gate, stacked } = gate_up(ty, n, k, &mut rng, &device);
            let norm: Vec<f32> = (0..k).map(|_| rng.unit()).collect();
            let norm_tensor = tensor1(norm.clone(), &device);
            for m in [1usize, 3, 9] {
                let x: Vec<f32> = (0..m * k).map(|_| rng.unit() * 3.0).collect();
                let normed = rms_norm_cpu(&x, &norm, k, eps);
                let seen = if backend == "cpu" && ty != GgmlType::F32 { q8_activations_for(ty, &normed) } else { normed };
                let (want_gate, want_up) = (matmul_cpu(&seen, &gate_w, m, n, k), matmul_cpu(&seen, &up_w, m, n, k));
                let what = format!("{backend} {ty} m={m}");

                let got = values(gate.normed(tensor2(x.clone(), [m, k], &device), &norm_tensor, eps, Projection::Plain));
                let diff = max_abs_diff(&got, &want_gate);
                assert!(diff < 1e-3, "{what} normed product: max difference {diff}");

                let got = values(stacked.normed(tensor2(x.clone(), [m, k], &device), &norm_tensor, eps, Projection::SwiGlu));
                let want: Vec<f32> = want_gate.iter().zip(&want_up).map(|(g, u)| silu(*g) * u).collect();
                for (i, (y, w)) in got.iter().zip(&want).enumerate() {
                    assert!((y - w).abs() <= 2e-3 * w.abs().max(1.0), "{what} normed SwiGLU [{i}]: {y} vs {w}");
                }
            }
        }
    }
}

/// Causal attention on the CPU: `q [t, heads, dim]` at positions `start..start + t` over keys
/// and values `[kv_heads, positions, dim]`.
#[allow(clippy::too_many_arguments)]
fn attention_cpu(q: &[f32], k: &[f32], v: &[f32], t: usize, start: usize, heads: usize, kv_heads: usize, dim: usize, capacity: usize, window: Option<usize>) -> Vec<f32> {
    let mut out = vec![0f32; t * heads * dim];
    let group = heads / kv_heads;
    for ti in 0..t {
        for h in 0..heads {
            let kv = h / group;
            let qv = &q[(ti * heads + h) * dim..][..dim];
            let visible = start + ti + 1;
            let first = window.map_or(0, |w| visible.saturating_sub(w));
            let scores: Vec<f32> = (first..visible)
                .map(|s| (0..dim).map(|d| qv[d] * k[(kv * capacity + s) * dim + d]).sum::<f32>() / (dim as f32).sqrt())
                .collect();
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f32 = exps.iter().sum();
            for d in 0..dim {
                out[(ti * heads + h) * dim + d] = (first..visible).map(|s| exps[s - first] * v[(kv * capacity + s) * dim + d]).sum::<f32>() / total;
            }
        }
    }
    out
}

#[test]
fn rope_cache_and_attention_match_plain_math() {
    for (backend, device) in common::devices() {
        // Every dimension rotated, and only the first 48 of 64 (the rest pass through); pairs of
        // neighbours and NeoX-style pairs; a sliding window narrower than the prefill.
        for (rope_dims, neox, window) in [(64, false, None), (48, false, None), (48, true, None), (64, true, Some(7))] {
            rope_cache_and_attention_on(backend, &device, Heads { heads: 6, kv_heads: 2, head_dim: 64, rope_dims, neox, window });
        }
    }
}

fn rope_cache_and_attention_on(backend: &str, device: &Device, heads_cfg: Heads) {
    let mut rng = Rng(99);
    let Heads { heads, kv_heads, head_dim: dim, rope_dims, neox, window } = heads_cfg;
    let capacity = 80usize;
    let pairs = rope_dims / 2;
    let width = (heads + 2 * kv_heads) * dim;
    let mut k_cache_cpu = vec![0f32; kv_heads * capacity * dim];
    let mut v_cache_cpu = vec![0f32; kv_heads * capacity * dim];
    let mut k_cache = Tensor::<3>::zeros([kv_heads, capacity, dim], device);
    let mut v_cache = Tensor::<3>::zeros([kv_heads, capacity, dim], device);
    // A prefill of 40 positions, then two single-token steps: exercises the causal limit
    // within a batch and the appends.
    let mut start = 0;
    for t in [40usize, 1, 1] {
        let what = format!("{backend} rope_dims={rope_dims} neox={neox} window={window:?} t={t} start={start}");
        let qkv: Vec<f32> = (0..t * width).map(|_| rng.unit()).collect();
        let angles: Vec<f32> = (0..t * pairs).map(|_| rng.unit() * 3.0).collect();
        let (cos, sin): (Vec<f32>, Vec<f32>) = angles.iter().map(|a| (a.cos(), a.sin())).unzip();
        let rotate = |x: &[f32], ti: usize| -> Vec<f32> {
            let mut y = x.to_vec();
            for i in 0..pairs {
                let (c, s) = (cos[ti * pairs + i], sin[ti * pairs + i]);
                let (a, b) = if neox { (i, i + pairs) } else { (2 * i, 2 * i + 1) };
                y[a] = x[a] * c - x[b] * s;
                y[b] = x[a] * s + x[b] * c;
            }
            y
        };
        let mut q_cpu = Vec::new();
        for ti in 0..t {
            let row = &qkv[ti * width..(ti + 1) * width];
            for h in 0..heads {
                q_cpu.extend(rotate(&row[h * dim..(h + 1) * dim], ti));
            }
            for kv in 0..kv_heads {
                let key = rotate(&row[(heads + kv) * dim..(heads + kv + 1) * dim], ti);
                let value = &row[(heads + kv_heads + kv) * dim..(heads + kv_heads + kv + 1) * dim];
                let at = (kv * capacity + start + ti) * dim;
                k_cache_cpu[at..at + dim].copy_from_slice(&key);
                v_cache_cpu[at..at + dim].copy_from_slice(value);
            }
        }
        let (q, k, v) = llm::ops::rope_and_cache(
            tensor2(qkv, [t, width], device),
            &tensor2(cos, [t, pairs], device),
            &tensor2(sin, [t, pairs], device),
            k_cache,
            v_cache,
            start,
            heads_cfg,
        );
        let attended = values(llm::ops::attention(q.clone(), &k, &v, start, heads_cfg));
        assert!(max_abs_diff(&values(q), &q_cpu) < 1e-5, "{what}: rotated queries");
        assert!(max_abs_diff(&values(k.clone()), &k_cache_cpu) < 1e-5, "{what}: key cache");
        assert!(max_abs_diff(&values(v.clone()), &v_cache_cpu) < 1e-6, "{what}: value cache");
        let want = attention_cpu(&q_cpu, &k_cache_cpu, &v_cache_cpu, t, start, heads, kv_heads, dim, capacity, window);
        let diff = max_abs_diff(&attended, &want);
        assert!(diff < 1e-4, "{what}: attention differs by {diff}");
        (k_cache, v_cache) = (k, v);
        start += t;
    }
}

/// GELU, tanh approximation, in f64.
fn gelu(x: f32) -> f32 {
    let x = x as f64;
    (0.5 * x * (1.0 + (0.797_884_560_802_865_4 * x * (1.0 + 0.044_715 * x * x)).tanh())) as f32
}

/// ggml's CPU GELU: the input rounded to f16, GELU, the result rounded to f16; 0 below −10 and
/// the input above 10.
fn gelu_f16(x: f32) -> f32 {
    if x <= -10.0 {
        0.0
    } else if x >= 10.0 {
        x
    } else {
        f16::from_f32(gelu(f16::from_f32(x).to_f32())).to_f32()
    }
}

/// GeGLU (Gemma's feed-forward) over quantized and float weights, and the per-head q/k norm
/// (Qwen 3, Gemma 3), on every backend.
#[test]
fn geglu_and_qk_norm_match_plain_math() {
    for (backend, device) in common::devices() {
        let mut rng = Rng(7);
        // GeGLU through a stacked Q8_0 gate/up matrix, and elementwise.
        let (rows, cols, m) = (24usize, 64usize, 3usize);
        let bytes = random_tensor(GgmlType::Q8_0, 2 * rows * cols, &mut rng);
        let mut w = GgufWriter::new();
        w.tensor("w", &[cols as u64, (2 * rows) as u64], GgmlType::Q8_0, bytes);
        let file = w.to_bytes();
        let g = Gguf::parse(&file).unwrap();
        let linear = WeightLoader { gguf: &g, file: &file, device: &device }.linear("w", 2 * rows, cols).unwrap();
        let dense = gguf::dequantize(GgmlType::Q8_0, g.tensor_data(&file, g.tensor("w").unwrap()).unwrap()).unwrap();
        let x: Vec<f32> = (0..m * cols).map(|_| rng.unit() * 3.0).collect();
        let got = values(linear.geglu_stacked(tensor2(x.clone(), [m, cols], &device)));
        // The CPU sees 8-bit activations and rounds GELU through f16, as ggml's CPU backend.
        let cpu = backend == "cpu";
        let seen = if cpu { q8_activations_for(GgmlType::Q8_0, &x) } else { x.clone() };
        let act = |v: f32| if cpu { gelu_f16(v) } else { gelu(v) };
        let mut want = Vec::new();
        for r in 0..m {
            let dot = |row: usize| (0..cols).map(|c| seen[r * cols + c] * dense[row * cols + c]).sum::<f32>();
            want.extend((0..rows).map(|j| act(dot(j)) * dot(rows + j)));
        }
        // An f16 step of the GELU value (f32 sums in another order can round to the neighbour).
        let tolerance = if cpu { 2e-3 } else { 1e-4 };
        let diff = max_abs_diff(&got, &want);
        assert!(diff < tolerance, "{backend}: geglu differs by {diff}");

        let gate: Vec<f32> = (0..40).map(|i| (i as f32 - 20.0) * 0.6).collect();
        let up: Vec<f32> = (0..40).map(|_| rng.unit()).collect();
        let got = values(llm::ops::gelu_mul(tensor2(gate.clone(), [4, 10], &device), tensor2(up.clone(), [4, 10], &device)));
        let want: Vec<f32> = gate.iter().zip(&up).map(|(&g, &u)| if backend == "cpu" { gelu_f16(g) } else { gelu(g) } * u).collect();
        let tolerance = if backend == "cpu" { 1e-6 } else { 1e-5 };
        assert!(max_abs_diff(&got, &want) < tolerance, "{backend}: gelu_mul");

        // q/k norm: 3 query heads and 1 key/value head of 32, two positions.
        let h = Heads { heads: 3, kv_heads: 1, head_dim: 32, rope_dims: 32, neox: true, window: None };
        let width = 5 * 32;
        let qkv: Vec<f32> = (0..2 * width).map(|_| rng.unit() * 4.0).collect();
        let (qw, kw): (Vec<f32>, Vec<f32>) = (0..32).map(|_| (1.0 + rng.unit() * 0.5, 1.0 + rng.unit() * 0.5)).unzip();
        let eps = 1e-6;
        let got = values(llm::ops::qk_norm(tensor2(qkv.clone(), [2, width], &device), &tensor1(qw.clone(), &device), &tensor1(kw.clone(), &device), eps, h));
        let mut want = qkv.clone();
        for (row, out) in qkv.chunks(width).zip(want.chunks_mut(width)) {
            for head in 0..4 {
                let x = &row[head * 32..(head + 1) * 32];
                let inv = 1.0 / (x.iter().map(|v| v * v).sum::<f32>() / 32.0 + eps).sqrt();
                let weight = if head < 3 { &qw } else { &kw };
                for d in 0..32 {
                    out[head * 32 + d] = x[d] * inv * weight[d];
                }
            }
        }
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 1e-5, "{backend}: qk_norm differs by {diff}");
    }
}

/// A matrix too large for one buffer is kept in blocks of rows (Gemma's embedding table): the
/// blocks give the same products, residual sums and row look-ups as the whole matrix, quantized
/// and float, on every backend.
#[test]
fn split_matrices_match_whole_ones() {
    for (backend, device) in common::devices() {
        let mut rng = Rng(21);
        let (rows, cols) = (70usize, 64usize);
        for ty in [GgmlType::Q8_0, GgmlType::F32] {
            let mut w = GgufWriter::new();
            w.tensor("w", &[cols as u64, rows as u64], ty, random_tensor(ty, rows * cols, &mut rng));
            let file = w.to_bytes();
            let g = Gguf::parse(&file).unwrap();
            let loader = WeightLoader { gguf: &g, file: &file, device: &device };
            let whole = loader.linear("w", rows, cols).unwrap();
            // 1 KiB blocks: 32 (f32) or 16 (Q8_0, one byte per value) rows each, the last ragged.
            let split = loader.linear_in_blocks("w", rows, cols, 1024).unwrap();
            assert!(matches!(split, Linear::Split(ref parts) if parts.len() >= 3), "{backend} {ty}: blocks");
            assert_eq!((split.out_features(), split.in_features()), (rows, cols));
            assert_eq!(split.device_bytes(), whole.device_bytes());
            let x: Vec<f32> = (0..3 * cols).map(|_| rng.unit()).collect();
            let residual: Vec<f32> = (0..3 * rows).map(|_| rng.unit()).collect();
            let same = |a: Tensor<2>, b: Tensor<2>, what: &str| {
                let diff = max_abs_diff(&values(a), &values(b));
                assert!(diff < 1e-6, "{backend} {ty} {what}: differs by {diff}");
            };
            same(split.forward(tensor2(x.clone(), [3, cols], &device)), whole.forward(tensor2(x.clone(), [3, cols], &device)), "forward");
            same(
                split.forward_add(tensor2(x.clone(), [3, cols], &device), tensor2(residual.clone(), [3, rows], &device)),
                whole.forward_add(tensor2(x.clone(), [3, cols], &device), tensor2(residual, [3, rows], &device)),
                "forward_add",
            );
            let ids = [69u32, 0, 17, 33, 16, 69, 40];
            same(split.rows_of(&ids, &device), whole.rows_of(&ids, &device), "rows");
        }
    }
}

/// The prefill kernels are a process-wide choice: tests that switch it hold this lock.
static PREFILL_SWITCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` with the GPU's prefill kernels set to `kernels`, then restores the choice before.
fn with_prefill_kernels<T>(kernels: llm::kernels::PrefillKernels, f: impl FnOnce() -> T) -> T {
    let _guard = PREFILL_SWITCH.lock().unwrap_or_else(|e| e.into_inner());
    let before = llm::kernels::prefill_kernels();
    llm::kernels::set_prefill_kernels(kernels);
    let out = f();
    llm::kernels::set_prefill_kernels(before);
    out
}

/// The GPU's tiled prompt product (32 × 32 output tiles, k in steps of 32) against plain math on
/// the dequantized weights: 4- and 8-bit words, groups of 32 and 16 (K-quants), m and n that
/// are not multiples of the tile (16, the fewest rows it takes, and 45; n = 70), and every
/// epilogue: plain, residual, SwiGLU and GeGLU from stacked rows, and the norm (taken by its own
/// kernel above 4 rows). `k` is a multiple of 32 in every GGUF type (blocks of 32 or 256), so a
/// ragged k step cannot occur: k = 96 takes three steps, 256 eight.
#[test]
fn tiled_products_match_dequantized_math() {
    use llm::kernels::{PrefillKernels, Projection};
    let device = common::device();
    let mut rng = Rng(0x5eed_7111_ed00_0001);
    let n = 70usize;
    for (ty, k) in [(GgmlType::Q4_1, 96usize), (GgmlType::Q8_0, 96), (GgmlType::Q4K, 256), (GgmlType::Q6K, 256)] {
        let GateUp { gate_w, up_w, gate, stacked } = gate_up(ty, n, k, &mut rng, &device);
        let norm: Vec<f32> = (0..k).map(|_| rng.unit()).collect();
        for m in [16usize, 45] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.unit()).collect();
            let residual: Vec<f32> = (0..m * n).map(|_| rng.unit()).collect();
            let (want_gate, want_up) = (matmul_cpu(&x, &gate_w, m, n, k), matmul_cpu(&x, &up_w, m, n, k));
            let normed = rms_norm_cpu(&x, &norm, k, 1e-5);
            let want_normed = matmul_cpu(&normed, &gate_w, m, n, k);
            let what = format!("tiled {ty} m={m} k={k}");
            let x2 = || tensor2(x.clone(), [m, k], &device);
            let (plain, added, swiglu, geglu, normed_got) = with_prefill_kernels(PrefillKernels::Tiled, || {
                (
                    values(gate.forward(x2())),
                    values(gate.forward_add(x2(), tensor2(residual.clone(), [m, n], &device))),
                    values(stacked.swiglu_stacked(x2())),
                    values(stacked.geglu_stacked(x2())),
                    values(gate.normed(x2(), &tensor1(norm.clone(), &device), 1e-5, Projection::Plain)),
                )
            });
            let diff = max_abs_diff(&plain, &want_gate);
            assert!(diff < 1e-3, "{what} matmul: max difference {diff}");
            let want: Vec<f32> = want_gate.iter().zip(&residual).map(|(a, b)| a + b).collect();
            assert!(max_abs_diff(&added, &want) < 1e-3, "{what} matmul + residual");
            let diff = max_abs_diff(&normed_got, &want_normed);
            assert!(diff < 1e-3, "{what} normed: max difference {diff}");
            for (act, got, name) in [(silu as fn(f32) -> f32, &swiglu, "swiglu"), (gelu, &geglu, "geglu")] {
                for (i, (y, (g, u))) in got.iter().zip(want_gate.iter().zip(&want_up)).enumerate() {
                    // As in quantized_products_on: each sum within 1e-3 carries over scaled by the other.
                    let (eg, eu) = (1e-3 * g.abs().max(1.0), 1e-3 * u.abs().max(1.0));
                    let bound = 1.1 * eg * u.abs() + act(*g).abs() * eu + eg * eu + 1e-5;
                    let want = act(*g) * u;
                    assert!((y - want).abs() <= bound, "{what} {name} [{i}]: {y}, want {want}");
                }
            }
        }
    }
}

/// The GPU's tiled prompt attention (blocks of 32 queries of one head, keys and values streamed
/// through workgroup memory with an online softmax) against plain math and against the row
/// kernels it replaces on both backends (the GPU's one-workgroup-per-query kernel, the CPU's):
/// 45 queries (a ragged second block) after 0 and after 21 cached positions, grouped heads, no
/// window and windows narrower than a block (7) and than the prompt (40), head sizes 64 (key
/// tiles of 16) and 32 (tiles of 32); and through rope and the cache write (the prompt path).
#[test]
fn tiled_attention_matches_row_kernels_and_plain_math() {
    use llm::kernels::PrefillKernels;
    let mut rng = Rng(0xa77e_0000_0000_0045);
    let (t, capacity) = (45usize, 70usize);
    for (dim, window) in [(64usize, None), (64, Some(7)), (32, Some(40)), (32, None)] {
        let h = Heads { heads: 6, kv_heads: 2, head_dim: dim, rope_dims: dim, neox: false, window };
        for start in [0usize, 21] {
            let what = format!("dim={dim} window={window:?} start={start}");
            let q: Vec<f32> = (0..t * 6 * dim).map(|_| rng.unit() * 2.0).collect();
            // Keys and values at every position the queries see (the cache beyond is never read).
            let k: Vec<f32> = (0..2 * capacity * dim).map(|_| rng.unit() * 2.0).collect();
            let v: Vec<f32> = (0..2 * capacity * dim).map(|_| rng.unit()).collect();
            let want = attention_cpu(&q, &k, &v, t, start, 6, 2, dim, capacity, window);
            let run = |device: &Device| {
                let cache = |x: &Vec<f32>| Tensor::<3>::from_data(TensorData::new(x.clone(), [2, capacity, dim]), device);
                values(llm::ops::attention(tensor2(q.clone(), [t, 6 * dim], device), &cache(&k), &cache(&v), start, h))
            };
            let gpu = common::device();
            let tiled = with_prefill_kernels(PrefillKernels::Tiled, || run(&gpu));
            let rows = with_prefill_kernels(PrefillKernels::Rows, || run(&gpu));
            let cpu = run(&common::cpu());
            for (got, name) in [(&tiled, "tiled"), (&rows, "gpu rows"), (&cpu, "cpu")] {
                let diff = max_abs_diff(got, &want);
                assert!(diff < 1e-4, "{what}: {name} attention differs from plain math by {diff}");
            }
            let diff = max_abs_diff(&tiled, &rows);
            assert!(diff < 1e-4, "{what}: tiled and row kernels differ by {diff}");
        }
    }

    // The prompt path: rope and the cache write, then tiled attention, as one seam call.
    let gpu = common::device();
    let h = Heads { heads: 6, kv_heads: 2, head_dim: 64, rope_dims: 64, neox: true, window: None };
    let width = 10 * 64;
    let qkv: Vec<f32> = (0..t * width).map(|_| rng.unit()).collect();
    let angles: Vec<f32> = (0..t * 32).map(|_| rng.unit() * 3.0).collect();
    let (cos, sin): (Vec<f32>, Vec<f32>) = angles.iter().map(|a| (a.cos(), a.sin())).unzip();
    let fused = |kernels| {
        with_prefill_kernels(kernels, || {
            let zeros = || Tensor::<3>::zeros([2, capacity, 64], &gpu);
            let (out, kc, vc) = llm::ops::rope_cache_attention(
                tensor2(qkv.clone(), [t, width], &gpu),
                &tensor2(cos.clone(), [t, 32], &gpu),
                &tensor2(sin.clone(), [t, 32], &gpu),
                zeros(),
                zeros(),
                0,
                h,
            );
            (values(out), values(kc), values(vc))
        })
    };
    let (tiled, rows) = (fused(PrefillKernels::Tiled), fused(PrefillKernels::Rows));
    assert!(max_abs_diff(&tiled.1, &rows.1) < 1e-6 && max_abs_diff(&tiled.2, &rows.2) < 1e-6, "rope_cache_attention: caches");
    let diff = max_abs_diff(&tiled.0, &rows.0);
    assert!(diff < 1e-4, "rope_cache_attention: tiled and row kernels differ by {diff}");
}
