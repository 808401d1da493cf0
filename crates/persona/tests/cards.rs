//! Cards: each version from JSON and PNG, lossless round trips, macros, the profile.

mod common;

use common::{b64, decode_png, fixture, fixture_value, png_with_texts};
use persona::{
    AttachmentStyle, CardSpec, Character, ExportSpec, HumorStyle, InnerThoughts, MacroContext, Profile,
    export_card_json, export_card_png, import_card, import_card_json, import_card_png,
};
use serde_json::{Value, json};

#[test]
fn v1_from_json() {
    let card = import_card(&fixture("v1_orla.json")).unwrap();
    assert_eq!(card.spec, CardSpec::V1);
    let c = &card.character;
    assert_eq!(c.name, "Orla");
    assert!(c.description.starts_with("{{char}} is the captain"), "macros stay in storage");
    assert_eq!(c.personality, "gruff, practical, secretly sentimental");
    assert_eq!(c.example_blocks().len(), 2);
    assert_eq!(c.card_extra.get("talkativeness"), Some(&json!("0.4")));
    assert!(card.avatar_png.is_none());
}

#[test]
fn v2_from_json() {
    let card = import_card(&fixture("v2_mira.json")).unwrap();
    assert_eq!(card.spec, CardSpec::V2);
    let c = &card.character;
    assert_eq!(c.name, "Mira Vale");
    assert!(c.system_prompt.contains("{{original}}"));
    assert_eq!(c.alternate_greetings.len(), 2);
    assert_eq!(c.greetings().len(), 3);
    assert_eq!(c.tags, ["demo", "botany", "cozy"]);
    assert_eq!(c.creator, "Confidant tests");
    assert_eq!(c.character_version, "1.2");
    let book = c.character_book.as_ref().unwrap();
    assert_eq!(book.entries.len(), 4);
    assert_eq!(book.scan_depth, Some(3));
    assert_eq!(book.token_budget, Some(300));
    assert_eq!(book.recursive_scanning, Some(true));
    assert!(!book.entries[3].enabled);
    assert_eq!(book.extra.get("x_book_field"), Some(&json!("kept")));
    assert_eq!(c.extra.get("x_unknown_data_field"), Some(&json!({"anything": ["goes", 1]})));
    assert_eq!(c.card_extra.get("x_unknown_top_field"), Some(&json!(42)));
    assert!(c.extensions.contains_key("depth_prompt"));
    let profile = c.profile().unwrap();
    assert_eq!(profile.openness, Some(85));
    assert_eq!(profile.attachment, Some(AttachmentStyle::Secure));
    assert_eq!(profile.humor, Some(HumorStyle::Gentle));
    assert_eq!(profile.extra.get("future_indicator"), Some(&json!(7)));
    assert!(c.inner_thoughts().enabled);
}

#[test]
fn v3_from_json() {
    let card = import_card(&fixture("v3_tobias.json")).unwrap();
    assert_eq!(card.spec, CardSpec::V3);
    let c = &card.character;
    assert_eq!(c.name, "Tobias Quill");
    assert_eq!(c.nickname.as_deref(), Some("Toby"));
    assert_eq!(c.display_name(), "Toby");
    let assets = c.assets.as_ref().unwrap();
    assert_eq!(assets[0].kind, "icon");
    assert_eq!(assets[0].uri, "ccdefault:");
    assert_eq!(assets[1].extra.get("x_asset_field"), Some(&json!("kept")));
    assert_eq!(c.creator_notes_multilingual.as_ref().unwrap()["de"], "Eine Demo-Figur.");
    assert_eq!(c.source.as_deref(), Some(&["confidant-tests".to_owned()][..]));
    assert_eq!(c.group_only_greetings.len(), 1);
    assert_eq!(c.creation_date, Some(1_700_000_000));
    assert_eq!(c.modification_date, Some(1_700_003_600));
    let book = c.character_book.as_ref().unwrap();
    assert_eq!(book.entries[0].use_regex, Some(true));
    assert_eq!(book.entries[0].id, Some(json!("watch-1")));
    assert_eq!(book.entries[1].extra.get("x_entry_unknown"), Some(&json!([1, 2])));
}

fn png_card(keyword: &str, json: &[u8]) -> Vec<u8> {
    png_with_texts(&[(keyword, b64(json))])
}

#[test]
fn each_version_from_png() {
    for (file, keyword, spec) in [
        ("v1_orla.json", "chara", CardSpec::V1),
        ("v2_mira.json", "chara", CardSpec::V2),
        ("v3_tobias.json", "ccv3", CardSpec::V3),
    ] {
        let json = fixture(file);
        let png = png_card(keyword, &json);
        let from_png = import_card(&png).unwrap();
        let from_json = import_card_json(&json).unwrap();
        assert_eq!(from_png.spec, spec, "{file}");
        assert_eq!(from_png.character, from_json.character, "{file}");
        assert_eq!(from_png.avatar_png.as_deref(), Some(&png[..]));
    }
}

#[test]
fn ccv3_is_preferred_over_chara() {
    let v2 = fixture("v2_mira.json");
    let v3 = fixture("v3_tobias.json");
    // Either order in the file.
    for texts in [[("chara", b64(&v2)), ("ccv3", b64(&v3))], [("ccv3", b64(&v3)), ("chara", b64(&v2))]] {
        let card = import_card_png(&png_with_texts(&texts)).unwrap();
        assert_eq!(card.character.name, "Tobias Quill");
        assert_eq!(card.spec, CardSpec::V3);
    }
    // A broken ccv3 next to a good chara: the chara card is used.
    let card = import_card_png(&png_with_texts(&[("ccv3", "%%%not base64%%%".into()), ("chara", b64(&v2))])).unwrap();
    assert_eq!(card.character.name, "Mira Vale");
}

#[test]
fn base64_without_padding_or_with_line_breaks() {
    let json = fixture("v1_orla.json");
    let encoded = b64(&json);
    let unpadded = encoded.trim_end_matches('=').to_owned();
    let wrapped: String =
        encoded.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\n");
    for text in [unpadded, wrapped] {
        let card = import_card_png(&png_with_texts(&[("chara", text)])).unwrap();
        assert_eq!(card.character.name, "Orla");
    }
}

#[test]
fn same_spec_json_round_trip_is_identical() {
    for (file, spec) in [("v2_mira.json", ExportSpec::V2), ("v3_tobias.json", ExportSpec::V3)] {
        let original = fixture_value(file);
        let card = import_card(&fixture(file)).unwrap();
        let exported: Value = serde_json::from_slice(&export_card_json(&card.character, spec)).unwrap();
        assert_eq!(exported, original, "{file}");
        let again = import_card(&export_card_json(&card.character, spec)).unwrap();
        assert_eq!(again.character, card.character, "{file}");
    }
}

#[test]
fn cross_spec_round_trips_lose_nothing() {
    // V2 → V3 → V2 and V3 → V2 → V3 give back the original JSON.
    for (file, spec, other) in
        [("v2_mira.json", ExportSpec::V2, ExportSpec::V3), ("v3_tobias.json", ExportSpec::V3, ExportSpec::V2)]
    {
        let original = fixture_value(file);
        let card = import_card(&fixture(file)).unwrap();
        let via = import_card(&export_card_json(&card.character, other)).unwrap();
        let back: Value = serde_json::from_slice(&export_card_json(&via.character, spec)).unwrap();
        if spec == ExportSpec::V2 {
            // V3 export adds the fields V3 requires (`group_only_greetings`, `use_regex`);
            // everything the V2 file had is there unchanged.
            assert_eq!(
                back["data"]["character_book"]["x_book_field"],
                original["data"]["character_book"]["x_book_field"]
            );
            let mut back = back.clone();
            back["data"].as_object_mut().unwrap().remove("group_only_greetings");
            for e in back["data"]["character_book"]["entries"].as_array_mut().unwrap() {
                e.as_object_mut().unwrap().remove("use_regex");
            }
            assert_eq!(back, original, "{file}");
        } else {
            assert_eq!(back, original, "{file}");
        }
    }
    // V1 → V2 → import: the same character, with the V1 fields mirrored at the top level.
    let v1 = import_card(&fixture("v1_orla.json")).unwrap();
    let exported = export_card_json(&v1.character, ExportSpec::V2);
    let value: Value = serde_json::from_slice(&exported).unwrap();
    assert_eq!(value["spec"], "chara_card_v2");
    assert_eq!(value["name"], "Orla");
    assert_eq!(value["data"]["name"], "Orla");
    assert_eq!(value["talkativeness"], "0.4");
    assert_eq!(import_card(&exported).unwrap().character, v1.character);
}

#[test]
fn png_round_trip_keeps_card_and_image() {
    for (file, spec) in [("v2_mira.json", ExportSpec::V2), ("v3_tobias.json", ExportSpec::V3)] {
        let original_png = png_card(if spec == ExportSpec::V3 { "ccv3" } else { "chara" }, &fixture(file));
        let card = import_card(&original_png).unwrap();
        let exported = export_card_png(&card.character, spec, card.avatar_png.as_deref()).unwrap();
        let again = import_card(&exported).unwrap();
        assert_eq!(again.character, card.character, "{file}");
        // The JSON inside is the original JSON.
        let inside: Value = serde_json::from_slice(&export_card_json(&again.character, spec)).unwrap();
        assert_eq!(inside, fixture_value(file));
        // The image is the same, other text chunks are kept, card chunks are not doubled.
        let (pixels_before, _) = decode_png(&original_png);
        let (pixels_after, texts) = decode_png(&exported);
        assert_eq!(pixels_before, pixels_after);
        assert!(texts.iter().any(|(k, t)| k == "Comment" && t == "made by the persona tests"));
        assert_eq!(texts.iter().filter(|(k, _)| k == "chara").count(), 1);
        let ccv3 = texts.iter().filter(|(k, _)| k == "ccv3").count();
        assert_eq!(ccv3, usize::from(spec == ExportSpec::V3));
    }
}

#[test]
fn png_export_without_avatar_makes_a_plain_image() {
    let card = import_card(&fixture("v1_orla.json")).unwrap();
    let png = export_card_png(&card.character, ExportSpec::V3, None).unwrap();
    let (pixels, texts) = decode_png(&png);
    assert_eq!(pixels.len(), 64 * 64 * 3);
    assert!(texts.iter().any(|(k, _)| k == "ccv3"));
    assert!(texts.iter().any(|(k, _)| k == "chara"));
    let again = import_card(&png).unwrap();
    assert_eq!(again.spec, CardSpec::V3);
    assert_eq!(again.character, card.character);
    // The V2 `chara` chunk alone is the same card too.
    let v2_only = png_with_texts(&[("chara", texts.iter().find(|(k, _)| k == "chara").unwrap().1.clone())]);
    assert_eq!(import_card(&v2_only).unwrap().character, card.character);
}

#[test]
fn edits_survive_export_and_unknown_extensions_stay() {
    let mut c = import_card(&fixture("v2_mira.json")).unwrap().character;
    c.description = "{{char}} now grows cacti.".into();
    let mut profile = c.profile().unwrap();
    profile.extraversion = Some(95);
    c.set_profile(Some(profile.clone()));
    c.set_inner_thoughts(InnerThoughts { enabled: false, strip_from_history: false });
    for spec in [ExportSpec::V2, ExportSpec::V3] {
        let again = import_card(&export_card_json(&c, spec)).unwrap().character;
        assert_eq!(again.description, "{{char}} now grows cacti.");
        assert_eq!(again.profile(), Some(profile.clone()));
        assert!(!again.inner_thoughts().enabled);
        assert!(again.extensions.contains_key("depth_prompt"));
        assert!(again.extensions.contains_key("some_other_tool"));
        // The V1 mirror at the top level follows the edit.
        let value: Value = serde_json::from_slice(&export_card_json(&c, spec)).unwrap();
        assert_eq!(value["description"], "{{char}} now grows cacti.");
    }
}

#[test]
fn known_fields_with_odd_types_are_kept_verbatim() {
    let json = br#"{"spec":"chara_card_v2","spec_version":"2.0","data":{"name":"Odd","description":null,
        "tags":"not-a-list","alternate_greetings":[1,2],"extensions":{},"character_book":{"entries":"nope","extensions":{}},
        "first_mes":"hi","personality":"","scenario":"","mes_example":"","creator_notes":"","system_prompt":"",
        "post_history_instructions":"","creator":"","character_version":""}}"#;
    let original: Value = serde_json::from_slice(json).unwrap();
    let card = import_card(json).unwrap();
    assert_eq!(card.character.description, "");
    assert!(card.character.tags.is_empty());
    let exported: Value = serde_json::from_slice(&export_card_json(&card.character, ExportSpec::V2)).unwrap();
    assert_eq!(exported, original);
}

#[test]
fn macros_are_case_insensitive_and_cover_all_forms() {
    let m = MacroContext::new("Mira", "Sam").with_original("ORIG");
    assert_eq!(m.apply("{{char}} meets {{user}}"), "Mira meets Sam");
    assert_eq!(m.apply("{{Char}} / {{USER}} / <BOT> / <user> / <Bot>"), "Mira / Sam / Mira / Sam / Mira");
    assert_eq!(m.apply("before {{original}} after"), "before ORIG after");
    assert_eq!(m.apply("{{char}}{{char}}"), "MiraMira");
    assert_eq!(m.apply("{{chars}} {{ user}} <b>bold</b> {{"), "{{chars}} {{ user}} <b>bold</b> {{");
    assert_eq!(m.apply("ünïcödé {{char}} 🌙"), "ünïcödé Mira 🌙");
    // A user name containing a macro is not expanded again.
    let tricky = MacroContext::new("{{user}}", "<BOT>");
    assert_eq!(tricky.apply("{{char}} and {{user}}"), "{{user}} and <BOT>");
}

#[test]
fn profile_renders_plain_sentences() {
    let profile = Profile {
        openness: Some(90),
        conscientiousness: Some(50),
        extraversion: Some(92),
        agreeableness: Some(30),
        neuroticism: Some(10),
        values: vec!["honesty".into(), " ".into(), "loyalty".into()],
        attachment: Some(AttachmentStyle::Anxious),
        mood: Some(-70),
        formality: Some(15),
        verbosity: Some(70),
        humor: Some(HumorStyle::Dry),
        quirks: vec!["says \"indeed\"".into()],
        ..Profile::default()
    };
    let lines = profile.render_lines();
    assert!(lines.contains(&"Very outgoing and talkative.".to_owned()));
    assert!(lines.contains(&"Very curious and imaginative; loves new ideas.".to_owned()));
    assert!(lines.contains(&"Blunt and sceptical of others.".to_owned()));
    assert!(lines.contains(&"Cares most about: honesty, loyalty.".to_owned()));
    assert!(lines.contains(&"Usually gloomy and downcast.".to_owned()));
    assert!(lines.contains(&"Has a dry, deadpan sense of humour.".to_owned()));
    // Middling conscientiousness says nothing; no line has a number in it.
    assert_eq!(lines.len(), 11);
    assert!(lines.iter().all(|l| !l.chars().any(|c| c.is_ascii_digit())));
    assert!(Profile::default().render_lines().is_empty());
}

#[test]
fn all_twenty_six_indicators_say_something_only_away_from_the_middle() {
    // Every indicator at its extreme: 26 lines, each different.
    let extreme: Profile = serde_json::from_value(json!({
        "openness": 95, "conscientiousness": 5, "extraversion": 95, "agreeableness": 5, "neuroticism": 95,
        "values": ["duty"], "attachment": "avoidant", "mood": 90, "formality": 95, "verbosity": 5, "humor": "dark",
        "quirks": ["hums"], "honesty": 95, "empathy": 5, "self_esteem": 95, "impulsivity": 5, "trust": 95,
        "assertiveness": 5, "optimism": 95, "expressiveness": 5, "patience": 95, "ambition": 5, "spirituality": 95,
        "principles": 5, "energy": 95, "closeness": 90
    }))
    .unwrap();
    let lines = extreme.render_lines();
    assert_eq!(lines.len(), 26, "{lines:#?}");
    assert_eq!(lines.iter().collect::<std::collections::HashSet<_>>().len(), 26);
    assert!(lines.contains(&"Deeply attached to {{user}}.".to_owned()));
    assert!(lines.contains(&"Will do anything to get their way.".to_owned()));
    // The same indicators in the middle band: nothing at all.
    let middling: Profile = serde_json::from_value(json!({
        "openness": 50, "conscientiousness": 50, "extraversion": 50, "agreeableness": 50, "neuroticism": 50, "mood": 0,
        "formality": 50, "verbosity": 50, "honesty": 50, "empathy": 45, "self_esteem": 55, "impulsivity": 50, "trust": 50,
        "assertiveness": 50, "optimism": 50, "expressiveness": 50, "patience": 50, "ambition": 50, "spirituality": 50,
        "principles": 50, "energy": 50, "closeness": 50
    }))
    .unwrap();
    assert!(middling.render_lines().is_empty(), "{:?}", middling.render_lines());
}

#[test]
fn profile_lives_under_a_namespaced_extension_key() {
    let mut c = Character::new("Plain");
    c.extensions.insert("other".into(), json!({"keep": true}));
    c.set_profile(Some(Profile { extraversion: Some(80), ..Profile::default() }));
    assert_eq!(c.extensions["confidant"]["profile"]["extraversion"], 80);
    assert_eq!(c.extensions["other"], json!({"keep": true}));
    c.set_profile(None);
    assert!(!c.extensions.contains_key("confidant"));
    // A malformed profile is an error for an editor, and "no profile" for prompts.
    c.extensions.insert("confidant".into(), json!({"profile": {"openness": 300}}));
    assert!(c.confidant().is_err());
    assert_eq!(c.profile(), None);
}

#[test]
fn greetings_and_examples() {
    let c = import_card(&fixture("v2_mira.json")).unwrap().character;
    let m = MacroContext::new(c.display_name(), "Sam");
    assert_eq!(m.apply(c.greetings()[1]), "Back again, Sam? The orchids missed you.");
    let mut c = Character::new("X");
    c.mes_example = "<START>\nA\n<start>\n\n<Start>B".into();
    assert_eq!(c.example_blocks(), ["A", "B"]);
}

#[test]
fn v3_from_charx_with_its_icon() {
    let mut card: Value = common::fixture_value("v3_tobias.json");
    card["data"]["assets"][0]["uri"] = json!("embeded://assets/icon/images/main.png");
    let icon = png_with_texts(&[]);
    let archive =
        common::charx(&[("card.json", &serde_json::to_vec(&card).unwrap()), ("assets/icon/images/main.png", &icon)]);
    let imported = import_card(&archive).unwrap();
    assert_eq!(imported.spec, CardSpec::V3);
    assert_eq!(imported.character.name, "Tobias Quill");
    assert_eq!(imported.avatar_png.as_deref(), Some(&icon[..]));
    // And on to a PNG card with that picture.
    let png = export_card_png(&imported.character, ExportSpec::V3, imported.avatar_png.as_deref()).unwrap();
    assert_eq!(decode_png(&png).0, decode_png(&icon).0);
    assert_eq!(import_card(&png).unwrap().character, imported.character);
    // No icon in the archive: no avatar, still a card.
    let archive = common::charx(&[("card.json", &fixture("v3_tobias.json"))]);
    assert!(import_card(&archive).unwrap().avatar_png.is_none());
}
