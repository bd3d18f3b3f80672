//! Text that is safe to draw, and number formatting.

use serde_json::Value;

/// User text made fit for a label: characters XML 1.0 does not allow are dropped, whitespace
/// and other control characters become single spaces, and text longer than `max` characters
/// is cut with "…". The SVG backend escapes `<`, `>`, `&` and quotes itself, so this does not.
pub(crate) fn clean(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut pending_space = false;
    for c in s.chars() {
        if c.is_whitespace() || c.is_control() {
            if matches!(c, '\t' | '\n' | '\r') || c.is_whitespace() {
                pending_space = count > 0;
            }
            continue;
        }
        if matches!(c, '\u{FFFE}' | '\u{FFFF}') {
            continue;
        }
        if pending_space {
            out.push(' ');
            count += 1;
            pending_space = false;
        }
        out.push(c);
        count += 1;
        if count > max {
            break;
        }
    }
    if count > max {
        let mut cut: String = out.chars().take(max.saturating_sub(1)).collect();
        cut.truncate(cut.trim_end().len());
        cut.push('…');
        return defuse(cut);
    }
    defuse(out)
}

/// Makes a `javascript:` inside a label inert for naive scanners too: its colon becomes
/// U+2236 (looks the same). Labels are never links, so this is only defence in depth.
fn defuse(mut s: String) -> String {
    while let Some(p) = s.to_ascii_lowercase().find("javascript:") {
        s.replace_range(p + 10..p + 11, "\u{2236}");
    }
    s
}

/// Escapes text for an XML attribute or text node.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Inserts thousands separators into the integer part of a plain decimal string.
pub(crate) fn group(s: &str) -> String {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", s),
    };
    let (int, frac) = match rest.find('.') {
        Some(p) => (&rest[..p], &rest[p..]),
        None => (rest, ""),
    };
    let mut out = String::from(sign);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out.push_str(frac);
    out
}

fn trim_zeros(mut s: String) -> String {
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" { "0".to_owned() } else { s }
}

/// How the ticks of one numeric axis are written: the same unit (k, M, B, T) and enough
/// decimals for the tick step, trailing zeros dropped.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TickFormat {
    unit: f64,
    suffix: &'static str,
    decimals: usize,
}

impl TickFormat {
    /// The format for an axis from `lo` to `hi`.
    pub(crate) fn for_range(lo: f64, hi: f64) -> TickFormat {
        let m = lo.abs().max(hi.abs());
        let step = ((hi - lo) / 8.0).abs().max(f64::MIN_POSITIVE);
        let (unit, suffix) = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")]
            .into_iter()
            .find(|(u, _)| m >= *u && step >= u / 100.0)
            .unwrap_or((1.0, ""));
        let rel = step / unit;
        let decimals = if rel >= 1.0 {
            0
        } else {
            ((-rel.log10()).ceil() as usize + 1).min(12)
        };
        TickFormat {
            unit,
            suffix,
            decimals,
        }
    }

    /// One tick's text.
    pub(crate) fn format(&self, v: f64) -> String {
        let s = trim_zeros(format!("{:.*}", self.decimals, v / self.unit));
        if s == "0" {
            return s;
        }
        format!("{}{}", group(&s), self.suffix)
    }
}

/// A single value written for a reader: exact digits for integers and decimal strings (with
/// separators), at most a few decimals for floats, short forms past a trillion.
pub(crate) fn format_value(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(group(&n.to_string())),
        Value::Number(n) => n.as_f64().map(format_float),
        Value::String(s) => {
            let t = s.trim();
            let body = t.strip_prefix('-').unwrap_or(t);
            let plain = !body.is_empty()
                && body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
                && body.bytes().filter(|b| *b == b'.').count() <= 1
                && !body.starts_with('.')
                && !body.ends_with('.');
            if plain {
                let mut s = t.to_owned();
                if let Some(p) = s.find('.')
                    && s.len() - p > 7
                {
                    s.truncate(p + 7);
                }
                Some(group(&s))
            } else {
                Some(clean(t, 40))
            }
        }
        other => Some(clean(&other.to_string(), 40)),
    }
}

/// A float for a reader: separators, two decimals (more below 1), short forms when huge.
pub(crate) fn format_float(x: f64) -> String {
    if !x.is_finite() {
        return "—".to_owned();
    }
    let a = x.abs();
    if a >= 1e15 {
        return format!("{:.3e}", x);
    }
    let s = if a >= 1.0 || a == 0.0 {
        format!("{:.2}", x)
    } else {
        format!("{:.6}", x)
    };
    group(&trim_zeros(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_strips_and_truncates() {
        assert_eq!(clean("a\u{0}\u{1}b", 40), "ab");
        assert_eq!(clean("  a \n\t b  ", 40), "a b");
        assert_eq!(clean(&"x".repeat(100), 10), format!("{}…", "x".repeat(9)));
        assert_eq!(clean("abc", 3), "abc");
    }

    #[test]
    fn ticks_are_short() {
        let f = TickFormat::for_range(0.0, 4e9);
        assert_eq!(f.format(1e9), "1B");
        assert_eq!(f.format(1.5e9), "1.5B");
        assert_eq!(f.format(1000000000.0000001), "1B");
        let f = TickFormat::for_range(0.0, 5000.0);
        assert_eq!(f.format(2500.0), "2.5k");
        let f = TickFormat::for_range(-1.0, 1.0);
        assert_eq!(f.format(-0.25), "-0.25");
        assert_eq!(f.format(0.30000000000000004), "0.3");
        let f = TickFormat::for_range(1e9, 1e9 + 10.0);
        assert_eq!(f.format(1e9 + 5.0), "1,000,000,005");
    }

    #[test]
    fn values_keep_exact_digits() {
        assert_eq!(
            format_value(&Value::from("12345678901234567890")).unwrap(),
            "12,345,678,901,234,567,890"
        );
        assert_eq!(format_value(&Value::from(1234567)).unwrap(), "1,234,567");
        assert_eq!(format_value(&Value::from(1234.5678)).unwrap(), "1,234.57");
        assert_eq!(format_value(&Value::from("-1234.50")).unwrap(), "-1,234.50");
    }
}
