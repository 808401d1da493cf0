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
