//! Times in the audit store: Unix milliseconds in the database, RFC 3339 (UTC) on the wire,
//! and the dates people type (`2026-01-31`, `2026-01-31T12:00:00Z`). Civil-date arithmetic
//! after Howard Hinnant's `days_from_civil`, so no date crate is needed for this.

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `2026-01-31T12:03:04.005Z`
pub fn to_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms.rem_euclid(1000)
    )
}

/// A date (`YYYY-MM-DD`, midnight UTC) or an RFC 3339 time (`Z` or `±hh:mm`) → Unix ms.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let bad = || {
        format!("`{s}` is not a date: use YYYY-MM-DD or an RFC 3339 time like 2026-01-31T12:00:00Z")
    };
    let s = s.trim();
    let num = |t: &str| -> Result<i64, String> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse().map_err(|_| bad())
    };
    let (date, rest) = s.split_at(s.find(['T', 't', ' ']).unwrap_or(s.len()));
    let parts: Vec<&str> = date.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(bad());
    };
    let (y, m, d) = (num(y)?, num(m)?, num(d)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y.to_string().len() != 4 {
        return Err(bad());
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    // The day must exist (31 February does not).
    if civil_from_days(days_from_civil(y, m, d)) != (y, m, d) {
        return Err(bad());
    }
    if rest.is_empty() {
        return Ok(ms);
    }
    let rest = &rest[1..];
    let (clock, offset_ms) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let (c, off) = rest.split_at(pos);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':').ok_or_else(bad)?;
        (c, sign * (num(oh)? * 3600 + num(om)? * 60) * 1000)
    } else {
        return Err(bad());
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let hp: Vec<&str> = hms.split(':').collect();
    let [h, mi, sec] = hp[..] else {
        return Err(bad());
    };
    let (h, mi, sec) = (num(h)?, num(mi)?, num(sec)?);
    if h > 23 || mi > 59 || sec > 60 {
        return Err(bad());
    }
    ms += (h * 3600 + mi * 60 + sec) * 1000;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(3).collect();
        ms += num(&digits)? * 10_i64.pow(3 - digits.len() as u32);
    }
    Ok(ms - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for ms in [0, 1_767_225_600_000, 951_782_400_123, -86_400_000] {
            assert_eq!(
                parse_time(&to_rfc3339(ms)).unwrap(),
                ms,
                "{}",
                to_rfc3339(ms)
            );
        }
        assert_eq!(to_rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_what_people_type() {
        let check = |s: &str, want: &str| assert_eq!(to_rfc3339(parse_time(s).unwrap()), want);
        check("2026-01-31", "2026-01-31T00:00:00.000Z");
        check("2024-02-29T23:59:59Z", "2024-02-29T23:59:59.000Z");
        check("2026-01-31T12:00:00+02:00", "2026-01-31T10:00:00.000Z");
        check("2026-01-31T12:00:00.5-01:30", "2026-01-31T13:30:00.500Z");
        for bad in [
            "",
            "yesterday",
            "2026-02-30",
            "2026-13-01",
            "26-01-01",
            "2026-01-31T25:00:00Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
