//! Checks on what visitors, residents, staff and gates send that the input schemas
//! cannot express: above all, that a face reference is a reference and never an image.
//!
//! Messages never repeat the offending value: a refused face reference may be a
//! megabyte of image data.

use crate::config::Config;
use crate::time;
use courtyard_sdk::Error;

/// The shortest accepted face reference.
pub const FACE_REF_MIN: usize = 8;
/// The longest accepted face reference (a `sha512:` prefix and 128 hex digits fit).
pub const FACE_REF_MAX: usize = 160;
/// The longest segment (between `:` and `.`) that may be something other than hex.
pub const FACE_REF_SEGMENT_MAX: usize = 64;

/// Why a face reference was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceRefProblem {
    /// Fewer than [`FACE_REF_MIN`] characters.
    TooShort,
    /// More than [`FACE_REF_MAX`] characters.
    TooLong,
    /// A `data:` URL, or a `base64,` payload.
    DataUrl,
    /// Starts with the signature of an image format, base64- or hex-encoded.
    ImageSignature(&'static str),
    /// Holds `+`, `/` or `=`: base64, or a path.
    Base64,
    /// A character outside `A-Z a-z 0-9 - _ . :` (spaces, control or non-ASCII).
    BadCharacter,
    /// A segment longer than [`FACE_REF_SEGMENT_MAX`] that is not hex: an encoded blob.
    EncodedBlob,
}

impl FaceRefProblem {
    /// A message for the integrator, naming the field.
    pub fn message(self, field: &str) -> String {
        let what = match self {
            Self::TooShort => format!("has fewer than {FACE_REF_MIN} characters"),
            Self::TooLong => format!(
                "has more than {FACE_REF_MAX} characters, so it cannot be a template id or a hash"
            ),
            Self::DataUrl => "is a data URL (image bytes)".to_owned(),
            Self::ImageSignature(format) => {
                format!("starts like {format} image data")
            }
            Self::Base64 => {
                "contains '+', '/' or '=': it looks like base64 data or a path".to_owned()
            }
            Self::BadCharacter => {
                "may only contain ASCII letters, digits, '-', '_', '.' and ':'".to_owned()
            }
            Self::EncodedBlob => format!(
                "has a segment of more than {FACE_REF_SEGMENT_MAX} characters that is not hex: it looks like encoded data"
            ),
        };
        format!(
            "{field} {what}; send the face template id or hash from the face service (for example \"sha256:<64 hex digits>\"), never an image"
        )
    }
}

/// Image signatures: base64 (and base64url) of the first bytes, and their hex.
const SIGNATURES: &[(&str, &str)] = &[
    ("/9j/", "JPEG"),
    ("_9j_", "JPEG"),
    ("iVBORw0KGgo", "PNG"),
    ("R0lGOD", "GIF"),
    ("UklGR", "WebP/RIFF"),
    ("AAAAGGZ0eX", "HEIF/AVIF"),
    ("AAAAHGZ0eX", "HEIF/AVIF"),
    ("AAAAIGZ0eX", "HEIF/AVIF"),
    ("Qk0", "BMP"),
    ("Qk1", "BMP"),
    ("Qk2", "BMP"),
    ("Qk3", "BMP"),
    ("SUkqA", "TIFF"),
    ("TU0AK", "TIFF"),
    ("ffd8ffe0", "JPEG"),
    ("ffd8ffe1", "JPEG"),
    ("ffd8ffdb", "JPEG"),
    ("ffd8ffee", "JPEG"),
    ("89504e47", "PNG"),
    ("47494638", "GIF"),
];

/// Checks that `value` is a face reference — a template id or a hash — and not image
/// data: no data URL, no image signature (base64, base64url or hex), no base64
/// alphabet (`+ / =`), 8 to 160 characters of `A-Z a-z 0-9 - _ . :`, and no segment
/// (between `:` and `.`) longer than 64 characters unless it is hex (a hash).
pub fn face_ref_problem(value: &str) -> Option<FaceRefProblem> {
    let head: String = value
        .chars()
        .take(16)
        .collect::<String>()
        .to_ascii_lowercase();
    if head.starts_with("data:") || value.contains("base64,") {
        return Some(FaceRefProblem::DataUrl);
    }
    // At the start, or after a `scheme:` prefix.
    for start in std::iter::once(value).chain(value.split(':').skip(1).take(3)) {
        for (signature, format) in SIGNATURES {
            let hex = signature.len() == 8 && signature.bytes().all(|b| b.is_ascii_hexdigit());
            let found = if hex {
                start
                    .get(..signature.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(signature))
            } else {
                start.starts_with(signature)
            };
            // Three-character signatures only count on something long.
            if found && (signature.len() > 3 || start.len() > FACE_REF_SEGMENT_MAX) {
                return Some(FaceRefProblem::ImageSignature(format));
            }
        }
    }
    if value.contains(['+', '/', '=']) {
        return Some(FaceRefProblem::Base64);
    }
    let len = value.chars().count();
    if len > FACE_REF_MAX {
        return Some(FaceRefProblem::TooLong);
    }
    if len < FACE_REF_MIN {
        return Some(FaceRefProblem::TooShort);
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Some(FaceRefProblem::BadCharacter);
    }
    let blob = value.split([':', '.']).any(|segment| {
        segment.len() > FACE_REF_SEGMENT_MAX && !segment.bytes().all(|b| b.is_ascii_hexdigit())
    });
    if blob {
        return Some(FaceRefProblem::EncodedBlob);
    }
    None
}

/// [`face_ref_problem`] as an `invalid_input` refusal naming `field`; the face
/// reference in [canonical form](canonical_face_ref) when it is one.
pub fn face_ref(field: &str, value: &str) -> Result<String, Error> {
    match face_ref_problem(value) {
        None => Ok(canonical_face_ref(value)),
        Some(problem) => Err(Error::invalid_input(problem.message(field))),
    }
}

/// The fewest hex digits that make a face reference a hash (128 bits).
pub const FACE_HASH_MIN_HEX: usize = 32;

/// The one form a face reference is stored, indexed and compared in: a hash — at least
/// [`FACE_HASH_MIN_HEX`] hex digits, alone or after `algorithm:` prefixes of letters,
/// digits and `-` (`SHA256:9F86…`) — in lower case (`sha256:9f86…`); any other
/// template id exactly as given (ids such as base64url are case-sensitive).
pub fn canonical_face_ref(value: &str) -> String {
    let (prefixes, body) = match value.rsplit_once(':') {
        Some((prefixes, body)) => (Some(prefixes), body),
        None => (None, value),
    };
    let hash = body.len() >= FACE_HASH_MIN_HEX
        && body.bytes().all(|b| b.is_ascii_hexdigit())
        && prefixes.is_none_or(|p| {
            p.split(':').all(|segment| {
                !segment.is_empty()
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
        });
    if hash {
        value.to_ascii_lowercase()
    } else {
        value.to_owned()
    }
}

/// The country code of mainland China.
const MAINLAND: &str = "86";

/// Whether `national` is a mainland mobile number: 11 digits, `1[3-9]…`.
fn mainland_mobile(national: &str) -> bool {
    let b = national.as_bytes();
    b.len() == 11
        && b.iter().all(u8::is_ascii_digit)
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
}

/// The one form a phone number is stored, indexed and compared in (the input schemas
/// allow digits with an optional leading `+`):
///
/// - a mainland number is written nationally, without its country code: `+86`, `0086`
///   and, before a mobile number, a bare `86` are dropped (`+8613900000000`,
///   `008613900000000` and `8613900000000` are `13900000000`); a landline given with
///   its country code gets the trunk `0` it is dialled with at home
///   (`+861012345678` is `01012345678`);
/// - another country's number is `+` and its digits (`0044…` is `+44…`);
/// - a number without `+` or `00` is a national (mainland) number, kept as given.
///
/// Applying it twice changes nothing.
pub fn canonical_phone(value: &str) -> String {
    let international = value.strip_prefix('+').or_else(|| value.strip_prefix("00"));
    match international {
        Some(digits) => match digits.strip_prefix(MAINLAND) {
            Some("") => format!("+{MAINLAND}"),
            Some(national) if national.starts_with('0') || mainland_mobile(national) => {
                national.to_owned()
            }
            Some(national) => format!("0{national}"),
            None => format!("+{digits}"),
        },
        None => match value.strip_prefix(MAINLAND) {
            Some(national) if mainland_mobile(national) => national.to_owned(),
            _ => value.to_owned(),
        },
    }
}

/// A person's name: not blank, no control characters. Returns it trimmed.
pub fn name(field: &str, value: &str) -> Result<String, Error> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid_input(format!("{field} is blank")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::invalid_input(format!(
            "{field} contains control characters"
        )));
    }
    Ok(trimmed.to_owned())
}

/// Optional free text (a purpose, a reason): trimmed, `None` when blank, no control
/// characters except line breaks.
pub fn note(field: &str, value: Option<&str>) -> Result<Option<String>, Error> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid_input(format!(
            "{field} contains control characters"
        )));
    }
    Ok(Some(value.to_owned()))
}

/// Checks a visit window `[from_ms, to_ms)` at `now`: it must end after it starts,
/// not be over already, and not be longer than the community allows.
pub fn window(config: &Config, now: i64, from_ms: i64, to_ms: i64) -> Result<(), Error> {
    if to_ms <= from_ms {
        return Err(Error::invalid_input(format!(
            "the visit window must end after it starts: to_ms ({}) is not after from_ms ({})",
            time::rfc3339(to_ms),
            time::rfc3339(from_ms)
        )));
    }
    if to_ms <= now {
        return Err(Error::invalid_input(format!(
            "the visit window ended at {} and it is now {}: ask for a window that ends in the future",
            time::rfc3339(to_ms),
            time::rfc3339(now)
        )));
    }
    if let Some(days) = config.max_window_days {
        let max = i64::from(days) * crate::config::DAY_MS;
        if to_ms - from_ms > max {
            return Err(Error::invalid_input(format!(
                "the visit window lasts {}; this community allows at most {} (max_window_days)",
                time::duration(to_ms - from_ms),
                time::duration(max)
            )));
        }
    }
    Ok(())
}

/// A phone number with all but its first three and last four digits hidden
/// (`138****5678`), for events that do not need the full number.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    let n = chars.len();
    let (keep_head, keep_tail) = if n >= 10 { (3, 4) } else { (0, 2.min(n)) };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_head || i >= n - keep_tail {
                *c
            } else {
                '*'
            }
        })
        .collect()
}

/// The alphabet of pass codes (Crockford's base32: no I, L, O, U).
pub const PASS_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// The length of a pass code.
pub const PASS_LEN: usize = 8;

/// A pass code as typed or scanned, normalised: upper case, spaces and dashes dropped,
/// `O` read as `0` and `I`/`L` as `1`. `None` when it cannot be a pass code.
pub fn normalize_pass_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect();
    (code.len() == PASS_LEN && code.bytes().all(|b| PASS_ALPHABET.contains(&b))).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DAY_MS;

    const SHA256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn face_references_that_are_accepted() {
        let sha512 = "a".repeat(128);
        let prefixed_sha512 = format!("sha512:{sha512}");
        let prefixed = format!("sha256:{SHA256}");
        let upper = SHA256.to_ascii_uppercase();
        for ok in [
            SHA256,
            prefixed.as_str(),
            upper.as_str(),
            sha512.as_str(),
            prefixed_sha512.as_str(),
            "tpl-0001",
            "3f2b8c1e-7d4a-4e6b-9a0c-5d8e2f1b7c3a",
            "megvii:tpl:8c2f41d07a",
            "hik.face.000123456789",
            "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg", // base64url of a SHA-256
            "Qk2_short_id", // a BMP-like start on a short id is not an image
        ] {
            assert_eq!(face_ref_problem(ok), None, "{ok}");
            assert!(face_ref("face_ref", ok).is_ok());
        }
    }

    #[test]
    fn face_references_that_are_refused_and_why() {
        use FaceRefProblem::*;
        let jpeg_b64 = "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJDRENDg8QEBEQCgwSExIQEw8QEBD/";
        let long_alnum = "A".repeat(2000);
        let long_segment = format!("tpl:{}", "z".repeat(65));
        let b64url_sha512 = "z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg_SpIdNs6c5H0NE8XYXysP-DGNKHfuwvY7kxvUdBeoGlODJ6-SfaPg";
        let cases: Vec<(String, FaceRefProblem)> = vec![
            (format!("data:image/jpeg;base64,{jpeg_b64}"), DataUrl),
            ("DATA:image/png;base64,iVBORw0KGgo=".into(), DataUrl),
            (format!("x:base64,{}", "A".repeat(20)), DataUrl),
            (jpeg_b64.into(), ImageSignature("JPEG")),
            (
                "_9j_4AAQSkZJRgABAQEASABIAAD_2wBD".into(),
                ImageSignature("JPEG"),
            ),
            (
                "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB".into(),
                ImageSignature("PNG"),
            ),
            ("R0lGODlhAQABAIAAAP".into(), ImageSignature("GIF")),
            (
                "UklGRiQAAABXRUJQVlA4IBgAAAAwAQCdASoBAAEAAwA0JaQAA3AA".into(),
                ImageSignature("WebP/RIFF"),
            ),
            (
                "AAAAIGZ0eXBhdmlmAAAAAGF2aWZtaWYxbWlhZk1BMUIAAADybWV0YQ".into(),
                ImageSignature("HEIF/AVIF"),
            ),
            (format!("Qk2{}", "A".repeat(70)), ImageSignature("BMP")),
            (
                "FFD8FFE000104A46494600010100000100010000".into(),
                ImageSignature("JPEG"),
            ),
            (
                "89504e470d0a1a0a0000000d49484452".into(),
                ImageSignature("PNG"),
            ),
            ("img:iVBORw0KGgoAAAANSUhEUg".into(), ImageSignature("PNG")),
            ("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo+Lw==".into(), Base64),
            ("abcdefgh+ijk".into(), Base64),
            ("faces/0001.jpg".into(), Base64),
            ("sha256:abc=".into(), Base64),
            (long_alnum, TooLong),
            (format!("sha256:{}", "a".repeat(160)), TooLong),
            ("".into(), TooShort),
            ("abc".into(), TooShort),
            ("tpl-001".into(), TooShort),
            ("tpl 0001 x".into(), BadCharacter),
            ("tpl-0001\n".into(), BadCharacter),
            ("面部模板-00001".into(), BadCharacter),
            ("tpl_0001;drop".into(), BadCharacter),
            (long_segment, EncodedBlob),
            (b64url_sha512.into(), EncodedBlob),
        ];
        for (value, problem) in cases {
            assert_eq!(face_ref_problem(&value), Some(problem), "{value}");
            match face_ref("face_ref", &value) {
                Err(Error::InvalidInput(m)) => {
                    assert!(m.starts_with("face_ref "), "{m}");
                    assert!(m.contains("never an image"), "{m}");
                    if value.len() > 20 {
                        assert!(!m.contains(&value), "the message repeats the value: {m}");
                    }
                }
                other => panic!("{value}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_megabyte_image_is_refused_quickly_without_echo() {
        let blob = format!("/9j/{}", "A".repeat(1 << 20));
        let err = face_ref("face_ref", &blob).expect_err("refused");
        assert!(err.to_string().len() < 400);
    }

    #[test]
    fn names_and_notes() {
        assert_eq!(name("visitor_name", "  Li Wei ").as_deref(), Ok("Li Wei"));
        assert!(
            matches!(name("visitor_name", "   "), Err(Error::InvalidInput(m)) if m.contains("visitor_name is blank"))
        );
        assert!(matches!(
            name("visitor_name", "Li\u{7}"),
            Err(Error::InvalidInput(_))
        ));
        assert_eq!(note("purpose", Some("  ")), Ok(None));
        assert_eq!(note("purpose", None), Ok(None));
        assert_eq!(note("purpose", Some(" a\nb ")), Ok(Some("a\nb".to_owned())));
        assert!(note("purpose", Some("a\u{0}")).is_err());
    }

    #[test]
    fn windows() {
        let c = Config::default();
        let now = 1_000 * DAY_MS;
        assert!(
            window(&c, now, now - DAY_MS, now + DAY_MS).is_ok(),
            "started already"
        );
        assert!(
            window(&c, now, now + DAY_MS, now + 40_000 * DAY_MS).is_ok(),
            "no max by default"
        );
        let err = window(&c, now, now + 10, now + 10).expect_err("empty");
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains("must end after it starts")),
            "{err}"
        );
        let err = window(&c, now, now - 2 * DAY_MS, now).expect_err("over");
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains("ends in the future")),
            "{err}"
        );
        let limited = Config {
            max_window_days: Some(2),
            ..Config::default()
        };
        assert!(window(&limited, now, now, now + 2 * DAY_MS).is_ok());
        let err = window(&limited, now, now, now + 2 * DAY_MS + 1).expect_err("too long");
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains("at most 2 days (max_window_days)")),
            "{err}"
        );
    }

    #[test]
    fn phones_have_one_canonical_form() {
        for (given, canonical) in [
            ("13900000000", "13900000000"),
            ("+8613900000000", "13900000000"),
            ("008613900000000", "13900000000"),
            ("8613900000000", "13900000000"),
            ("+861012345678", "01012345678"),
            ("+8601012345678", "01012345678"),
            ("00861012345678", "01012345678"),
            ("01012345678", "01012345678"),
            ("861012345678", "861012345678"),
            ("86123456", "86123456"),
            ("+442071234567", "+442071234567"),
            ("00442071234567", "+442071234567"),
            ("+85291234567", "+85291234567"),
            ("95588", "95588"),
            ("+86", "+86"),
        ] {
            assert_eq!(canonical_phone(given), canonical, "{given}");
            assert_eq!(
                canonical_phone(canonical),
                canonical,
                "idempotent: {canonical}"
            );
        }
    }

    #[test]
    fn face_hashes_have_one_canonical_form() {
        let lower = format!("sha256:{SHA256}");
        for given in [
            lower.clone(),
            lower.to_ascii_uppercase(),
            format!("Sha256:{}", SHA256.to_ascii_uppercase()),
        ] {
            assert_eq!(canonical_face_ref(&given), lower, "{given}");
            assert_eq!(face_ref("face_ref", &given).as_deref(), Ok(lower.as_str()));
        }
        assert_eq!(canonical_face_ref(&SHA256.to_ascii_uppercase()), SHA256);
        for kept in [
            "n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg",
            "3F2B8C1E-7D4A-4E6B-9A0C-5D8E2F1B7C3A",
            "Megvii:TPL:8C2F41D07A",
            "tpl-visitor-0002",
            "ABCDEF0123456789ABCDEF012345678",
        ] {
            assert_eq!(canonical_face_ref(kept), kept, "{kept}");
        }
    }

    #[test]
    fn phones_are_masked() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("+8613812345678"), "+86*******5678");
        assert_eq!(mask_phone("12345"), "***45");
        assert_eq!(mask_phone("1"), "1");
    }

    #[test]
    fn pass_codes_are_normalised() {
        assert_eq!(
            normalize_pass_code("7k3m-q9zo").as_deref(),
            Some("7K3MQ9Z0")
        );
        assert_eq!(
            normalize_pass_code("il 23 4567").as_deref(),
            Some("11234567")
        );
        assert_eq!(normalize_pass_code("ABCDEFGH").as_deref(), Some("ABCDEFGH"));
        assert_eq!(normalize_pass_code("ABCDEFG"), None);
        assert_eq!(normalize_pass_code("ABCDEFGHJ"), None);
        assert_eq!(
            normalize_pass_code("ABCDEFGU"),
            None,
            "U is not in the alphabet"
        );
        assert_eq!(normalize_pass_code("https://x"), None);
        assert_eq!(normalize_pass_code("ÄBCDEFGH"), None);
    }
}
