//! Line charts as inline SVG: axes with round ticks, one path per series
//! (a `None` value lifts the pen), and a legend on the title's line.

use std::fmt::Write;

use super::{esc, num};

/// Colours of chart series, in order (readable on white, distinct in greyscale order).
pub(super) const PALETTE: [&str; 8] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// One line of a chart; `None` values break the line.
pub(super) struct Series<'a> {
    pub(super) name: &'a str,
    pub(super) color: &'a str,
    pub(super) dashed: bool,
    /// (seconds since start, value).
    pub(super) points: Vec<(f64, Option<f64>)>,
}

// The drawing area: viewBox size and the margins around the plot.
const W: f64 = 960.0;
const H: f64 = 280.0;
const L: f64 = 64.0;
const R: f64 = 16.0;
const T: f64 = 34.0;
const B: f64 = 40.0;

/// Maps data to SVG coordinates; both axes start at 0.
struct Frame {
    x_top: f64,
    x_step: f64,
    y_max: f64,
    y_step: f64,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        L + (W - L - R) * (x / self.x_top)
    }
    fn py(&self, y: f64) -> f64 {
        H - B - (H - T - B) * (y / self.y_max)
    }
}

/// A line chart with id `id`, titled, values in `y_unit` against seconds.
pub(super) fn line_chart(id: &str, title: &str, y_unit: &str, series: &[Series<'_>]) -> String {
    let x_max = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(0.0f64, f64::max).max(1.0);
    let y_max = series.iter().flat_map(|s| s.points.iter().filter_map(|p| p.1)).fold(0.0f64, f64::max);
    let ((y_max, y_step), (x_top, x_step)) = (nice_axis(y_max), nice_axis(x_max));
    let f = Frame { x_top, x_step, y_max, y_step };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<figure class="chart" id="{id}"><svg viewBox="0 0 {W} {H}" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg">"#,
        t = esc(title)
    );
    let _ = write!(s, r#"<text x="{L}" y="20" class="ct">{}</text>"#, esc(title));
    axes(&mut s, &f, y_unit);
    for se in series {
        line(&mut s, &f, se);
    }
    legend(&mut s, title, series);
    s.push_str("</svg></figure>");
    s
}

/// Grid lines with y ticks, x ticks in seconds, the two axes and their labels.
fn axes(s: &mut String, f: &Frame, y_unit: &str) {
    let mut y = 0.0;
    while y <= f.y_max + 1e-9 {
        let yy = f.py(y);
        let _ = write!(
            s,
            r##"<line x1="{L}" y1="{yy:.1}" x2="{x2}" y2="{yy:.1}" stroke="#e5e5e5"/><text x="{tx}" y="{ty:.1}" class="tk" text-anchor="end">{lbl}</text>"##,
            x2 = W - R,
            tx = L - 6.0,
            ty = yy + 4.0,
            lbl = num(y)
        );
        y += f.y_step;
    }
    let mut x = 0.0;
    while x <= f.x_top + 1e-9 {
        let xx = f.px(x);
        let _ = write!(
            s,
            r##"<line x1="{xx:.1}" y1="{y1}" x2="{xx:.1}" y2="{y2}" stroke="#999"/><text x="{xx:.1}" y="{ty}" class="tk" text-anchor="middle">{lbl}s</text>"##,
            y1 = H - B,
            y2 = H - B + 4.0,
            ty = H - B + 17.0,
            lbl = num(x)
        );
        x += f.x_step;
    }
    let _ = write!(
        s,
        r##"<line x1="{L}" y1="{yb}" x2="{xr}" y2="{yb}" stroke="#333"/><line x1="{L}" y1="{T}" x2="{L}" y2="{yb}" stroke="#333"/><text x="14" y="{ym}" class="tk" transform="rotate(-90 14 {ym})" text-anchor="middle">{u}</text><text x="{xm}" y="{H2}" class="tk" text-anchor="middle">time since start</text>"##,
        yb = H - B,
        xr = W - R,
        ym = (H - B + T) / 2.0,
        u = esc(y_unit),
        xm = (L + W - R) / 2.0,
        H2 = H - 4.0
    );
}

/// One series as a path; a series with a single value is drawn as a dot.
fn line(s: &mut String, f: &Frame, se: &Series<'_>) {
    let mut d = String::new();
    let mut pen_down = false;
    for (x, y) in &se.points {
        if let Some(y) = y {
            let _ = write!(d, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, f.px(*x), f.py(*y));
        }
        pen_down = y.is_some();
    }
    if !d.is_empty() {
        let dash = if se.dashed { r#" stroke-dasharray="5,4""# } else { "" };
        let _ = write!(
            s,
            r#"<path d="{}" fill="none" stroke="{}" stroke-width="1.8"{dash}><title>{}</title></path>"#,
            d.trim_end(),
            se.color,
            esc(se.name)
        );
    }
    // Single points would be invisible as a path; mark them.
    let mut values = se.points.iter().filter_map(|(x, y)| Some((*x, (*y)?)));
    if let (Some((x, y)), None) = (values.next(), values.next()) {
        let _ = write!(s, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#, f.px(x), f.py(y), se.color);
    }
}

/// Colour swatch and name of each series, after the title.
fn legend(s: &mut String, title: &str, series: &[Series<'_>]) {
    let mut lx = L + 28.0 + 8.5 * title.chars().count() as f64;
    for se in series {
        let _ = write!(
            s,
            r#"<rect x="{lx:.1}" y="13" width="14" height="3" fill="{c}"/><text x="{tx:.1}" y="19" class="lg">{n}</text>"#,
            c = se.color,
            tx = lx + 18.0,
            n = esc(se.name)
        );
        lx += 26.0 + 7.0 * se.name.chars().count() as f64;
    }
}

/// A round axis maximum and tick step for `max` (at most ~6 ticks).
fn nice_axis(max: f64) -> (f64, f64) {
    if !max.is_finite() || max <= 0.0 {
        return (1.0, 0.25);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_axis(0.0), (1.0, 0.25));
        let (top, step) = nice_axis(73.0);
        assert!(top >= 73.0 && top / step <= 6.0, "{top} {step}");
        let (top, step) = nice_axis(0.034);
        assert!(top >= 0.034 && top / step <= 6.0, "{top} {step}");
    }
}
