//! Helpers for notification hooks: the versioned payload's data and the
//! envelope's timestamp.

use crate::Notification;

impl Notification {
    /// The payload's `nova_object.data` object (the versioned notification
    /// format); the whole payload when it is not a `nova_object`.
    pub fn payload_data(&self) -> Result<serde_json::Value, String> {
        let mut payload: serde_json::Value = serde_json::from_str(&self.payload_json)
            .map_err(|error| format!("{}: payload is not JSON: {error}", self.event_type))?;
        Ok(match payload.get_mut("nova_object.data") {
            Some(data) => data.take(),
            None => payload,
        })
    }

    /// The envelope's timestamp in milliseconds since the Unix epoch. Accepts
    /// ISO 8601 (`2024-05-01T12:00:00.5Z`, `+02:00` offsets) and Nova's
    /// `2024-05-01 12:00:00.500000` (UTC); `None` when it is neither.
    pub fn timestamp_ms(&self) -> Option<u64> {
        parse_timestamp_ms(&self.timestamp)
    }
}

/// The project a notification payload data object is about: `tenant_id`
/// (instance payloads) or `project_id` (most others).
pub fn payload_project(data: &serde_json::Value) -> Option<&str> {
    ["tenant_id", "project_id"]
        .iter()
        .find_map(|key| data.get(*key).and_then(serde_json::Value::as_str))
}

/// `field` of `data` as `nova_object.data` of a nested versioned object, or
/// the nested value itself.
pub fn nested_data<'a>(data: &'a serde_json::Value, field: &str) -> Option<&'a serde_json::Value> {
    let nested = data.get(field)?;
    Some(nested.get("nova_object.data").unwrap_or(nested))
}

fn number(text: &str) -> Option<i64> {
    (!text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Parses an ISO 8601 / Nova timestamp into milliseconds since the epoch.
pub fn parse_timestamp_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let (date, rest) = text.split_at_checked(10)?;
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let mut date_parts = date.split('-');
    let year = number(date_parts.next()?)?;
    let month = number(date_parts.next()?)?;
    let day = number(date_parts.next()?)?;
    if date_parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Split off the zone: `Z`, `+HH:MM`, `-HH:MM`, or nothing (UTC).
    let (time, offset_minutes) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, 0)
    } else if let Some(position) = rest.rfind(['+', '-']) {
        let (time, zone) = rest.split_at(position);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = zone[1..].split_once(':').unwrap_or((&zone[1..], "0"));
        (time, sign * (number(hours)? * 60 + number(minutes)?))
    } else {
        (rest, 0)
    };
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock_parts = clock.split(':');
    let hour = number(clock_parts.next()?)?;
    let minute = number(clock_parts.next()?)?;
    let second = number(clock_parts.next()?)?;
    if clock_parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let millis = if fraction.is_empty() {
        0
    } else {
        let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
        number(fraction)?;
        number(&digits)?
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second
        - offset_minutes * 60;
    u64::try_from(seconds * 1_000 + millis).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::notification;

    #[test]
    fn timestamps_in_iso_and_nova_formats() {
        assert_eq!(parse_timestamp_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp_ms("2024-05-01T12:00:00Z"),
            Some(1_714_564_800_000)
        );
        assert_eq!(
            parse_timestamp_ms("2024-05-01 12:00:00.250000"),
            Some(1_714_564_800_250)
        );
        assert_eq!(
            parse_timestamp_ms("2024-05-01T14:00:00.5+02:00"),
            Some(1_714_564_800_500)
        );
        assert_eq!(
            parse_timestamp_ms("2024-05-01T11:30:00-00:30"),
            Some(1_714_564_800_000)
        );
        assert_eq!(
            parse_timestamp_ms("2000-02-29T00:00:00Z"),
            Some(951_782_400_000)
        );
        assert_eq!(parse_timestamp_ms("yesterday"), None);
        assert_eq!(parse_timestamp_ms("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_timestamp_ms("2024-05-01T12:00Z"), None);
    }

    #[test]
    fn payload_data_unwraps_the_versioned_object() {
        let versioned = notification(
            "instance.create.end",
            "2024-05-01T12:00:00Z",
            r#"{"nova_object.name": "InstanceCreatePayload", "nova_object.data": {"tenant_id": "p1", "flavor": {"nova_object.data": {"name": "m1.small"}}}}"#,
        );
        let data = versioned.payload_data().unwrap();
        assert_eq!(payload_project(&data), Some("p1"));
        assert_eq!(
            nested_data(&data, "flavor")
                .and_then(|flavor| flavor.get("name"))
                .and_then(|name| name.as_str()),
            Some("m1.small")
        );
        let plain = notification(
            "keypair.create.end",
            "2024-05-01T12:00:00Z",
            r#"{"project_id": "p2"}"#,
        );
        assert_eq!(payload_project(&plain.payload_data().unwrap()), Some("p2"));
        assert!(notification("x", "", "not json").payload_data().is_err());
    }
}
