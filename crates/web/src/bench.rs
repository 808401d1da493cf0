//! The memory index benchmark in wasm (`benchIndex`), for `tests/bench/memory-bench.mjs`: the
//! same workload as the native `memory_bench` example, timed with `performance.now()`.

use memory::IndexConfig;
use memory::bench::index_bench;
use wasm_bindgen::prelude::*;

use crate::to_js;

/// `performance.now()` in seconds, on a page or in a worker.
fn now_seconds() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .ok()
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &"now".into()).ok()?.dyn_into::<js_sys::Function>().ok()?;
            now.call0(&p).ok()?.as_f64()
        })
        .map_or_else(js_sys::Date::now, |ms| ms)
        / 1000.0
}

/// Build an HNSW index of `records` synthetic 384-d vectors, run `queries` searches against an
/// exact scan, serialise and restore it; returns build time, p50/p99 latency, recall@10, index
/// bytes per record. Blocks the thread it runs on: call it from a worker.
#[wasm_bindgen(js_name = benchIndex)]
pub fn bench_index(records: usize, queries: usize) -> Result<JsValue, JsValue> {
    to_js(&index_bench(records, queries, &IndexConfig::default(), &now_seconds))
}
