//! Errors as one line for logs, dead letters and reports.

/// An error and its causes: "a: b: c".
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
}
