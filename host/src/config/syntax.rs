//! A TOML syntax error told without quoting a credential: the line it is on,
//! shown with any password in it masked.
//!
//! The `toml` crate's own message quotes the offending line, and the line
//! with a typo is as likely as any to be `password = "…`; that text reaches
//! a terminal, a CI log or a ticket.

use crate::error::redact_toml_line;

/// Where a pipeline file stops being TOML, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    /// The line itself, credentials masked.
    pub excerpt: String,
}

impl SyntaxError {
    pub(crate) fn new(text: &str, error: &toml::de::Error) -> Self {
        let offset = error.span().map_or(0, |span| span.start).min(text.len());
        // A span may start inside a multi-byte character; step back to its start.
        let offset = (0..=offset).rev().find(|&at| text.is_char_boundary(at)).unwrap_or(0);
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |at| at + 1);
        let line_end = text[offset..].find('\n').map_or(text.len(), |at| offset + at);
        Self {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
            message: error.message().trim_end().to_owned(),
            excerpt: redact_toml_line(text[line_start..line_end].trim_end_matches('\r')).into_owned(),
        }
    }
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}: {}\n  {} | {}", self.line, self.column, self.message, self.line, self.excerpt)
    }
}

impl std::error::Error for SyntaxError {}

/// Parses `text` as a TOML table, reporting errors as [`SyntaxError`].
pub(crate) fn parse_table(text: &str) -> Result<toml::Table, SyntaxError> {
    toml::from_str(text).map_err(|error| SyntaxError::new(text, &error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> SyntaxError {
        parse_table(text).unwrap_err()
    }

    #[test]
    fn given_an_unterminated_password_then_the_line_is_shown_without_it() {
        let error = error("name = \"p\"\n[source.iggy]\npassword = \"s3cret\n");
        assert_eq!(error.line, 3);
        assert_eq!(error.excerpt, "password = ***");
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[test]
    fn given_a_broken_line_with_a_connection_string_then_its_password_is_masked() {
        let error = error("uri = \"mongodb://ferry:s3cret@db/\" x\n");
        assert_eq!(error.excerpt, "uri = \"mongodb://ferry:***@db/\" x");
        assert_eq!((error.line, error.column), (1, 36));
    }

    #[test]
    fn given_an_error_without_credentials_then_the_line_is_quoted_as_is() {
        let error = error("name = \"p\"\nbatch = [1, \n");
        assert!(error.to_string().starts_with("line 2, column "), "{error}");
        assert!(error.excerpt.starts_with("batch = [1,"), "{error}");
    }
}
