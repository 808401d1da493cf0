//! Shared set-up for the tests: the native GPU (Vulkan) and the CPU backend.

#![allow(dead_code)]

use std::sync::OnceLock;

use burn::tensor::Device;

/// One device per test binary: wgpu runtimes cannot be initialised twice.
pub fn device() -> Device {
    static DEVICE: OnceLock<Device> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            let (device, adapter) = llm::device::init_native().expect("a Vulkan adapter (lavapipe: apt install mesa-vulkan-drivers)");
            eprintln!("adapter: {}", adapter.summary());
            device
        })
        .clone()
}

/// The CPU backend (burn's Flex tensors, crates/cpu-kernels loops).
pub fn cpu() -> Device {
    llm::device::init_cpu().0
}

/// Every backend, named, for tests that check each one.
pub fn devices() -> Vec<(&'static str, Device)> {
    vec![("gpu", device()), ("cpu", cpu())]
}

pub fn repo_path(relative: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

pub fn model_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let path = repo_path("models/SmolLM2-135M-Instruct-Q4_1.gguf");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run models/fetch.sh first", path.display()))
    })
}

/// Token ids as a reference fixture stores them.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect()
}

/// Replays llama.cpp's recorded runs (`prompt`, `prompt_tokens`, `steps` of `top5`, `token`,
/// `gap`) through `generator`: the prompt's ids must be identical, every recorded top-5 logit
/// within `tolerance`, and the greedy token identical wherever llama.cpp's top-2 gap is at least
/// `tie`. Returns the worst and the mean logit difference.
pub fn replay_reference_runs(generator: &llm::Generator, runs: &serde_json::Value, tolerance: f32, tie: f32) -> (f32, f32) {
    let (mut worst, mut total, mut count) = (0f32, 0f32, 0usize);
    for run in runs.as_array().unwrap() {
        let name = run["name"].as_str().unwrap();
        let prompt = generator.encode_raw(run["prompt"].as_str().unwrap()).unwrap();
        assert_eq!(prompt, ids(&run["prompt_tokens"]), "{name}: prompt token ids");
        let mut cache = generator.model().new_cache(512);
        let mut input = prompt;
        let mut checked = 0;
        for (i, step) in run["steps"].as_array().unwrap().iter().enumerate() {
            let logits = generator.model().forward(&input, &mut cache, false).unwrap().into_data().try_to_vec::<f32>().unwrap();
            for pair in step["top5"].as_array().unwrap() {
                let (id, want) = (pair[0].as_u64().unwrap() as usize, pair[1].as_f64().unwrap() as f32);
                let diff = (logits[id] - want).abs();
                assert!(diff <= tolerance, "{name} step {i}: logit of token {id} is {} (llama.cpp {want})", logits[id]);
                (worst, total, count) = (worst.max(diff), total + diff, count + 1);
            }
            let token = step["token"].as_u64().unwrap() as u32;
            if step["gap"].as_f64().unwrap() as f32 >= tie {
                assert_eq!(llm::sampler::argmax(&logits), token, "{name} step {i}: greedy token");
                checked += 1;
            }
            input = vec![token];
        }
        eprintln!("{name}: {checked} greedy tokens checked (gap ≥ {tie})");
    }
    (worst, total / count as f32)
}
