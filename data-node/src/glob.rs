//! Glob-style pattern matching, with the semantics of Redis's `stringmatchlen`: the one
//! matcher behind every pattern ember accepts (`KEYS`, `SCAN`/`HSCAN`/`SSCAN`/`ZSCAN`
//! `MATCH`, `CONFIG GET`; later `PSUBSCRIBE` and ACL key patterns).
//!
//! - `*` any run of bytes (consecutive `*` count as one), `?` one byte,
//!   `[abc]` / `[^abc]` / `[a-z]` a class (a reversed range `[z-a]` is the same range;
//!   an unterminated class ends at the end of the pattern), `\x` the byte `x`.
//! - `nocase` folds ASCII letters only.
//! - as in Redis, the empty string matches only the empty pattern (not even `*`).
//!
//! The cost is bounded whatever the pattern, as in Redis:
//!
//! - once the rest of a pattern after a `*` has failed to match at every remaining
//!   position of the string, no earlier `*` can help by matching more bytes (the rest
//!   would then have to match even later), so the whole match fails at once. Without
//!   this, `a*a*a*...*b` against `aaaa...` backtracks exponentially;
//! - recursion (one level per `*` being tried) is limited to [`MAX_NESTING`]: deeper
//!   patterns do not match.
//!
//! A match is therefore O(pattern length × string length).

/// Patterns needing more nested `*` expansions than this never match (Redis's limit).
pub const MAX_NESTING: usize = 1000;

/// Whether `s` matches the glob `pattern`.
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    let mut give_up = false;
    match_from(pattern, s, nocase, &mut give_up, 0)
}

/// `give_up` is set once a `*` has tried every remaining position of the string without
/// success: every caller up the stack then fails immediately.
fn match_from(mut p: &[u8], mut s: &[u8], nocase: bool, give_up: &mut bool, depth: usize) -> bool {
    if depth > MAX_NESTING {
        return false;
    }
    while let (Some(&pc), Some(&sc)) = (p.first(), s.first()) {
        match pc {
            b'*' => {
                while p.get(1) == Some(&b'*') {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_from(&p[1..], s, nocase, give_up, depth + 1) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                    s = &s[1..];
                }
                *give_up = true;
                return false;
            }
            b'?' => {}
            b'[' => {
                let (matched, rest) = class(&p[1..], sc, nocase);
                if !matched {
                    return false;
                }
                match rest {
                    Some(r) => p = r,
                    None => {
                        // Unterminated class: it was the last thing in the pattern.
                        return s.len() == 1;
                    }
                }
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if !same(p[0], sc, nocase) {
                    return false;
                }
            }
            c => {
                if !same(c, sc, nocase) {
                    return false;
                }
            }
        }
        // `p[0]` is the last byte of the element just matched against `s[0]`.
        p = &p[1..];
        s = &s[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

fn same(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Matches `c` against the class whose body starts at `p` (after `[`). Returns whether it
/// matched and the pattern from the closing `]` on (`None` when the class is not closed).
fn class(mut p: &[u8], c: u8, nocase: bool) -> (bool, Option<&[u8]>) {
    let negated = p.first() == Some(&b'^');
    if negated {
        p = &p[1..];
    }
    let mut matched = false;
    let rest = loop {
        match p {
            [] => break None,
            [b'\\', x, ..] => {
                // An escaped byte in a class compares exactly, as in Redis.
                if *x == c {
                    matched = true;
                }
                p = &p[2..];
            }
            [b']', ..] => break Some(p),
            [lo, b'-', hi, ..] => {
                // Redis compares C `char`s, which are signed: bytes >= 0x80 sort below 0.
                let (mut lo, mut hi, mut x) = (*lo as i8, *hi as i8, c as i8);
                if lo > hi {
                    std::mem::swap(&mut lo, &mut hi);
                }
                if nocase {
                    lo = fold(lo);
                    hi = fold(hi);
                    x = fold(x);
                }
                if lo <= x && x <= hi {
                    matched = true;
                }
                p = &p[3..];
            }
            [x, ..] => {
                if same(*x, c, nocase) {
                    matched = true;
                }
                p = &p[1..];
            }
        }
    };
    (matched != negated, rest)
}

fn fold(c: i8) -> i8 {
    (c as u8).to_ascii_lowercase() as i8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    #[test]
    fn redis_semantics() {
        let m = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes(), false);
        assert!(m("*", "abc"));
        // As in Redis, an empty string matches only the empty pattern (`KEYS *` and
        // `SCAN` without MATCH list an empty key without asking the matcher).
        assert!(!m("*", ""));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("a*c", "abbbc"));
        assert!(m("a**c", "ac"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        assert!(m("[\\]]", "]"));
        assert!(!m("a*c", "abcd"));
        assert!(m("{t}k*", "{t}k1"));
        assert!(m("a*", "a"));
        assert!(m("a*b*", "ab"));
        // Unterminated class: ends at the end of the pattern.
        assert!(m("a[bc", "ab"));
        assert!(!m("a[bc", "abx"));
        // A trailing backslash is a literal backslash.
        assert!(m("a\\", "a\\"));
        assert!(glob_match(b"A*", b"abc", true));
        assert!(glob_match(b"[A-C]x", b"bx", true));
        assert!(!glob_match(b"[A-C]x", b"bx", false));
        // Signed C chars: the range 0x00-0xff is really -1..0.
        assert!(glob_match(b"[\x00-\xff]", b"\xff", false));
        assert!(!glob_match(b"[\x00-\xff]", b"a", false));
    }

    #[test]
    fn pathological_patterns_answer_at_once() {
        let key = vec![b'a'; 40];
        let mut pat = Vec::new();
        for _ in 0..30 {
            pat.extend_from_slice(b"a*");
        }
        pat.push(b'b');
        let start = Instant::now();
        assert!(!glob_match(&pat, &key, false));
        let long_key = vec![b'a'; 100_000];
        assert!(!glob_match(&pat, &long_key, false));
        // Deeper than the nesting limit: no match, and no stack overflow.
        let deep = b"*a".repeat(5000);
        assert!(!glob_match(&deep, &long_key, false));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    /// A plain, exponential reference implementation (no class or escape support needed
    /// to check the `*` pruning).
    fn reference(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| reference(rest, &s[i..])),
            Some((b'?', rest)) => !s.is_empty() && reference(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && reference(rest, &s[1..]),
        }
    }

    proptest! {
        #[test]
        fn stars_and_literals_agree_with_the_reference(
            p in proptest::collection::vec(prop_oneof![Just(b'*'), Just(b'?'), Just(b'a'), Just(b'b')], 0..12),
            s in proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b')], 1..12),
        ) {
            prop_assert_eq!(glob_match(&p, &s, false), reference(&p, &s));
        }

        #[test]
        fn any_pattern_is_safe(p in proptest::collection::vec(any::<u8>(), 0..64),
                               s in proptest::collection::vec(any::<u8>(), 0..64),
                               nocase in any::<bool>()) {
            let _ = glob_match(&p, &s, nocase);
        }
    }
}
