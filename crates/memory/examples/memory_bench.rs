//! Memory benchmark: embedding throughput, index build time, search latency and recall@10
//! against an exact scan at 1k, 10k and 100k records, restore time, bytes stored per record.
//!
//!     cargo build --release --all-targets
//!     target/release/examples/memory_bench [--sizes 1000,10000 --queries 200 --no-embed
//!         --cpu --ef-construction 100 --ef-search 100 --no-heuristic]
//!
//! (From the repository root and without `-p`, which would change burn's features and rebuild it.)
//!
//! The embedder runs on the native GPU, or with `--cpu` on burn's CPU backend.
//!
//! The index workload (synthetic clustered unit vectors) is `memory::bench`, which the wasm
//! build runs too (`tests/bench/memory-bench.mjs`).

use std::time::Instant;

use burn::tensor::Device;
use memory::record::encode_record;
use memory::bench::{Rng, index_bench, normalize};
use memory::device_work::DispatchCounter;
use memory::{EMBEDDING_DIM, Embedder, IndexConfig, MemoryKind, MemoryRecord};

fn bench_embedder(cpu: bool) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2");
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}; run models/fetch.sh", dir.join(name).display()));
    let (device, adapter) = if cpu {
        (Device::flex(), "the CPU (burn Flex)".to_string())
    } else {
        match Device::wgpu_options().init_with_setup() {
            Ok((device, setup)) => (device, format!("{} ({:?})", setup.adapter.get_info().name, setup.backend)),
            Err(e) => {
                println!("embedder: no GPU adapter ({e}); skipped");
                return;
            }
        }
    };
    let started = Instant::now();
    let embedder = match Embedder::load(&read("model.safetensors"), &read("tokenizer.json"), &read("config.json"), &device) {
        Ok(e) => e,
        Err(e) => {
            println!("embedder: {e}");
            return;
        }
    };
    println!("embedder: all-MiniLM-L6-v2 on {adapter}, loaded in {:.2} s", started.elapsed().as_secs_f64());
    let words = ["I", "really", "enjoyed", "the", "walk", "by", "river", "this", "morning", "and", "my", "sister", "called", "about", "dinner", "plans"];
    let mut rng = Rng(11);
    let messages: Vec<String> = (0..256)
        .map(|_| (0..12 + rng.next_u64() % 12).map(|_| words[(rng.next_u64() % words.len() as u64) as usize]).collect::<Vec<_>>().join(" "))
        .collect();
    let refs: Vec<&str> = messages.iter().map(String::as_str).collect();
    let long = "word ".repeat(400);
    // A failed call would otherwise time as a fast one.
    let embed = |texts: &[&str]| {
        if let Err(e) = pollster::block_on(embedder.embed(texts)) {
            panic!("embedding failed: {e}");
        }
    };
    // Warm-up compiles the shaders for the shapes measured below.
    embed(&refs[..64]);
    embed(&[refs[0]]);
    // GPU kernel launches of one call (burn's and the embedder's own; 0 on the CPU).
    let dispatches = |texts: &[&str]| {
        let counter = DispatchCounter::start();
        embed(texts);
        counter.dispatches()
    };
    println!("  dispatches: {} for a batch of 64 chat messages, {} for one message", dispatches(&refs[..64]), dispatches(&refs[..1]));
    for (label, batch) in [("batches of 64 chat messages (14-25 tokens)", &refs[..]), ("one message at a time", &refs[..32])] {
        let started = Instant::now();
        let mut done = 0;
        if batch.len() == 32 {
            for text in batch {
                embed(&[text]);
                done += 1;
            }
        } else {
            for chunk in batch.chunks(64) {
                embed(chunk);
                done += chunk.len();
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!("  {label}: {:.1} embeddings/s ({:.1} ms each)", done as f64 / secs, secs * 1000.0 / done as f64);
    }
    let longs: Vec<&str> = vec![long.as_str(); 16];
    embed(&longs[..1]);
    let started = Instant::now();
    embed(&longs);
    let secs = started.elapsed().as_secs_f64();
    println!("  256-token texts, batch of 16: {:.1} embeddings/s", 16.0 / secs);
}

fn bench_index(n: usize, queries: usize, config: &IndexConfig) {
    let origin = Instant::now();
    let r = index_bench(n, queries, config, &|| origin.elapsed().as_secs_f64());
    println!(
        "{n:>7} records: build {:>7.2} s | HNSW search p50 {:>7.0} µs p99 {:>7.0} µs | recall@10 {:.4} | exact scan p50 {:>7.0} µs | stored index {:.0} B/record, restore {:.2} s",
        r.build_seconds, r.hnsw_p50_us, r.hnsw_p99_us, r.recall_at_10, r.exact_p50_us, r.stored_index_bytes_per_record, r.restore_seconds,
    );
}

fn bytes_per_record() {
    let mut rng = Rng(5);
    let mut embedding: Vec<f32> = (0..EMBEDDING_DIM).map(|_| rng.normal()).collect();
    normalize(&mut embedding);
    let record = MemoryRecord {
        id: "0b7d6f0e-3c1a-4f7e-9d2b-5a8c1e4f6a90".into(),
        character_id: "c6a1f0d2-7b3e-4c59-8e1f-2d4a6b8c0e13".into(),
        session_id: Some("5f2e8c1a-9b4d-4e7f-a3c6-1d8b0e2f4a67".into()),
        kind: MemoryKind::Message,
        text: "I finally adopted a grey kitten last weekend and named her Mochi, she sleeps on my keyboard.".into(),
        embedding,
        created_at: 1_750_000_000_000,
        last_accessed: 1_750_000_000_000,
        importance: 0.5,
        pinned: false,
        source_message_ids: Vec::new(),
    };
    let stored = encode_record(&record).expect("encode").to_string();
    println!(
        "stored record ({} characters of text): {} bytes as JSON (embedding {} of them as base64), plus the index bytes above",
        record.text.len(),
        stored.len(),
        (EMBEDDING_DIM * 4).div_ceil(3) * 4,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let sizes: Vec<usize> =
        value("--sizes").map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect()).unwrap_or_else(|| vec![1_000, 10_000, 100_000]);
    let queries: usize = value("--queries").and_then(|q| q.parse().ok()).unwrap_or(200);
    println!("threads available to rayon: {}", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    if !args.iter().any(|a| a == "--no-embed") {
        bench_embedder(args.iter().any(|a| a == "--cpu"));
    }
    bytes_per_record();
    let mut config = IndexConfig::default();
    if let Some(ef) = value("--ef-construction").and_then(|v| v.parse().ok()) {
        config.ef_construction = ef;
    }
    if let Some(ef) = value("--ef-search").and_then(|v| v.parse().ok()) {
        config.ef_search = ef;
    }
    if args.iter().any(|a| a == "--no-heuristic") {
        config.neighbour_heuristic = false;
    }
    println!(
        "index: ef_construction {}, ef_search {}, neighbour heuristic {}",
        config.ef_construction, config.ef_search, config.neighbour_heuristic
    );
    for n in sizes {
        bench_index(n, queries, &config);
    }
}
