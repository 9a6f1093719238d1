//! What a node may register as: the bounds on its name and announced addresses, checked
//! by the data node at start (a clear error before anything is sent) and by the control
//! plane on every hello (anyone can open a session, so nothing is trusted).
//!
//! A name is what emberctl prints in tables and accepts as NODE, so it is short, printable
//! and unambiguous: 1-64 bytes of `[A-Za-z0-9._-]` (no control characters or escapes that
//! could forge table rows), never all hex digits of 4 or more (an id prefix) nor a uuid,
//! and it cannot contain `:` so it never looks like a `host:port`.

/// Longest node name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest announced `host:port`, in bytes (a DNS name is at most 253).
pub const MAX_ADDR_LEN: usize = 261;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    #[error("node name is empty")]
    EmptyName,
    #[error("node name is {0} bytes long; at most {MAX_NAME_LEN} are allowed")]
    NameTooLong(usize),
    #[error("node name {0:?} has characters other than A-Z a-z 0-9 . _ -")]
    NameCharacters(String),
    #[error("node name {0:?} looks like a node id (or an id prefix); choose a name with a non-hex letter")]
    NameLooksLikeId(String),
    #[error("announced address is {0} bytes long; at most {MAX_ADDR_LEN} are allowed")]
    AddrTooLong(usize),
    #[error("announced address {0:?} is not host:port (host non-empty, port 1-65535)")]
    BadAddr(String),
}

/// Checks a node name (see the module doc).
pub fn check_name(name: &str) -> Result<(), RegistrationError> {
    if name.is_empty() {
        return Err(RegistrationError::EmptyName);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(RegistrationError::NameTooLong(name.len()));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(RegistrationError::NameCharacters(name.to_string()));
    }
    let hex = name.replace('-', "");
    if (hex.len() >= 4 && hex.chars().all(|c| c.is_ascii_hexdigit()))
        || name.parse::<uuid::Uuid>().is_ok()
    {
        return Err(RegistrationError::NameLooksLikeId(name.to_string()));
    }
    Ok(())
}

/// Checks an announced `host:port` (a host name, IPv4, or `[IPv6]`).
pub fn check_addr(addr: &str) -> Result<(), RegistrationError> {
    if addr.len() > MAX_ADDR_LEN {
        return Err(RegistrationError::AddrTooLong(addr.len()));
    }
    let bad = || RegistrationError::BadAddr(addr.to_string());
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = !host.is_empty()
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        });
    match port.parse::<u16>() {
        Ok(p) if p > 0 && host_ok => Ok(()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_printable_and_unambiguous() {
        for ok in ["n1", "node-7001", "cache.eu_1", "a", "deadbeefx"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        assert!(matches!(check_name(""), Err(RegistrationError::EmptyName)));
        assert!(matches!(
            check_name(&"x".repeat(65)),
            Err(RegistrationError::NameTooLong(65))
        ));
        for bad in ["a b", "n1\x1b[31m", "host:7001", "é", "a\nb"] {
            assert!(
                matches!(check_name(bad), Err(RegistrationError::NameCharacters(_))),
                "{bad:?}"
            );
        }
        for id_like in ["cafe", "dead-beef", "0a1b2c3d-0000-0000-0000-000000000000"] {
            assert!(
                matches!(
                    check_name(id_like),
                    Err(RegistrationError::NameLooksLikeId(_))
                ),
                "{id_like}"
            );
        }
        assert_eq!(check_name("abc"), Ok(()));
    }

    #[test]
    fn addresses_are_host_and_port() {
        for ok in [
            "127.0.0.1:7001",
            "node1:6379",
            "[::1]:7001",
            "a.example.org:1",
        ] {
            assert_eq!(check_addr(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "7001",
            ":7001",
            "host:0",
            "host:99999",
            "ho st:1",
            "h\x1b:1",
        ] {
            assert!(check_addr(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            check_addr(&format!("{}:1", "a".repeat(300))),
            Err(RegistrationError::AddrTooLong(_))
        ));
    }
}
