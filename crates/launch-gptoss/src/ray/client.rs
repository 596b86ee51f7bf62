//! A small HTTP/1.1 client (hyper 1) for the dashboard REST API and the Serve endpoint.
//!
//! One connection per request, every request bounded by a timeout (a request to a Serve
//! route whose replicas are pending hangs forever otherwise), bodies capped in size.
//! Only `http://` is supported: Ray's dashboard and Serve proxy speak plain HTTP.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::error::RayError;

/// Largest response body accepted (GET /api/serve/applications/ can be large with many apps).
const MAX_BODY: usize = 64 << 20;

/// A parsed `http://host:port[/prefix]` base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// Host as written (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// Path prefix without trailing slash ("" for none).
    pub prefix: String,
}

impl BaseUrl {
    /// Parse `http://host[:port][/prefix]`; a missing scheme means `http://`.
    pub fn parse(what: &'static str, url: &str, default_port: u16) -> Result<BaseUrl, RayError> {
        let bad = |reason: &str| RayError::BadUrl {
            what,
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = url.trim();
        let rest =
            if let Some((scheme, rest)) = trimmed.split_once("://") {
                match scheme.to_ascii_lowercase().as_str() {
                    "http" => rest,
                    "https" => {
                        return Err(bad(
                            "https is not supported (Ray's dashboard and Serve speak plain HTTP)",
                        ))
                    }
                    "ray" => return Err(bad(
                        "this is a Ray client address; give the dashboard's HTTP address instead \
                         (e.g. http://<head>:8265)",
                    )),
                    _ => return Err(bad("only http:// URLs are supported")),
                }
            } else {
                trimmed
            };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(after) = authority.strip_prefix('[') {
            let (h, tail) = after
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in host"))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|_| bad("bad port"))?,
                None if tail.is_empty() => default_port,
                None => return Err(bad("junk after ']'")),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse::<u16>().map_err(|_| bad("bad port"))?,
                ),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if port == 0 {
            return Err(bad("port 0"));
        }
        let prefix = path.trim_end_matches('/').to_string();
        Ok(BaseUrl { host, port, prefix })
    }

    /// `host:port` as it goes into a Host header (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The full URL of `path` (which starts with '/').
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}{}", self.authority(), self.prefix, path)
    }

    /// True when the host is a loopback name or address.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority(), self.prefix)
    }
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Bytes,
}

impl Response {
    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self, url: &str) -> Result<serde_json::Value, RayError> {
        serde_json::from_slice(&self.body).map_err(|e| RayError::BadResponse {
            url: url.to_string(),
            reason: format!("not JSON ({e}): {}", super::error::tail(&self.text(), 300)),
        })
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Send one request; `what` names the server in errors ("the Ray dashboard").
pub async fn request(
    what: &'static str,
    base: &BaseUrl,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Response, RayError> {
    let url = base.url(path);
    let method_name = method.to_string();
    match tokio::time::timeout(timeout, send(what, base, method, &url, body)).await {
        Ok(r) => r,
        Err(_) => Err(RayError::RequestTimeout {
            method: method_name,
            url,
            secs: timeout.as_secs().max(1),
        }),
    }
}

async fn send(
    what: &'static str,
    base: &BaseUrl,
    method: Method,
    url: &str,
    body: Option<Vec<u8>>,
) -> Result<Response, RayError> {
    let unreachable = |reason: String| RayError::Unreachable {
        what,
        url: base.to_string(),
        reason,
    };
    let stream = TcpStream::connect((base.host.as_str(), base.port))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(format!("HTTP handshake: {e}")))?;
    let conn_task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let path_and_query = url
        .split_once("://")
        .and_then(|(_, r)| r.find('/').map(|i| r[i..].to_string()))
        .unwrap_or_else(|| "/".to_string());
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(path_and_query)
        .header(hyper::header::HOST, base.authority())
        .header(hyper::header::ACCEPT, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("launch-gptoss/", env!("CARGO_PKG_VERSION")),
        );
    let payload = match body {
        Some(b) => {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
            Bytes::from(b)
        }
        None => Bytes::new(),
    };
    let req = builder
        .body(Full::new(payload))
        .map_err(|e| RayError::BadUrl {
            what,
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| RayError::BadResponse {
                url: url.to_string(),
                reason: format!("{method} failed: {e}"),
            })?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| RayError::BadResponse {
                url: url.to_string(),
                reason: format!("reading the body: {e}"),
            })?
            .to_bytes();
        Ok(Response { status, body })
    }
    .await;
    conn_task.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_urls() {
        let u = BaseUrl::parse("x", "http://127.0.0.1:8265", 80).unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.prefix.as_str()),
            ("127.0.0.1", 8265, "")
        );
        assert_eq!(u.url("/api/version"), "http://127.0.0.1:8265/api/version");
        assert!(u.is_loopback());
        let u = BaseUrl::parse("x", "head.example:9000/", 80).unwrap();
        assert_eq!((u.host.as_str(), u.port), ("head.example", 9000));
        assert!(!u.is_loopback());
        let u = BaseUrl::parse("x", "http://10.0.0.1", 8000).unwrap();
        assert_eq!(u.port, 8000);
        let u = BaseUrl::parse("x", "http://[::1]:8000/serve/", 80).unwrap();
        assert_eq!(u.authority(), "[::1]:8000");
        assert_eq!(u.url("/v1/models"), "http://[::1]:8000/serve/v1/models");
        for bad in [
            "https://a:1",
            "ray://a:10001",
            "http://",
            "http://a:xyz",
            "ftp://a",
            "http://u:p@a:1",
        ] {
            assert!(BaseUrl::parse("x", bad, 80).is_err(), "{bad}");
        }
    }
}
