//! Drawing each kind of chart with plotters on its SVG backend.

use std::collections::HashMap;
use std::error::Error;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};

use chrono::{DateTime, Utc};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

use crate::data::{label, num, time};
use crate::text::{TickFormat, clean, escape, format_value};
use crate::{Chart, HEIGHT, Kind, Table, WIDTH};

type Res<T> = Result<T, Box<dyn Error>>;
type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Text colour: near black.
const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
/// Secondary text (notes, messages): still ≥ 7:1 on white.
const MUTED: RGBColor = RGBColor(0x55, 0x55, 0x55);
const FONT: &str = "sans-serif";

/// A plotters font size for text `css_px` pixels high: the SVG backend writes
/// `font-size = size / 1.24`, and its naive layout estimate works from the same size.
fn px(css_px: f64) -> f64 {
    css_px * 1.24
}

/// Series colours: Tableau 10, darkened where needed so each has ≥ 3:1 contrast on white.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1F, 0x77, 0xB4),
    RGBColor(0xC7, 0x5D, 0x00),
    RGBColor(0x24, 0x8A, 0x24),
    RGBColor(0xD6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xBD),
    RGBColor(0x8C, 0x56, 0x4B),
    RGBColor(0xC2, 0x40, 0x9B),
    RGBColor(0x6F, 0x6F, 0x6F),
    RGBColor(0x7F, 0x7F, 0x00),
    RGBColor(0x0E, 0x8A, 0x99),
];

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Most categories a bar/line chart draws.
const MAX_CATEGORIES: usize = 50;
/// Most series (y columns or distinct series values) drawn.
const MAX_SERIES: usize = 10;
/// Most pie slices before the rest become "Other".
const MAX_SLICES: usize = 10;
/// Most points drawn per series.
const MAX_POINTS: usize = 5000;
const TABLE_ROWS: usize = 15;
const TABLE_COLS: usize = 8;

/// Why nothing is drawn: the message and a detail line.
struct Empty(String);

fn empty(detail: impl Into<String>) -> Empty {
    Empty(detail.into())
}

pub(crate) fn render(chart: &Chart, table: &Table) -> String {
    let title = clean(&chart.title, 70);
    let drawn = catch_unwind(AssertUnwindSafe(|| draw_document(chart, table, &title)));
    let svg = match drawn {
        Ok(Ok(svg)) => svg,
        _ => draw_document_message(&title, "This chart could not be drawn")
            .unwrap_or_else(|_| String::new()),
    };
    finish(svg, &title)
}

/// Adds the accessible name (`role="img"`, `aria-label`, a `<title>` child) to plotters'
/// document; falls back to a minimal document should plotters have written nothing.
fn finish(svg: String, title: &str) -> String {
    let name = if title.is_empty() { "Chart" } else { title };
    let name = escape(name);
    let head = format!("<svg role=\"img\" aria-label=\"{name}\" ");
    let rest = svg.strip_prefix("<svg ");
    match (rest, rest.and_then(|r| r.find(">\n"))) {
        (Some(rest), Some(end)) if svg.trim_end().ends_with("</svg>") => {
            format!(
                "{head}{}>\n<title>{name}</title>\n{}",
                &rest[..end],
                &rest[end + 2..]
            )
        }
        _ => format!(
            "{head}width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
             xmlns=\"http://www.w3.org/2000/svg\">\n<title>{name}</title>\n</svg>\n"
        ),
    }
}

fn draw_document(chart: &Chart, table: &Table, title: &str) -> Res<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let area = titled(&root, title)?;
        let outcome = match chart.kind {
            Kind::Bar | Kind::Line | Kind::Area | Kind::Scatter => {
                draw_xy(&root, &area, chart, table)
            }
            Kind::Pie => draw_pie(&area, chart, table),
            Kind::Table => draw_table(&area, chart, table),
            Kind::Number => draw_number(&area, chart, table),
        }?;
        if let Err(Empty(detail)) = outcome {
            draw_message(&area, &detail)?;
        }
        root.present()?;
    }
    Ok(buf)
}

fn draw_document_message(title: &str, detail: &str) -> Res<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let area = titled(&root, title)?;
        draw_message(&area, detail)?;
        root.present()?;
    }
    Ok(buf)
}

fn titled<'a>(root: &Area<'a>, title: &str) -> Res<Area<'a>> {
    if title.is_empty() {
        return Ok(root.margin(10, 0, 0, 0));
    }
    let style = TextStyle::from((FONT, px(20.0)).into_font().style(FontStyle::Bold)).color(&TEXT);
    Ok(root.margin(6, 0, 0, 0).titled(title, style)?)
}

fn text_style(size: u32, pos: Pos, c: &'static RGBColor) -> TextStyle<'static> {
    TextStyle::from((FONT, px(size as f64)).into_font())
        .pos(pos)
        .color(c)
}

const CENTER: Pos = Pos {
    h_pos: HPos::Center,
    v_pos: VPos::Center,
};
const LEFT: Pos = Pos {
    h_pos: HPos::Left,
    v_pos: VPos::Center,
};
const RIGHT: Pos = Pos {
    h_pos: HPos::Right,
    v_pos: VPos::Center,
};

fn draw_message(area: &Area, detail: &str) -> Res<()> {
    let (w, h) = area.dim_in_pixel();
    let (cx, cy) = (w as i32 / 2, h as i32 / 2);
    area.draw(&Text::new(
        "No data to draw",
        (cx, cy - 14),
        text_style(20, CENTER, &TEXT),
    ))?;
    if !detail.is_empty() {
        area.draw(&Text::new(
            clean(detail, 90),
            (cx, cy + 14),
            text_style(13, CENTER, &MUTED),
        ))?;
    }
    Ok(())
}

/// A small note at the bottom left of the whole chart ("showing first 50 of 80 categories").
fn draw_note(root: &Area, note: &str) -> Res<()> {
    root.draw(&Text::new(
        clean(note, 80),
        (6, HEIGHT as i32 - 8),
        text_style(11, LEFT, &MUTED),
    ))?;
    Ok(())
}

/// A legend: a colour square and a label per entry, in a column; an optional bold heading.
fn draw_legend(area: &Area, heading: Option<&str>, entries: &[(String, RGBColor)]) -> Res<()> {
    let (_, h) = area.dim_in_pixel();
    let mut y = 30;
    if let Some(head) = heading {
        area.draw(&Text::new(
            clean(head, 20),
            (8, y),
            TextStyle::from((FONT, px(13.0)).into_font().style(FontStyle::Bold))
                .pos(LEFT)
                .color(&TEXT),
        ))?;
        y += 22;
    }
    let fits = ((h as i32 - y - 10) / 20).max(1) as usize;
    for (i, (name, c)) in entries.iter().enumerate() {
        if i + 1 == fits && entries.len() > fits {
            area.draw(&Text::new(
                format!("… {} more", entries.len() - i),
                (8, y),
                text_style(12, LEFT, &MUTED),
            ))?;
            break;
        }
        area.draw(&Rectangle::new([(8, y - 6), (20, y + 6)], c.filled()))?;
        area.draw(&Text::new(
            clean(name, 22),
            (26, y),
            text_style(13, LEFT, &TEXT),
        ))?;
        y += 20;
    }
    Ok(())
}

/// Looks a named column up; a missing one is reported.
fn column(table: &Table, name: &str) -> Result<usize, Empty> {
    table.index_of(name).ok_or_else(|| {
        empty(format!(
            "Column \"{}\" is not in the results",
            clean(name, 40)
        ))
    })
}

/// The value columns: the named ones, or every numeric column other than those excluded.
fn value_columns(
    table: &Table,
    chart: &Chart,
    exclude: &[Option<usize>],
) -> Result<Vec<usize>, Empty> {
    if chart.y.is_empty() {
        let found: Vec<usize> = (0..table.columns.len())
            .filter(|i| !exclude.contains(&Some(*i)) && table.is_numeric_column(*i))
            .take(MAX_SERIES)
            .collect();
        if found.is_empty() {
            return Err(empty("No numeric column to draw"));
        }
        Ok(found)
    } else {
        let mut out = Vec::new();
        for name in &chart.y {
            let i = column(table, name)?;
            if !out.contains(&i) {
                out.push(i);
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// bar, line, area, scatter

#[derive(Clone, Debug, PartialEq)]
enum XMode {
    Numeric,
    Time,
    Category(Vec<String>),
}

struct Series {
    name: String,
    points: Vec<(f64, f64)>,
}

struct XyData {
    mode: XMode,
    series: Vec<Series>,
    notes: Vec<String>,
    x_desc: String,
    y_desc: String,
    legend_heading: Option<String>,
}

/// Gathers the points of every series.
fn xy_data(chart: &Chart, table: &Table) -> Result<XyData, Empty> {
    if table.rows.is_empty() {
        return Err(empty("The results have no rows"));
    }
    let x = chart.x.as_deref().map(|n| column(table, n)).transpose()?;
    let s = chart
        .series
        .as_deref()
        .map(|n| column(table, n))
        .transpose()?;
    let mut ys = value_columns(table, chart, &[x, s])?;
    let mut notes = Vec::new();
    if s.is_some() {
        ys.truncate(1);
    } else if ys.len() > MAX_SERIES {
        notes.push(format!(
            "showing first {MAX_SERIES} of {} columns",
            ys.len()
        ));
        ys.truncate(MAX_SERIES);
    }

    let mode = match (chart.kind, x) {
        (Kind::Bar, _) | (_, None) => XMode::Category(Vec::new()),
        (_, Some(x)) if table.is_numeric_column(x) => XMode::Numeric,
        (_, Some(x)) if table.is_time_column(x) => XMode::Time,
        _ => XMode::Category(Vec::new()),
    };
    let is_cat = matches!(mode, XMode::Category(_));

    // Categories in first-appearance order; each row's x position.
    let mut cats: Vec<String> = Vec::new();
    let mut cat_index: HashMap<String, usize> = HashMap::new();
    let mut total_cats = 0usize;
    let xs: Vec<Option<f64>> = (0..table.rows.len())
        .map(|r| match (&mode, x) {
            (XMode::Numeric, Some(x)) => num(table.cell(r, x)),
            (XMode::Time, Some(x)) => time(table.cell(r, x)),
            _ => {
                let key = match x {
                    Some(x) => label(table.cell(r, x)),
                    None => (r + 1).to_string(),
                };
                let next = cat_index.len();
                let i = *cat_index.entry(key.clone()).or_insert_with(|| {
                    total_cats += 1;
                    next
                });
                if i == next && i < MAX_CATEGORIES {
                    cats.push(key);
                }
                (i < MAX_CATEGORIES).then_some(i as f64)
            }
        })
        .collect();
    if total_cats > MAX_CATEGORIES {
        notes.push(format!(
            "showing first {MAX_CATEGORIES} of {total_cats} categories"
        ));
    }

    // Series: one per y column, or one per distinct value of the series column.
    let mut series: Vec<Series> = Vec::new();
    match s {
        Some(s) => {
            let y = ys[0];
            let mut index: HashMap<String, usize> = HashMap::new();
            let mut dropped = 0usize;
            for (r, xv) in xs.iter().enumerate() {
                let key = label(table.cell(r, s));
                let i = match index.get(&key) {
                    Some(i) => *i,
                    None if series.len() < MAX_SERIES => {
                        index.insert(key.clone(), series.len());
                        series.push(Series {
                            name: key,
                            points: Vec::new(),
                        });
                        series.len() - 1
                    }
                    None => {
                        index.insert(key, usize::MAX);
                        dropped += 1;
                        continue;
                    }
                };
                if i == usize::MAX {
                    continue;
                }
                if let (Some(xv), Some(yv)) = (xv, num(table.cell(r, y))) {
                    series[i].points.push((*xv, yv));
                }
            }
            if dropped > 0 {
                notes.push(format!(
                    "showing first {MAX_SERIES} of {} series",
                    MAX_SERIES + dropped
                ));
            }
        }
        None => {
            for &y in &ys {
                let points = xs
                    .iter()
                    .enumerate()
                    .filter_map(|(r, xv)| Some(((*xv)?, num(table.cell(r, y))?)))
                    .collect();
                series.push(Series {
                    name: table.columns[y].name.clone(),
                    points,
                });
            }
        }
    }

    for ser in &mut series {
        if is_cat && chart.kind != Kind::Scatter {
            // One value per category: duplicates are summed.
            let mut sums: Vec<Option<f64>> = vec![None; cats.len()];
            for (xv, yv) in &ser.points {
                let slot = &mut sums[*xv as usize];
                *slot = Some(slot.unwrap_or(0.0) + yv);
            }
            ser.points = sums
                .into_iter()
                .enumerate()
                .filter_map(|(i, v)| Some((i as f64, v?)))
                .filter(|(_, v)| v.is_finite())
                .collect();
        } else if !is_cat {
            ser.points.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        ser.points.truncate(MAX_POINTS);
    }

    if series.iter().all(|s| s.points.is_empty()) {
        let names: Vec<&str> = ys.iter().map(|i| table.columns[*i].name.as_str()).collect();
        return Err(empty(format!("No numeric values in {}", names.join(", "))));
    }

    let x_desc = match x {
        Some(x) => table.columns[x].name.clone(),
        None => "row".to_owned(),
    };
    let y_desc = if s.is_some() || ys.len() == 1 {
        table.columns[ys[0]].name.clone()
    } else {
        String::new()
    };
    let mode = match mode {
        XMode::Category(_) => XMode::Category(cats),
        m => m,
    };
    Ok(XyData {
        mode,
        series,
        notes,
        x_desc,
        y_desc,
        legend_heading: s.map(|s| table.columns[s].name.clone()),
    })
}

/// The x axis of bar/line/area/scatter charts: numbers, times (seconds since the epoch) or
/// category positions 0, 1, 2 ... Its key points and labels are chosen per mode.
#[derive(Clone)]
struct XAxis {
    lo: f64,
    hi: f64,
    mode: XMode,
    /// Categories: label every `step`-th one, cut to `max_chars`.
    step: usize,
    max_chars: usize,
}

impl XAxis {
    fn label(&self, v: f64) -> String {
        match &self.mode {
            XMode::Numeric => TickFormat::for_range(self.lo, self.hi).format(v),
            XMode::Time => {
                let Some(t) = DateTime::<Utc>::from_timestamp(v.round() as i64, 0) else {
                    return String::new();
                };
                t.format(time_format(self.hi - self.lo)).to_string()
            }
            XMode::Category(labels) => {
                let i = v.round();
                if i < 0.0 {
                    return String::new();
                }
                labels
                    .get(i as usize)
                    .map(|l| clean(l, self.max_chars))
                    .unwrap_or_default()
            }
        }
    }
}

impl Ranged for XAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (value - self.lo) / (self.hi - self.lo);
        let p = limit.0 as f64 + t * (limit.1 - limit.0) as f64;
        p.clamp(-1e6, 1e6).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        match &self.mode {
            XMode::Numeric => RangedCoordf64::from(self.lo..self.hi).key_points(hint),
            XMode::Time => time_key_points(self.lo, self.hi, hint.max_num_points()),
            XMode::Category(labels) => (0..labels.len())
                .step_by(self.step.max(1))
                .map(|i| i as f64)
                .collect(),
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// The room an x label of `chars` characters takes, with the gap to the next one.
fn label_width(chars: usize) -> f64 {
    chars as f64 * 7.2 + 16.0
}

/// How a time label is written on an axis spanning `span` seconds: the finer the span,
/// the finer the label.
fn time_format(span: f64) -> &'static str {
    if span < 3.0 * 86400.0 {
        "%b %d %H:%M"
    } else if span < 120.0 * 86400.0 {
        "%b %d"
    } else {
        "%Y-%m-%d"
    }
}

/// Calendar-aligned tick times (seconds since the epoch) between `lo` and `hi`: the smallest
/// step among minutes, hours, days, weeks, months and years that gives at most `max` ticks.
fn time_key_points(lo: f64, hi: f64, max: usize) -> Vec<f64> {
    use chrono::{Datelike, NaiveDate};
    if max == 0 || hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return Vec::new();
    }
    const MIN: f64 = 60.0;
    const HOUR: f64 = 3600.0;
    const DAY: f64 = 86400.0;
    let fixed = [
        MIN,
        5.0 * MIN,
        15.0 * MIN,
        30.0 * MIN,
        HOUR,
        2.0 * HOUR,
        3.0 * HOUR,
        6.0 * HOUR,
        12.0 * HOUR,
        DAY,
        2.0 * DAY,
        7.0 * DAY,
        14.0 * DAY,
    ];
    let span = hi - lo;
    if let Some(step) = fixed.into_iter().find(|s| span / s < max as f64) {
        let mut t = (lo / step).ceil() * step;
        let mut out = Vec::new();
        while t <= hi && out.len() <= max {
            out.push(t);
            t += step;
        }
        return out;
    }
    // Months (1, 2, 3, 6) and years (1, 2, 5, 10, ...), on the first of the month.
    let Some(start) = DateTime::<Utc>::from_timestamp(lo as i64, 0) else {
        return Vec::new();
    };
    let months_span = span / (30.44 * DAY);
    let mut steps = vec![1i64, 2, 3, 6, 12, 24, 60, 120, 240, 600, 1200, 2400, 6000];
    steps.retain(|m| months_span / (*m as f64) < max as f64);
    let Some(&step) = steps.first() else {
        return Vec::new();
    };
    let mut m = i64::from(start.year()) * 12 + i64::from(start.month0());
    m = (m + step - 1).div_euclid(step) * step;
    let mut out = Vec::new();
    while out.len() <= max {
        let (y, mo) = (m.div_euclid(12), m.rem_euclid(12) as u32 + 1);
        let Some(t) = i32::try_from(y)
            .ok()
            .and_then(|y| NaiveDate::from_ymd_opt(y, mo, 1))
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|d| d.and_utc().timestamp() as f64)
        else {
            break;
        };
        if t > hi {
            break;
        }
        if t >= lo {
            out.push(t);
        }
        m += step;
    }
    out
}

impl ValueFormatter<f64> for XAxis {
    fn format(value: &f64) -> String {
        value.to_string()
    }

    fn format_ext(&self, value: &f64) -> String {
        self.label(*value)
    }
}

/// Min and max of an iterator of finite numbers.
fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Stacked values: for each series, (x, base, top) per point, stacking positives up and
/// negatives down per x.
fn stack(series: &[Series]) -> Vec<Vec<(f64, f64, f64)>> {
    let mut pos: Vec<(f64, f64)> = Vec::new();
    let mut neg: Vec<(f64, f64)> = Vec::new();
    fn slot(v: &mut Vec<(f64, f64)>, x: f64) -> &mut f64 {
        let i = match v.iter().position(|(k, _)| *k == x) {
            Some(i) => i,
            None => {
                v.push((x, 0.0));
                v.len() - 1
            }
        };
        &mut v[i].1
    }
    series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .map(|&(x, y)| {
                    let acc = if y >= 0.0 {
                        slot(&mut pos, x)
                    } else {
                        slot(&mut neg, x)
                    };
                    let base = *acc;
                    *acc += y;
                    (x, base, base + y)
                })
                .collect()
        })
        .collect()
}

/// For stacked areas: every series on the union of all x values (missing ones as 0).
fn align(series: &[Series]) -> Vec<Series> {
    let mut xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    series
        .iter()
        .map(|s| {
            let mut sums: Vec<f64> = vec![0.0; xs.len()];
            for (x, y) in &s.points {
                if let Ok(i) = xs.binary_search_by(|p| p.total_cmp(x)) {
                    sums[i] += y;
                }
            }
            Series {
                name: s.name.clone(),
                points: xs.iter().copied().zip(sums).collect(),
            }
        })
        .collect()
}

fn draw_xy(root: &Area, area: &Area, chart: &Chart, table: &Table) -> Res<Result<(), Empty>> {
    let data = match xy_data(chart, table) {
        Ok(d) => d,
        Err(e) => return Ok(Err(e)),
    };
    let kind = chart.kind;
    let stacked = chart.stacked && matches!(kind, Kind::Bar | Kind::Area) && data.series.len() > 1;
    let series = if stacked && kind == Kind::Area {
        align(&data.series)
    } else {
        data.series
    };
    let stacks = if stacked { stack(&series) } else { Vec::new() };

    // y range: the drawn values (stack tops when stacked), 0 for bars and areas.
    let ys = if stacked {
        bounds(stacks.iter().flatten().flat_map(|(_, b, t)| [*b, *t]))
    } else {
        bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)))
    };
    let (mut ylo, mut yhi) = ys.unwrap_or((0.0, 1.0));
    if matches!(kind, Kind::Bar | Kind::Area) {
        ylo = ylo.min(0.0);
        yhi = yhi.max(0.0);
    }
    if yhi - ylo <= yhi.abs().max(ylo.abs()) * 1e-12 {
        let d = if yhi == 0.0 { 1.0 } else { yhi.abs() * 0.1 };
        ylo -= d;
        yhi += d;
    }
    let pad = (yhi - ylo) * 0.05;
    if !(matches!(kind, Kind::Bar | Kind::Area) && ylo == 0.0) {
        ylo -= pad;
    }
    if !(matches!(kind, Kind::Bar | Kind::Area) && yhi == 0.0) {
        yhi += pad;
    }

    let legend = series.len() > 1;
    let (plot, legend_area) = if legend {
        let (a, b) = area.split_horizontally(WIDTH as i32 - 150);
        (a, Some(b))
    } else {
        (area.clone(), None)
    };
    let plot_width = plot.dim_in_pixel().0 as f64 - 100.0;

    let (xlo, xhi, step, max_chars) = match &data.mode {
        XMode::Category(labels) => {
            let n = labels.len().max(1);
            let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1);
            let (mut step, mut max_chars) = (1usize, 20usize);
            loop {
                let width = label_width(longest.min(max_chars));
                if (n.div_ceil(step) as f64) * width <= plot_width {
                    break;
                }
                if max_chars > 14 {
                    max_chars -= 2;
                } else {
                    step += 1;
                }
            }
            (-0.5, n as f64 - 0.5, step, max_chars)
        }
        _ => {
            let (mut lo, mut hi) = bounds(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)))
                .unwrap_or((0.0, 1.0));
            if hi - lo <= hi.abs().max(lo.abs()) * 1e-12 {
                let d = if data.mode == XMode::Time {
                    43200.0
                } else if hi == 0.0 {
                    1.0
                } else {
                    hi.abs() * 0.1
                };
                lo -= d;
                hi += d;
            }
            {
                // Room for the first and last markers.
                let p = (hi - lo) * if kind == Kind::Scatter { 0.03 } else { 0.015 };
                lo -= p;
                hi += p;
            }
            (lo, hi, 1, 20)
        }
    };
    let x_labels = match &data.mode {
        XMode::Numeric => 8,
        // As many as fit side by side (six at most): six full dates beside a legend ran
        // into each other.
        XMode::Time => {
            let chars = DateTime::UNIX_EPOCH
                .format(time_format(xhi - xlo))
                .to_string()
                .chars()
                .count();
            ((plot_width / label_width(chars)) as usize).clamp(2, 6)
        }
        XMode::Category(l) => l.len().max(1),
    };
    let xaxis = XAxis {
        lo: xlo,
        hi: xhi,
        mode: data.mode.clone(),
        step,
        max_chars,
    };
    let ticks = TickFormat::for_range(ylo, yhi);
    let y_fmt = |v: &f64| ticks.format(*v);
    let x_fmt = |v: &f64| xaxis.label(*v);

    let mut ctx = ChartBuilder::on(&plot)
        .margin_top(10)
        .margin_right(if data.mode == XMode::Time { 40 } else { 24 })
        .margin_left(6)
        .margin_bottom(if data.notes.is_empty() { 4 } else { 14 })
        .x_label_area_size(44)
        .y_label_area_size(74)
        .build_cartesian_2d(xaxis.clone(), ylo..yhi)?;
    {
        let mut mesh = ctx.configure_mesh();
        mesh.x_labels(x_labels)
            .y_labels(8)
            .max_light_lines(0)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .label_style((FONT, px(12.0)).into_font().color(&TEXT))
            .axis_desc_style((FONT, px(13.0)).into_font().color(&TEXT))
            .bold_line_style(RGBColor(0xE4, 0xE4, 0xE4))
            .axis_style(RGBColor(0x77, 0x77, 0x77))
            .x_desc(clean(&data.x_desc, 40));
        if !data.y_desc.is_empty() {
            mesh.y_desc(clean(&data.y_desc, 40));
        }
        if matches!(data.mode, XMode::Category(_)) {
            mesh.disable_x_mesh();
        }
        mesh.draw()?;
    }
    if ylo < 0.0 && yhi > 0.0 {
        ctx.draw_series(std::iter::once(PathElement::new(
            vec![(xlo, 0.0), (xhi, 0.0)],
            RGBColor(0x77, 0x77, 0x77),
        )))?;
    }

    match kind {
        Kind::Bar => {
            let k = series.len() as f64;
            for (j, s) in series.iter().enumerate() {
                let c = color(j);
                let bars: Vec<(f64, f64, f64, f64)> = if stacked {
                    stacks[j]
                        .iter()
                        .map(|&(x, b, t)| (x - 0.35, x + 0.35, b, t))
                        .collect()
                } else {
                    let w = 0.8 / k;
                    s.points
                        .iter()
                        .map(|&(x, y)| {
                            let x0 = x - 0.4 + j as f64 * w;
                            (x0 + w * 0.05, x0 + w * 0.95, 0.0, y)
                        })
                        .collect()
                };
                ctx.draw_series(
                    bars.into_iter()
                        .map(|(x0, x1, b, t)| Rectangle::new([(x0, b), (x1, t)], c.filled())),
                )?;
            }
        }
        Kind::Line | Kind::Area => {
            for (j, s) in series.iter().enumerate().rev() {
                let c = color(j);
                if kind == Kind::Area {
                    if stacked {
                        let top: Vec<(f64, f64)> = stacks[j].iter().map(|p| (p.0, p.2)).collect();
                        let mut poly = top.clone();
                        poly.extend(stacks[j].iter().rev().map(|p| (p.0, p.1)));
                        ctx.draw_series(std::iter::once(Polygon::new(poly, c.mix(0.35).filled())))?;
                        ctx.draw_series(LineSeries::new(top, c.stroke_width(2)))?;
                    } else {
                        ctx.draw_series(
                            AreaSeries::new(s.points.iter().copied(), 0.0, c.mix(0.2))
                                .border_style(c.stroke_width(2)),
                        )?;
                    }
                } else {
                    ctx.draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))?;
                    if s.points.len() <= 40 {
                        ctx.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
                    }
                }
            }
        }
        _ => {
            for (j, s) in series.iter().enumerate() {
                let c = color(j);
                ctx.draw_series(
                    s.points
                        .iter()
                        .map(|&p| Circle::new(p, 4, c.mix(0.8).filled())),
                )?;
            }
        }
    }

    if let Some(la) = legend_area {
        let entries: Vec<(String, RGBColor)> = series
            .iter()
            .enumerate()
            .map(|(j, s)| (s.name.clone(), color(j)))
            .collect();
        draw_legend(&la, data.legend_heading.as_deref(), &entries)?;
    }
    if !data.notes.is_empty() {
        draw_note(root, &data.notes.join("; "))?;
    }
    Ok(Ok(()))
}

// ---------------------------------------------------------------------------------------
// pie

fn draw_pie(area: &Area, chart: &Chart, table: &Table) -> Res<Result<(), Empty>> {
    let slices = match pie_slices(chart, table) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let total: f64 = slices.iter().map(|s| s.1).sum();
    let (pie, legend) = area.split_horizontally(WIDTH as i32 - 240);
    let (w, h) = pie.dim_in_pixel();
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let r = (w.min(h) as f64 / 2.0 - 20.0).max(10.0);
    let point = |a: f64| {
        (
            (cx + r * a.cos()).round() as i32,
            (cy + r * a.sin()).round() as i32,
        )
    };
    let mut angle = -std::f64::consts::FRAC_PI_2;
    let mut edges = Vec::new();
    for (i, (_, v)) in slices.iter().enumerate() {
        let sweep = v / total * std::f64::consts::TAU;
        let steps = ((sweep.to_degrees() / 2.0).ceil() as usize).max(2);
        let mut poly = vec![(cx.round() as i32, cy.round() as i32)];
        poly.extend((0..=steps).map(|k| point(angle + sweep * k as f64 / steps as f64)));
        pie.draw(&Polygon::new(poly, color(i).filled()))?;
        edges.push(point(angle));
        angle += sweep;
    }
    if slices.len() > 1 {
        for e in edges {
            pie.draw(&PathElement::new(
                vec![(cx.round() as i32, cy.round() as i32), e],
                WHITE.stroke_width(2),
            ))?;
        }
    }
    let entries: Vec<(String, RGBColor)> = slices
        .iter()
        .enumerate()
        .map(|(i, (name, v))| {
            let pct = v / total * 100.0;
            (format!("{} ({:.1}%)", clean(name, 22), pct), color(i))
        })
        .collect();
    let heading = chart.x.as_deref().or(chart.y.first().map(String::as_str));
    draw_pie_legend(&legend, heading, &entries)?;
    Ok(Ok(()))
}

/// The pie legend: label and percentage, wider than the series legend.
fn draw_pie_legend(area: &Area, heading: Option<&str>, entries: &[(String, RGBColor)]) -> Res<()> {
    let mut y = 40;
    if let Some(head) = heading {
        area.draw(&Text::new(
            clean(head, 28),
            (8, y),
            TextStyle::from((FONT, px(13.0)).into_font().style(FontStyle::Bold))
                .pos(LEFT)
                .color(&TEXT),
        ))?;
        y += 24;
    }
    for (name, c) in entries {
        area.draw(&Rectangle::new([(8, y - 6), (20, y + 6)], c.filled()))?;
        area.draw(&Text::new(
            name.clone(),
            (26, y),
            text_style(13, LEFT, &TEXT),
        ))?;
        y += 22;
    }
    Ok(())
}

fn pie_slices(chart: &Chart, table: &Table) -> Result<Vec<(String, f64)>, Empty> {
    if table.rows.is_empty() {
        return Err(empty("The results have no rows"));
    }
    let x = chart.x.as_deref().map(|n| column(table, n)).transpose()?;
    let y = value_columns(table, chart, &[x])?[0];
    let mut slices: Vec<(String, f64)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for r in 0..table.rows.len() {
        let Some(v) = num(table.cell(r, y)).filter(|v| *v > 0.0) else {
            continue;
        };
        let name = match x {
            Some(x) => label(table.cell(r, x)),
            None => format!("Row {}", r + 1),
        };
        match index.get(&name) {
            Some(&i) => slices[i].1 += v,
            None => {
                index.insert(name.clone(), slices.len());
                slices.push((name, v));
            }
        }
    }
    if slices.is_empty() {
        return Err(empty(format!(
            "No positive values in {}",
            clean(&table.columns[y].name, 40)
        )));
    }
    if slices.len() > MAX_SLICES {
        let rest: f64 = slices[MAX_SLICES - 1..].iter().map(|s| s.1).sum();
        let n = slices.len() - (MAX_SLICES - 1);
        slices.truncate(MAX_SLICES - 1);
        slices.push((format!("Other ({n})"), rest));
    }
    let total: f64 = slices.iter().map(|s| s.1).sum();
    if !total.is_finite() || total <= 0.0 {
        return Err(empty("The values do not add up to a finite total"));
    }
    Ok(slices)
}

// ---------------------------------------------------------------------------------------
// table

fn draw_table(area: &Area, chart: &Chart, table: &Table) -> Res<Result<(), Empty>> {
    let mut cols: Vec<usize> = if chart.y.is_empty() {
        (0..table.columns.len()).collect()
    } else {
        let mut out = Vec::new();
        for name in &chart.y {
            match column(table, name) {
                Ok(i) if !out.contains(&i) => out.push(i),
                Ok(_) => {}
                Err(e) => return Ok(Err(e)),
            }
        }
        out
    };
    if cols.is_empty() {
        return Ok(Err(empty("The results have no columns")));
    }
    if table.rows.is_empty() {
        return Ok(Err(empty("The results have no rows")));
    }
    let more_cols = cols.len().saturating_sub(TABLE_COLS);
    cols.truncate(TABLE_COLS);
    let shown = table.rows.len().min(TABLE_ROWS);

    // Column widths follow the text they hold (capped), scaled to the width available.
    let cell = |r: usize, c: usize| -> String {
        match table.cell(r, c) {
            Value::String(s) if !table.is_numeric_column(c) => s.clone(),
            v => format_value(v).unwrap_or_default(),
        }
    };
    let wants: Vec<f64> = cols
        .iter()
        .map(|&c| {
            let longest = (0..shown)
                .map(|r| cell(r, c).chars().count())
                .chain(std::iter::once(table.columns[c].name.chars().count()))
                .max()
                .unwrap_or(1);
            longest.clamp(3, 30) as f64 * 7.0 + 14.0
        })
        .collect();
    let (w, _) = area.dim_in_pixel();
    let avail = w as f64 - 20.0;
    let scale = (avail / wants.iter().sum::<f64>()).min(1.0);
    let widths: Vec<f64> = wants.iter().map(|x| x * scale).collect();
    let numeric: Vec<bool> = cols.iter().map(|&c| table.is_numeric_column(c)).collect();

    let row_h = 20;
    let top = 16;
    let right = 10.0 + widths.iter().sum::<f64>();
    let draw_row = |y: i32, texts: Vec<String>, bold: bool| -> Res<()> {
        let mut x = 10.0;
        for (i, t) in texts.into_iter().enumerate() {
            let max_chars = ((widths[i] - 10.0) / 7.0).max(2.0) as usize;
            let font = (FONT, px(12.0)).into_font();
            let font = if bold {
                font.style(FontStyle::Bold)
            } else {
                font
            };
            let (pos, tx) = if numeric[i] {
                (RIGHT, x + widths[i] - 6.0)
            } else {
                (LEFT, x + 4.0)
            };
            area.draw(&Text::new(
                clean(&t, max_chars),
                (tx.round() as i32, y),
                TextStyle::from(font).pos(pos).color(&TEXT),
            ))?;
            x += widths[i];
        }
        Ok(())
    };
    let header: Vec<String> = cols
        .iter()
        .map(|&c| table.columns[c].name.clone())
        .collect();
    area.draw(&Rectangle::new(
        [(10, top), (right.round() as i32, top + row_h)],
        RGBColor(0xF0, 0xF0, 0xF0).filled(),
    ))?;
    draw_row(top + row_h / 2, header, true)?;
    area.draw(&PathElement::new(
        vec![(10, top + row_h), (right.round() as i32, top + row_h)],
        RGBColor(0x77, 0x77, 0x77),
    ))?;
    for r in 0..shown {
        let y = top + row_h * (r as i32 + 1);
        draw_row(
            y + row_h / 2,
            cols.iter().map(|&c| cell(r, c)).collect(),
            false,
        )?;
        area.draw(&PathElement::new(
            vec![(10, y + row_h), (right.round() as i32, y + row_h)],
            RGBColor(0xE0, 0xE0, 0xE0),
        ))?;
    }
    let mut notes = Vec::new();
    if table.rows.len() > shown {
        notes.push(format!("… {} more rows", table.rows.len() - shown));
    }
    if more_cols > 0 {
        notes.push(format!("… {more_cols} more columns"));
    }
    if !notes.is_empty() {
        area.draw(&Text::new(
            notes.join("  "),
            (14, top + row_h * (shown as i32 + 1) + 14),
            text_style(12, LEFT, &MUTED),
        ))?;
    }
    Ok(Ok(()))
}

// ---------------------------------------------------------------------------------------
// number

fn draw_number(area: &Area, chart: &Chart, table: &Table) -> Res<Result<(), Empty>> {
    let col = match chart.y.first() {
        Some(name) => match column(table, name) {
            Ok(i) => i,
            Err(e) => return Ok(Err(e)),
        },
        None => match (0..table.columns.len())
            .find(|&i| table.is_numeric_column(i))
            .or(if table.columns.is_empty() {
                None
            } else {
                Some(0)
            }) {
            Some(i) => i,
            None => return Ok(Err(empty("The results have no columns"))),
        },
    };
    if table.rows.is_empty() {
        return Ok(Err(empty("The results have no rows")));
    }
    let Some(text) = format_value(table.cell(0, col)) else {
        return Ok(Err(empty(format!(
            "{} is empty in the first row",
            clean(&table.columns[col].name, 40)
        ))));
    };
    let text = clean(&text, 30);
    let (w, h) = area.dim_in_pixel();
    let len = text.chars().count().max(1) as f64;
    let size = (56.0f64).min((w as f64 - 40.0) / (len * 0.6)).max(14.0) as u32;
    let (cx, cy) = (w as i32 / 2, h as i32 / 2 - 10);
    area.draw(&Text::new(
        text,
        (cx, cy),
        TextStyle::from((FONT, px(size as f64)).into_font().style(FontStyle::Bold))
            .pos(CENTER)
            .color(&TEXT),
    ))?;
    area.draw(&Text::new(
        clean(&table.columns[col].name, 60),
        (cx, cy + size as i32 / 2 + 24),
        text_style(16, CENTER, &MUTED),
    ))?;
    Ok(Ok(()))
}
