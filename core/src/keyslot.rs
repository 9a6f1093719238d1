//! Key to hash-slot mapping: CRC16-XMODEM of the key (or of its hash tag) modulo 16384.
//!
//! The hash tag rule is the cluster specification's: if the key contains `{`, and a `}`
//! follows it with at least one byte between them, only the bytes between the first `{`
//! and the first `}` after it are hashed. `{}` or an unclosed `{` hash the whole key.

/// The slot `key` belongs to.
pub fn key_slot(key: &[u8]) -> u16 {
    redis_protocol::redis_keyslot(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_slots_from_the_spec_and_redis() {
        // Values checked against `CLUSTER KEYSLOT` of redis-server 7.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn hash_tags() {
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{user1000}.followers"), key_slot(b"user1000"));
        // Empty tag: whole key hashed.
        assert_eq!(key_slot(b"foo{}{bar}"), crc_whole(b"foo{}{bar}"));
        // Only the first `{` counts; the tag is `{bar`.
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        // First tag wins.
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
        // Unclosed brace: whole key.
        assert_eq!(key_slot(b"foo{bar"), crc_whole(b"foo{bar"));
    }

    /// Plain CRC16-XMODEM of the whole key, to check tag handling independently.
    fn crc_whole(key: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &b in key {
            crc ^= (b as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16384
    }
}
