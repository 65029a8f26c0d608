//! Timestamps as minutes since 1970-01-01 (negative before), with MIMIC's text formats. MIMIC shifts
//! dates into the 22nd century (and beyond for old patients), far outside what date libraries
//! assume, so this uses the plain proleptic Gregorian day arithmetic (H. Hinnant's algorithms).

pub const MINUTES_PER_DAY: i64 = 24 * 60;

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(year, month, day)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

pub fn year_of(minutes: i64) -> i64 {
    civil_from_days(minutes.div_euclid(MINUTES_PER_DAY)).0
}

/// `2146-07-21 14:05:00`.
pub fn write_datetime(out: &mut Vec<u8>, minutes: i64) {
    let (y, m, d) = civil_from_days(minutes.div_euclid(MINUTES_PER_DAY));
    let in_day = minutes.rem_euclid(MINUTES_PER_DAY);
    push_date(out, y, m, d);
    out.push(b' ');
    push2(out, (in_day / 60) as u32);
    out.push(b':');
    push2(out, (in_day % 60) as u32);
    out.extend_from_slice(b":00");
}

/// `2146-07-21`.
pub fn write_date(out: &mut Vec<u8>, minutes: i64) {
    let (y, m, d) = civil_from_days(minutes.div_euclid(MINUTES_PER_DAY));
    push_date(out, y, m, d);
}

fn push_date(out: &mut Vec<u8>, y: i64, m: u32, d: u32) {
    let y = y.clamp(0, 9999) as u32;
    push2(out, y / 100);
    push2(out, y % 100);
    out.push(b'-');
    push2(out, m);
    out.push(b'-');
    push2(out, d);
}

fn push2(out: &mut Vec<u8>, v: u32) {
    out.push(b'0' + (v / 10 % 10) as u8);
    out.push(b'0' + (v % 10) as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: fn(&mut Vec<u8>, i64), minutes: i64) -> String {
        let mut v = Vec::new();
        f(&mut v, minutes);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn known_dates() {
        // 2000-03-01 is day 11017 (30 years of 365 days + 7 leap days = 10957 to 2000-01-01, + 31 + 29).
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        // 1969-12-31 is day -1.
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        let t = days_from_civil(2146, 7, 21) * MINUTES_PER_DAY + 14 * 60 + 5;
        assert_eq!(text(write_datetime, t), "2146-07-21 14:05:00");
        assert_eq!(text(write_date, t), "2146-07-21");
        assert_eq!(year_of(t), 2146);
    }

    #[test]
    fn round_trip_over_centuries() {
        for days in (-200_000..200_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
