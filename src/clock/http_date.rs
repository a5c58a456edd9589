//! The HTTP `Date` header (RFC 9110 §5.6.7): what a server's clock said when it answered.

use jiff::Timestamp;
use jiff::fmt::rfc2822;

/// Parses a `Date` header's value. Recipients must accept the preferred IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`) and the two obsolete forms, RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
pub fn parse(value: &str) -> Result<Timestamp, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("the Date header is empty".into());
    }
    if let Ok(ts) = rfc2822::DateTimeParser::new().parse_timestamp(value) {
        return Ok(ts);
    }
    if let Some(ts) = parse_rfc850(value).or_else(|| parse_asctime(value)) {
        return Ok(ts);
    }
    Err(format!("the Date header {value:?} is not an HTTP date"))
}

/// Parses the header as it arrived: absent, not text, or a date.
pub fn parse_header(value: Option<&[u8]>) -> Result<Timestamp, String> {
    let bytes = value.ok_or_else(|| "the answer had no Date header".to_string())?;
    let text = std::str::from_utf8(bytes).map_err(|_| "the Date header is not text".to_string())?;
    parse(text)
}

fn parse_rfc850(value: &str) -> Option<Timestamp> {
    let (_, rest) = value.split_once(", ")?;
    let rest = rest.strip_suffix(" GMT")?;
    let dt = jiff::fmt::strtime::parse("%d-%b-%y %H:%M:%S", rest).ok()?.to_datetime().ok()?;
    jiff::tz::Offset::UTC.to_timestamp(dt).ok()
}

fn parse_asctime(value: &str) -> Option<Timestamp> {
    // asctime pads the day with a space ("Nov  6"); strtime's %e takes either form.
    let squeezed = value.split_whitespace().collect::<Vec<_>>().join(" ");
    let dt = jiff::fmt::strtime::parse("%a %b %e %H:%M:%S %Y", &squeezed).ok()?.to_datetime().ok()?;
    jiff::tz::Offset::UTC.to_timestamp(dt).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_6_1994: &str = "1994-11-06T08:49:37Z";

    #[test]
    fn all_three_http_date_forms_parse_to_the_same_instant() {
        assert_eq!(parse("Sun, 06 Nov 1994 08:49:37 GMT").expect("IMF-fixdate").to_string(), NOV_6_1994);
        assert_eq!(parse("Sunday, 06-Nov-94 08:49:37 GMT").expect("RFC 850").to_string(), NOV_6_1994);
        assert_eq!(parse("Sun Nov  6 08:49:37 1994").expect("asctime").to_string(), NOV_6_1994);
        // As S3 sends it.
        assert_eq!(parse("Thu, 26 Nov 2026 16:41:46 GMT").expect("S3").to_string(), "2026-11-26T16:41:46Z");
    }

    #[test]
    fn a_missing_or_malformed_header_says_what_was_wrong() {
        assert_eq!(parse_header(None).expect_err("missing"), "the answer had no Date header");
        assert_eq!(parse_header(Some(b"\xff\xfe")).expect_err("bytes"), "the Date header is not text");
        assert_eq!(parse_header(Some(b"  ")).expect_err("empty"), "the Date header is empty");
        let err = parse_header(Some(b"yesterday at noon")).expect_err("malformed");
        assert!(err.contains("\"yesterday at noon\" is not an HTTP date"), "{err}");
        assert!(parse("Sun, 31 Nov 1994 08:49:37 GMT").is_err(), "November has 30 days");
        assert!(parse("Sun, 06 Nov 1994 25:49:37 GMT").is_err(), "hour 25");
    }
}
