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
/// Compiled size of one regex key (the `regex` crate's size limit; Unicode classes are large:
/// `(?i)\w{3,10}` needs most of it).
pub const MAX_REGEX_COMPILED_BYTES: usize = 1 << 20;
/// Compiled size of all regex keys of one scan, each charged the size limit it was built with
/// (16 KiB for most real keys, 64 KiB with a Unicode `\w`), failed attempts included: bounds
/// compile time (~6 ms per MiB) and memory.
pub const MAX_REGEX_TOTAL_BYTES: usize = 32 << 20;
/// Greetings (first message, alternates and group-only ones together).
pub const MAX_GREETINGS: usize = 1_000;
/// Recursion passes of lorebook scanning.
pub const MAX_LORE_RECURSION: usize = 10;
/// A character's `name` and `nickname`, in bytes (they are what `{{char}}` expands to). Real
/// names are a few words; the user's name is capped at 100 bytes by the engine.
pub const MAX_NAME_BYTES: usize = 1024;
/// Bytes one macro expansion ([`crate::MacroContext::apply`]) may add to its input: past this,
/// the remaining macros are left as written. A greeting of 100k `{{char}}` with a long name
/// would otherwise grow a 1 MB card into gigabytes.
pub const MAX_MACRO_GROWTH_BYTES: usize = 64 * 1024;
/// Bytes of lorebook entry content (after macros) one scan keeps: entries past it are skipped
/// with a warning. Real books hold a few hundred kilobytes.
pub const MAX_LORE_TEXT_BYTES: usize = 8 * 1024 * 1024;
/// Bytes of the chat's latest messages one scan looks at, however deep an entry's scan depth.
pub const MAX_LORE_CHAT_BYTES: usize = 512 * 1024;
/// Work of one scan, in bytes of text examined by keys (a regex key's bytes count
/// [`REGEX_WORK_FACTOR`] times or more). Past it, keys stop matching and a warning says so. A real
/// scan (hundreds of keys over a few messages) uses well under a hundredth of it.
pub const MAX_LORE_SCAN_WORK: u64 = 256 * 1024 * 1024;
/// How much more a byte examined by a regex key counts than one examined by a plain key, for
/// the smallest compiled size; it grows with the compiled size (a large program matched
/// without its DFA costs time per byte in proportion).
pub const REGEX_WORK_FACTOR: u64 = 8;
