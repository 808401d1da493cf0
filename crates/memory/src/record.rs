//! The memory record, and the versioned form it takes in storage.
//!
//! A record is stored as a JSON object with a `schema_version`. Reading goes through
//! [`decode_record`], which migrates older versions step by step to the current one, so data
//! written by any earlier release loads without loss; data from a newer release is refused
//! ([`MemoryError::NewerSchema`]) rather than misread or overwritten.
//!
//! Schema history:
//! - **1**, the draft layout: no `last_accessed`, no `source_message_ids`, `importance` as
//!   Generative Agents' 1–10 poignancy rating, the embedding as a JSON array of numbers.
//! - **2** (current): `last_accessed` (defaults to `created_at`), `source_message_ids` (empty),
//!   `importance` in `0..=1` (`(rating − 1) / 9`), the embedding as base64 of little-endian
//!   f32 (about 2 KB instead of about 4 KB as a number array).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::embedder::EMBEDDING_DIM;
use crate::error::{MemoryError, Result};

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = 2;

/// What a memory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryKind {
    /// A chat message, kept verbatim.
    Message,
    /// A short summary of a stretch of conversation (LD-Agent's event memory).
    EventSummary,
    /// Something learned about the user ("has a sister named Clara").
    UserFact,
    /// Something the character said about itself, kept so it stays consistent.
    CharacterFact,
    /// A note the user pinned; pinned by default.
    PinnedNote,
}

impl MemoryKind {
    pub const ALL: [Self; 5] = [Self::Message, Self::EventSummary, Self::UserFact, Self::CharacterFact, Self::PinnedNote];

    /// The name used in storage and in the JS API: `"message"`, `"event_summary"`, `"user_fact"`,
    /// `"character_fact"`, `"pinned_note"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::EventSummary => "event_summary",
            Self::UserFact => "user_fact",
            Self::CharacterFact => "character_fact",
            Self::PinnedNote => "pinned_note",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

/// One long-term memory of one character. Its serde form (camelCase) is for the JS API; storage
/// uses [`encode_record`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryRecord {
    pub id: String,
    pub character_id: String,
    /// The chat session it came from; `None` for memories that belong to no session (notes).
    pub session_id: Option<String>,
    pub kind: MemoryKind,
    pub text: String,
    /// The text's embedding, [`EMBEDDING_DIM`] floats of unit length.
    pub embedding: Vec<f32>,
    /// Unix time in milliseconds.
    pub created_at: u64,
    /// Unix time in milliseconds of the last retrieval (or of creation); recency decays from it.
    pub last_accessed: u64,
    /// How much this matters, in `0..=1` (0 mundane, 1 life-changing). Generative Agents' 1–10
    /// rating maps through [`importance_from_rating`].
    pub importance: f32,
    /// Always a retrieval candidate, whatever its similarity to the query.
    pub pinned: bool,
    /// The chat messages this memory was made from (for summaries and extracted facts).
    pub source_message_ids: Vec<String>,
}

/// The importance of a memory rated 1–10 as in Generative Agents: `(rating − 1) / 9`, clamped.
pub fn importance_from_rating(rating: f32) -> f32 {
    ((rating - 1.0) / 9.0).clamp(0.0, 1.0)
}

/// Importance of memories written without one.
pub const DEFAULT_IMPORTANCE: f32 = 0.5;

impl MemoryRecord {
    /// Check what a store must never hold: empty ids, an importance outside `0..=1`, an
    /// embedding of the wrong size or with non-finite values.
    pub fn validate(&self) -> Result<()> {
        if self.id.is_empty() || self.character_id.is_empty() {
            return Err(MemoryError::BadRequest("a memory needs an id and a character id".into()));
        }
        if !(0.0..=1.0).contains(&self.importance) {
            return Err(MemoryError::BadRequest(format!("importance {} is outside 0..=1", self.importance)));
        }
        if self.embedding.len() != EMBEDDING_DIM || self.embedding.iter().any(|v| !v.is_finite()) {
            return Err(MemoryError::BadRequest(format!(
                "memory {:?}: embedding of {} values, {EMBEDDING_DIM} finite ones expected",
                self.id,
                self.embedding.len()
            )));
        }
        Ok(())
    }
}

/// The stored layout of schema version 2.
#[derive(Serialize, Deserialize)]
struct StoredRecordV2 {
    schema_version: u32,
    id: String,
    character_id: String,
    #[serde(default)]
    session_id: Option<String>,
    kind: MemoryKind,
    text: String,
    /// Base64 of the little-endian f32 values.
    embedding: String,
    created_at: u64,
    last_accessed: u64,
    importance: f32,
    pinned: bool,
    source_message_ids: Vec<String>,
}

/// The stored form of `record`, at [`SCHEMA_VERSION`].
pub fn encode_record(record: &MemoryRecord) -> Result<Value> {
    record.validate()?;
    let bytes: Vec<u8> = record.embedding.iter().flat_map(|v| v.to_le_bytes()).collect();
    let stored = StoredRecordV2 {
        schema_version: SCHEMA_VERSION,
        id: record.id.clone(),
        character_id: record.character_id.clone(),
        session_id: record.session_id.clone(),
        kind: record.kind,
        text: record.text.clone(),
        embedding: BASE64.encode(bytes),
        created_at: record.created_at,
        last_accessed: record.last_accessed,
        importance: record.importance,
        pinned: record.pinned,
        source_message_ids: record.source_message_ids.clone(),
    };
    serde_json::to_value(stored).map_err(|e| MemoryError::Storage(format!("encoding memory {:?}: {e}", record.id)))
}

/// A record from its stored form at any schema version up to [`SCHEMA_VERSION`], migrated.
pub fn decode_record(value: Value) -> Result<MemoryRecord> {
    let Value::Object(mut object) = value else {
        return Err(MemoryError::Corrupt("a stored memory is not a JSON object".into()));
    };
    let id = object.get("id").and_then(Value::as_str).unwrap_or("?").to_string();
    let corrupt = |what: String| MemoryError::Corrupt(format!("memory {id:?}: {what}"));

    // Records from before versioning carry no number: they are version 1.
    let version = match object.get("schema_version") {
        None => 1,
        Some(v) => v.as_u64().and_then(|v| u32::try_from(v).ok()).ok_or_else(|| corrupt(format!("schema_version {v}")))?,
    };
    if version > SCHEMA_VERSION {
        return Err(MemoryError::NewerSchema { found: version, supported: SCHEMA_VERSION });
    }
    if version == 0 {
        return Err(corrupt("schema_version 0".into()));
    }
    if version < 2 {
        migrate_v1_to_v2(&mut object).map_err(corrupt)?;
    }

    let stored: StoredRecordV2 = serde_json::from_value(Value::Object(object)).map_err(|e| corrupt(e.to_string()))?;
    let bytes = BASE64.decode(&stored.embedding).map_err(|e| corrupt(format!("embedding: {e}")))?;
    if bytes.len() != EMBEDDING_DIM * 4 {
        return Err(corrupt(format!("embedding of {} bytes", bytes.len())));
    }
    let record = MemoryRecord {
        id: stored.id,
        character_id: stored.character_id,
        session_id: stored.session_id,
        kind: stored.kind,
        text: stored.text,
        embedding: bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        created_at: stored.created_at,
        last_accessed: stored.last_accessed,
        importance: stored.importance,
        pinned: stored.pinned,
        source_message_ids: stored.source_message_ids,
    };
    record.validate().map_err(|e| corrupt(e.to_string()))?;
    Ok(record)
}

/// Version 1 → 2: see the module documentation.
fn migrate_v1_to_v2(object: &mut Map<String, Value>) -> Result<(), String> {
    let rating = match object.get("importance") {
        None => 1.0,
        Some(v) => v.as_f64().ok_or_else(|| format!("importance {v}"))? as f32,
    };
    object.insert("importance".into(), Value::from(importance_from_rating(rating)));

    let created_at = object.get("created_at").cloned().ok_or("no created_at")?;
    object.entry("last_accessed").or_insert(created_at);
    object.entry("source_message_ids").or_insert_with(|| Value::Array(Vec::new()));

    let values = object.get("embedding").and_then(Value::as_array).ok_or("embedding is not an array of numbers")?;
    let mut bytes = Vec::with_capacity(values.len() * 4);
    for v in values {
        let x = v.as_f64().ok_or_else(|| format!("embedding value {v}"))? as f32;
        bytes.extend(x.to_le_bytes());
    }
    object.insert("embedding".into(), Value::String(BASE64.encode(bytes)));
    object.insert("schema_version".into(), Value::from(2u32));
    Ok(())
}

/// A fresh random id (a version-4 UUID), from the platform's secure random source.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No random source: time and a counter still give ids unique within this process.
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = web_time::SystemTime::now().duration_since(web_time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        bytes[..8].copy_from_slice(&now.to_le_bytes());
        bytes[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Unix time in milliseconds (JS `Date.now()` in the browser).
pub fn now_ms() -> u64 {
    web_time::SystemTime::now().duration_since(web_time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
