//! A TLS front for test servers: terminates `https://` on a loopback port with a
//! self-signed certificate generated on the spot (rcgen) and forwards the plain bytes to a
//! backend (e.g. [`crate::fake_openai::FakeServer`]), so clients can be tested against
//! `https://127.0.0.1:PORT` without any certificate on disk.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A self-signed certificate and its key.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// The certificate in PEM (what a client trusts, e.g. `--ca-cert`).
    pub cert_pem: String,
    pub cert_der: Vec<u8>,
    /// PKCS#8 private key (DER).
    pub key_der: Vec<u8>,
}

/// A certificate for `names` (host names or IP addresses).
pub fn self_signed(names: &[&str]) -> io::Result<SelfSigned> {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .map_err(io::Error::other)?;
    Ok(SelfSigned {
        cert_pem: ck.cert.pem(),
        cert_der: ck.cert.der().to_vec(),
        key_der: ck.signing_key.serialize_der(),
    })
}

/// A running TLS front (stops accepting when dropped).
pub struct TlsFront {
    pub addr: SocketAddr,
    pub cert: SelfSigned,
    accept: JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl TlsFront {
    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Terminate TLS on an ephemeral loopback port and forward to `backend`; the
    /// certificate is valid for `localhost` and `127.0.0.1`.
    pub async fn start(backend: SocketAddr) -> io::Result<TlsFront> {
        let cert = self_signed(&["localhost", "127.0.0.1"])?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.cert_der.clone().into()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_der.clone())),
            )
            .map_err(io::Error::other)?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Ok(TlsFront { addr, cert, accept })
    }
}
