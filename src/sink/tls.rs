//! TLS client settings for the outputs that talk to a server (MQTT): a rustls
//! [`ClientConfig`] with the *ring* provider (no C toolchain beyond what ring needs, so the ARM
//! cross builds stay as they are), trusting either the CA certificates of one PEM file
//! (`mqtt.ca_file`, e.g. a home broker's own CA) or the system's CA store, and presenting a
//! client certificate when one is configured. Every error names the setting and the file.
//! `--check-config` builds the same config, so a bad file is found before start-up.

use anyhow::{anyhow, bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS settings of a client (`mqtt.tls`, `mqtt.ca_file`, `mqtt.client_cert`, `mqtt.client_key`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsSettings {
    /// PEM file with the CA certificate(s) to trust; `None`: the system's CA store.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the server (with `client_key`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

fn certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow!("{key} {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("{key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!("{key} {}: no PEM certificate in it", path.display());
    }
    Ok(certs)
}

/// The rustls client config of `t` (`prefix` names the section in errors, e.g. `mqtt`).
pub fn client_config(prefix: &str, t: &TlsSettings) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    match &t.ca_file {
        Some(path) => {
            let key = format!("{prefix}.ca_file");
            for c in certs(&key, path)? {
                roots
                    .add(c)
                    .map_err(|e| anyhow!("{key} {}: {e}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c); // a broken system certificate is skipped, as curl does
            }
            if roots.is_empty() {
                bail!("{prefix}.tls: no system CA certificates found; set {prefix}.ca_file");
            }
        }
    }
    // ring rather than aws-lc-rs (rustls marks ring's provider deprecated for its lack of
    // post-quantum key exchange): aws-lc needs cmake and a C cross toolchain per ARM target.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    let config = match (&t.client_cert, &t.client_key) {
        (Some(cert), Some(key_path)) => {
            let chain = certs(&format!("{prefix}.client_cert"), cert)?;
            let key = PrivateKeyDer::from_pem_file(key_path)
                .map_err(|e| anyhow!("{prefix}.client_key {}: {e}", key_path.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                anyhow!(
                    "{prefix}.client_cert {} and {prefix}.client_key {}: {e}",
                    cert.display(),
                    key_path.display()
                )
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => bail!("{prefix}.client_cert and {prefix}.client_key go together"),
    };
    Ok(Arc::new(config))
}
