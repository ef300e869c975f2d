//! How a source-facing listener (`sluice produce hl7`, `sluice produce fhir`) is secured, as
//! command-line options: `--tls-cert`/`--tls-key` turn on TLS, `--tls-client-ca` adds mutual TLS,
//! and for the FHIR endpoint `--bearer-token-file`/`--bearer-token-env` require a bearer token.
//! Only the *place* of a secret is ever given on the command line, never the secret itself, so
//! it cannot show up in `ps`, shell history or a service manager's logs.

use std::path::PathBuf;

use sluice_producers::secure_listener::{ListenerTlsConfig, SecretSource};

/// `--tls-cert`, `--tls-key`, `--tls-client-ca`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// PEM file of the listener's certificate and its intermediates; with --tls-key, the listener
    /// speaks TLS only.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file of the private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM file of the CA certificates that issue senders' client certificates: senders without
    /// one of its certificates are refused at the handshake (mutual TLS).
    #[arg(long, requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl TlsArgs {
    /// The listener's TLS settings, if TLS was asked for.
    pub fn config(&self) -> Option<ListenerTlsConfig> {
        let (certificate, key) = (self.tls_cert.clone()?, self.tls_key.clone()?);
        let mut config = ListenerTlsConfig::new(certificate, key);
        config.client_ca_file = self.tls_client_ca.clone();
        Some(config)
    }
}

/// `--bearer-token-file`, `--bearer-token-env`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct BearerTokenArgs {
    /// File holding the bearer token every POST must carry (at least 24 characters; a trailing
    /// newline is ignored), e.g. a mounted secret.
    #[arg(long, conflicts_with = "bearer_token_env")]
    pub bearer_token_file: Option<PathBuf>,
    /// Name of the environment variable holding the bearer token every POST must carry.
    #[arg(long)]
    pub bearer_token_env: Option<String>,
}

impl BearerTokenArgs {
    /// Where the bearer token is kept, if one is required.
    pub fn source(&self) -> Option<SecretSource> {
        match (&self.bearer_token_file, &self.bearer_token_env) {
            (Some(path), _) => Some(SecretSource::File(path.clone())),
            (None, Some(name)) => Some(SecretSource::Env(name.clone())),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Listener {
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        bearer: BearerTokenArgs,
    }

    #[test]
    fn tls_needs_both_certificate_and_key_and_a_token_has_one_place() {
        let parsed = Listener::try_parse_from(["x"]).unwrap();
        assert_eq!(parsed.tls.config(), None);
        assert_eq!(parsed.bearer.source(), None);

        let parsed =
            Listener::try_parse_from(["x", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-client-ca", "ca.pem"])
                .unwrap();
        let config = parsed.tls.config().unwrap();
        assert_eq!(config.certificate_file, PathBuf::from("c.pem"));
        assert_eq!(config.private_key_file, PathBuf::from("k.pem"));
        assert_eq!(config.client_ca_file, Some(PathBuf::from("ca.pem")));

        assert!(Listener::try_parse_from(["x", "--tls-cert", "c.pem"]).is_err());
        assert!(Listener::try_parse_from(["x", "--tls-client-ca", "ca.pem"]).is_err());

        let parsed = Listener::try_parse_from(["x", "--bearer-token-env", "FHIR_TOKEN"]).unwrap();
        assert_eq!(parsed.bearer.source(), Some(SecretSource::Env("FHIR_TOKEN".into())));
        let parsed = Listener::try_parse_from(["x", "--bearer-token-file", "/run/secrets/fhir"]).unwrap();
        assert_eq!(parsed.bearer.source(), Some(SecretSource::File("/run/secrets/fhir".into())));
        assert!(
            Listener::try_parse_from(["x", "--bearer-token-file", "t", "--bearer-token-env", "FHIR_TOKEN"]).is_err()
        );
    }
}
