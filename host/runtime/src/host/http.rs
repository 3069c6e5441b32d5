//! `wasi:http/outgoing-handler`: outgoing HTTP for the plugins whose community granted
//! the `http` capability, and only to the origins (scheme, host, port) it allowed.
//!
//! A request to any other origin is refused with `HTTP-request-denied` before a
//! connection is made. Every request's timeouts are capped at the call's deadline, and a
//! response body larger than [`MAX_RESPONSE_BYTES`] fails with `HTTP-response-body-size`.

use super::HostState;
use crate::Origin;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::future::Future;
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{
    Error as HttpError, RequestOptions, WasiBody, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
    default_send_request,
};

/// The largest response body a plugin may receive, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

type IoFuture = Box<dyn Future<Output = Result<(), HttpError>> + Send>;
type SendFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send>;

/// Where a call may send requests, and how long each may take.
#[derive(Debug, Clone, Default)]
pub(crate) struct HttpPolicy {
    /// The origins allowed (empty: none).
    pub(crate) allowed: std::sync::Arc<[Origin]>,
    /// The cap of every timeout of a request.
    pub(crate) timeout: Duration,
}

impl HttpPolicy {
    fn allows(&self, uri: &http::Uri) -> bool {
        let Some(authority) = uri.authority() else {
            return false;
        };
        // The connection goes to the authority as written: no user info.
        if authority.as_str().contains('@') {
            return false;
        }
        let scheme = uri.scheme_str().unwrap_or_default();
        let Some(port) = authority.port_u16().or(match scheme {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        }) else {
            return false;
        };
        self.allowed.iter().any(|o| {
            o.scheme == scheme && o.host.eq_ignore_ascii_case(authority.host()) && o.port == port
        })
    }
}

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _io: IoFuture,
    ) -> SendFuture {
        if !self.allows(request.uri()) {
            tracing::warn!(uri = %request.uri(), "outgoing HTTP refused: origin not granted");
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let asked = options.unwrap_or_default();
        let cap = |d: Option<Duration>| Some(d.map_or(self.timeout, |d| d.min(self.timeout)));
        let options = RequestOptions {
            connect_timeout: cap(asked.connect_timeout),
            first_byte_timeout: cap(asked.first_byte_timeout),
            between_bytes_timeout: cap(asked.between_bytes_timeout),
        };
        Box::new(send_capped(request, options))
    }
}

/// Sends the request; fails a response whose body is larger than the cap.
async fn send_capped(
    request: http::Request<WasiBody>,
    options: RequestOptions,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    let (response, io) = default_send_request(request, Some(options)).await?;
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|&l| l > MAX_RESPONSE_BYTES as u64) {
        return Err(HttpError::HttpResponseBodySize(Some(length)));
    }
    let response = response.map(|body| {
        Limited::new(body, MAX_RESPONSE_BYTES)
            .map_err(|e: Box<dyn std::error::Error + Send + Sync>| {
                if e.is::<LengthLimitError>() {
                    HttpError::HttpResponseBodySize(Some(MAX_RESPONSE_BYTES as u64))
                } else {
                    match e.downcast::<HttpError>() {
                        Ok(inner) => *inner,
                        Err(other) => HttpError::InternalError(Some(other.to_string())),
                    }
                }
            })
            .boxed_unsync()
    });
    Ok((response, Box::new(io) as IoFuture))
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            // The same table as WASI's: wasi:io finds the HTTP streams in it.
            table: &mut self.table,
            hooks: &mut self.call.http,
        }
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_granted_origins_are_allowed() {
        let policy = HttpPolicy {
            allowed: vec![
                Origin::parse("https://library.example").expect("origin"),
                Origin::parse("http://127.0.0.1:8765").expect("origin"),
            ]
            .into(),
            timeout: Duration::from_secs(1),
        };
        let allows = |u: &str| policy.allows(&u.parse::<http::Uri>().expect("uri"));
        assert!(allows("https://library.example/changes?cursor=3"));
        assert!(allows("https://LIBRARY.example:443/x"));
        assert!(allows("http://127.0.0.1:8765/changes"));
        assert!(!allows("http://library.example/changes"), "another scheme");
        assert!(!allows("https://library.example:8443/"), "another port");
        assert!(!allows("http://127.0.0.1:8766/"), "another port");
        assert!(!allows("https://evil.example/"), "another host");
        assert!(!allows("https://library.example.evil.example/"), "a suffix");
        assert!(!allows("https://user@library.example/"), "user info");
        assert!(!HttpPolicy::default().allows(&"https://library.example/".parse().expect("uri")));
    }
}
