//! Bounds for command-line flags shared by the three binaries: a duration or a number
//! outside its sane range is a usage error at start, never a panic or a silently disabled
//! feature later (`--node-timeout 0s` once made the heartbeater panic).

use std::time::Duration;

/// Parses a duration (`500ms`, `5s`, `1m`) and checks `min <= d <= max`.
pub fn duration_in(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("'{s}' is not a duration: {e}"))?;
    if d < min || d > max {
        return Err(format!(
            "{} is out of range: give between {} and {}",
            humantime::format_duration(d),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
    Ok(d)
}

/// Parses an integer and checks `min <= n <= max`.
pub fn number_in<T>(s: &str, min: T, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number"))?;
    if n < min || n > max {
        return Err(format!("{n} is out of range: give between {min} and {max}"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_out_of_range_values() {
        let (min, max) = (Duration::from_millis(10), Duration::from_secs(3600));
        assert_eq!(duration_in("5s", min, max), Ok(Duration::from_secs(5)));
        assert!(duration_in("0s", min, max)
            .unwrap_err()
            .contains("out of range"));
        assert!(duration_in("1ns", min, max).is_err());
        assert!(duration_in("2h", min, max).is_err());
        assert!(duration_in("soon", min, max)
            .unwrap_err()
            .contains("not a duration"));
        assert_eq!(number_in("4", 1usize, 64), Ok(4));
        assert!(number_in("0", 1usize, 64).is_err());
        assert!(number_in("-1", 1usize, 64).is_err());
        assert!(number_in("99999999999999999999999", 1usize, 64).is_err());
    }
}
