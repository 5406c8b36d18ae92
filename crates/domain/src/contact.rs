//! Contact values: e-mail addresses and phone numbers in E.164.
//!
//! The checks themselves come from maintained libraries, called from these parsers only, so
//! the rule lives in one place: the `validator` crate's `ValidateEmail` (the HTML5 / RFC 5321
//! shape, with internationalized domains) and the `phonenumber` crate, a port of Google's
//! libphonenumber with its per-country metadata (number lengths and prefixes).

use std::fmt;

use phonenumber::Mode;
use validator::ValidateEmail;

use crate::InvalidValue;

/// An e-mail address, trimmed and lower-cased, of the shape `validator` accepts. Its
/// `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an address; the whole address is lower-cased so lookups are case-insensitive.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let s = raw.trim().to_lowercase();
        // `validator` accepts a domain without a dot (`ada@localhost`), which no patient or
        // staff address has; requiring one keeps typos such as `ada@example` out.
        let (_, domain) = s.rsplit_once('@').unwrap_or_default();
        if !s.validate_email() || !domain.contains('.') {
            return Err(InvalidValue::new(
                "must be an e-mail address such as name@example.org",
            ));
        }
        Ok(Self(s))
    }

    /// An address read back from storage. It passed the rules of its day when it was
    /// written, so only its shape is checked here (one `@`, no whitespace, lower case): a
    /// rule tightened since must not make a stored patient or user unreadable.
    pub fn from_stored(stored: &str) -> Result<Self, InvalidValue> {
        let shaped = stored.split('@').count() == 2
            && !stored.is_empty()
            && !stored.chars().any(char::is_whitespace)
            && stored == stored.to_lowercase();
        if shaped {
            Ok(Self(stored.to_owned()))
        } else {
            Err(InvalidValue::new(
                "a stored e-mail address must be local@domain",
            ))
        }
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

/// A phone number that libphonenumber's metadata calls valid, kept in E.164 form
/// (`+4915112345678`). Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses an international number (starting with `+`), accepting the spaces, dashes, dots
    /// and parentheses people type, and normalizes it to E.164.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let invalid = || {
            InvalidValue::new("must be a valid international phone number such as +49 151 12345678")
        };
        let trimmed = raw.trim();
        // No default region: a number without its country code is ambiguous. Letters are
        // refused before parsing, because libphonenumber reads them as keypad digits.
        if !trimmed.starts_with('+')
            || trimmed.len() > 32
            || trimmed
                .chars()
                .any(|c| !(c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')')))
        {
            return Err(invalid());
        }
        let number = phonenumber::parse(None, trimmed).map_err(|_| invalid())?;
        if number.extension().is_some() || !phonenumber::is_valid(&number) {
            return Err(invalid());
        }
        Ok(Self(number.format().mode(Mode::E164).to_string()))
    }

    /// A number read back from storage: only its E.164 shape (`+`, then 8 to 15 digits, the
    /// first not zero) is checked, so numbers stored before the libphonenumber check (or
    /// before its metadata changed) stay readable.
    pub fn from_stored(stored: &str) -> Result<Self, InvalidValue> {
        let digits = stored.strip_prefix('+').unwrap_or_default();
        if (8..=15).contains(&digits.len())
            && digits.chars().all(|c| c.is_ascii_digit())
            && !digits.starts_with('0')
        {
            Ok(Self(stored.to_owned()))
        } else {
            Err(InvalidValue::new("a stored phone number must be in E.164"))
        }
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
    fn phones_are_normalized_to_e164() {
        for typed in [
            "+49 151 1234 5678",
            "+49 151 1234-5678",
            "+49 (151) 12345678",
            "+4915112345678",
        ] {
            assert_eq!(
                Phone::parse(typed).map(|p| p.to_string()),
                Ok("+4915112345678".into()),
                "{typed}"
            );
        }
        // A Berlin landline, and a number of another country.
        assert_eq!(
            Phone::parse("+49 30 1234567").map(|p| p.to_string()),
            Ok("+49301234567".into())
        );
        assert_eq!(
            Phone::parse("+1 650-253-0000").map(|p| p.to_string()),
            Ok("+16502530000".into())
        );
    }

    #[test]
    fn stored_values_are_read_back_by_their_shape_only() {
        // Accepted by the hand-written checks these parsers replaced, refused by the libraries.
        assert!(Phone::parse("+491510000").is_err());
        assert_eq!(
            Phone::from_stored("+491510000").map(|p| p.to_string()),
            Ok("+491510000".into())
        );
        assert!(Phone::from_stored("015112345678").is_err());
        assert!(Email::parse("jürgen@example.org").is_err());
        assert_eq!(
            Email::from_stored("jürgen@example.org").map(|e| e.to_string()),
            Ok("jürgen@example.org".into())
        );
        assert!(Email::from_stored("no address").is_err());
    }

    #[test]
    fn a_german_mobile_number_of_the_wrong_length_is_refused() {
        // 0151 numbers have eight digits after the prefix: seven or nine are no number.
        assert!(Phone::parse("+49 151 1234567").is_err());
        assert!(Phone::parse("+49 151 123456789").is_err());
        assert!(Phone::parse("+49 151 12345678").is_ok());
    }

    #[test]
    fn addresses_validator_refuses_are_refused() {
        for bad in ["ada@exa mple.org", "ada@-example.org", "a\"b@example.org"] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert!(Email::parse("ada.lovelace+clinic@example.co.uk").is_ok());
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
            "+49 151 12345678 ext. 9",
            "+999 12345678",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
