//! `wasi:http/outgoing-handler`: outgoing HTTP for the plugins whose community granted
//! the `http` capability, and only to the origins (scheme, host, port) it allowed.
//!
//! A request to any other origin is refused with `HTTP-request-denied` before a
//! connection is made. A request, from connecting (TLS included) to its response body's
//! last byte, takes no longer than the call's deadline: the guest waits inside the host,
//! where the epoch deadline cannot stop it, so this deadline is what bounds the call. A
//! response body larger than [`MAX_RESPONSE_BYTES`] fails with `HTTP-response-body-size`.

use super::HostState;
use crate::Origin;
use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
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
            // The origin only: a query may hold credentials.
            tracing::warn!(
                scheme = request.uri().scheme_str().unwrap_or_default(),
                authority = request
                    .uri()
                    .authority()
                    .map(|a| a.as_str())
                    .unwrap_or_default(),
                "outgoing HTTP refused: origin not granted"
            );
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let asked = options.unwrap_or_default();
        let cap = |d: Option<Duration>| Some(d.map_or(self.timeout, |d| d.min(self.timeout)));
        let options = RequestOptions {
            connect_timeout: cap(asked.connect_timeout),
            first_byte_timeout: cap(asked.first_byte_timeout),
            between_bytes_timeout: cap(asked.between_bytes_timeout),
        };
        Box::new(send_capped(request, options, self.timeout))
    }
}

/// Sends the request; fails it when it is not over within `deadline` (connecting, TLS,
/// the whole body), or when its body is larger than the cap.
async fn send_capped(
    request: http::Request<WasiBody>,
    options: RequestOptions,
    deadline: Duration,
) -> Result<(http::Response<WasiBody>, IoFuture), HttpError> {
    let until = tokio::time::Instant::now() + deadline;
    let (response, io) =
        match tokio::time::timeout_at(until, default_send_request(request, Some(options))).await {
            Ok(sent) => sent?,
            Err(_) => return Err(HttpError::ConnectionTimeout),
        };
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|&l| l > MAX_RESPONSE_BYTES as u64) {
        return Err(HttpError::HttpResponseBodySize(Some(length)));
    }
    let response = response.map(|body| {
        let limited = Limited::new(body, MAX_RESPONSE_BYTES).map_err(
            |e: Box<dyn std::error::Error + Send + Sync>| {
                if e.is::<LengthLimitError>() {
                    HttpError::HttpResponseBodySize(Some(MAX_RESPONSE_BYTES as u64))
                } else {
                    match e.downcast::<HttpError>() {
                        Ok(inner) => *inner,
                        Err(other) => HttpError::InternalError(Some(other.to_string())),
                    }
                }
            },
        );
        DeadlineBody {
            inner: Box::pin(limited),
            deadline: Box::pin(tokio::time::sleep_until(until)),
        }
        .boxed_unsync()
    });
    Ok((response, Box::new(io) as IoFuture))
}

/// A body that fails once its deadline has passed.
struct DeadlineBody<B> {
    inner: Pin<Box<B>>,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<B: Body<Data = Bytes, Error = HttpError>> Body for DeadlineBody<B> {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = self.get_mut();
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(HttpError::ConnectionReadTimeout)));
        }
        this.inner.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
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
        let v6 = HttpPolicy {
            allowed: vec![Origin::parse("http://[::1]:8080").expect("origin")].into(),
            timeout: Duration::from_secs(1),
        };
        assert!(v6.allows(&"http://[::1]:8080/x".parse().expect("uri")));
        assert!(!v6.allows(&"http://[::2]:8080/x".parse().expect("uri")));
    }

    #[test]
    fn origins_are_parsed_strictly() {
        for (text, want) in [
            ("https://library.example", "https://library.example:443"),
            ("HTTP://Lib.Example:8080/", "http://lib.example:8080"),
            ("http://[::1]", "http://[::1]:80"),
            ("http://10.0.0.5:9000", "http://10.0.0.5:9000"),
        ] {
            assert_eq!(Origin::parse(text).expect(text).to_string(), want);
        }
        for bad in [
            "ftp://x",
            "https://a.example/path",
            "https://user@a.example",
            "http://::1:80",
            "https://a.example:0",
            "https://a.example:99999",
            "https://",
            "https://a b",
            "library.example",
            "https://a.example?x=1",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad}");
        }
    }
}
