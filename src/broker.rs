//! Broker connection settings, the way Kafka users expect to give them: a bootstrap list plus
//! any librdkafka property (`-X key=value`), so TLS and SASL work without code changes.

use rdkafka::ClientConfig;

/// librdkafka properties whose values are secrets and must never be printed.
const SECRET_PROPERTIES: &[&str] =
    &["sasl.password", "ssl.key.password", "ssl.keystore.password", "ssl.key.pem", "sasl.oauthbearer.client.secret"];

/// Builds the base client configuration shared by every producer and consumer.
pub fn client_config(bootstrap_servers: &str, properties: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap_servers).set("client.id", "sluice");
    for (key, value) in properties {
        config.set(key, value);
    }
    config
}

/// Parses one `key=value` property given with `-X`.
pub fn parse_property(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("`{}` is not key=value", redact(text)))?;
    if key.trim().is_empty() {
        return Err("a librdkafka property needs a name before `=`".to_owned());
    }
    Ok((key.trim().to_owned(), value.to_owned()))
}

/// A property for display, with secret values hidden.
pub fn redact(text: &str) -> String {
    match text.split_once('=') {
        Some((key, _)) if SECRET_PROPERTIES.contains(&key.trim()) => format!("{key}=<redacted>"),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_pass_through_and_secrets_are_redacted() {
        let property = parse_property("sasl.password=hunter2").unwrap();
        let config =
            client_config("127.0.0.1:9092", &[property, parse_property("security.protocol=SASL_SSL").unwrap()]);
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(redact("sasl.password=hunter2"), "sasl.password=<redacted>");
        let error = parse_property("sasl.password").unwrap_err();
        assert!(!error.contains("hunter2"));
        assert!(parse_property("=x").is_err());
    }
}
