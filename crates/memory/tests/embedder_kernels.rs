//! The embedder's fused GPU kernels (`memory::kernels`) against the same steps in burn's own
//! operations (`memory::kernels::reference`) on the same device, with texts of different
//! lengths in one batch, so padding rows and padding keys are part of every case.

mod common;

use burn::tensor::{Device, Int, Tensor, TensorData};
use memory::bench::Rng;
use memory::kernels::{self, LayerNorm, reference};

const D: usize = 384;
const HEADS: usize = 12;
/// Real tokens of each text; the batch is padded to the longest.
const LENGTHS: [usize; 3] = [7, 3, 1];
const L: usize = 7;
const N: usize = LENGTHS.len() * L;

fn values(rng: &mut Rng, count: usize, spread: f32) -> Vec<f32> {
    (0..count).map(|_| rng.normal() * spread).collect()
}

fn matrix(rng: &mut Rng, rows: usize, cols: usize, spread: f32, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values(rng, rows * cols, spread), [rows, cols]), device)
}

fn mask(device: &Device) -> Tensor<2> {
    let mask: Vec<f32> = LENGTHS.iter().flat_map(|&len| (0..L).map(move |t| if t < len { 1.0 } else { 0.0 })).collect();
    Tensor::from_data(TensorData::new(mask, [LENGTHS.len(), L]), device)
}

fn norm(rng: &mut Rng, device: &Device) -> LayerNorm {
    let gamma: Vec<f32> = (0..D).map(|_| 1.0 + 0.2 * rng.normal()).collect();
    LayerNorm { gamma: Tensor::from_data(TensorData::new(gamma, [1, D]), device), beta: matrix(rng, 1, D, 0.1, device), eps: 1e-12 }
}

fn values_of(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32 values")
}

/// Largest difference between the fused result and burn's, which must be small and finite.
fn assert_close(what: &str, fused: Tensor<2>, burn: Tensor<2>, tolerance: f32) {
    assert_eq!(fused.dims(), burn.dims(), "{what}: shapes");
    let (fused, burn) = (values_of(fused), values_of(burn));
    let worst = fused.iter().zip(&burn).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("{what}: largest difference {worst:e}");
    assert!(fused.iter().all(|v| v.is_finite()), "{what}: non-finite values");
    assert!(worst <= tolerance, "{what}: differs from burn's operations by {worst}");
}

#[test]
fn fused_kernels_match_burns_operations_on_the_gpu() {
    let device = common::device();
    let mut rng = Rng::new(17);
    let mask = mask(&device);

    // Embeddings: ids of a small vocabulary, padding rows holding id 0 as the embedder pads.
    let vocab = 50;
    let mut ids = vec![0i32; N];
    for (text, &len) in LENGTHS.iter().enumerate() {
        ids[text * L..text * L + len].iter_mut().for_each(|id| *id = 1 + rng.below(vocab - 1) as i32);
    }
    let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [N]), &device);
    let (words, positions, token_type) = (matrix(&mut rng, vocab, D, 0.5, &device), matrix(&mut rng, 16, D, 0.5, &device), matrix(&mut rng, 1, D, 0.5, &device));
    let embed_norm = norm(&mut rng, &device);
    assert_close(
        "embeddings",
        kernels::embeddings(ids.clone(), &words, &positions, &token_type, &embed_norm, L),
        reference::embeddings(ids, &words, &positions, &token_type, &embed_norm, L),
        1e-4,
    );

    // Bias, residual and LayerNorm; a row far from zero mean checks the two-pass variance.
    let (x, residual, bias) = (matrix(&mut rng, N, D, 2.0, &device), matrix(&mut rng, N, D, 1.0, &device).add_scalar(30.0), matrix(&mut rng, 1, D, 0.3, &device));
    let layer_norm = norm(&mut rng, &device);
    assert_close(
        "bias_residual_layer_norm",
        kernels::bias_residual_layer_norm(x.clone(), &bias, residual.clone(), &layer_norm),
        reference::bias_residual_layer_norm(x, &bias, residual, &layer_norm),
        1e-4,
    );

    // Bias and GELU over a wide row (more than one workgroup along it), negative values included.
    let (wide, wide_bias) = (matrix(&mut rng, N, 1536, 2.0, &device), matrix(&mut rng, 1, 1536, 0.5, &device));
    assert_close("bias_gelu", kernels::bias_gelu(wide.clone(), &wide_bias), reference::bias_gelu(wide, &wide_bias), 1e-5);

    // Attention from the stacked product; padding keys carry large values that must get no weight.
    let mut qkv = values(&mut rng, N * 3 * D, 1.0);
    for (text, &len) in LENGTHS.iter().enumerate() {
        for t in len..L {
            qkv[(text * L + t) * 3 * D..(text * L + t + 1) * 3 * D].iter_mut().for_each(|v| *v *= 50.0);
        }
    }
    let qkv = Tensor::<2>::from_data(TensorData::new(qkv, [N, 3 * D]), &device);
    let qkv_bias = matrix(&mut rng, 1, 3 * D, 0.5, &device);
    assert_close("attention", kernels::attention(qkv.clone(), &qkv_bias, &mask, HEADS), reference::attention(qkv, &qkv_bias, &mask, HEADS), 1e-4);

    // Pooling: padding rows hold large values that must not count.
    let pooled_input = matrix(&mut rng, N, D, 1.0, &device) + (mask.clone().neg().add_scalar(1.0).reshape([N, 1]) * 1000.0);
    let pooled = kernels::mean_pool(pooled_input.clone(), &mask);
    assert_close("mean_pool", pooled.clone(), reference::mean_pool(pooled_input, &mask), 1e-5);
    let lengths = values_of((pooled.clone() * pooled).sum_dim(1));
    assert!(lengths.iter().all(|n| (n - 1.0).abs() < 1e-4), "pooled vectors are unit length: {lengths:?}");
}
