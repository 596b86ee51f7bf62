//! Base URLs of the endpoints the tools talk to (OpenAI-compatible servers, Ray's dashboard,
//! Prometheus metrics): one parser for every tool.
//!
//! Accepted: `http://host[:port][/prefix]` and `https://…`; a missing scheme means
//! `http://`. IPv6 hosts are written in brackets. Credentials in the URL (`user:pass@`) are
//! refused: they would end up in records and logs. Ports must be 1–65535.

use std::fmt;

use crate::error::{Error, Result};

/// URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A parsed base URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BaseUrl {
    pub scheme: Scheme,
    /// Host as written (IPv6 without brackets), lower-cased.
    pub host: String,
    pub port: u16,
    /// Path prefix without trailing slash ("" for none), e.g. `/llm`.
    pub prefix: String,
}

impl BaseUrl {
    /// Parse a base URL; `default_port` applies to `http://` without a port (`https://`
    /// defaults to 443).
    pub fn parse(url: &str, default_port: u16) -> Result<BaseUrl> {
        let bad = |reason: &str| {
            Error::invalid(
                "URL",
                format!("'{}': {reason}", redact_userinfo(url.trim())),
            )
        };
        let trimmed = url.trim();
        if trimmed.is_empty() {
            return Err(bad("empty"));
        }
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((s, rest)) => match s.to_ascii_lowercase().as_str() {
                "http" => (Scheme::Http, rest),
                "https" => (Scheme::Https, rest),
                other => {
                    return Err(bad(&format!(
                        "unsupported scheme '{other}' (use http:// or https://)"
                    )))
                }
            },
            None => (Scheme::Http, trimmed),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if path.contains(['?', '#']) {
            return Err(bad("a base URL has no query or fragment"));
        }
        if authority.contains('@') {
            return Err(bad(
                "credentials in the URL are not supported (use --api-key or a header)",
            ));
        }
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        let default_port = match scheme {
            Scheme::Http => default_port,
            Scheme::Https => 443,
        };
        let parse_port = |p: &str| -> Result<u16> {
            match p.parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
                _ => Err(bad(&format!("port '{p}' is not in 1–65535"))),
            }
        };
        let (host, port) = if let Some(after) = authority.strip_prefix('[') {
            let (h, tail) = after
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in the host"))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => parse_port(p)?,
                None if tail.is_empty() => default_port,
                None => return Err(bad("unexpected text after ']'")),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), parse_port(p)?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '\\')
        {
            return Err(bad(
                "the host contains characters not allowed in a host name",
            ));
        }
        let prefix = path.trim_end_matches('/').to_string();
        Ok(BaseUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            prefix,
        })
    }

    /// `host:port` (IPv6 in brackets), as in a `Host` header.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The full URL of `path` (which should start with `/`) under this base.
    pub fn join(&self, path: &str) -> String {
        let sep = if path.starts_with('/') || path.is_empty() {
            ""
        } else {
            "/"
        };
        format!("{self}{sep}{path}")
    }

    /// The URL as usually written: the port left out when it is the scheme's default
    /// (80 for `http://`, 443 for `https://`), so a `Host` header or a recorded URL looks
    /// the way users write it.
    pub fn plain(&self) -> String {
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        if self.port != default {
            return self.to_string();
        }
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{}://{host}{}", self.scheme.as_str(), self.prefix)
    }

    /// Whether `self` and `other` name the same endpoint: same scheme, port and path
    /// prefix, and the same host, counting every loopback name (`localhost`,
    /// `127.0.0.1`, `::1`) as this machine.
    pub fn same_endpoint(&self, other: &BaseUrl) -> bool {
        self.scheme == other.scheme
            && self.port == other.port
            && self.prefix == other.prefix
            && (self.host == other.host || (self.is_loopback() && other.is_loopback()))
    }

    /// Whether the host is a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            self.prefix
        )
    }
}

impl std::str::FromStr for BaseUrl {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        BaseUrl::parse(s, 80)
    }
}

/// `text` with the user-info part of any URL in it (`scheme://user:pass@host`) replaced by
/// `***@`, for logs, records and captured environment variables.
pub fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(['/', '?', '#', ' ', '"', '\''])
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***@");
                rest = &tail[at + 1..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let u = BaseUrl::parse("http://127.0.0.1:8000", 80).unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port),
            (Scheme::Http, "127.0.0.1", 8000)
        );
        assert_eq!(u.to_string(), "http://127.0.0.1:8000");
        let u = BaseUrl::parse("localhost", 8265).unwrap();
        assert_eq!(u.to_string(), "http://localhost:8265");
        assert!(u.is_loopback());
        let u = BaseUrl::parse("https://Example.org/llm/", 80).unwrap();
        assert_eq!(u.to_string(), "https://example.org:443/llm");
        assert_eq!(
            u.join("/v1/models"),
            "https://example.org:443/llm/v1/models"
        );
        assert_eq!(u.plain(), "https://example.org/llm");
        assert_eq!(
            BaseUrl::parse("http://h:80", 8000).unwrap().plain(),
            "http://h"
        );
        assert_eq!(BaseUrl::parse("h", 8000).unwrap().plain(), "http://h:8000");
        assert_eq!(
            BaseUrl::parse("https://[::1]:443", 80).unwrap().plain(),
            "https://[::1]"
        );
        let same = |a: &str, b: &str| {
            BaseUrl::parse(a, 80)
                .unwrap()
                .same_endpoint(&BaseUrl::parse(b, 80).unwrap())
        };
        assert!(same("http://localhost:8000/", "127.0.0.1:8000"));
        assert!(same("https://[::1]:9/x", "https://localhost:9/x"));
        assert!(!same("http://localhost:8000", "https://localhost:8000"));
        assert!(!same("http://localhost:8000", "http://localhost:8001"));
        assert!(!same("http://h:1/a", "http://h:1/b"));
        assert!(!same("http://h1:1", "http://h2:1"));
        let u = BaseUrl::parse("http://[::1]:9", 80).unwrap();
        assert_eq!(
            (u.host.as_str(), u.authority()),
            ("::1", "[::1]:9".to_string())
        );
        assert!(u.is_loopback());
    }

    #[test]
    fn refuses_what_is_not_a_base_url() {
        for bad in [
            "",
            "ftp://h",
            "http://h:99999",
            "http://h:0",
            "http://h:x",
            "http://",
            "http://:80",
            "http://u:secret@h:1",
            "http://h:1/?q=1",
            "http://[::1",
            "http://h h:1",
        ] {
            let e = BaseUrl::parse(bad, 80);
            assert!(e.is_err(), "{bad} accepted");
            assert!(!e.unwrap_err().to_string().contains("secret"), "{bad}");
        }
    }

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact_userinfo("x=http://u:pw@h:1/p y=https://h2/ z=s3://k@b"),
            "x=http://***@h:1/p y=https://h2/ z=s3://***@b"
        );
        assert_eq!(redact_userinfo("plain"), "plain");
    }
}
