//! Time-series charts as inline SVG, for the HTML reports.
//!
//! A [`TimeChart`] is a time axis, a value axis and any number of named
//! [`Series`] of `(time, value)` points, with vertical [`Marker`]s (a
//! release). Nothing here knows what is drawn: error lines of a type, a
//! version's error rate, or — later — latency and traffic all come in as
//! series. The output is self-contained SVG (no script, no external font or
//! stylesheet) that prints: lines differ by dash pattern as well as colour,
//! the legend names every series, and both axes carry ticks and labels.
//!
//! Every element a reader (or a test) looks for has a class: `axis x`,
//! `axis y`, `tick`, `grid`, `marker`, `series`, `legend`. Points map
//! linearly: the start of the time range to the plot's left edge, its end
//! to the right edge; zero (or the smallest value, if negative) to the
//! bottom and the top tick to the top ([`TimeChart::x`], [`TimeChart::y`]).

use std::fmt::Write as _;

use crate::record::EventTime;

/// One named line.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    /// `(event time, value)`; `None` is a gap (no data), not a zero.
    pub points: Vec<(EventTime, Option<f64>)>,
}

/// A vertical line at a moment, with a label (e.g. "release 2.0.0").
#[derive(Clone, Debug, PartialEq)]
pub struct Marker {
    pub at: EventTime,
    pub label: String,
}

/// A chart over `[from, to)` of event time.
#[derive(Clone, Debug, PartialEq)]
pub struct TimeChart {
    pub title: String,
    /// What the values are, with their unit ("error lines per 5 min").
    pub y_label: String,
    pub from: EventTime,
    pub to: EventTime,
    pub series: Vec<Series>,
    pub markers: Vec<Marker>,
}

const W: f64 = 640.0;
const H: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;
/// Colour and dash per series, in order: distinct in print as on screen.
const STYLES: [(&str, &str); 6] = [
    ("#c0392b", ""),
    ("#2471a3", "6 3"),
    ("#1e8449", "2 2"),
    ("#7d3c98", "8 3 2 3"),
    ("#b9770e", "4 4"),
    ("#566573", "1 3"),
];
const MINUTE: i64 = 60_000;

impl TimeChart {
    /// The top of the value axis: the smallest "nice" tick (1, 2 or 5 ×
    /// 10^k) at or above the largest value, so the line never leaves the
    /// plot and the top label is a round number.
    pub fn y_max(&self) -> f64 {
        let max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let (step, n) = y_step(max);
        step * n as f64
    }

    /// Horizontal position of a moment.
    pub fn x(&self, t: EventTime) -> f64 {
        let span = (self.to - self.from).max(1) as f64;
        LEFT + (t - self.from) as f64 / span * (W - LEFT - RIGHT)
    }

    /// Vertical position of a value (SVG's y grows downwards).
    pub fn y(&self, v: f64) -> f64 {
        let top = self.y_max();
        H - BOTTOM - (v.max(0.0) / top) * (H - TOP - BOTTOM)
    }

    /// The chart as an `<svg>` element.
    pub fn svg(&self) -> String {
        let mut o = String::new();
        let _ = write!(
            o,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\" font-family=\"sans-serif\" font-size=\"11\">",
            esc(&self.title)
        );
        let _ = write!(o, "<title>{}</title>", esc(&self.title));
        let (x0, x1, y0, y1) = (LEFT, W - RIGHT, H - BOTTOM, TOP);
        // Value axis: ticks, grid lines, label.
        let (step, n) = y_step(self.y_max());
        let _ = write!(
            o,
            "<g class=\"axis y\"><line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\" stroke=\"#333\"/>"
        );
        for i in 0..=n {
            let v = step * i as f64;
            let y = self.y(v);
            let _ = write!(
                o,
                "<line class=\"grid\" x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><line class=\"tick\" x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{x0}\" y2=\"{y:.1}\" stroke=\"#333\"/><text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" data-value=\"{v}\">{}</text>",
                x0 - 4.0,
                x0 - 6.0,
                y + 4.0,
                number(v, step)
            );
        }
        let _ = write!(
            o,
            "<text class=\"label\" transform=\"translate(14 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text></g>",
            (y0 + y1) / 2.0,
            esc(&self.y_label)
        );
        // Time axis: ticks at round times, labelled in UTC.
        let _ = write!(
            o,
            "<g class=\"axis x\"><line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#333\"/>"
        );
        let days = self.to - self.from > 86_400_000;
        for t in time_ticks(self.from, self.to) {
            let x = self.x(t);
            let _ = write!(
                o,
                "<line class=\"tick\" x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#333\"/><text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" data-time=\"{t}\">{}</text>",
                y0 + 4.0,
                y0 + 16.0,
                time_label(t, days)
            );
        }
        let _ = write!(
            o,
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time (UTC{})</text></g>",
            (x0 + x1) / 2.0,
            H - 6.0,
            if days { ", month-day hour:minute" } else { "" }
        );
        // Markers under the lines, so a line at the marker stays visible.
        for m in &self.markers {
            if m.at < self.from || m.at > self.to {
                continue;
            }
            let x = self.x(m.at);
            let _ = write!(
                o,
                "<g class=\"marker\" data-time=\"{}\"><line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{y1}\" stroke=\"#000\" stroke-dasharray=\"3 3\"/><text x=\"{:.1}\" y=\"{:.1}\" font-weight=\"bold\">{}</text></g>",
                m.at,
                x + 3.0,
                y1 - 4.0,
                esc(&m.label)
            );
        }
        for (i, s) in self.series.iter().enumerate() {
            let (colour, dash) = STYLES[i % STYLES.len()];
            let _ = write!(
                o,
                "<g class=\"series\" data-name=\"{}\" stroke=\"{colour}\" stroke-width=\"1.8\" fill=\"none\"{}>",
                esc(&s.name),
                if dash.is_empty() {
                    String::new()
                } else {
                    format!(" stroke-dasharray=\"{dash}\"")
                }
            );
            // One polyline per run of known values: gaps stay gaps. A
            // lone point gets a dot, or it would not show at all.
            for run in s.points.split(|p| p.1.is_none_or(|v| !v.is_finite())) {
                let pts: Vec<String> = run
                    .iter()
                    .filter_map(|&(t, v)| v.map(|v| format!("{:.1},{:.1}", self.x(t), self.y(v))))
                    .collect();
                match pts.len() {
                    0 => {}
                    1 => {
                        let (t, v) = run[0];
                        let _ = write!(
                            o,
                            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{colour}\"/>",
                            self.x(t),
                            self.y(v.unwrap_or(0.0))
                        );
                    }
                    _ => {
                        let _ = write!(o, "<polyline points=\"{}\"/>", pts.join(" "));
                    }
                }
            }
            o.push_str("</g>");
        }
        // Legend along the top: a sample of each line's style and its name.
        let _ = write!(o, "<g class=\"legend\">");
        let mut lx = x0;
        for (i, s) in self.series.iter().enumerate() {
            let (colour, dash) = STYLES[i % STYLES.len()];
            let _ = write!(
                o,
                "<line x1=\"{lx:.1}\" y1=\"10\" x2=\"{:.1}\" y2=\"10\" stroke=\"{colour}\" stroke-width=\"2\"{}/><text x=\"{:.1}\" y=\"14\">{}</text>",
                lx + 18.0,
                if dash.is_empty() {
                    String::new()
                } else {
                    format!(" stroke-dasharray=\"{dash}\"")
                },
                lx + 22.0,
                esc(&s.name)
            );
            lx += 34.0 + 6.5 * s.name.chars().count() as f64;
        }
        o.push_str("</g></svg>");
        o
    }
}

/// A tick step of 1, 2 or 5 × 10^k and the number of steps (at most 5)
/// that cover `max`; an all-zero chart gets 0..1.
fn y_step(max: f64) -> (f64, u32) {
    let max = if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag);
    let n = ((max / step) - 1e-9).ceil().max(1.0) as u32;
    (step, n)
}

/// A tick label with as many decimals as the step needs.
fn number(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

/// Round moments between `from` and `to`: the smallest of the usual
/// intervals (1 min … 1 week) that gives at most 8 ticks.
fn time_ticks(from: EventTime, to: EventTime) -> Vec<EventTime> {
    const STEPS: [i64; 13] = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 10_080];
    let span = (to - from).max(1);
    let step = STEPS
        .iter()
        .map(|m| m * MINUTE)
        .find(|s| span / s <= 8)
        .unwrap_or(span);
    let first = from.div_euclid(step) * step + if from % step == 0 { 0 } else { step };
    (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= to)
        .collect()
}

fn time_label(t: EventTime, days: bool) -> String {
    // rfc3339 is "YYYY-MM-DDTHH:MM:SS.mmmZ".
    let s = crate::alert::rfc3339(t);
    if days {
        format!("{} {}", &s[5..10], &s[11..16])
    } else {
        s[11..16].to_string()
    }
}

/// Text for HTML and SVG (element text and attribute values).
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: EventTime = 1_793_613_600_000; // 2026-11-02T10:00:00Z

    fn chart(values: &[Option<f64>]) -> TimeChart {
        TimeChart {
            title: "t".into(),
            y_label: "errors per min".into(),
            from: T0,
            to: T0 + 60 * MINUTE,
            series: vec![Series {
                name: "a <b>".into(),
                points: values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (T0 + i as i64 * 10 * MINUTE, *v))
                    .collect(),
            }],
            markers: vec![Marker {
                at: T0 + 30 * MINUTE,
                label: "release 2.0".into(),
            }],
        }
    }

    /// The text of every element with `class` (in document order).
    fn texts<'a>(svg: &'a str, class: &str) -> Vec<&'a str> {
        let open = format!("<text class=\"{class}\"");
        svg.match_indices(&open)
            .map(|(i, _)| {
                let rest = &svg[i..];
                let start = rest.find('>').unwrap() + 1;
                &rest[start..rest.find("</text>").unwrap()]
            })
            .collect()
    }

    #[test]
    fn the_value_axis_ends_on_a_round_tick_at_or_above_the_largest_value() {
        assert_eq!(y_step(7.0), (2.0, 4));
        assert_eq!(y_step(10.0), (2.0, 5));
        assert_eq!(y_step(0.0), (0.2, 5));
        assert_eq!(y_step(0.37), (0.1, 4));
        assert_eq!(y_step(1234.0), (500.0, 3));
        let c = chart(&[Some(0.0), Some(7.0)]);
        assert_eq!(c.y_max(), 8.0);
        let svg = c.svg();
        let labels = texts(&svg, "tick");
        for want in ["0", "2", "4", "6", "8"] {
            assert!(labels.contains(&want), "y tick {want} in {labels:?}");
        }
    }

    #[test]
    fn time_ticks_fall_on_round_minutes_and_are_labelled_in_utc() {
        let ticks = time_ticks(T0 + 3 * MINUTE, T0 + 63 * MINUTE);
        assert_eq!(ticks.first(), Some(&(T0 + 10 * MINUTE)));
        assert!(ticks.iter().all(|t| t % (10 * MINUTE) == 0), "{ticks:?}");
        assert!(ticks.len() <= 8);
        let svg = chart(&[Some(1.0)]).svg();
        let labels = texts(&svg, "tick");
        assert!(
            labels.contains(&"10:00") && labels.contains(&"11:00"),
            "{labels:?}"
        );
        let week = time_ticks(T0, T0 + 7 * 1440 * MINUTE);
        assert!(week.len() <= 8 && week.len() >= 4, "{week:?}");
        assert_eq!(time_label(T0, true), "11-02 10:00");
    }

    #[test]
    fn points_map_linearly_onto_the_plot_area() {
        let c = chart(&[Some(0.0), Some(4.0), Some(8.0)]);
        // Left edge = start, right edge = end; 0 at the bottom, top tick at the top.
        assert_eq!(c.x(T0), LEFT);
        assert_eq!(c.x(T0 + 60 * MINUTE), W - RIGHT);
        assert_eq!(c.y(0.0), H - BOTTOM);
        assert_eq!(c.y(8.0), TOP);
        assert_eq!(c.y(4.0), (H - BOTTOM + TOP) / 2.0);
        let svg = c.svg();
        let want = format!(
            "points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\"",
            LEFT,
            H - BOTTOM,
            c.x(T0 + 10 * MINUTE),
            (H - BOTTOM + TOP) / 2.0,
            c.x(T0 + 20 * MINUTE),
            TOP
        );
        assert!(svg.contains(&want), "{want} in {svg}");
    }

    #[test]
    fn the_svg_has_both_axes_their_labels_the_marker_and_a_legend() {
        let svg = chart(&[Some(1.0), Some(2.0)]).svg();
        for part in [
            "<g class=\"axis x\">",
            "<g class=\"axis y\">",
            "time (UTC)",
            ">errors per min</text>",
            "<g class=\"legend\">",
            "data-name=\"a &lt;b&gt;\"",
        ] {
            assert!(svg.contains(part), "{part} missing: {svg}");
        }
        let c = chart(&[Some(1.0)]);
        let marker = format!("<g class=\"marker\" data-time=\"{}\">", T0 + 30 * MINUTE);
        assert!(svg.contains(&marker), "{svg}");
        assert!(svg.contains(&format!("x1=\"{:.1}\"", c.x(T0 + 30 * MINUTE))));
        assert!(svg.contains(">release 2.0</text>"));
        // A marker outside the range is left out rather than drawn off the plot.
        let mut far = c.clone();
        far.markers[0].at = T0 + 600 * MINUTE;
        assert!(!far.svg().contains("class=\"marker\""));
    }

    #[test]
    fn gaps_split_a_line_and_a_lone_point_is_a_dot() {
        let svg = chart(&[
            Some(1.0),
            Some(2.0),
            None,
            Some(3.0),
            None,
            Some(1.0),
            Some(1.0),
        ])
        .svg();
        assert_eq!(svg.matches("<polyline").count(), 2, "{svg}");
        assert_eq!(svg.matches("<circle").count(), 1, "{svg}");
    }

    #[test]
    fn series_differ_by_dash_pattern_so_a_print_in_grey_tells_them_apart() {
        let mut c = chart(&[Some(1.0), Some(2.0)]);
        let mut b = c.series[0].clone();
        b.name = "b".into();
        c.series.push(b);
        let svg = c.svg();
        let groups: Vec<&str> = svg
            .match_indices("<g class=\"series\"")
            .map(|(i, _)| &svg[i..i + 160])
            .collect();
        assert_eq!(groups.len(), 2);
        assert!(!groups[0].contains("stroke-dasharray") && groups[1].contains("stroke-dasharray"));
    }
}
