//! Credentials taken out of text that leaves the process: a connection
//! string's password, wherever an error message quotes one, becomes `***`.
//!
//! Ferry never logs its configuration, and the drivers do not echo
//! passwords; but a URI can reach an error message (a parse error, a
//! server's complaint), and from there a log line, a dead letter or the
//! status endpoint. Every error Ferry writes as text passes through here.

use std::borrow::Cow;

/// `text` with the password of every `scheme://user:password@host` in it
/// replaced by `***`.
pub fn redact(text: &str) -> Cow<'_, str> {
    if !text.contains("://") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at the path, query, fragment or the text's end;
        // its user information ends at its last `@`.
        let end = after.find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace());
        let authority = &after[..end.unwrap_or(after.len())];
        match authority.rfind('@').and_then(|at| Some((at, authority[..at].find(':')?))) {
            Some((at, colon)) => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority.len()..];
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Key names whose values are credentials, wherever they appear in a
/// pipeline file (Ferry's own `password`, or a transform's configuration).
const CREDENTIAL_KEYS: [&str; 4] = ["password", "secret", "token", "credential"];

/// A line of a pipeline file fit to quote in an error: the value of a key
/// that names a credential becomes `***`, and so does the password of any
/// connection string in it.
pub fn redact_toml_line(line: &str) -> Cow<'_, str> {
    match line.split_once('=') {
        Some((key, _)) if is_credential_key(key) => Cow::Owned(format!("{key}= ***")),
        _ => redact(line),
    }
}

/// Whether a key (or a field path ending in one) names a credential.
pub fn is_credential_key(key: &str) -> bool {
    let lowered = key.to_ascii_lowercase();
    CREDENTIAL_KEYS.iter().any(|name| lowered.contains(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_line_setting_a_credential_then_its_value_goes() {
        assert_eq!(redact_toml_line("password = \"s3cret"), "password = ***");
        assert_eq!(redact_toml_line("  api_token=abc"), "  api_token= ***");
        assert_eq!(redact_toml_line("uri = \"mongodb://u:p@h\""), "uri = \"mongodb://u:***@h\"");
        assert_eq!(redact_toml_line("topic = \"t\""), "topic = \"t\"");
    }

    #[test]
    fn given_a_uri_with_a_password_then_only_the_password_goes() {
        assert_eq!(
            redact("cannot reach mongodb://ferry:s3cret@db:27017/?tls=true, giving up"),
            "cannot reach mongodb://ferry:***@db:27017/?tls=true, giving up"
        );
        assert_eq!(
            redact("\"mongodb+srv://a:b%40c@x.net\" and mongodb://u:p@h"),
            "\"mongodb+srv://a:***@x.net\" and mongodb://u:***@h"
        );
    }

    #[test]
    fn given_text_without_passwords_then_it_is_unchanged() {
        assert!(matches!(redact("no primary"), Cow::Borrowed(_)));
        assert_eq!(redact("mongodb://db:27017/x"), "mongodb://db:27017/x");
        assert_eq!(redact("mongodb://user@db"), "mongodb://user@db", "a user without a password stays");
        assert_eq!(redact("ends with ://"), "ends with ://");
    }
}
