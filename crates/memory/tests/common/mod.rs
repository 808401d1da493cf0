//! Shared set-up: the devices (the GPU, lavapipe here; the CPU), the model files, synthetic
//! vectors and a stand-in embedder.

#![allow(dead_code)]

use std::cell::Cell;
use std::sync::OnceLock;

use burn::tensor::Device;
use memory::{EMBEDDING_DIM, Embedder, Embedding, TextEmbedder};

/// One device per test binary: wgpu runtimes cannot be initialised twice.
pub fn device() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let (device, setup) = Device::wgpu_options()
                .init_with_setup()
                .expect("a Vulkan adapter (lavapipe: apt install mesa-vulkan-drivers)");
            eprintln!("adapter: {}", setup.adapter.get_info().name);
            device
        })
        .clone()
}

/// burn's CPU backend, where 'auto' runs the embedder without a real GPU.
pub fn cpu() -> Device {
    Device::flex()
}

pub fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

fn model_file(name: &str) -> Vec<u8> {
    let path = repo_path("models/all-MiniLM-L6-v2").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run models/fetch.sh first", path.display()))
}

/// all-MiniLM-L6-v2 from `models/`, on the CPU (fast; the GPU is checked against the reference too).
pub fn embedder() -> Embedder {
    embedder_on(&cpu())
}

/// all-MiniLM-L6-v2 from `models/`, on `device`.
pub fn embedder_on(device: &Device) -> Embedder {
    Embedder::load(&model_file("model.safetensors"), &model_file("tokenizer.json"), &model_file("config.json"), device).expect("the model loads")
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb).max(f32::MIN_POSITIVE)
}

// The benchmark's generator (SplitMix64) and normalisation, so tests need no rand crate.
pub use memory::bench::{Rng, normalize};

/// `n` unit vectors of `dim` dimensions around `clusters` random centres (spread `noise`), a
/// stand-in for real embeddings, which cluster by topic.
pub fn clustered_vectors(n: usize, dim: usize, clusters: usize, noise: f32, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    let centres: Vec<Vec<f32>> = (0..clusters)
        .map(|_| {
            let mut c: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
            normalize(&mut c);
            c
        })
        .collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.below(clusters)];
            let mut v: Vec<f32> = c.iter().map(|x| x + noise * rng.normal() / (dim as f32).sqrt()).collect();
            normalize(&mut v);
            v
        })
        .collect()
}

/// A stand-in embedder for tests of everything but the model: hashed bag of words, so texts
/// sharing words are similar. Counts the texts it embedded.
#[derive(Default)]
pub struct WordHashEmbedder {
    pub calls: Cell<usize>,
}

impl WordHashEmbedder {
    pub fn vector(text: &str) -> Embedding {
        let mut v = [0.0f32; EMBEDDING_DIM];
        for word in text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let mut h = 0xcbf2_9ce4_8422_2325u64;
            for b in word.to_lowercase().bytes() {
                h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
            }
            v[(h % EMBEDDING_DIM as u64) as usize] += 1.0;
            v[((h >> 32) % EMBEDDING_DIM as u64) as usize] += 0.5;
        }
        if v.iter().all(|x| *x == 0.0) {
            v[0] = 1.0;
        }
        normalize(&mut v);
        v
    }
}

impl TextEmbedder for WordHashEmbedder {
    async fn embed(&self, texts: &[&str]) -> memory::Result<Vec<Embedding>> {
        self.calls.set(self.calls.get() + texts.len());
        Ok(texts.iter().map(|t| Self::vector(t)).collect())
    }
}

/// A unit vector, as a record's embedding.
pub fn random_embedding(rng: &mut Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..EMBEDDING_DIM).map(|_| rng.normal()).collect();
    normalize(&mut v);
    v
}
