//! Keeping secrets out of files: which names look secret, and how commands, environment
//! values and URLs are redacted before they are recorded (manifests, records, logs).

use crate::url::redact_userinfo;

/// Replacement text of a redacted value.
pub const REDACTED: &str = "***";

/// Text that marks a name as secret wherever it appears in it.
pub const SECRET_SUBSTRINGS: [&str; 7] = [
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "COOKIE",
    "PRIVATE",
];

/// Words (between `_`, `-`, `.`) that mark a name as secret: `KEY`, `TOKEN`, `PWD`, and
/// any word ending in `KEY` or `TOKEN` (`APIKEY`, `ACCESSTOKEN`) or starting with `AUTH`
/// (`AUTHORIZATION`). `TOKENIZER` or `MAX_NUM_BATCHED_TOKENS` are not secrets.
fn is_secret_word(w: &str) -> bool {
    w == "PWD" || w == "KEYS" || w.ends_with("KEY") || w.ends_with("TOKEN") || w.starts_with("AUTH")
}

/// Whether a name (environment variable, flag, header; any case) looks like it holds a
/// secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_SUBSTRINGS.iter().any(|w| upper.contains(w))
        || upper
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(is_secret_word)
}

/// A recorded value: URL user-info redacted, and every known secret replaced.
pub fn redact_value(value: &str, known_secrets: &[&str]) -> String {
    let mut v = redact_userinfo(value);
    for s in known_secrets.iter().filter(|s| s.len() >= 4) {
        if v.contains(*s) {
            v = v.replace(*s, REDACTED);
        }
    }
    v
}

/// A command line safe to record: the value of every flag whose name looks secret
/// (`--api-key X`, `--api-key=X`, `--hf-token X`), the value of a header flag whose
/// header name looks secret (`-H "Authorization: Bearer X"` → `Authorization: ***`), URL
/// user-info, and any occurrence of `known_secrets` (catches abbreviated flags such as
/// `--api-k X`) are replaced by `***`.
pub fn redact_argv(argv: &[String], known_secrets: &[&str]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut redact_next = false;
    let mut header_next = false;
    let mut header_many = false;
    for arg in argv {
        if redact_next {
            out.push(REDACTED.to_string());
            redact_next = false;
            continue;
        }
        if header_next {
            // `--header a=1 b=2` takes every value up to the next flag; `-H` one value.
            if !arg.starts_with('-') {
                out.push(redact_header(arg, known_secrets));
                header_next = header_many;
                continue;
            }
            header_next = false;
        }
        if let Some(flag) = arg.strip_prefix('-').filter(|_| arg.len() > 1) {
            let flag = flag.trim_start_matches('-');
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (flag, None),
            };
            let is_header = name == "H" || name.eq_ignore_ascii_case("header");
            match (is_secret_name(name), is_header, inline) {
                (true, _, Some(_)) => {
                    out.push(format!(
                        "{}={REDACTED}",
                        &arg[..arg.len() - flag.len() + name.len()]
                    ));
                    continue;
                }
                (true, _, None) => {
                    redact_next = true;
                    out.push(arg.clone());
                    continue;
                }
                (false, true, Some(v)) => {
                    let head = &arg[..arg.len() - flag.len() + name.len()];
                    out.push(format!("{head}={}", redact_header(v, known_secrets)));
                    continue;
                }
                (false, true, None) => {
                    header_next = true;
                    header_many = name != "H";
                    out.push(arg.clone());
                    continue;
                }
                _ => {}
            }
        }
        out.push(redact_value(arg, known_secrets));
    }
    out
}

/// `Name: value` (curl) or `Name=value` (`vllm bench serve --header`) with the value
/// redacted when the name looks secret (or is `Authorization` / `Proxy-Authorization`,
/// which [`is_secret_name`] covers via `AUTH`).
pub fn redact_header(header: &str, known_secrets: &[&str]) -> String {
    match header.find([':', '=']).map(|i| header.split_at(i)) {
        Some((name, rest)) if is_secret_name(name.trim()) => {
            if rest.starts_with(':') {
                format!("{name}: {REDACTED}")
            } else {
                format!("{name}={REDACTED}")
            }
        }
        _ => redact_value(header, known_secrets),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn secret_names() {
        for n in [
            "OPENAI_API_KEY",
            "HF_TOKEN",
            "UCX_PASSWD",
            "NIXL_AUTH_MODE",
            "RAY_CREDENTIALS",
            "my_password",
            "Cookie",
            "x-api-key",
        ] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in [
            "UCX_TLS",
            "NCCL_DEBUG",
            "CUDA_VISIBLE_DEVICES",
            "VLLM_LOGGING_LEVEL",
            "tokenizer",
            "VLLM_MAX_NUM_BATCHED_TOKENS",
            "RAY_SESSION_DIR",
        ] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn commands_are_redacted() {
        let argv = v(&[
            "run-bm",
            "--api-key",
            "sk-abc123",
            "--api-key=sk-def456",
            "--api-k",
            "sk-ghi789",
            "-H",
            "Authorization: Bearer sk-jkl",
            "--header=X-Trace: 1",
            "-u",
            "http://user:pw@h:1",
            "-c",
            "4",
        ]);
        let out = redact_argv(&argv, &["sk-ghi789"]);
        let text = out.join(" ");
        for s in ["sk-abc123", "sk-def456", "sk-ghi789", "sk-jkl", "pw@"] {
            assert!(!text.contains(s), "{s} in {text}");
        }
        assert_eq!(out[1], "--api-key");
        assert_eq!(out[2], "***");
        assert_eq!(out[3], "--api-key=***");
        assert_eq!(out[7], "Authorization: ***");
        assert_eq!(out[8], "--header=X-Trace: 1");
        assert_eq!(out[10], "http://***@h:1");
        assert_eq!(&out[11..], ["-c", "4"]);
    }

    #[test]
    fn key_value_headers_are_redacted() {
        // vllm bench serve's form: several KEY=VALUE after one --header.
        let argv = v(&[
            "run-bm",
            "--header",
            "x-team=perf",
            "Authorization=Bearer sk-abc123",
            "x-api-key=k-def456",
            "-c",
            "4",
            "-H",
            "Cookie: c-ghi789",
            "plain",
            "--header=x-auth-token=t-jkl012",
        ]);
        let out = redact_argv(&argv, &[]);
        let text = out.join(" ");
        for s in ["sk-abc123", "k-def456", "c-ghi789", "t-jkl012"] {
            assert!(!text.contains(s), "{s} in {text}");
        }
        assert_eq!(
            &out[..7],
            [
                "run-bm",
                "--header",
                "x-team=perf",
                "Authorization=***",
                "x-api-key=***",
                "-c",
                "4"
            ]
        );
        assert_eq!(&out[7..10], ["-H", "Cookie: ***", "plain"]);
        assert_eq!(out[10], "--header=x-auth-token=***");
    }
}
