//! TLS for the gRPC port (rustls with ring), optionally mutual: certificates come from PEM
//! files named in the config and are read once at startup.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// The PEM files of a TLS setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Server certificate chain.
    pub cert: PathBuf,
    /// The certificate's private key.
    pub key: PathBuf,
    /// CA certificate(s) for client certificates; `Some` makes client certificates required.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// Pairs the three settings; the error says which one is missing.
    pub fn from_settings(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        client_ca: Option<PathBuf>,
    ) -> Result<Option<TlsFiles>, String> {
        match (cert, key, client_ca) {
            (Some(cert), Some(key), client_ca) => Ok(Some(TlsFiles {
                cert,
                key,
                client_ca,
            })),
            (None, None, None) => Ok(None),
            (Some(_), None, _) => Err("tls_cert needs tls_key".into()),
            (None, Some(_), _) => Err("tls_key needs tls_cert".into()),
            (None, None, Some(_)) => Err("tls_client_ca needs tls_cert and tls_key".into()),
        }
    }
}

/// Turns TLS on in `server` when `files` is given. Unreadable or invalid files fail here, at
/// startup, with the file names in the message.
pub fn apply(server: Server, files: Option<&TlsFiles>) -> anyhow::Result<Server> {
    let Some(files) = files else {
        return Ok(server);
    };
    let identity = Identity::from_pem(read(&files.cert)?, read(&files.key)?);
    let mut config = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &files.client_ca {
        config = config.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    server
        .tls_config(config)
        .map_err(anyhow::Error::new)
        .with_context(|| {
            format!(
                "invalid TLS setup (tls_cert {}, tls_key {}, tls_client_ca {})",
                files.cert.display(),
                files.key.display(),
                files
                    .client_ca
                    .as_deref()
                    .map_or("none".into(), |p| p.display().to_string())
            )
        })
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read TLS file {}", path.display()))
}
