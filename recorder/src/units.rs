//! Parsing of durations (`60s`, `15m`, `500ms`) and sizes (`64MiB`, `2GB`).

use std::time::Duration;

/// `--segment` and `--keep` take either a duration or a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Time(Duration),
    Bytes(u64),
}

/// `"64MiB"` -> `(64.0, "MiB")`.
fn number_and_unit(s: &str) -> Option<(f64, &str)> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    Some((num.parse().ok()?, unit.trim()))
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (n, unit) = number_and_unit(s)
        .ok_or_else(|| format!("{s:?} is not a duration like 500ms, 30s, 15m or 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {s:?}: use ms, s, m or h"
            ));
        }
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("{s:?}: a duration must be positive"));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (n, unit) =
        number_and_unit(s).ok_or_else(|| format!("{s:?} is not a size like 64MiB or 2GiB"))?;
    let mult: f64 = match unit {
        "" | "B" => 1.0,
        "K" | "KB" => 1e3,
        "KiB" => 1024.0,
        "M" | "MB" => 1e6,
        "MiB" => 1024.0 * 1024.0,
        "G" | "GB" => 1e9,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {s:?}: use B, KiB, MiB, GiB (or KB, MB, GB)"
            ));
        }
    };
    let bytes = n * mult;
    if !(bytes >= 1.0 && bytes.is_finite()) {
        return Err(format!("{s:?}: a size must be at least one byte"));
    }
    Ok(bytes as u64)
}

pub fn parse_limit(s: &str) -> Result<Limit, String> {
    match parse_size(s) {
        Ok(b) if s.trim_end().ends_with('B') || s.trim_end().ends_with("KiB") => {
            Ok(Limit::Bytes(b))
        }
        _ => parse_duration(s).map(Limit::Time).map_err(|_| {
            format!("{s:?} is neither a duration (30s, 15m) nor a size (64MiB, 2GiB)")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_sizes_limits() {
        let cases = [
            ("60s", Limit::Time(Duration::from_secs(60))),
            ("15m", Limit::Time(Duration::from_secs(900))),
            ("500ms", Limit::Time(Duration::from_millis(500))),
            ("1.5h", Limit::Time(Duration::from_secs(5400))),
            ("64MiB", Limit::Bytes(64 << 20)),
            ("2GiB", Limit::Bytes(2 << 30)),
            ("10MB", Limit::Bytes(10_000_000)),
        ];
        for (s, want) in cases {
            assert_eq!(parse_limit(s), Ok(want), "{s}");
        }
        for bad in ["", "abc", "-5s", "0s", "10 parsecs", "5xB"] {
            assert!(parse_limit(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
    }
}
