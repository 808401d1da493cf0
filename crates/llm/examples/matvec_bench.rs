//! Times the quantized matrix-vector product (the decode hot path) on the native GPU for the
//! shapes of SmolLM2-135M, and prints effective weight bandwidth.
//!
//!   cargo run --release -p confidant-llm --example matvec_bench

use burn::tensor::{Tensor, TensorData};
use gguf::{GgmlType, Gguf, GgufWriter};
use llm::weights::WeightLoader;

fn main() {
    let (device, adapter) = llm::device::init_native().expect("GPU");
    println!("adapter: {}", adapter.summary());
    for (ty, n, k) in [(GgmlType::Q4_1, 1536usize, 576usize), (GgmlType::Q4_1, 576, 1536), (GgmlType::Q8_0, 49152, 576)] {
        let (block, size) = ty.block_layout().unwrap();
        let mut seed = 1u32;
        let data: Vec<u8> = (0..n * k / block * size)
            .map(|i| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                // Keep f16 scales small and finite: zero the high byte of each scale.
                if i % size == 1 || (ty == GgmlType::Q4_1 && i % size == 3) { 0x10 } else { (seed >> 24) as u8 }
            })
            .collect();
        let bytes = data.len();
        let mut w = GgufWriter::new();
        w.tensor("w", &[k as u64, n as u64], ty, data);
        let file = w.to_bytes();
        let g = Gguf::parse(&file).unwrap();
        let linear = WeightLoader { gguf: &g, file: &file, device: &device }.linear("w", n, k).unwrap();
        for m in [1usize, 64] {
            let x = Tensor::<2>::from_data(TensorData::new(vec![0.5f32; m * k], [m, k]), &device);
            let _ = (linear.forward(x.clone()) + linear.forward(x.clone())).into_data();
            device.sync().unwrap();
            let reps = if m == 1 { 20 } else { 5 };
            let start = std::time::Instant::now();
            // Sum the outputs so every product must run before the read.
            let mut sum = linear.forward(x.clone());
            for _ in 1..reps {
                sum = sum + linear.forward(x.clone());
            }
            let _ = sum.into_data();
            device.sync().unwrap();
            let per = start.elapsed().as_secs_f64() / reps as f64;
            println!("{ty} [{n}x{k}] m={m}: {:.3} ms, {:.2} GB/s of GGUF weights", per * 1e3, bytes as f64 / per / 1e9);
        }
    }
}
