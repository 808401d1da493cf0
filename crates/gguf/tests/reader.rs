//! Header parsing: round trips through the writer, and hostile or broken files.

use gguf::{Array, GgmlType, Gguf, GgufError, GgufWriter, Value};

fn sample_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", Value::String("llama".into()))
        .metadata("u8", Value::U8(7))
        .metadata("i8", Value::I8(-7))
        .metadata("u16", Value::U16(700))
        .metadata("i16", Value::I16(-700))
        .metadata("u32", Value::U32(70_000))
        .metadata("i32", Value::I32(-70_000))
        .metadata("f32", Value::F32(1.5))
        .metadata("bool", Value::Bool(true))
        .metadata("u64", Value::U64(1 << 40))
        .metadata("i64", Value::I64(-(1 << 40)))
        .metadata("f64", Value::F64(-2.25))
        .metadata("strings", Value::Array(Array::String(vec!["a".into(), "é✓".into(), String::new()])))
        .metadata("ints", Value::Array(Array::I32(vec![1, -2, 3])))
        .metadata(
            "nested",
            Value::Array(Array::Array(vec![Array::U8(vec![1, 2]), Array::F64(vec![0.5])])),
        )
        .tensor("a", &[4], GgmlType::F32, [1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect())
        .tensor("b", &[32, 2], GgmlType::Q8_0, vec![0u8; 68]);
    w.to_bytes()
}

#[test]
fn round_trip_every_value_type() {
    let bytes = sample_file();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.architecture().unwrap(), "llama");
    assert_eq!(g.get("u8"), Some(&Value::U8(7)));
    assert_eq!(g.get("i8"), Some(&Value::I8(-7)));
    assert_eq!(g.get("u16"), Some(&Value::U16(700)));
    assert_eq!(g.get("i16"), Some(&Value::I16(-700)));
    assert_eq!(g.get("u32"), Some(&Value::U32(70_000)));
    assert_eq!(g.get("i32"), Some(&Value::I32(-70_000)));
    assert_eq!(g.get("f32"), Some(&Value::F32(1.5)));
    assert_eq!(g.get("bool"), Some(&Value::Bool(true)));
    assert_eq!(g.get("u64"), Some(&Value::U64(1 << 40)));
    assert_eq!(g.get("i64"), Some(&Value::I64(-(1 << 40))));
    assert_eq!(g.get("f64"), Some(&Value::F64(-2.25)));
    assert_eq!(g.get_strings("strings").unwrap(), ["a", "é✓", ""]);
    assert_eq!(g.get_array("ints").unwrap().to_i64_vec().unwrap(), [1, -2, 3]);
    assert_eq!(
        g.get("nested"),
        Some(&Value::Array(Array::Array(vec![Array::U8(vec![1, 2]), Array::F64(vec![0.5])])))
    );
    assert_eq!(g.metadata[0].0, "general.architecture", "metadata keeps file order");

    assert_eq!(g.tensors.len(), 2);
    let a = g.tensor("a").unwrap();
    assert_eq!(g.data_offset % 32, 0);
    assert_eq!(gguf::dequantize(a.ty, g.tensor_data(&bytes, a).unwrap()).unwrap(), [1.0, 2.0, 3.0, 4.0]);
    let b = g.tensor("b").unwrap();
    assert_eq!(b.offset, 32, "second tensor is aligned");
    assert_eq!(b.byte_size(), Some(68));
    g.check_data(bytes.len() as u64).unwrap();
    assert_eq!(g.expected_file_len(), Some(bytes.len() as u64));
}

#[test]
fn typed_getters_name_the_key() {
    let bytes = sample_file();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.get_u64("u32").unwrap(), 70_000);
    assert_eq!(g.get_u64("missing"), Err(GgufError::MissingKey("missing".into())));
    let err = g.get_str("u8").unwrap_err();
    assert!(err.to_string().contains("\"u8\""), "{err}");
    assert!(g.get_u64("i8").is_err(), "negative values are not unsigned");
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = sample_file();
    let full = Gguf::parse(&bytes).unwrap();
    let header_len = full.data_offset as usize;
    for len in 0..bytes.len() {
        let prefix = &bytes[..len];
        // A prefix of a file whose full length is known: either the header is complete or the
        // reader asks for more bytes.
        match Gguf::parse_prefix(prefix, bytes.len() as u64) {
            Ok(g) => {
                assert!(len + 31 >= header_len, "parsed a {len}-byte prefix of a {header_len}-byte header");
                assert!(matches!(g.check_data(len as u64), Err(GgufError::Truncated { .. })), "len {len}");
            }
            Err(GgufError::Truncated { needed, available, .. }) => {
                assert_eq!(available, len as u64);
                assert!(needed > available);
            }
            Err(other) => panic!("prefix of {len} bytes: unexpected error {other}"),
        }
        // The same bytes taken as a whole (truncated) file: an error, or a header whose data
        // does not fit.
        if let Ok(g) = Gguf::parse(prefix) {
            assert!(g.check_data(len as u64).is_err(), "len {len}");
        }
    }
}

#[test]
fn wrong_magic_and_versions() {
    let mut bytes = sample_file();
    bytes[0] = b'X';
    assert!(matches!(Gguf::parse(&bytes), Err(GgufError::BadMagic { .. })));
    assert!(matches!(Gguf::parse(b"PK\x03\x04 this is a zip"), Err(GgufError::BadMagic { .. })));
    for version in [0u32, 1, 4, u32::MAX] {
        let mut bytes = sample_file();
        bytes[4..8].copy_from_slice(&version.to_le_bytes());
        assert_eq!(Gguf::parse(&bytes).unwrap_err(), GgufError::UnsupportedVersion(version));
    }
}

/// A header with the given counts and nothing after them.
fn header(tensors: u64, kvs: u64) -> Vec<u8> {
    let mut b = b"GGUF".to_vec();
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&tensors.to_le_bytes());
    b.extend_from_slice(&kvs.to_le_bytes());
    b
}

fn push_str(b: &mut Vec<u8>, s: &str) {
    b.extend_from_slice(&(s.len() as u64).to_le_bytes());
    b.extend_from_slice(s.as_bytes());
}

#[test]
fn absurd_counts_are_refused_before_allocating() {
    let mut b = header(u64::MAX, 0);
    b.extend_from_slice(&[0u8; 64]);
    assert!(matches!(Gguf::parse(&b), Err(GgufError::AbsurdCount { .. })));

    let mut b = header(0, u64::MAX);
    b.extend_from_slice(&[0u8; 64]);
    assert!(matches!(Gguf::parse(&b), Err(GgufError::AbsurdCount { .. })));

    // A string whose length is larger than the file.
    let mut b = header(0, 1);
    b.extend_from_slice(&u64::MAX.to_le_bytes());
    b.extend_from_slice(&[0u8; 16]);
    assert!(matches!(Gguf::parse(&b), Err(GgufError::Truncated { .. })));

    // An array of 2^62 strings.
    let mut b = header(0, 1);
    push_str(&mut b, "k");
    b.extend_from_slice(&9u32.to_le_bytes());
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&(1u64 << 62).to_le_bytes());
    b.extend_from_slice(&[0u8; 100]);
    assert!(matches!(Gguf::parse(&b), Err(GgufError::AbsurdCount { .. })));

    // Unknown value type.
    let mut b = header(0, 1);
    push_str(&mut b, "k");
    b.extend_from_slice(&13u32.to_le_bytes());
    b.extend_from_slice(&[0u8; 8]);
    assert!(matches!(Gguf::parse(&b), Err(GgufError::UnknownValueType { value_type: 13, .. })));
}

#[test]
fn deeply_nested_arrays_are_refused() {
    let mut b = header(0, 1);
    push_str(&mut b, "deep");
    b.extend_from_slice(&9u32.to_le_bytes());
    for _ in 0..1000 {
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
    }
    b.extend_from_slice(&[0u8; 4096]);
    assert!(matches!(Gguf::parse(&b), Err(GgufError::TooDeep(_))));
}

fn one_tensor(n_dims: u32, dims: &[u64], ty: u32, offset: u64, alignment: Option<u32>) -> Vec<u8> {
    let mut b = header(1, alignment.is_some() as u64);
    if let Some(a) = alignment {
        push_str(&mut b, "general.alignment");
        b.extend_from_slice(&4u32.to_le_bytes());
        b.extend_from_slice(&a.to_le_bytes());
    }
    push_str(&mut b, "t");
    b.extend_from_slice(&n_dims.to_le_bytes());
    for d in dims {
        b.extend_from_slice(&d.to_le_bytes());
    }
    b.extend_from_slice(&ty.to_le_bytes());
    b.extend_from_slice(&offset.to_le_bytes());
    b.extend_from_slice(&[0u8; 256]);
    b
}

#[test]
fn bad_tensor_infos() {
    let bad = |bytes: Vec<u8>| match Gguf::parse(&bytes) {
        Err(GgufError::BadTensor { .. }) | Err(GgufError::BadAlignment(_)) => {}
        other => panic!("expected a tensor error, got {other:?}"),
    };
    bad(one_tensor(0, &[], 0, 0, None));
    bad(one_tensor(5, &[1, 1, 1, 1, 1], 0, 0, None));
    bad(one_tensor(2, &[u64::MAX, 3], 0, 0, None));
    bad(one_tensor(1, &[4], 0, 3, None)); // misaligned offset
    bad(one_tensor(1, &[33], 8, 0, None)); // Q8_0 row not a whole block
    bad(one_tensor(1, &[4], 0, 0, Some(0)));
    bad(one_tensor(1, &[4], 0, 0, Some(48)));

    // Offsets past the end of the file, or overflowing, are caught when data is checked.
    let g = Gguf::parse(&one_tensor(1, &[4], 0, 1 << 40, None)).unwrap();
    assert!(matches!(g.check_data(1000), Err(GgufError::Truncated { .. })));
    let g = Gguf::parse(&one_tensor(1, &[4], 0, u64::MAX - 31, None)).unwrap();
    assert!(matches!(g.check_data(u64::MAX), Err(GgufError::Truncated { .. })));

    // Unknown types parse (the header is still readable) but have no data.
    let g = Gguf::parse(&one_tensor(1, &[256], 39, 0, None)).unwrap();
    assert_eq!(g.tensors[0].ty, GgmlType::Other(39));
    assert!(g.check_data(10_000).is_err());
}

#[test]
fn overlapping_tensors_are_refused() {
    let mut w = GgufWriter::new();
    w.tensor("a", &[8], GgmlType::F32, vec![0; 32]).tensor("b", &[8], GgmlType::F32, vec![0; 32]);
    let mut bytes = w.to_bytes();
    let g = Gguf::parse(&bytes).unwrap();
    // Point b's offset (the last 8 bytes of its info) at a's data.
    let info_end = g.data_offset as usize;
    let needle = 32u64.to_le_bytes();
    let pos = bytes[..info_end].windows(8).rposition(|w| w == needle).unwrap();
    bytes[pos..pos + 8].copy_from_slice(&0u64.to_le_bytes());
    let g = Gguf::parse(&bytes).unwrap();
    assert!(matches!(g.check_data(bytes.len() as u64), Err(GgufError::BadTensor { .. })));
}

#[test]
fn duplicate_keys_are_refused() {
    let mut w = GgufWriter::new();
    w.metadata("k", Value::U8(1)).metadata("k", Value::U8(2));
    assert!(matches!(Gguf::parse(&w.to_bytes()), Err(GgufError::Duplicate { .. })));
}

#[test]
fn random_corruption_never_panics() {
    let bytes = sample_file();
    // xorshift: deterministic, no dependency.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() % b.len() as u64) as usize;
            b[i] = next() as u8;
        }
        if let Ok(g) = Gguf::parse(&b) {
            let _ = g.check_data(b.len() as u64);
            for t in &g.tensors {
                if let Ok(data) = g.tensor_data(&b, t) {
                    let _ = gguf::dequantize(t.ty, data);
                }
            }
        }
    }
}
