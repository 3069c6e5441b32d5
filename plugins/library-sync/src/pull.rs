//! Pulling the next page of the library's change feed over HTTP: what `sync` does when
//! it is called with an empty input and the community configured `library_url`.
//!
//! The feed: `GET <library_url>/changes?cursor=<cursor>` (no `cursor` for the beginning)
//! answers `{"changes": [...], "next_cursor": "...", "has_more": bool}`, the changes in
//! the shape of `sync`'s input. The page becomes `sync`'s input, fetched from the shelf's
//! cursor, so it is applied exactly as a pushed page is.

use crate::config::{Call, Config};
use crate::store::Store;
use crate::sync;
use courtyard_sdk::{Error, Value};
use serde_json::json;

/// The URL of the page after `cursor`.
pub fn page_url(library_url: &str, cursor: Option<&str>) -> String {
    let base = library_url.trim_end_matches('/');
    match cursor {
        None => format!("{base}/changes"),
        Some(cursor) => format!("{base}/changes?cursor={}", encode(cursor)),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `sync`'s input for the page the library answered (`status`, `body`) to a fetch from
/// `cursor`.
pub fn page_input(cursor: Option<String>, status: u16, body: &[u8]) -> Result<Value, Error> {
    if status != 200 {
        return Err(Error::unavailable(format!(
            "the library's change feed answered HTTP {status}; try again later"
        )));
    }
    let page: Value = serde_json::from_slice(body).map_err(|e| {
        Error::unavailable(format!("the library's change feed sent no JSON page: {e}"))
    })?;
    let (Some(changes), Some(next)) = (page.get("changes"), page.get("next_cursor")) else {
        return Err(Error::unavailable(
            "the library's page has no `changes` or `next_cursor`",
        ));
    };
    Ok(json!({
        "cursor": cursor,
        "changes": changes,
        "next_cursor": next,
        "has_more": page.get("has_more").cloned().unwrap_or(Value::Bool(false)),
    }))
}

/// Fetches the page after the shelf's cursor with `fetch` (URL → status and body) and
/// returns it as `sync`'s input.
pub fn pull_input(
    store: &mut impl Store,
    config: &Config,
    fetch: impl FnOnce(&str) -> Result<(u16, Vec<u8>), Error>,
) -> Result<Value, Error> {
    let Some(library_url) = &config.library_url else {
        return Err(Error::invalid_input(
            "sync without a page fetches it from the library, but this community has no \
             `library_url` in its config; set it, or send the page",
        ));
    };
    let cursor = sync::current_cursor(store)?;
    let (status, body) = fetch(&page_url(library_url, cursor.as_deref()))?;
    page_input(cursor, status, &body)
}

/// The page after the shelf's cursor, fetched with the call's [`crate::config::Fetch`],
/// as `sync`'s input.
pub fn fetch_page(store: &mut impl Store, call: &Call) -> Result<Value, Error> {
    let Some(fetch) = call.fetch else {
        return Err(Error::unavailable("no outgoing HTTP in this context"));
    };
    pull_input(store, call.config, fetch.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use courtyard_sdk::testing::MemoryStore;

    #[test]
    fn the_url_carries_the_encoded_cursor() {
        assert_eq!(
            page_url("http://lib.example/api/", None),
            "http://lib.example/api/changes"
        );
        assert_eq!(
            page_url("http://lib.example/api", Some("c 7/&x")),
            "http://lib.example/api/changes?cursor=c%207%2F%26x"
        );
    }

    #[test]
    fn a_page_becomes_syncs_input_and_failures_are_unavailable() {
        let body = br#"{"changes": [], "next_cursor": "c1", "has_more": true}"#;
        let input = page_input(None, 200, body).expect("page");
        assert_eq!(
            input,
            json!({"cursor": null, "changes": [], "next_cursor": "c1", "has_more": true})
        );
        for (status, body) in [(503, &b"{}"[..]), (200, b"<html>"), (200, b"{}")] {
            let err = page_input(None, status, body).expect_err("refused");
            assert!(matches!(err, Error::Unavailable(_)), "{status}: {err:?}");
        }
    }

    #[test]
    fn without_a_library_url_there_is_nothing_to_pull() {
        let mut store = MemoryStore::default();
        let err =
            pull_input(&mut store, &Config::default(), |_| panic!("no fetch")).expect_err("no url");
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        let config = Config {
            library_url: Some("http://lib.example".into()),
            ..Config::default()
        };
        let mut asked = String::new();
        let input = pull_input(&mut store, &config, |url| {
            asked = url.to_owned();
            Ok((200, br#"{"changes": [], "next_cursor": "c1"}"#.to_vec()))
        })
        .expect("pulled");
        assert_eq!(asked, "http://lib.example/changes");
        assert_eq!(input["has_more"], false);
    }

    #[test]
    fn a_retried_pull_with_its_key_answers_as_the_first_without_fetching() {
        let mut store = MemoryStore::default();
        let config = Config {
            library_url: Some("http://lib.example".into()),
            ..Config::default()
        };
        let fetches = std::cell::Cell::new(0);
        let fetch = |_: &str| {
            fetches.set(fetches.get() + 1);
            let page = json!({
                "changes": [{"copy_id": "QD-1", "revision": 1, "status": "active", "title": "T"}],
                "next_cursor": format!("c{}", fetches.get()),
            });
            Ok((200, page.to_string().into_bytes()))
        };
        let call = Call {
            now_ms: 1_000,
            key: Some("nightly-1"),
            config: &config,
            fetch: Some(crate::config::Fetch(&fetch)),
        };
        let first = crate::api::dispatch(&mut store, &call, "sync", json!({})).expect("first");
        assert_eq!(first["applied"], 1, "{first}");
        let again = crate::api::dispatch(&mut store, &call, "sync", json!({})).expect("again");
        assert_eq!(first, again);
        assert_eq!(fetches.get(), 1, "the replay did not fetch");
        // Without a key, the next call fetches the next page.
        let next = Call { key: None, ..call };
        let second = crate::api::dispatch(&mut store, &next, "sync", json!({})).expect("next");
        assert_eq!(second["from_cursor"], "c1", "{second}");
        assert_eq!(fetches.get(), 2);
    }
}
