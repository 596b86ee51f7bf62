//! One blocking HTTP client for control-plane calls (feature `http`): Ray's dashboard REST
//! API, readiness probes, status pages. Measurement traffic (run-bm's streams) has its own
//! tuned client; everything else uses this one.
//!
//! Every request is bounded: a connect timeout, a whole-request timeout (a request to a
//! Serve route whose replicas are pending hangs forever otherwise) and a maximum body size.
//! HTTP error statuses are returned as responses, not errors: the caller decides what a 404
//! means. Redirects are not followed and proxy environment variables are ignored: control
//! calls go straight to the address given.

use std::fmt;
use std::time::Duration;

use crate::url::BaseUrl;

/// Default largest response body (a Serve state with many applications is a few MB).
pub const DEFAULT_MAX_BODY: u64 = 64 << 20;

/// HTTP method of a control-plane call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
    Post,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Limits of a [`Client`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Whole request, connect to last body byte.
    pub timeout: Duration,
    /// TCP (and TLS) connection set-up, name resolution included.
    pub connect_timeout: Duration,
    /// Largest response body accepted.
    pub max_body_bytes: u64,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_body_bytes: DEFAULT_MAX_BODY,
            user_agent: format!("pd-lab/{}", crate::VERSION),
        }
    }
}

/// What can go wrong with one call. An HTTP error status is not an error here.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Nothing answered: refused, unknown host, no route, connect timeout.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// Connected, but the whole exchange took longer than the timeout.
    #[error("{method} {url}: no answer within {secs} s")]
    Timeout {
        method: Method,
        url: String,
        secs: u64,
    },
    /// The response body is larger than the client accepts.
    #[error("{method} {url}: the response is larger than {limit} bytes")]
    TooLarge {
        method: Method,
        url: String,
        limit: u64,
    },
    /// Anything else (protocol error, connection reset, TLS failure).
    #[error("{method} {url} failed: {reason}")]
    Failed {
        method: Method,
        url: String,
        reason: String,
    },
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// 2xx?
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// A blocking client with bounded requests. Cheap to clone; connections are reused.
#[derive(Debug, Clone)]
pub struct Client {
    agent: ureq::Agent,
    opts: ClientOptions,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(opts.user_agent.as_str())
            .timeout_global(Some(opts.timeout))
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_resolve(Some(opts.connect_timeout))
            .build();
        Client {
            agent: config.into(),
            opts,
        }
    }

    /// The limits this client applies.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// `GET base/path`.
    pub fn get(&self, base: &BaseUrl, path: &str) -> Result<Response, HttpError> {
        self.request(Method::Get, base, path, None)
    }

    /// Send one request; `body` (JSON) goes with PUT and POST.
    pub fn request(
        &self,
        method: Method,
        base: &BaseUrl,
        path: &str,
        json_body: Option<&[u8]>,
    ) -> Result<Response, HttpError> {
        let url = base.join(path);
        let sent = match method {
            Method::Get => self
                .agent
                .get(&url)
                .header("accept", "application/json")
                .call(),
            Method::Delete => self
                .agent
                .delete(&url)
                .header("accept", "application/json")
                .call(),
            Method::Put | Method::Post => {
                let builder = if method == Method::Put {
                    self.agent.put(&url)
                } else {
                    self.agent.post(&url)
                };
                builder
                    .header("accept", "application/json")
                    .header("content-type", "application/json")
                    .send(json_body.unwrap_or_default())
            }
        };
        let mut resp = sent.map_err(|e| self.classify(method, &url, e))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp
            .body_mut()
            .with_config()
            .limit(self.opts.max_body_bytes)
            .read_to_vec()
            .map_err(|e| self.classify(method, &url, e))?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn classify(&self, method: Method, url: &str, e: ureq::Error) -> HttpError {
        use ureq::Timeout as T;
        let url = url.to_string();
        match e {
            ureq::Error::Timeout(T::Connect | T::Resolve) => HttpError::Unreachable {
                url,
                reason: format!(
                    "no connection within {} s",
                    self.opts.connect_timeout.as_secs_f64()
                ),
            },
            ureq::Error::Timeout(_) => HttpError::Timeout {
                method,
                url,
                secs: self.opts.timeout.as_secs().max(1),
            },
            ureq::Error::HostNotFound => HttpError::Unreachable {
                url,
                reason: "unknown host".into(),
            },
            ureq::Error::ConnectionFailed => HttpError::Unreachable {
                url,
                reason: "connection failed".into(),
            },
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::AddrNotAvailable
                        | std::io::ErrorKind::HostUnreachable
                        | std::io::ErrorKind::NetworkUnreachable
                ) =>
            {
                HttpError::Unreachable {
                    url,
                    reason: io.to_string(),
                }
            }
            ureq::Error::BodyExceedsLimit(limit) => HttpError::TooLarge { method, url, limit },
            other => HttpError::Failed {
                method,
                url,
                reason: other.to_string(),
            },
        }
    }
}

impl Default for Client {
    fn default() -> Self {
        Client::new(ClientOptions::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Serve each accepted connection with `reply` (raw HTTP), in a thread; returns the base URL.
    fn one_shot_server(reply: &'static [u8]) -> (BaseUrl, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            // Read the head, then as many body bytes as Content-Length says.
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).unwrap_or(0);
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if req.len() >= end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let _ = s.write_all(reply);
            req
        });
        (
            BaseUrl::parse(&format!("http://127.0.0.1:{port}"), 80).unwrap(),
            h,
        )
    }

    #[test]
    fn error_statuses_are_responses_and_headers_are_read() {
        let (base, h) = one_shot_server(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 5\r\nX-Thing: Yes\r\n\r\nnope!",
        );
        let r = Client::default().get(&base, "/v1/models").unwrap();
        assert_eq!((r.status, r.text().as_str()), (404, "nope!"));
        assert_eq!(r.header("x-thing"), Some("Yes"));
        assert!(!r.is_success());
        let req = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(req.starts_with("GET /v1/models HTTP/1.1"), "{req}");
    }

    #[test]
    fn bodies_are_bounded() {
        let (base, _h) = one_shot_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789");
        let c = Client::new(ClientOptions {
            max_body_bytes: 10,
            ..ClientOptions::default()
        });
        let e = c.get(&base, "/").unwrap_err();
        assert!(matches!(e, HttpError::TooLarge { limit: 10, .. }), "{e}");
    }

    #[test]
    fn a_silent_server_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = BaseUrl::parse(&format!("http://{}", l.local_addr().unwrap()), 80).unwrap();
        let c = Client::new(ClientOptions {
            timeout: Duration::from_millis(300),
            ..ClientOptions::default()
        });
        let started = std::time::Instant::now();
        let e = c.get(&base, "/").unwrap_err();
        assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(l);
    }

    #[test]
    fn a_closed_port_is_unreachable() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let base = BaseUrl::parse(&format!("http://127.0.0.1:{port}"), 80).unwrap();
        let e = Client::default().get(&base, "/").unwrap_err();
        assert!(matches!(e, HttpError::Unreachable { .. }), "{e}");
        assert!(e
            .to_string()
            .contains(&format!("cannot reach http://127.0.0.1:{port}/")));
    }

    #[test]
    fn put_sends_the_json_body() {
        let (base, h) = one_shot_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let r = Client::default()
            .request(Method::Put, &base, "/api/x/", Some(br#"{"a":1}"#))
            .unwrap();
        assert!(r.is_success());
        let req = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(req.starts_with("PUT /api/x/ HTTP/1.1"), "{req}");
        assert!(req
            .to_ascii_lowercase()
            .contains("content-type: application/json"));
        assert!(req.ends_with(r#"{"a":1}"#), "{req}");
    }
}
