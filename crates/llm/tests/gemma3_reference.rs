//! Gemma 3 270M (Q4_K_M) against llama.cpp (tests/fixtures/gemma3_reference.json, made by
//! tests/fixtures/make_gemma3_reference.py): prompt token ids, top-5 logits and greedy tokens,
//! on the CPU backend, which quantizes activations to 8 bits as llama.cpp's CPU kernels do (Q8_K
//! super-blocks for the K-quant tensors, Q8_0 blocks for the Q5_0/Q8_0 ones) and rounds GELU
//! through f16 as ggml does. Teacher-forced with the reference's tokens.
//!
//! The model file is fetched by models/fetch.sh; without it the test says so and passes.
//!
//! Tolerances, as for SmolLM2 (llama_cpp_reference.rs): two implementations of 8-bit
//! activations round an occasional activation differently and those flips compound over the
//! layers, so logits carry noise of the size llama.cpp's own quantized path shows against f32
//! math. Measured on these prompts: llama.cpp's Q4_K_M run differs from its run of the same
//! weights in F32 by up to 1.34 (0.29 on average over the shared top-5 logits), and this engine's
//! CPU path from the Q4_K_M run by up to 1.60 (0.24 on average; the largest at steps whose top
//! logits are all negative, an odd state after the base model's own turn markers). Gemma's
//! residual stream is large (embeddings × 25, values in the hundreds), so one flipped 8-bit step
//! weighs more than in SmolLM2. `CPU_TOLERANCE` = 2.0 per logit and 0.3 on average; greedy tokens
//! must match wherever the reference's top-2 gap is at least `CPU_TIE` (all 70 such steps do).
//! A wrong rope pairing, norm or window moves these logits by several units (the synthetic
//! Gemma 3 in synthetic_models.rs checks the architecture's pieces tightly on the GPU).

mod common;

use llm::Generator;
use common::ids;
use serde_json::Value;

const MODEL: &str = "models/gemma-3-270m-Q4_K_M.gguf";
const CPU_TOLERANCE: f32 = 2.0;
const CPU_MEAN_TOLERANCE: f32 = 0.3;
const CPU_TIE: f32 = 0.5;

#[test]
fn gemma3_270m_cpu_matches_llama_cpp() {
    let path = common::repo_path(MODEL);
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!("SKIPPED: {} is absent; run models/fetch.sh to fetch Gemma 3 270M", path.display());
        return;
    };
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(common::repo_path("tests/fixtures/gemma3_reference.json")).unwrap()).unwrap();
    let generator = Generator::from_gguf(&bytes, &common::cpu(), 512).unwrap();
    assert_eq!(generator.template().fallback_family(), Some("gemma"), "the file has no template: Gemma's turns are used");
    let info = llm::ModelInfo::from_gguf(&gguf::Gguf::parse(&bytes).unwrap()).unwrap();
    assert_eq!(
        (info.display_name.as_str(), info.architecture.as_str(), info.chat_template.as_str(), info.quantization.as_str()),
        ("Gemma 3 270M (base model)", "gemma3", "gemma", "Q4_K_M")
    );
    let (worst, mean) = common::replay_reference_runs(&generator, &reference["runs"]["q4_k_m"], CPU_TOLERANCE, CPU_TIE);
    eprintln!("Gemma 3 270M on the CPU vs llama.cpp: top-5 logits differ by {worst:.3} at most, {mean:.3} on average");
    assert!(mean <= CPU_MEAN_TOLERANCE, "top-5 logits differ by {mean} on average");
}

/// The GPU path (f32 activations) against llama.cpp's run of the same weights in F32, the first
/// 4 steps of each prompt, teacher-forced: measured within 0.0065 on lavapipe (ggml's CPU GELU
/// rounds through f16; the GPU's does not), tolerance 0.02. Ignored by default: 20 to 47 s on lavapipe
/// (`cargo test --release --test gemma3_reference -- --ignored`).
#[test]
#[ignore = "20 to 47 s on lavapipe"]
fn gemma3_270m_gpu_matches_llama_cpp_f32() {
    const TOLERANCE: f32 = 0.02;
    let path = common::repo_path(MODEL);
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!("SKIPPED: {} is absent; run models/fetch.sh to fetch Gemma 3 270M", path.display());
        return;
    };
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(common::repo_path("tests/fixtures/gemma3_reference.json")).unwrap()).unwrap();
    let generator = Generator::from_gguf(&bytes, &common::device(), 512).unwrap();
    for run in reference["runs"]["f32"].as_array().unwrap() {
        let name = run["name"].as_str().unwrap();
        let mut input = ids(&run["prompt_tokens"]);
        let mut cache = generator.model().new_cache(512);
        let mut worst = 0f32;
        for (i, step) in run["steps"].as_array().unwrap().iter().enumerate() {
            let logits = generator.model().forward(&input, &mut cache, false).unwrap().into_data().try_to_vec::<f32>().unwrap();
            for pair in step["top5"].as_array().unwrap() {
                let (id, want) = (pair[0].as_u64().unwrap() as usize, pair[1].as_f64().unwrap() as f32);
                let diff = (logits[id] - want).abs();
                assert!(diff <= TOLERANCE, "{name} step {i}: logit of token {id} is {} (llama.cpp F32 {want})", logits[id]);
                worst = worst.max(diff);
            }
            input = vec![step["token"].as_u64().unwrap() as u32];
        }
        eprintln!("{name}: GPU within {worst:.4} of llama.cpp F32");
    }
}
