//! When a job runs, in one form every backend translates from, and the next run it implies.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::config::Period;

/// A fixed time of day and week for calendar jobs. Midday rather than night: laptops sleep at
/// night, and cron does not catch up on missed runs.
#[derive(Debug, Clone, Copy)]
pub struct Anchor {
    /// 0 = Sunday
    pub weekday: u8,
    pub hour: u8,
    pub minute: u8,
}

pub const CLEANUP_ANCHOR: Anchor = Anchor { weekday: 1, hour: 12, minute: 17 };
pub const REFRESH_ANCHOR: Anchor = Anchor { weekday: 1, hour: 9, minute: 47 };
/// After the cleanup, so the day's report shows its effect.
pub const REPORT_ANCHOR: Anchor = Anchor { weekday: 1, hour: 12, minute: 47 };

const WEEKDAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    /// At `minute` past every hour, or at `hour:minute` every day, or on `weekday` too.
    Calendar { weekday: Option<u8>, hour: Option<u8>, minute: u8 },
    /// Every so often, counted from the last run (or boot).
    Every(Duration),
}

impl Timing {
    /// The longest gap between two runs when all is well: what "recent" means for a last run.
    pub fn period(&self) -> Duration {
        match self {
            Timing::Calendar { weekday: Some(_), .. } => Duration::from_secs(7 * 24 * 3600),
            Timing::Calendar { hour: Some(_), .. } => Duration::from_secs(24 * 3600),
            Timing::Calendar { .. } => Duration::from_secs(3600),
            Timing::Every(d) => *d,
        }
    }

    /// `off` never reaches here: such jobs are not installed.
    pub fn from_period(period: Period, at: Anchor) -> Timing {
        match period {
            Period::Hourly => Timing::Calendar { weekday: None, hour: None, minute: at.minute },
            Period::Daily | Period::Off => Timing::Calendar { weekday: None, hour: Some(at.hour), minute: at.minute },
            Period::Weekly => Timing::Calendar { weekday: Some(at.weekday), hour: Some(at.hour), minute: at.minute },
            Period::Every(d) => Timing::Every(d),
        }
    }

    /// systemd's `OnCalendar=` for calendar timings.
    pub fn on_calendar(&self) -> Option<String> {
        let Timing::Calendar { weekday, hour, minute } = *self else { return None };
        let day = weekday.map(|w| format!("{} ", &WEEKDAYS[usize::from(w) % 7][..3])).unwrap_or_default();
        let hour = hour.map_or("*".to_string(), |h| format!("{h:02}"));
        Some(format!("{day}*-*-* {hour}:{minute:02}:00"))
    }

    /// Task Scheduler's weekday element name.
    pub fn weekday_name(&self) -> Option<&'static str> {
        match self {
            Timing::Calendar { weekday: Some(w), .. } => Some(WEEKDAYS[usize::from(*w) % 7]),
            _ => None,
        }
    }

    /// The closest cron expression. Intervals that do not divide an hour or a day run slightly
    /// more often at the boundary, as cron's `*/n` does.
    pub fn cron_spec(&self) -> CronSpec {
        match *self {
            Timing::Calendar { weekday, hour, minute } => CronSpec {
                minute: Field::At(u32::from(minute)),
                hour: hour.map_or(Field::Any, |h| Field::At(u32::from(h))),
                day_of_month: Field::Any,
                weekday: weekday.map_or(Field::Any, |w| Field::At(u32::from(w))),
            },
            Timing::Every(d) => {
                let minutes = d.as_secs().div_ceil(60).max(1) as u32;
                let any =
                    CronSpec { minute: Field::Any, hour: Field::Any, day_of_month: Field::Any, weekday: Field::Any };
                if minutes < 60 {
                    CronSpec { minute: Field::Every(minutes), ..any }
                } else if minutes < 24 * 60 {
                    CronSpec { minute: Field::At(17), hour: Field::Every(minutes.div_ceil(60)), ..any }
                } else {
                    CronSpec {
                        minute: Field::At(17),
                        hour: Field::At(12),
                        day_of_month: Field::Every(minutes.div_ceil(24 * 60)),
                        ..any
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Any,
    At(u32),
    Every(u32),
}

impl Field {
    fn matches(self, value: u32, first: u32) -> bool {
        match self {
            Field::Any => true,
            Field::At(v) => v == value,
            Field::Every(n) => n > 0 && (value - first).is_multiple_of(n),
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Any => f.write_str("*"),
            Field::At(v) => write!(f, "{v}"),
            Field::Every(n) => write!(f, "*/{n}"),
        }
    }
}

/// A cron schedule: minute, hour, day of month, month (always `*`), day of week.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronSpec {
    pub minute: Field,
    pub hour: Field,
    pub day_of_month: Field,
    pub weekday: Field,
}

impl fmt::Display for CronSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} * {}", self.minute, self.hour, self.day_of_month, self.weekday)
    }
}

/// The first minute after `now` that `spec` matches, in `now`'s time zone. Pure.
pub fn next_run(spec: &CronSpec, now: &jiff::ZonedDateTime) -> Option<jiff::ZonedDateTime> {
    let mut t =
        now.round(jiff::ZonedDateTimeRound::new().smallest(jiff::Unit::Minute).mode(jiff::RoundMode::Floor)).ok()?;
    for _ in 0..(62 * 24 * 60) {
        t = t.checked_add(jiff::SignedDuration::from_mins(1)).ok()?;
        let weekday = u32::from(t.weekday().to_sunday_zero_offset() as u8);
        if spec.minute.matches(t.minute() as u32, 0)
            && spec.hour.matches(t.hour() as u32, 0)
            && spec.day_of_month.matches(t.day() as u32, 1)
            && spec.weekday.matches(weekday, 0)
        {
            return Some(t);
        }
    }
    None
}
