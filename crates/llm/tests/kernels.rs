//! The custom kernels against plain CPU arithmetic: quantized matmul and row look-up for every
//! supported GGUF type (through the same loader the model uses), and rotary embeddings.

mod common;

use burn::tensor::{Int, Tensor, TensorData};
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

fn tensor2(v: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
    Tensor::from_data(TensorData::new(v, shape), &common::device())
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

#[test]
fn quantized_products_match_dequantized_math() {
    let device = common::device();
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
        let (gate_data, up_data) = (random_tensor(ty, n * k, &mut rng), random_tensor(ty, n * k, &mut rng));
        let gate_w = gguf::dequantize(ty, &gate_data).unwrap();
        let up_w = gguf::dequantize(ty, &up_data).unwrap();
        let mut writer = GgufWriter::new();
        writer.tensor("gate", &[k as u64, n as u64], ty, gate_data).tensor("up", &[k as u64, n as u64], ty, up_data);
        let file = writer.to_bytes();
        let gguf = Gguf::parse(&file).unwrap();
        let loader = WeightLoader { gguf: &gguf, file: &file, device: &device };
        let gate = loader.linear("gate", n, k).unwrap();
        let up = loader.linear("up", n, k).unwrap();
        let stacked = Linear::stack_rows(&[&gate, &up]).expect("same layout stacks");
        assert_eq!(stacked.out_features(), 2 * n);

        // m = 1, 2, 3 and 9 take the kernel's 1-, 2-, 4- and 8-row paths (9: a ragged last block).
        for m in [1usize, 2, 3, 9] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.unit()).collect();
            let residual: Vec<f32> = (0..m * n).map(|_| rng.unit()).collect();
            let want_gate = matmul_cpu(&x, &gate_w, m, n, k);
            let want_up = matmul_cpu(&x, &up_w, m, n, k);

            let got = values(gate.forward(tensor2(x.clone(), [m, k])));
            let diff = max_abs_diff(&got, &want_gate);
            assert!(diff < 1e-3, "{ty} matmul m={m}: max difference {diff}");

            let got = values(gate.forward_add(tensor2(x.clone(), [m, k]), tensor2(residual.clone(), [m, n])));
            let want: Vec<f32> = want_gate.iter().zip(&residual).map(|(a, b)| a + b).collect();
            assert!(max_abs_diff(&got, &want) < 1e-3, "{ty} matmul + residual m={m}");

            let got = values(stacked.swiglu_stacked(tensor2(x.clone(), [m, k])));
            let want: Vec<f32> = want_gate.iter().zip(&want_up).map(|(g, u)| silu(*g) * u).collect();
            assert!(max_abs_diff(&got, &want) < 1e-3, "{ty} swiglu m={m}");

            let got = values(stacked.forward(tensor2(x, [m, k])));
            let want: Vec<f32> = (0..m).flat_map(|r| want_gate[r * n..(r + 1) * n].iter().chain(&want_up[r * n..(r + 1) * n]).copied().collect::<Vec<_>>()).collect();
            assert!(max_abs_diff(&got, &want) < 1e-3, "{ty} stacked m={m}");
        }

        let ids = [3i32, 0, 69, 3];
        let got = values(gate.rows(Tensor::<1, Int>::from_data(TensorData::new(ids.to_vec(), [4]), &device)));
        let want: Vec<f32> = ids.iter().flat_map(|&i| gate_w[i as usize * k..(i as usize + 1) * k].to_vec()).collect();
        assert!(max_abs_diff(&got, &want) < 1e-6, "{ty} rows");
    }
}

#[test]
fn rms_norm_matches_cpu() {
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
    let weight = Tensor::<1>::from_data(TensorData::new(w, [d]), &common::device());
    let got = values(llm::ops::rms_norm(tensor2(x, [m, d]), &weight, 1e-5));
    assert!(max_abs_diff(&got, &want) < 1e-5);
}

/// Causal attention on the CPU: `q [t, heads, dim]` at positions `start..start + t` over keys
/// and values `[kv_heads, positions, dim]`.
#[allow(clippy::too_many_arguments)]
fn attention_cpu(q: &[f32], k: &[f32], v: &[f32], t: usize, start: usize, heads: usize, kv_heads: usize, dim: usize, capacity: usize) -> Vec<f32> {
    let mut out = vec![0f32; t * heads * dim];
    let group = heads / kv_heads;
    for ti in 0..t {
        for h in 0..heads {
            let kv = h / group;
            let qv = &q[(ti * heads + h) * dim..][..dim];
            let visible = start + ti + 1;
            let scores: Vec<f32> = (0..visible)
                .map(|s| (0..dim).map(|d| qv[d] * k[(kv * capacity + s) * dim + d]).sum::<f32>() / (dim as f32).sqrt())
                .collect();
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
            let total: f32 = exps.iter().sum();
            for d in 0..dim {
                out[(ti * heads + h) * dim + d] = (0..visible).map(|s| exps[s] * v[(kv * capacity + s) * dim + d]).sum::<f32>() / total;
            }
        }
    }
    out
}

#[test]
fn rope_cache_and_attention_match_cpu() {
    let device = common::device();
    let mut rng = Rng(99);
    let (heads, kv_heads, dim, capacity) = (6usize, 2usize, 64usize, 80usize);
    let heads_cfg = Heads { heads, kv_heads, head_dim: dim, rope_dims: dim };
    let width = (heads + 2 * kv_heads) * dim;
    let mut k_cache_cpu = vec![0f32; kv_heads * capacity * dim];
    let mut v_cache_cpu = vec![0f32; kv_heads * capacity * dim];
    let mut k_cache = Tensor::<3>::zeros([kv_heads, capacity, dim], &device);
    let mut v_cache = Tensor::<3>::zeros([kv_heads, capacity, dim], &device);
    // A prefill of 40 positions, then two single-token steps: exercises the causal limit
    // within a batch and the appends.
    let mut start = 0;
    for t in [40usize, 1, 1] {
        let qkv: Vec<f32> = (0..t * width).map(|_| rng.unit()).collect();
        let angles: Vec<f32> = (0..t * dim / 2).map(|_| rng.unit() * 3.0).collect();
        let (cos, sin): (Vec<f32>, Vec<f32>) = angles.iter().map(|a| (a.cos(), a.sin())).unzip();
        let rotate = |x: &[f32], ti: usize| -> Vec<f32> {
            let mut y = x.to_vec();
            for i in 0..dim / 2 {
                let (c, s) = (cos[ti * dim / 2 + i], sin[ti * dim / 2 + i]);
                y[2 * i] = x[2 * i] * c - x[2 * i + 1] * s;
                y[2 * i + 1] = x[2 * i] * s + x[2 * i + 1] * c;
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
            tensor2(qkv, [t, width]),
            &tensor2(cos, [t, dim / 2]),
            &tensor2(sin, [t, dim / 2]),
            k_cache,
            v_cache,
            start,
            heads_cfg,
        );
        let attended = values(llm::ops::attention(q.clone(), &k, &v, start, heads_cfg));
        assert!(max_abs_diff(&values(q), &q_cpu) < 1e-5, "rotated queries, t={t}");
        assert!(max_abs_diff(&values(k.clone()), &k_cache_cpu) < 1e-5, "key cache, t={t}");
        assert!(max_abs_diff(&values(v.clone()), &v_cache_cpu) < 1e-6, "value cache, t={t}");
        let want = attention_cpu(&q_cpu, &k_cache_cpu, &v_cache_cpu, t, start, heads, kv_heads, dim, capacity);
        let diff = max_abs_diff(&attended, &want);
        assert!(diff < 1e-4, "attention t={t} start={start}: {diff}");
        (k_cache, v_cache) = (k, v);
        start += t;
    }
}

#[test]
fn rope_rotates_adjacent_pairs() {
    let device = common::device();
    let mut rng = Rng(77);
    let (positions, heads, head_dim, rope_dims) = (3usize, 2usize, 8usize, 6usize);
    let x: Vec<f32> = (0..positions * heads * head_dim).map(|_| rng.unit()).collect();
    let pairs = rope_dims / 2;
    let angles: Vec<f32> = (0..positions * pairs).map(|_| rng.unit() * 3.0).collect();
    let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
    let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();

    let mut want = x.clone();
    for p in 0..positions {
        for h in 0..heads {
            for i in 0..pairs {
                let base = (p * heads + h) * head_dim + 2 * i;
                let (x0, x1) = (x[base], x[base + 1]);
                let (c, s) = (cos[p * pairs + i], sin[p * pairs + i]);
                want[base] = x0 * c - x1 * s;
                want[base + 1] = x0 * s + x1 * c;
            }
        }
    }
    let t = |v: Vec<f32>, shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(v, shape), &device);
    let got = llm::ops::rope(
        t(x, [positions, heads * head_dim]),
        &t(cos, [positions, pairs]),
        &t(sin, [positions, pairs]),
        heads,
        head_dim,
        rope_dims,
    );
    let got = got.into_data().try_to_vec::<f32>().unwrap();
    assert!(max_abs_diff(&got, &want) < 1e-6, "{got:?}\n{want:?}");
}
