//! Contact values: e-mail addresses and E.164 phone numbers.

use std::fmt;

use crate::InvalidValue;

/// An e-mail address, trimmed and lower-cased, of plausible shape. Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an address; the whole address is lower-cased so lookups are case-insensitive.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let s = raw.trim().to_lowercase();
        let invalid = || InvalidValue::new("must be an e-mail address such as name@example.org");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = s.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        if local.is_empty() || local.len() > 64 || domain.contains('@') || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(s))
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Email").field(&crate::Redacted).finish()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number in E.164 form: `+`, then 8 to 15 digits, the first not zero. Its `Debug`
/// hides it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses a number, accepting the spaces, dashes, dots and parentheses people type.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let compact: String = raw
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let invalid = || InvalidValue::new("must be an E.164 phone number such as +4915112345678");
        let digits = compact.strip_prefix('+').ok_or_else(invalid)?;
        if !(8..=15).contains(&digits.len())
            || !digits.chars().all(|c| c.is_ascii_digit())
            || digits.starts_with('0')
        {
            return Err(invalid());
        }
        Ok(Self(compact))
    }
}

impl AsRef<str> for Phone {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Phone").field(&crate::Redacted).finish()
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized() {
        assert_eq!(
            Email::parse("  Ada@Example.ORG ").map(|e| e.to_string()),
            Ok("ada@example.org".into())
        );
    }

    #[test]
    fn malformed_emails_are_rejected() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "a b@example.org",
            "ada@@example.org",
            "ada@example..org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn phones_are_compacted_to_e164() {
        assert_eq!(
            Phone::parse("+49 151 1234-5678").map(|p| p.to_string()),
            Ok("+4915112345678".into())
        );
    }

    #[test]
    fn malformed_phones_are_rejected() {
        for bad in [
            "",
            "015112345678",
            "+0151123456",
            "+49",
            "+49151abc45678",
            "+1234567890123456",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
