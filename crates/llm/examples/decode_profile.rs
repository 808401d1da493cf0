//! Rough per-phase timing of decode steps on the native GPU (syncs after each phase, so the
//! total is slower than real decoding): where does a token's time go?
//!
//!   cargo run --release -p confidant-llm --example decode_profile -- models/SmolLM2-135M-Instruct-Q4_1.gguf

fn main() {
    let path = std::env::args().nth(1).expect("model path");
    let bytes = std::fs::read(path).unwrap();
    let (device, adapter) = llm::device::init_native().expect("GPU");
    println!("adapter: {}", adapter.summary());
    let mut generator = llm::Generator::from_gguf(&bytes, &device, 512).unwrap();
    let prompt = generator.encode_raw("The capital of France is").unwrap();
    let model = generator.model();
    let mut cache = model.new_cache(512);
    let _ = model.forward(&prompt, &mut cache, false).unwrap().into_data();
    let mut token = 504u32;
    for i in 0..6 {
        let start = std::time::Instant::now();
        let logits = model.forward(&[token], &mut cache, false).unwrap();
        let queued = start.elapsed();
        let v = logits.into_data().to_vec::<f32>().unwrap();
        token = llm::sampler::argmax(&v);
        println!("step {i}: queued in {:?}, done in {:?}", queued, start.elapsed());
    }
    let _ = &mut generator;
}
