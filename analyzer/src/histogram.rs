//! Log2 histograms drawn the way bcc's tools draw them (`print_log2_hist`
//! of bcc's table.py, as dbstat, biolatency and funclatency print):
//!
//! ```text
//!      usecs               : count     distribution
//!          0 -> 1          : 0        |                                        |
//!          2 -> 3          : 192      |*************************               |
//! ```
//!
//! Rows run from `0 -> 1` to the highest non-empty bucket, empty ones
//! included, and bars are scaled to the largest count.

use std::io::{self, Write};

/// Counts per power-of-two bucket, by the bucket's lower bound
/// (`log2_bucket`): 0 and 1 share the first row, as in bcc.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Log2Hist {
    /// `counts[i]` is the row `2^(i-1) -> 2^i - 1` (`0 -> 1` for i = 1); index 0 is unused.
    counts: Vec<u64>,
}

/// bcc's bar width in the narrow layout; the wide one (values of 2^32 and
/// more) has half.
const STARS: usize = 40;

impl Log2Hist {
    /// Adds `count` to the bucket whose lower bound is `low` (0 for n <= 1).
    pub fn add(&mut self, low: i64, count: u64) {
        let index = if low <= 1 {
            1
        } else {
            64 - low.leading_zeros() as usize
        };
        if self.counts.len() <= index {
            self.counts.resize(index + 1, 0);
        }
        self.counts[index] += count;
    }

    /// All counts added.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Writes the histogram with `unit` (e.g. `usecs`) as the value label;
    /// nothing at all when it is empty.
    pub fn write(&self, out: &mut impl Write, unit: &str) -> io::Result<()> {
        let Some(last) = self.counts.iter().rposition(|&c| c > 0) else {
            return Ok(());
        };
        let max = self.counts.iter().copied().max().unwrap_or(0);
        let wide = last > 32;
        let stars = if wide { STARS / 2 } else { STARS };
        if wide {
            writeln!(out, "               {unit:<29} : count     distribution")?;
        } else {
            writeln!(out, "     {unit:<19} : count     distribution")?;
        }
        for (i, &count) in self.counts.iter().enumerate().take(last + 1).skip(1) {
            let high: u64 = if i >= 64 { u64::MAX } else { (1 << i) - 1 };
            let low = if i == 1 { 0 } else { 1u64 << (i - 1) };
            let bar = "*".repeat(bar_len(count, max, stars));
            if wide {
                writeln!(out, "{low:>20} -> {high:<20} : {count:<8} |{bar:<stars$}|")?;
            } else {
                writeln!(out, "{low:>10} -> {high:<10} : {count:<8} |{bar:<stars$}|")?;
            }
        }
        Ok(())
    }
}

/// bcc's `_stars`: `width * count / max` stars, rounded down.
fn bar_len(count: u64, max: u64, width: usize) -> usize {
    if max == 0 {
        return 0;
    }
    let n = u128::from(count) * width as u128 / u128::from(max);
    usize::try_from(n).unwrap_or(width).min(width)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(h: &Log2Hist) -> String {
        let mut out = Vec::new();
        h.write(&mut out, "usecs").unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn draws_like_bcc() {
        let mut h = Log2Hist::default();
        h.add(2, 192);
        h.add(8, 283);
        h.add(16, 306);
        h.add(1024, 1);
        let want = "     usecs               : count     distribution
         0 -> 1          : 0        |                                        |
         2 -> 3          : 192      |*************************               |
         4 -> 7          : 0        |                                        |
         8 -> 15         : 283      |************************************    |
        16 -> 31         : 306      |****************************************|
        32 -> 63         : 0        |                                        |
        64 -> 127        : 0        |                                        |
       128 -> 255        : 0        |                                        |
       256 -> 511        : 0        |                                        |
       512 -> 1023       : 0        |                                        |
      1024 -> 2047       : 1        |                                        |
";
        assert_eq!(draw(&h), want);
        assert_eq!(h.total(), 782);
    }

    #[test]
    fn zero_and_one_share_the_first_row() {
        let mut h = Log2Hist::default();
        h.add(0, 3);
        h.add(1, 2);
        h.add(-7, 1);
        assert_eq!(
            draw(&h),
            "     usecs               : count     distribution\n         0 -> 1          : 6        |****************************************|\n"
        );
    }

    #[test]
    fn huge_values_use_the_wide_layout() {
        let mut h = Log2Hist::default();
        h.add(1 << 40, 1);
        h.add(4, 2);
        let s = draw(&h);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 1 + 41);
        assert_eq!(
            lines[0],
            "               usecs                         : count     distribution"
        );
        assert_eq!(
            lines[3],
            "                   4 -> 7                    : 2        |********************|"
        );
        assert_eq!(
            lines[41],
            "       1099511627776 -> 2199023255551        : 1        |**********          |"
        );
    }

    #[test]
    fn empty_draws_nothing() {
        assert_eq!(draw(&Log2Hist::default()), "");
        assert_eq!(bar_len(5, 0, 40), 0);
        assert_eq!(bar_len(u64::MAX, u64::MAX, 40), 40);
    }
}
