//! Host-side cost of queueing common operations (no waiting for the GPU).
use burn::tensor::{Tensor, TensorData};

fn time<F: FnMut()>(name: &str, reps: usize, mut f: F) {
    let start = std::time::Instant::now();
    for _ in 0..reps { f(); }
    println!("{name}: {:.1} µs per op", start.elapsed().as_secs_f64() * 1e6 / reps as f64);
}

fn main() {
    let (device, _) = llm::device::init_native().expect("GPU");
    let a = Tensor::<2>::from_data(TensorData::new(vec![1f32; 576], [1, 576]), &device);
    let w = Tensor::<1>::from_data(TensorData::new(vec![1f32; 576], [576]), &device);
    let _ = (a.clone() + a.clone()).into_data();
    time("add", 2000, || { let _ = a.clone() + a.clone(); });
    time("mul_scalar", 2000, || { let _ = a.clone() * 2.0; });
    time("mean_dim", 2000, || { let _ = a.clone().mean_dim(1); });
    time("powi", 2000, || { let _ = a.clone().powi_scalar(2); });
    time("unsqueeze mul", 2000, || { let _ = a.clone() * w.clone().unsqueeze::<2>(); });
    time("reshape", 2000, || { let _ = a.clone().reshape([1, 9, 64]); });
    time("permute+reshape", 500, || { let _ = a.clone().reshape([1, 3, 3, 64]).permute([1, 2, 0, 3]).reshape([3, 3, 64]); });
    time("from_data 64", 2000, || { let _ = Tensor::<2>::from_data(TensorData::new(vec![1f32; 64], [2, 32]), &device); });
    let q = Tensor::<3>::from_data(TensorData::new(vec![1f32; 3*3*64], [3, 3, 64]), &device);
    let k = Tensor::<3>::from_data(TensorData::new(vec![1f32; 3*64*64], [3, 64, 64]), &device);
    time("matmul 3x3x64 @ 3x64x64", 1000, || { let _ = q.clone().matmul(k.clone()); });
    time("softmax", 1000, || { let _ = burn::tensor::activation::softmax(q.clone(), 2); });
    let _ = q.clone().into_data();
}
