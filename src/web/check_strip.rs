//! A connection's recent checks drawn as a small SVG strip on the server: one bar per check,
//! oldest on the left, coloured by status, as tall as its latency. No JavaScript, no chart
//! library, and no `style` attributes (the CSP forbids them): colours and sizes are SVG
//! attributes.

use crate::domain::{CheckRecord, CheckStatus};

const BAR_WIDTH: u32 = 6;
const BAR_GAP: u32 = 2;
/// The strip's height; a bar is at least `MIN_BAR` tall, so that a fast check still shows.
pub const STRIP_HEIGHT: u32 = 32;
const MIN_BAR: u32 = 4;

/// One bar, ready for the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub x: u32,
    pub y: u32,
    pub height: u32,
    pub fill: &'static str,
    /// The bar's `<title>`: when, what started it, what it found.
    pub title: String,
}

/// The strip of `checks` (newest first, as the history lists them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStrip {
    pub width: u32,
    pub height: u32,
    pub bars: Vec<Bar>,
}

fn fill(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Ok => "#2e7d32",
        CheckStatus::Failed => "#c62828",
        CheckStatus::Unavailable => "#f9a825",
    }
}

impl CheckStrip {
    pub fn of(checks: &[CheckRecord]) -> CheckStrip {
        let slowest = checks
            .iter()
            .filter_map(|check| check.latency_ms)
            .max()
            .unwrap_or(0)
            .max(1);
        let bars: Vec<Bar> = checks
            .iter()
            .rev()
            .zip(0_u32..)
            .map(|(check, index)| {
                let height = match check.latency_ms {
                    Some(ms) => {
                        let scaled = i64::from(STRIP_HEIGHT) * ms.max(0) / slowest;
                        u32::try_from(scaled)
                            .unwrap_or(STRIP_HEIGHT)
                            .clamp(MIN_BAR, STRIP_HEIGHT)
                    }
                    None => STRIP_HEIGHT,
                };
                let latency = check.latency_ms.map_or_else(String::new, |ms| format!(", {ms} ms"));
                Bar {
                    x: index * (BAR_WIDTH + BAR_GAP),
                    y: STRIP_HEIGHT - height,
                    height,
                    fill: fill(check.status),
                    title: format!(
                        "{} UTC, {}: {} ({}{latency})",
                        check.checked_at.format("%Y-%m-%d %H:%M:%S"),
                        check.trigger.as_str(),
                        check.status.as_str(),
                        check.code,
                    ),
                }
            })
            .collect();
        let count = u32::try_from(bars.len()).unwrap_or(u32::MAX);
        CheckStrip {
            width: (count * (BAR_WIDTH + BAR_GAP)).saturating_sub(BAR_GAP).max(1),
            height: STRIP_HEIGHT,
            bars,
        }
    }

    pub fn bar_width(&self) -> u32 {
        BAR_WIDTH
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CheckTrigger;

    fn check(status: CheckStatus, latency_ms: Option<i64>) -> CheckRecord {
        CheckRecord {
            checked_at: chrono::NaiveDateTime::default(),
            trigger: CheckTrigger::Scheduled,
            status,
            code: "ok".into(),
            latency_ms,
        }
    }

    #[test]
    fn bars_run_oldest_to_newest_coloured_by_status_and_as_tall_as_their_latency() {
        let newest_first = [check(CheckStatus::Failed, Some(100)), check(CheckStatus::Ok, Some(50))];
        let strip = CheckStrip::of(&newest_first);
        assert_eq!(strip.bars.len(), 2);
        assert_eq!(
            (strip.bars[0].x, strip.bars[0].fill),
            (0, "#2e7d32"),
            "the oldest first"
        );
        assert_eq!(strip.bars[0].height, STRIP_HEIGHT / 2);
        assert_eq!((strip.bars[1].x, strip.bars[1].fill), (8, "#c62828"));
        assert_eq!((strip.bars[1].y, strip.bars[1].height), (0, STRIP_HEIGHT));
        assert_eq!(strip.width, 14);
    }
}
