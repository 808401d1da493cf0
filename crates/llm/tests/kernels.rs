//! The custom kernels against plain CPU arithmetic: quantized matmul and row look-up for every
//! supported GGUF type (through the same loader the model uses), and rotary embeddings.

mod common;

use burn::tensor::{Int, Tensor, TensorData};
use gguf::{GgmlType, Gguf, GgufWriter};
use half::f16;
use llm::weights::WeightLoader;

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

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn quantized_matmul_and_rows_match_dequantized_math() {
    let device = common::device();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // k = 512 holds two k-quant super-blocks per row.
    let (n, k) = (40usize, 512usize);
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
        let data = random_tensor(ty, n * k, &mut rng);
        let weights = gguf::dequantize(ty, &data).unwrap();
        let mut writer = GgufWriter::new();
        writer.tensor("w", &[k as u64, n as u64], ty, data);
        let file = writer.to_bytes();
        let gguf = Gguf::parse(&file).unwrap();
        let loader = WeightLoader { gguf: &gguf, file: &file, device: &device };
        let linear = loader.linear("w", n, k).unwrap();

        // m = 1, 3 and 9 take the kernel's 1-, 1- and 8-row paths (and a ragged last block).
        for m in [1usize, 3, 9] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.unit()).collect();
            let mut want = vec![0f32; m * n];
            for r in 0..m {
                for c in 0..n {
                    want[r * n + c] = (0..k).map(|i| x[r * k + i] * weights[c * k + i]).sum();
                }
            }
            let xt = Tensor::<2>::from_data(TensorData::new(x, [m, k]), &device);
            let got = linear.forward(xt).into_data().try_to_vec::<f32>().unwrap();
            let diff = max_abs_diff(&got, &want);
            assert!(diff < 1e-3, "{ty} matmul m={m}: max difference {diff}");
        }

        let ids = [3i32, 0, 39, 3];
        let got = linear.rows(Tensor::<1, Int>::from_data(TensorData::new(ids.to_vec(), [4]), &device));
        assert_eq!(got.dims(), [4, k]);
        let got = got.into_data().try_to_vec::<f32>().unwrap();
        let want: Vec<f32> = ids.iter().flat_map(|&i| weights[i as usize * k..(i as usize + 1) * k].to_vec()).collect();
        assert!(max_abs_diff(&got, &want) < 1e-6, "{ty} rows");
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
