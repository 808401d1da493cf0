//! Any bytes, imported as a card file (sniffed), as card JSON, as a PNG and as the body of a
//! PNG after a valid signature, and as a lorebook; whatever imports is exported again (PNG with
//! its own avatar, both JSON specs) and must import back. Errors are fine, panics and runaway
//! allocations are not. `crates/persona/tests/hostile.rs` runs the same path on
//! pseudo-random bytes for machines without cargo-fuzz.
#![no_main]

use libfuzzer_sys::fuzz_target;
use persona::ExportSpec;

fuzz_target!(|data: &[u8]| {
    let _ = persona::import_card_json(data);
    let _ = persona::import_card_png(data);
    let _ = persona::Lorebook::from_json_bytes(data);
    let mut png = vec![137, 80, 78, 71, 13, 10, 26, 10];
    png.extend_from_slice(data);
    for bytes in [data, &png[..]] {
        if let Ok(card) = persona::import_card(bytes) {
            for spec in [ExportSpec::V2, ExportSpec::V3] {
                let json = persona::export_card_json(&card.character, spec);
                assert!(persona::import_card_json(&json).is_ok());
            }
            if let Ok(out) = persona::export_card_png(&card.character, ExportSpec::V3, card.avatar_png.as_deref()) {
                assert!(persona::import_card_png(&out).is_ok());
            }
        }
    }
});
