//! Bounds on hostile input. Each is generous for real cards (the largest published cards are a
//! few hundred kilobytes of JSON with a few hundred lorebook entries) and small enough that a
//! browser tab survives the worst case.

/// Card JSON, after base64 decoding.
pub const MAX_CARD_JSON_BYTES: usize = 2 * 1024 * 1024;
/// A whole PNG card file.
pub const MAX_PNG_BYTES: usize = 32 * 1024 * 1024;
/// A whole `.charx` archive, and the uncompressed `card.json` inside it.
pub const MAX_CHARX_BYTES: usize = 32 * 1024 * 1024;
/// Files in a `.charx` archive.
pub const MAX_CHARX_FILES: usize = 10_000;
/// PNG width and height (checked from the header; pixels are never decoded).
pub const MAX_PNG_DIMENSION: u32 = 16_384;
/// PNG chunks in one file (real files have a handful, or some hundreds of IDAT chunks).
pub const MAX_PNG_CHUNKS: usize = 65_536;
/// Entries in one lorebook.
pub const MAX_LORE_ENTRIES: usize = 10_000;
/// Keys (primary plus secondary) of one lorebook entry.
pub const MAX_KEYS_PER_ENTRY: usize = 1_000;
/// Keys of all entries of one lorebook together: scanning cost grows with them.
pub const MAX_KEYS_PER_BOOK: usize = 20_000;
/// Regex keys compiled for one scan (all books); the rest are skipped with a warning.
pub const MAX_REGEX_KEYS_PER_SCAN: usize = 1_000;
/// Bytes of activated entry content kept for recursive scanning.
pub const MAX_RECURSION_BUFFER_BYTES: usize = 64 * 1024;
/// Length in bytes of one regex key pattern.
pub const MAX_REGEX_PATTERN_BYTES: usize = 2_000;
/// Compiled size of one regex key (the `regex` crate's size limit).
pub const MAX_REGEX_COMPILED_BYTES: usize = 1 << 20;
/// Greetings (first message, alternates and group-only ones together).
pub const MAX_GREETINGS: usize = 1_000;
/// Recursion passes of lorebook scanning.
pub const MAX_LORE_RECURSION: usize = 10;
