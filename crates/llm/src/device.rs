//! Acquiring a device: the GPU through wgpu, natively (Vulkan, Metal, DX12) or in a browser
//! (WebGPU), or the CPU through burn's Flex backend.

use burn::tensor::Device;
#[cfg(feature = "webgpu")]
use burn::tensor::wgpu::WgpuBackend;
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
use burn::tensor::wgpu::WgpuSetup;

#[cfg(any(feature = "wgpu", feature = "webgpu"))]
use crate::error::{LlmError, Result};
#[cfg(all(feature = "wgpu", not(target_family = "wasm")))]
use crate::kernels::PrefillKernels;

/// Which GPU the engine runs on, as wgpu reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    pub name: String,
    pub vendor: String,
    /// Graphics API: "vulkan", "webgpu", "metal", …
    pub backend: String,
    pub driver: String,
    /// "discrete", "integrated", "cpu" (a software rasteriser such as lavapipe or SwiftShader), …
    pub device_type: String,
    /// The most bytes one buffer the kernels bind may hold: the smaller of the device's
    /// `maxBufferSize` and `maxStorageBufferBindingSize`. `None` on the CPU, which has no such limit.
    pub max_buffer: Option<u64>,
    /// Whether the device computes with f16 (WebGPU's `shader-f16`): the KV cache is then kept
    /// in f16 (see [`crate::KvPrecision`]).
    pub shader_f16: bool,
}

impl AdapterInfo {
    #[cfg(any(feature = "wgpu", feature = "webgpu"))]
    fn from_setup(setup: &WgpuSetup) -> Self {
        let info = setup.adapter.get_info();
        let device_type = match info.device_type {
            burn::tensor::wgpu::wgpu::DeviceType::DiscreteGpu => "discrete",
            burn::tensor::wgpu::wgpu::DeviceType::IntegratedGpu => "integrated",
            burn::tensor::wgpu::wgpu::DeviceType::VirtualGpu => "virtual",
            burn::tensor::wgpu::wgpu::DeviceType::Cpu => "cpu",
            burn::tensor::wgpu::wgpu::DeviceType::Other => "other",
        };
        let limits = setup.device.limits();
        Self {
            max_buffer: Some(limits.max_buffer_size.min(limits.max_storage_buffer_binding_size)),
            shader_f16: setup.device.features().contains(burn::tensor::wgpu::wgpu::Features::SHADER_F16),
            name: info.name,
            vendor: format!("{:#06x}", info.vendor),
            backend: format!("{:?}", setup.backend).to_lowercase(),
            driver: [info.driver, info.driver_info].iter().filter(|s| !s.is_empty()).cloned().collect::<Vec<_>>().join(" "),
            device_type: device_type.into(),
        }
    }

    /// One line for logs and `--json` output: "llvmpipe (LLVM 15.0.6, 256 bits) · vulkan".
    pub fn summary(&self) -> String {
        format!("{} · {}", self.name, self.backend)
    }
}

/// Dispatches CubeCL records before it submits them by itself (its default is 32). A decode
/// step of the models here takes 100–200 dispatches: with 32 each step made about six submits;
/// with 256 a step is submitted once, at the read that ends its burst, or about every 256
/// dispatches when several steps are queued, so the GPU starts on the first steps while later
/// ones are recorded. CubeCL holds the recorded tasks (host writes with their data) until it
/// submits, which a streamed load would pile up in wasm memory: the loader flushes after each
/// matrix (`WeightLoader::linear`), so a load holds one matrix at a time whatever this is.
#[cfg(any(feature = "wgpu", feature = "webgpu"))]
pub const TASKS_PER_SUBMIT: usize = 256;

/// The default native GPU (the best adapter wgpu finds).
#[cfg(all(feature = "wgpu", not(target_family = "wasm")))]
pub fn init_native() -> Result<(Device, AdapterInfo)> {
    let (device, setup) = Device::wgpu_options()
        .tasks_max(TASKS_PER_SUBMIT)
        .init_with_setup()
        .map_err(|e| LlmError::Device(format!("no usable GPU adapter: {e}")))?;
    // CONFIDANT_PREFILL_KERNELS=rows runs prompts through the row kernels (to compare them).
    let prefill = match std::env::var("CONFIDANT_PREFILL_KERNELS").as_deref() {
        Ok("rows") => PrefillKernels::Rows,
        _ => PrefillKernels::Tiled,
    };
    crate::kernels::set_prefill_kernels(prefill);
    Ok((device, AdapterInfo::from_setup(&setup)))
}

/// The browser's WebGPU adapter.
#[cfg(feature = "webgpu")]
pub async fn init_webgpu() -> Result<(Device, AdapterInfo)> {
    let (device, setup) = Device::wgpu_options()
        .graphics_api(WgpuBackend::WebGpu)
        .tasks_max(TASKS_PER_SUBMIT)
        .init_with_setup_async()
        .await
        .map_err(|e| LlmError::Device(format!("WebGPU is not available: {e}")))?;
    Ok((device, AdapterInfo::from_setup(&setup)))
}

/// Device memory held by burn's allocator: (bytes in use, bytes reserved).
pub fn memory_usage(device: &Device) -> Option<(u64, u64)> {
    device.memory_pool_usage().map(|u| (u.bytes_in_use, u.bytes_reserved))
}

/// The CPU, through burn's Flex backend and the SIMD kernels of crates/cpu-kernels.
#[cfg(feature = "cpu")]
pub fn init_cpu() -> (Device, AdapterInfo) {
    let info = AdapterInfo {
        name: format!("CPU, {} threads, {:?} kernels", cpu_kernels::threads(), cpu_kernels::Backend::best()),
        vendor: String::new(),
        backend: "cpu".into(),
        driver: String::new(),
        device_type: "cpu".into(),
        max_buffer: None,
        shader_f16: false,
    };
    (Device::flex(), info)
}
