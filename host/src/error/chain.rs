//! Errors as one line for logs, dead letters, status and reports.

use super::redact::redact;

/// An error and its causes: "a: b: c", with any password a connection
/// string in it carries taken out.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    match redact(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(redacted) => redacted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_nested_causes_then_joins_them() {
        let inner = std::io::Error::other("disk full");
        let outer = crate::config::ConfigError::Read { path: "p.toml".into(), source: inner };
        assert_eq!(error_chain(&outer), "cannot read pipeline file p.toml: disk full");
    }

    #[test]
    fn given_a_cause_quoting_a_connection_string_then_its_password_is_gone() {
        let inner = std::io::Error::other("refused by mongodb://ferry:s3cret@db:27017");
        let outer = crate::config::ConfigError::Read { path: "p.toml".into(), source: inner };
        assert_eq!(error_chain(&outer), "cannot read pipeline file p.toml: refused by mongodb://ferry:***@db:27017");
    }
}
