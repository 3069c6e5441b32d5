//! Outgoing HTTP (feature `http`): `wasi:http`, for plugins whose manifest requests the
//! `http` capability. The host sends a request only if the community granted `http` and
//! the request's origin (scheme, host, port) is one of its `allowed_hosts`; any other is
//! refused before a connection is made ([`HttpError::Denied`]). The host caps every
//! request's time at the call's deadline and a response body at 4 MiB.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, Method, OutgoingRequest, RequestOptions, Scheme, http_error_code,
};
use wasip2::io::streams::StreamError;

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The community has not allowed this origin (or has not granted `http`).
    Denied(String),
    /// The URL is not one this function sends (`http://` or `https://` only).
    BadUrl(String),
    /// The request failed on the way: connection, timeout, a body too large.
    Failed(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Denied(m) | Self::BadUrl(m) | Self::Failed(m) => f.write_str(m),
        }
    }
}

impl From<HttpError> for crate::Error {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Denied(m) => crate::Error::conflict(m),
            HttpError::BadUrl(m) => crate::Error::invalid_input(m),
            HttpError::Failed(m) => crate::Error::unavailable(m),
        }
    }
}

/// Sends `GET url` and waits for the whole response (at most `timeout_ms` to connect,
/// to the first byte, and between bytes; the host may cap it lower).
pub fn get(url: &str, timeout_ms: u64) -> Result<Response, HttpError> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(HttpError::BadUrl(format!(
            "{url:?}: only http:// and https:// URLs"
        )));
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.is_empty() {
        return Err(HttpError::BadUrl(format!("{url:?} has no host")));
    }
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let bad = |what: &str| HttpError::BadUrl(format!("{url:?}: invalid {what}"));
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(&Method::Get)
        .map_err(|()| bad("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| bad("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| bad("host"))?;
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| bad("path"))?;
    let nanos = timeout_ms.saturating_mul(1_000_000);
    let options = RequestOptions::new();
    // The host may refuse a timeout it does not support; its own caps apply then.
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));

    let pending = outgoing_handler::handle(request, Some(options)).map_err(|e| failed(url, &e))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(failed(url, &code)),
        Some(Err(())) | None => {
            return Err(HttpError::Failed(format!("{url}: no response")));
        }
    };
    let status = response.status();
    let incoming = response
        .consume()
        .map_err(|()| HttpError::Failed(format!("{url}: no body")))?;
    let stream = incoming
        .stream()
        .map_err(|()| HttpError::Failed(format!("{url}: no body stream")))?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                let why = http_error_code(&e)
                    .map(|c| format!("{c:?}"))
                    .unwrap_or_else(|| e.to_debug_string());
                return Err(HttpError::Failed(format!("{url}: reading the body: {why}")));
            }
        }
    }
    // The stream is a child of the body: dropped first.
    drop(stream);
    drop(incoming);
    Ok(Response { status, body })
}

fn failed(url: &str, code: &ErrorCode) -> HttpError {
    match code {
        ErrorCode::HttpRequestDenied => HttpError::Denied(format!(
            "outgoing HTTP to {url} is not allowed in this community: its admin grants `http` with the origin in `allowed_hosts`"
        )),
        other => HttpError::Failed(format!("{url}: {other:?}")),
    }
}
