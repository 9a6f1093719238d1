//! `client-output-buffer-limit`: per client class, a hard limit, and a soft limit with
//! the seconds a client may stay over it, on the reply bytes queued for a client and not
//! yet written to its socket. As Redis: `0` disables a limit, the value is
//! `<class> <hard> <soft> <soft seconds>` repeated, memory units as `CONFIG SET` takes
//! them (`1k` = 1000, `1kb` = 1024 ...), and a client over a limit is disconnected.
//!
//! Only the `normal` class has clients today; `replica` (written `slave`, as Redis 7
//! does) and `pubsub` are stored and reported so that issues 9 and 10 only have to
//! classify their clients ([`crate::cmd::Client::class`]).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use thiserror::Error;

/// The client classes that have output buffer limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientClass {
    Normal,
    Replica,
    PubSub,
}

impl ClientClass {
    /// In the order `CONFIG GET` lists them.
    pub const ALL: [ClientClass; 3] = [
        ClientClass::Normal,
        ClientClass::Replica,
        ClientClass::PubSub,
    ];

    /// The name `CONFIG GET` shows (Redis 7 still says `slave`).
    pub fn name(self) -> &'static str {
        match self {
            ClientClass::Normal => "normal",
            ClientClass::Replica => "slave",
            ClientClass::PubSub => "pubsub",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// `normal`, `replica` or `slave`, `pubsub`, any case (`master` is not a class that
    /// has limits, as in Redis).
    fn parse(name: &str) -> Option<ClientClass> {
        match name.to_ascii_lowercase().as_str() {
            "normal" => Some(ClientClass::Normal),
            "replica" | "slave" => Some(ClientClass::Replica),
            "pubsub" => Some(ClientClass::PubSub),
            _ => None,
        }
    }
}

/// One class's limits; 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClassLimit {
    pub hard: u64,
    pub soft: u64,
    pub soft_seconds: u64,
}

impl ClassLimit {
    /// How long a client may stay at or over the soft limit.
    pub fn soft_for(&self) -> Duration {
        Duration::from_secs(self.soft_seconds)
    }
}

/// A rejected `client-output-buffer-limit` value; `Display` is Redis's text.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum LimitsError {
    #[error("Wrong number of arguments in buffer limit configuration.")]
    WrongArity,
    #[error("Invalid client class specified in buffer limit configuration.")]
    InvalidClass,
    #[error("Error in hard, soft or soft_seconds setting in buffer limit configuration.")]
    InvalidValue,
}

/// Largest soft_seconds accepted (Redis keeps them in an `int`).
const MAX_SOFT_SECONDS: u64 = i32::MAX as u64;

/// Redis's defaults: normal unlimited, replica 256mb 64mb 60, pubsub 32mb 8mb 60.
pub const DEFAULTS: [ClassLimit; 3] = [
    ClassLimit {
        hard: 0,
        soft: 0,
        soft_seconds: 0,
    },
    ClassLimit {
        hard: 256 * 1024 * 1024,
        soft: 64 * 1024 * 1024,
        soft_seconds: 60,
    },
    ClassLimit {
        hard: 32 * 1024 * 1024,
        soft: 8 * 1024 * 1024,
        soft_seconds: 60,
    },
];

/// The limits of every class, as they are at run time.
#[derive(Debug)]
pub struct OutputLimits(ArcSwap<[ClassLimit; 3]>);

impl Default for OutputLimits {
    fn default() -> Self {
        OutputLimits(ArcSwap::from_pointee(DEFAULTS))
    }
}

impl OutputLimits {
    /// The limits of `class`.
    pub fn get(&self, class: ClientClass) -> ClassLimit {
        self.0.load()[class.index()]
    }

    /// Installs limits from [`OutputLimits::parse`].
    pub fn store(&self, limits: [ClassLimit; 3]) {
        self.0.store(Arc::new(limits));
    }

    /// The limits `value` would set (the current ones, with its classes changed).
    pub fn parse(&self, value: &[u8]) -> Result<[ClassLimit; 3], LimitsError> {
        let text = std::str::from_utf8(value).map_err(|_| LimitsError::InvalidValue)?;
        let words: Vec<&str> = text.split_ascii_whitespace().collect();
        if !words.len().is_multiple_of(4) {
            return Err(LimitsError::WrongArity);
        }
        let mut next = **self.0.load();
        for w in words.chunks(4) {
            let class = ClientClass::parse(w[0]).ok_or(LimitsError::InvalidClass)?;
            let limit = ClassLimit {
                hard: memory(w[1])?,
                soft: memory(w[2])?,
                soft_seconds: w[3]
                    .parse::<u64>()
                    .ok()
                    .filter(|s| *s <= MAX_SOFT_SECONDS)
                    .ok_or(LimitsError::InvalidValue)?,
            };
            next[class.index()] = limit;
        }
        Ok(next)
    }

    /// The value `CONFIG GET` shows: `normal 0 0 0 slave 268435456 67108864 60 ...`.
    pub fn describe(&self) -> String {
        let all = self.0.load();
        ClientClass::ALL
            .iter()
            .map(|c| {
                let l = all[c.index()];
                format!("{} {} {} {}", c.name(), l.hard, l.soft, l.soft_seconds)
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn memory(word: &str) -> Result<u64, LimitsError> {
    super::parse_memory(word.as_bytes()).map_err(|_| LimitsError::InvalidValue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_read_as_redis() {
        assert_eq!(
            OutputLimits::default().describe(),
            "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"
        );
    }

    /// What `CONFIG SET client-output-buffer-limit` does with the value.
    fn set(l: &OutputLimits, value: &[u8]) -> Result<(), LimitsError> {
        l.store(l.parse(value)?);
        Ok(())
    }

    #[test]
    fn units_classes_and_all_or_nothing() {
        let l = OutputLimits::default();
        set(&l, b"Normal 1mb 512k 10 replica 1gb 1g 5").unwrap();
        assert_eq!(
            l.get(ClientClass::Normal),
            ClassLimit {
                hard: 1 << 20,
                soft: 512_000,
                soft_seconds: 10
            }
        );
        assert_eq!(l.get(ClientClass::Replica).hard, 1 << 30);
        assert_eq!(l.get(ClientClass::Replica).soft, 1_000_000_000);
        let before = l.describe();
        assert_eq!(
            set(&l, b"normal 0 0 0 pubsub 1 1"),
            Err(LimitsError::WrongArity)
        );
        assert_eq!(
            set(&l, b"normal 0 0 0 master 1 1 1"),
            Err(LimitsError::InvalidClass)
        );
        for bad in [
            "normal -1 0 0",
            "normal 1 1 x",
            "normal 1 1 -1",
            "normal 1.5mb 0 0",
        ] {
            assert_eq!(
                set(&l, bad.as_bytes()),
                Err(LimitsError::InvalidValue),
                "{bad}"
            );
        }
        assert_eq!(l.describe(), before);
        assert_eq!(set(&l, b""), Ok(()));
        assert_eq!(l.describe(), before);
    }
}
