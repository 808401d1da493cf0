//! Long-term memory for companions, all of it on the user's device.
//!
//! - [`embedder`]: all-MiniLM-L6-v2 on burn (WebGPU in the browser, wgpu natively).
//! - [`kernels`]: the embedder's fused steps (CubeCL kernels on GPUs, burn's operations on the CPU).
//! - [`record`]: the memory record and its versioned stored form.
//! - [`index`]: HNSW (`instant-distance`) + an exact segment for fresh inserts, tombstones,
//!   rebuilds that can run off the caller's path, serialisation checked against the records.
//! - [`score`]: Generative Agents retrieval scoring (relevance, recency, importance).
//! - [`store`]: the async storage trait, an in-memory store and an atomic file store.
//! - [`bench`]: the index benchmark's workload, for the native example and the wasm build.
//! - [`device_work`]: the embedder's GPU dispatches, counted for the benchmark.
//! - [`memory`]: the facade behind the JS API (`add / search / list / update / forget / embed /
//!   stats`).
//!
//! Nothing here knows about the browser; the IndexedDB store and the JS bindings live in
//! `crates/web`.

pub mod bench;
pub mod device_work;
pub mod embedder;
pub mod error;
pub mod index;
pub mod kernels;
pub mod memory;
pub mod record;
pub mod score;
pub mod store;

pub use embedder::{EMBEDDING_DIM, Embedder, Embedding, MAX_TOKENS, TextEmbedder};
pub use error::{MemoryError, Result};
pub use index::{IndexConfig, IndexHit, IndexStats, MemoryIndex, RestoreOutcome};
pub use memory::{ListFilter, Memory, check_import, MemoryConfig, MemoryPatch, MemoryStats, NewMemory, SearchHit, SearchQuery};
pub use record::{MemoryKind, MemoryRecord, SCHEMA_VERSION};
pub use score::{ScoreParts, ScoringConfig};
#[cfg(not(target_family = "wasm"))]
pub use store::FileStore;
pub use store::{InMemoryStore, Store, WriteBatch};
