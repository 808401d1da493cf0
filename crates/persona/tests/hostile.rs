//! Hostile and broken input gives typed errors, never a panic or a runaway allocation. This
//! also runs the fuzz target's import path on pseudo-random and mutated bytes, for machines
//! without cargo-fuzz.

mod common;

use common::{b64, fixture, png_with_texts};
use persona::{CardError, Lorebook, import_card, import_card_json, import_card_png, limits};

#[test]
fn truncated_png_at_every_length() {
    let png = png_with_texts(&[("chara", b64(&fixture("v1_orla.json")))]);
    for len in 0..png.len() {
        let err = import_card(&png[..len]).unwrap_err();
        assert!(matches!(err, CardError::Png(_) | CardError::UnknownFormat), "len {len}: {err:?}");
    }
    assert!(import_card(&png).is_ok());
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    // CRC-32 over type and data (bitwise; only for building test files).
    let mut crc = 0xFFFF_FFFFu32;
    for b in kind.iter().chain(data) {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    out.extend_from_slice(&(!crc).to_be_bytes());
    out
}

fn ihdr(width: u32, height: u32) -> Vec<u8> {
    let mut d = width.to_be_bytes().to_vec();
    d.extend_from_slice(&height.to_be_bytes());
    d.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(b"IHDR", &d)
}

const SIG: [u8; 8] = [137, 80, 78, 71, 13, 10, 26, 10];

#[test]
fn huge_declared_sizes() {
    // A chunk claiming 2 GiB of data in a tiny file.
    let mut png = SIG.to_vec();
    png.extend(ihdr(1, 1));
    png.extend_from_slice(&0x7FFF_FFF0u32.to_be_bytes());
    png.extend_from_slice(b"tEXt");
    png.extend_from_slice(b"chara\0abc");
    assert!(matches!(import_card(&png), Err(CardError::Png(_))));
    // Enormous image dimensions: refused from the header, nothing allocated for pixels.
    let mut png = SIG.to_vec();
    png.extend(ihdr(1_000_000, 1_000_000));
    png.extend(chunk(b"tEXt", b"chara\0e30="));
    png.extend(chunk(b"IEND", b""));
    assert!(matches!(import_card(&png), Err(CardError::Png(_))));
    // A text chunk whose base64 would decode past the JSON limit.
    let big = "A".repeat(limits::MAX_CARD_JSON_BYTES / 3 * 4 + 400);
    let png = png_with_texts(&[("chara", big)]);
    assert!(matches!(import_card(&png), Err(CardError::TooLarge { .. })));
    // JSON over the limit.
    let mut json = br#"{"name":""#.to_vec();
    json.extend(std::iter::repeat_n(b'x', limits::MAX_CARD_JSON_BYTES));
    json.extend(br#""}"#);
    assert!(matches!(import_card(&json), Err(CardError::TooLarge { .. })));
    // A file over the PNG limit.
    let mut png = SIG.to_vec();
    png.resize(limits::MAX_PNG_BYTES + 1, 0);
    assert!(matches!(import_card_png(&png), Err(CardError::TooLarge { .. })));
}

#[test]
fn bad_base64_and_bad_chunk_contents() {
    let png = png_with_texts(&[("chara", "this is not base64!!".into())]);
    assert!(matches!(import_card(&png), Err(CardError::Base64 { chunk: "chara", .. })));
    let png = png_with_texts(&[("chara", b64(b"\xff\xfe not utf8"))]);
    assert!(matches!(import_card(&png), Err(CardError::NotUtf8 { .. })));
    let png = png_with_texts(&[("chara", b64(b"[1, 2, 3]"))]);
    assert!(matches!(import_card(&png), Err(CardError::NotACard(_))));
    let png = png_with_texts(&[("other", b64(b"{}"))]);
    assert!(matches!(import_card(&png), Err(CardError::NoCardInPng)));
    // A bad CRC on a critical chunk.
    let mut png = png_with_texts(&[("chara", b64(&fixture("v1_orla.json")))]);
    png[29] ^= 0xFF; // inside the IHDR CRC
    assert!(matches!(import_card(&png), Err(CardError::Png(_))));
}

#[test]
fn hostile_json() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_card = format!(r#"{{"name":"x","extensions":{deep}}}"#);
    assert!(matches!(import_card(deep_card.as_bytes()), Err(CardError::Json(_))));
    let deep_obj = format!(r#"{{"spec":"chara_card_v2","data":{}"#, r#"{"a":"#.repeat(10_000));
    assert!(matches!(import_card(deep_obj.as_bytes()), Err(CardError::Json(_))));
    assert!(matches!(import_card_json(b"{\"name\": \"\xff\xfe\"}"), Err(CardError::NotUtf8 { .. })));
    assert!(matches!(import_card(b"\xff\xfe\x00garbage"), Err(CardError::UnknownFormat)));
    assert!(matches!(import_card(b""), Err(CardError::UnknownFormat)));
    assert!(matches!(import_card(b"{"), Err(CardError::Json(_))));
    assert!(matches!(import_card(b"{}"), Err(CardError::NotACard(_))));
    assert!(matches!(import_card(br#"{"spec":"chara_card_v9","data":{}}"#), Err(CardError::NotACard(_))));
    assert!(matches!(import_card(br#"{"spec":"chara_card_v2","data":[]}"#), Err(CardError::NotACard(_))));
    // Too many lorebook entries or greetings.
    let entries = vec![serde_json::json!({"keys": ["k"], "content": "c"}); limits::MAX_LORE_ENTRIES + 1];
    let card =
        serde_json::json!({"spec": "chara_card_v2", "data": {"name": "x", "character_book": {"entries": entries}}});
    let bytes = serde_json::to_vec(&card).unwrap();
    assert!(matches!(import_card(&bytes), Err(CardError::TooMany { .. })));
    let greetings = vec!["hi"; limits::MAX_GREETINGS + 1];
    let card = serde_json::json!({"spec": "chara_card_v3", "data": {"name": "x", "alternate_greetings": greetings}});
    assert!(matches!(import_card(&serde_json::to_vec(&card).unwrap()), Err(CardError::TooMany { .. })));
    assert!(matches!(Lorebook::from_json_bytes(b"[]"), Err(CardError::NotACard(_))));
}

/// xorshift64*: deterministic pseudo-random bytes without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
}

/// What the fuzz target does with its input (fuzz/fuzz_targets/card_import.rs).
fn fuzz_one(data: &[u8]) {
    let _ = persona::import_card(data);
    let _ = persona::import_card_json(data);
    let _ = persona::import_card_png(data);
    let _ = persona::Lorebook::from_json_bytes(data);
    let mut png = vec![137, 80, 78, 71, 13, 10, 26, 10];
    png.extend_from_slice(data);
    if let Ok(card) = persona::import_card_png(&png) {
        let _ = persona::export_card_png(&card.character, persona::ExportSpec::V3, Some(&png));
    }
}

#[test]
fn random_and_mutated_inputs_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..2_000 {
        let len = (rng.next() % 300) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        fuzz_one(&data);
    }
    let seeds = [
        png_with_texts(&[("chara", b64(&fixture("v2_mira.json")))]),
        png_with_texts(&[("ccv3", b64(&fixture("v3_tobias.json")))]),
        fixture("v2_mira.json"),
        fixture("v3_tobias.json"),
    ];
    for seed in &seeds {
        for _ in 0..300 {
            let mut data = seed.clone();
            for _ in 0..1 + rng.next() % 4 {
                let at = (rng.next() % data.len() as u64) as usize;
                match rng.next() % 3 {
                    0 => data[at] = rng.byte(),
                    1 => data.truncate(at),
                    _ => data.insert(at, rng.byte()),
                }
                if data.is_empty() {
                    break;
                }
            }
            fuzz_one(&data);
            if let Ok(card) = import_card(&data) {
                // Whatever imports, exports (in its own spec) and imports back the same.
                let spec =
                    if card.spec == persona::CardSpec::V3 { persona::ExportSpec::V3 } else { persona::ExportSpec::V2 };
                let json = persona::export_card_json(&card.character, spec);
                assert_eq!(import_card(&json).unwrap().character, card.character);
            }
        }
    }
}

#[test]
fn scanning_cost_is_bounded() {
    // Too many keys in one book (each entry within its own limit).
    let entries: Vec<serde_json::Value> =
        (0..30).map(|_| serde_json::json!({"keys": vec!["k"; 800], "content": "c"})).collect();
    let card =
        serde_json::json!({"spec": "chara_card_v2", "data": {"name": "x", "character_book": {"entries": entries}}});
    assert!(matches!(import_card(&serde_json::to_vec(&card).unwrap()), Err(CardError::TooMany { .. })));
    // Regex keys past the per-scan cap are skipped, with a warning each.
    let book = Lorebook {
        entries: (0..limits::MAX_REGEX_KEYS_PER_SCAN + 50)
            .map(|i| persona::LoreEntry::new(&[format!("/k{i}x/").as_str()], "c"))
            .collect(),
        ..Lorebook::default()
    };
    let a = persona::activate_lore(
        &[(persona::LoreSource::Character, &book)],
        &["k5x k1020x"],
        &persona::LoreScanOptions::default(),
        &persona::MacroContext::new("a", "b"),
        &persona::ApproxTokenCounter,
    );
    assert_eq!(a.warnings.len(), 50);
    assert_eq!(a.entries.len(), 1);
}

#[test]
fn hostile_charx() {
    // No card.json.
    let archive = common::charx(&[("readme.txt", b"hello")]);
    assert!(matches!(import_card(&archive), Err(CardError::NotACard(_))));
    // A small archive that inflates past the JSON limit.
    let bomb = vec![b' '; limits::MAX_CARD_JSON_BYTES + 10];
    let archive = common::charx(&[("card.json", &bomb)]);
    assert!(archive.len() < 100_000);
    assert!(matches!(import_card(&archive), Err(CardError::TooLarge { .. })));
    // Truncated archives.
    let archive = common::charx(&[("card.json", &fixture("v3_tobias.json"))]);
    for len in [4, 30, archive.len() / 2, archive.len() - 1] {
        let err = import_card(&archive[..len]).unwrap_err();
        assert!(matches!(err, CardError::Charx(_) | CardError::Json(_)), "len {len}: {err:?}");
    }
}

fn scan(books: &[&Lorebook], messages: &[&str], macros: &persona::MacroContext) -> persona::LoreActivation {
    let books: Vec<(persona::LoreSource, &Lorebook)> =
        books.iter().enumerate().map(|(i, b)| (persona::LoreSource::Global(i), *b)).collect();
    persona::activate_lore(&books, messages, &persona::LoreScanOptions::default(), macros, &persona::ApproxTokenCounter)
}

#[test]
fn long_names_are_refused() {
    let card = |name: &str, nickname: &str| {
        let card = serde_json::json!({"spec": "chara_card_v3", "data": {"name": name, "nickname": nickname}});
        import_card(&serde_json::to_vec(&card).unwrap())
    };
    let longest = "n".repeat(limits::MAX_NAME_BYTES);
    assert!(card(&longest, &longest).is_ok());
    let long = "n".repeat(limits::MAX_NAME_BYTES + 1);
    assert!(matches!(card(&long, "x"), Err(CardError::TooLarge { what: "character name", .. })));
    assert!(matches!(card("x", &long), Err(CardError::TooLarge { what: "character nickname", .. })));
    // V1 cards too.
    let v1 = serde_json::json!({"name": long});
    assert!(matches!(import_card(&serde_json::to_vec(&v1).unwrap()), Err(CardError::TooLarge { .. })));
}

#[test]
fn macro_expansion_is_capped() {
    let name = "N".repeat(limits::MAX_NAME_BYTES);
    let macros = persona::MacroContext::new(&name, "Sam");
    // A greeting of 100k `{{char}}`: 800 KB that would expand to 100 MB.
    let greeting = "{{char}}".repeat(100_000);
    let started = std::time::Instant::now();
    let out = macros.apply(&greeting);
    assert!(out.len() <= greeting.len() + limits::MAX_MACRO_GROWTH_BYTES, "{} bytes", out.len());
    assert!(out.starts_with(&name), "the first macros are replaced");
    assert!(out.ends_with("{{char}}"), "the rest are left as written");
    assert!(started.elapsed().as_secs() < 2);
    // `{{original}}` standing for a long text, many times over.
    let original = "o".repeat(1 << 20);
    let out = macros.with_original(&original).apply(&"{{original}}".repeat(1000));
    assert!(out.len() <= 12_000 + limits::MAX_MACRO_GROWTH_BYTES);
    // Ordinary text is expanded in full.
    assert_eq!(macros.apply("Hi {{user}}, <BOT> here."), format!("Hi Sam, {name} here."));
}

#[test]
fn lore_content_kept_by_a_scan_is_capped() {
    // Ten thousand constant entries, each 1 KB of `<bot>` with a 1 KB name: 640 MB expanded.
    let name = "N".repeat(limits::MAX_NAME_BYTES);
    let macros = persona::MacroContext::new(&name, "Sam");
    let mut entry = persona::LoreEntry::new(&["k"], "<bot>".repeat(200));
    entry.constant = Some(true);
    let book = Lorebook { entries: vec![entry; limits::MAX_LORE_ENTRIES], ..Lorebook::default() };
    let started = std::time::Instant::now();
    let a = scan(&[&book], &["hello"], &macros);
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    let kept: usize = a.entries.iter().chain(&a.dropped).map(|e| e.content.len()).sum();
    assert!(kept <= limits::MAX_LORE_TEXT_BYTES, "{kept}");
    assert!(!a.entries.is_empty());
    assert!(a.warnings.iter().any(|w| w.contains("entries ignored")), "{:?}", a.warnings);
}

#[test]
fn lore_scanning_work_is_capped() {
    // Four books at the key limit, over a long chat with an entry scanning all of it.
    let entries: Vec<persona::LoreEntry> = (0..limits::MAX_KEYS_PER_BOOK / 10)
        .map(|i| {
            let keys: Vec<String> = (0..10).map(|k| format!("never-said-{i}-{k}")).collect();
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            persona::LoreEntry::new(&keys, "c")
        })
        .collect();
    let mut book = Lorebook { entries, ..Lorebook::default() };
    book.scan_depth = Some(1_000_000);
    let message = "word ".repeat(20_000);
    let messages: Vec<&str> = (0..200).map(|_| message.as_str()).collect();
    let started = std::time::Instant::now();
    let a = scan(&[&book, &book, &book, &book], &messages, &persona::MacroContext::new("a", "b"));
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    assert!(a.entries.is_empty());
    assert!(a.warnings.iter().any(|w| w.contains("work limit")), "{:?}", a.warnings);
}

#[test]
fn deep_scans_see_only_the_latest_text() {
    let book = Lorebook {
        entries: vec![persona::LoreEntry::new(&["oldkey"], "old"), persona::LoreEntry::new(&["newkey"], "new")],
        scan_depth: Some(1_000_000),
        ..Lorebook::default()
    };
    let filler = "x".repeat(limits::MAX_LORE_CHAT_BYTES);
    let a = scan(&[&book], &["oldkey", &filler, "newkey"], &persona::MacroContext::new("a", "b"));
    let contents: Vec<&str> = a.entries.iter().map(|e| e.content.as_str()).collect();
    assert_eq!(contents, ["new"]);
    // Within the limit, a deep scan sees every message (one copy of the chat serves all depths).
    let a = scan(&[&book], &["oldkey", "filler", "newkey"], &persona::MacroContext::new("a", "b"));
    assert_eq!(a.entries.len(), 2);
}

#[test]
fn regex_keys_share_a_compile_budget() {
    // Patterns that fail every size limit, and patterns that compile to a megabyte each.
    for pattern in [r"\w{30}\d{30}[a-z]{30}\W{20}", r"(?:\w+\s+){5,20}x"] {
        let book = Lorebook {
            entries: (0..limits::MAX_REGEX_KEYS_PER_SCAN)
                .map(|i| persona::LoreEntry::new(&[format!("/{pattern}{i}/").as_str()], "c"))
                .collect(),
            ..Lorebook::default()
        };
        let started = std::time::Instant::now();
        let text = "word ".repeat(10_000);
        let a = scan(&[&book], &[&text], &persona::MacroContext::new("a", "b"));
        assert!(started.elapsed().as_secs() < 5, "{pattern}: {:?}", started.elapsed());
        assert!(a.entries.is_empty());
        assert!(a.warnings.iter().any(|w| w.contains("regex keys already use")), "{pattern}: {:?}", &a.warnings[..3]);
    }
    // Ordinary regex keys are unaffected.
    let book = Lorebook {
        entries: (0..200).map(|i| persona::LoreEntry::new(&[format!(r"/\bdragon{i}s?\b/i").as_str()], "c")).collect(),
        ..Lorebook::default()
    };
    let a = scan(&[&book], &["The DRAGON7s flew."], &persona::MacroContext::new("a", "b"));
    assert_eq!(a.entries.len(), 1);
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
}
