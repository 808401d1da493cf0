//! Times the kernels on SmolLM2-135M's shapes with random weights: the matmuls of one decode
//! token and of a 512-token prefill (30 layers: QKV stacked, output, gate and up stacked, down;
//! Q4_1-like 4-bit weights; the 49152-row Q8_0-like head), plus attention, at 1 and 2 threads.
//!
//! Natively: `cargo run --release -p confidant-cpu-kernels --example kernel_bench`.
//! In wasm (SIMD128, one thread): see this crate's README.md.
//! Optional argument: the backend (`portable`, `avx2`, `simd128`); default the best one.

use std::time::Instant;

use cpu_kernels::*;

const D: usize = 576;
const FFN: usize = 1536;
const HEADS: usize = 9;
const KV_HEADS: usize = 3;
const HEAD_DIM: usize = 64;
const LAYERS: usize = 30;
const VOCAB: usize = 49152;
const PREFILL: usize = 512;

struct Owned {
    packed: Vec<u32>,
    scales: Vec<f32>,
    rows: usize,
    cols: usize,
    bits: u32,
}

impl Owned {
    fn random(seed: &mut u64, rows: usize, cols: usize, bits: u32) -> Self {
        let mut next = || {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed
        };
        let packed = (0..rows * cols * bits as usize / 32).map(|_| next() as u32).collect();
        let scales = (0..rows * cols / 32).flat_map(|i| [0.01 + (i % 7) as f32 * 1e-3, -0.05]).collect();
        Self { packed, scales, rows, cols, bits }
    }

    fn view(&self) -> QuantMatrix<'_> {
        match QuantMatrix::new(&self.packed, &self.scales, self.rows, self.cols, self.bits, 32) {
            Ok(m) => m,
            Err(e) => panic!("bench matrix: {e}"),
        }
    }
}

struct Layer {
    qkv: Owned,
    o: Owned,
    gate_up: Owned,
    down: Owned,
}

struct Model {
    layers: Vec<Layer>,
    head: Owned,
}

/// Buffers reused across calls, as an engine would keep them.
struct Scratch {
    x: Q8Activations,
    out: Vec<f32>,
}

fn matmul(backend: Backend, s: &mut Scratch, input: &[f32], w: &QuantMatrix<'_>) {
    let rows = input.len() / w.cols();
    s.x.quantize(input, w.cols(), w.bits()).expect("quantize");
    s.out.resize(rows * w.rows(), 0.0);
    quant_matmul_with(backend, &s.x, w, &mut s.out).expect("matmul");
}

/// All the matmuls of `rows` tokens (the head only for the last one, as llama.cpp computes
/// logits for the last prompt token only).
fn forward_matmuls(backend: Backend, m: &Model, s: &mut Scratch, rows: usize, xd: &[f32], xf: &[f32]) {
    for l in &m.layers {
        matmul(backend, s, &xd[..rows * D], &l.qkv.view());
        matmul(backend, s, &xd[..rows * D], &l.o.view());
        matmul(backend, s, &xd[..rows * D], &l.gate_up.view());
        matmul(backend, s, &xf[..rows * FFN], &l.down.view());
    }
    matmul(backend, s, &xd[..D], &m.head.view());
}

fn time<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f(); // warm up: first touch of the weights, thread wake-up
    let mut best = f64::INFINITY;
    for _ in 0..reps {
        let t0 = Instant::now();
        f();
        best = best.min(t0.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let backend = match std::env::args().nth(1).as_deref() {
        Some("portable") => Backend::Portable,
        Some("avx2") => Backend::Avx2,
        Some("simd128") => Backend::Simd128,
        _ => Backend::best(),
    };
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let layers = (0..LAYERS)
        .map(|_| Layer {
            qkv: Owned::random(&mut seed, D + 2 * KV_HEADS * HEAD_DIM, D, 4),
            o: Owned::random(&mut seed, D, D, 4),
            gate_up: Owned::random(&mut seed, 2 * FFN, D, 4),
            down: Owned::random(&mut seed, D, FFN, 4),
        })
        .collect();
    let model = Model { layers, head: Owned::random(&mut seed, VOCAB, D, 8) };
    let mut rng = seed;
    let mut rand_vec = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    };
    let xd = rand_vec(PREFILL * D);
    let xf = rand_vec(PREFILL * FFN);
    let q = rand_vec(PREFILL * HEADS * HEAD_DIM);
    let cache = 4096;
    let k = rand_vec(KV_HEADS * cache * HEAD_DIM);
    let v = rand_vec(KV_HEADS * cache * HEAD_DIM);
    let shape = AttnShape { heads: HEADS, kv_heads: KV_HEADS, head_dim: HEAD_DIM };

    println!("backend {backend:?}; SmolLM2-135M shapes, {LAYERS} layers, 4-bit weights, 8-bit {VOCAB}-row head");
    for threads in [1, 2] {
        let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            Ok(p) => Some(p),
            // wasm without threads: the calling thread is the one thread.
            Err(_) if threads == 1 => None,
            Err(_) => {
                println!("{threads} threads: no threads on this target");
                continue;
            }
        };
        let run = || {
            let mut s = Scratch { x: Q8Activations::new(), out: Vec::new() };
            let decode = time(20, || forward_matmuls(backend, &model, &mut s, 1, &xd, &xf));
            let head = time(20, || matmul(backend, &mut s, &xd[..D], &model.head.view()));
            let prefill = time(2, || forward_matmuls(backend, &model, &mut s, PREFILL, &xd, &xf));
            let mut out = vec![0f32; PREFILL * HEADS * HEAD_DIM];
            let attn_decode = time(20, || {
                for _ in 0..LAYERS {
                    attention_with(backend, &q[..HEADS * HEAD_DIM], &k, &v, 4095, shape, &mut out[..HEADS * HEAD_DIM]).expect("attention");
                }
            });
            let attn_prefill = time(2, || {
                for _ in 0..LAYERS {
                    attention_with(backend, &q, &k, &v, 0, shape, &mut out).expect("attention");
                }
            });
            println!(
                "{threads} thread(s): decode token matmuls {:.2} ms (head {:.2} ms) | {PREFILL}-row prefill matmuls {:.0} ms ({:.0} tok/s) | attention ×{LAYERS}: decode at 4096 {:.2} ms, {PREFILL}-row prefill {:.0} ms",
                decode * 1e3,
                head * 1e3,
                prefill * 1e3,
                PREFILL as f64 / prefill,
                attn_decode * 1e3,
                attn_prefill * 1e3
            );
        };
        match pool {
            Some(pool) => pool.install(run),
            None => run(),
        }
    }
}
