//! Chart — the two kinds of chart the report draws, each drawn once per backend: as SVG text
//! and as a PNG image (RGB, encoded in memory). Lines over a linear or logarithmic x axis
//! (throughput over partitions, over time), and horizontal grouped bars (modes, percentiles,
//! storage against the ceiling). Every chart has a title, axis descriptions with their units and
//! a legend.
//!
//! PNG text is drawn with the DejaVu Sans font embedded in this crate (`fonts/`, Bitstream Vera
//! licence beside it), so the charts render the same on a machine without any system font.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// The embedded font.
const FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
/// The font family every text uses.
const FAMILY: &str = "sans-serif";
/// Chart width in pixels.
pub const WIDTH: u32 = 1000;
/// Chart height of a line chart in pixels.
pub const LINE_HEIGHT: u32 = 560;
/// How far past the largest value an axis goes, so the legend does not cover data.
const LEGEND_ROOM: f64 = 1.45;
/// The light grid lines' colour.
const LIGHT_GRID: RGBColor = RGBColor(238, 238, 238);
/// Series colours, in order: the first two are Kafka and RocketMQ wherever both appear.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A chart to draw.
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    /// Lines over x.
    Lines(LineChart),
    /// Horizontal grouped bars.
    Bars(BarChart),
}

/// Lines over a numeric x axis.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// The title (what, and the configuration).
    pub title: String,
    /// The x axis's description with its unit.
    pub x_label: String,
    /// The y axis's description with its unit.
    pub y_label: String,
    /// Whether x is logarithmic (base 10; every x must be positive).
    pub x_log: bool,
    /// The lines; each is drawn with markers at its points.
    pub lines: Vec<Line>,
}

/// One line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Its legend entry.
    pub name: String,
    /// Its points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Its colour: an index into the palette (0 Kafka, 1 RocketMQ where both appear).
    pub color: usize,
    /// Drawn dashed.
    pub dashed: bool,
}

/// Horizontal bars: one row per category, one bar per group with a value in it.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// The title.
    pub title: String,
    /// The value axis's description with its unit.
    pub value_label: String,
    /// Whether the value axis is logarithmic (base 10).
    pub value_log: bool,
    /// Row labels, top to bottom.
    pub categories: Vec<String>,
    /// The groups (legend entries); `values[i]` belongs to `categories[i]`.
    pub groups: Vec<BarGroup>,
}

/// One group of bars.
#[derive(Debug, Clone, PartialEq)]
pub struct BarGroup {
    /// Its legend entry.
    pub name: String,
    /// One value per category; `None` draws no bar there.
    pub values: Vec<Option<f64>>,
}

/// A chart drawn twice.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The SVG document.
    pub svg: String,
    /// The PNG file's bytes.
    pub png: Vec<u8>,
}

/// Why a chart could not be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chart `{title}`: {reason}")]
pub struct ChartError {
    /// The chart's title.
    pub title: String,
    /// What went wrong.
    pub reason: String,
}

type Drawn = Result<(), String>;
/// An axis's range: (low, high).
type Span = (f64, f64);

impl Chart {
    /// The chart's title.
    pub fn title(&self) -> &str {
        match self {
            Self::Lines(chart) => &chart.title,
            Self::Bars(chart) => &chart.title,
        }
    }

    /// The chart's size in pixels.
    pub fn size(&self) -> (u32, u32) {
        match self {
            Self::Lines(_) => (WIDTH, LINE_HEIGHT),
            Self::Bars(chart) => {
                let bars: usize = chart
                    .categories
                    .iter()
                    .enumerate()
                    .map(|(row, _)| {
                        chart.groups.iter().filter(|g| value_at(g, row).is_some()).count().max(1)
                    })
                    .sum();
                let height = 170 + 18 * bars + 10 * chart.categories.len();
                (WIDTH, u32::try_from(height).unwrap_or(u32::MAX).max(LINE_HEIGHT / 2))
            }
        }
    }

    /// Draws the chart as SVG and as PNG.
    pub fn render(&self) -> Result<Rendered, ChartError> {
        let failed = |reason: String| ChartError { title: self.title().to_owned(), reason };
        register_font().map_err(failed)?;
        let size = self.size();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
            self.draw(&root).map_err(failed)?;
            root.present().map_err(|e| failed(e.to_string()))?;
        }
        let mut pixels = vec![0_u8; size.0 as usize * size.1 as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
            self.draw(&root).map_err(failed)?;
            root.present().map_err(|e| failed(e.to_string()))?;
        }
        let png = encode_png(&pixels, size).map_err(failed)?;
        Ok(Rendered { svg, png })
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        match self {
            Self::Lines(chart) => {
                let (x, y) = chart.bounds()?;
                if chart.x_log {
                    draw_lines(root, chart, (x.0..x.1).log_scale(), y.0..y.1)
                } else {
                    draw_lines(root, chart, x.0..x.1, y.0..y.1)
                }
            }
            Self::Bars(chart) => {
                let (low, high) = chart.bounds()?;
                if chart.value_log {
                    draw_bars(root, chart, (low..high).log_scale(), low)
                } else {
                    draw_bars(root, chart, low..high, low)
                }
            }
        }
    }
}

impl LineChart {
    /// The axes' ranges: x spans the points, y starts at 0 and leaves room above the top for
    /// the legend.
    fn bounds(&self) -> Result<(Span, Span), String> {
        let points: Vec<(f64, f64)> = self.lines.iter().flat_map(|l| l.points.clone()).collect();
        if points.is_empty() {
            return Err("no points to draw".to_owned());
        }
        if points.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
            return Err("a point is not a finite number".to_owned());
        }
        if self.x_log && points.iter().any(|(x, _)| *x <= 0.0) {
            return Err("a logarithmic x axis needs positive values".to_owned());
        }
        let x_min = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let x_max = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
        let y_max = points.iter().map(|p| p.1).fold(0.0, f64::max);
        let (x_min, x_max) = if x_max > x_min {
            (x_min, x_max)
        } else if self.x_log {
            (x_min / 2.0, x_max * 2.0)
        } else {
            (x_min - 1.0, x_max + 1.0)
        };
        let y_max = if y_max > 0.0 { y_max * LEGEND_ROOM } else { 1.0 };
        Ok(((x_min, x_max), (0.0, y_max)))
    }
}

impl BarChart {
    /// The value axis's range: from 0 (half the smallest value when logarithmic) to past the
    /// largest, leaving room on the right for the legend.
    fn bounds(&self) -> Result<Span, String> {
        if self.categories.is_empty() {
            return Err("no categories".to_owned());
        }
        let values: Vec<f64> =
            self.groups.iter().flat_map(|g| g.values.iter().flatten().copied()).collect();
        if values.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err("a bar is not a finite number ≥ 0".to_owned());
        }
        let max = values.iter().copied().fold(0.0, f64::max);
        if self.value_log {
            let min = values.iter().copied().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
            if !min.is_finite() {
                return Err("a logarithmic axis needs a positive value".to_owned());
            }
            Ok((min / 2.0, max * (max / min * 2.0).powf(LEGEND_ROOM - 1.0) * 2.0))
        } else {
            Ok((0.0, if max > 0.0 { max * LEGEND_ROOM } else { 1.0 }))
        }
    }
}

fn draw_lines<DB, X, Y>(root: &DrawingArea<DB, Shift>, spec: &LineChart, x: X, y: Y) -> Drawn
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let error = |e: &dyn std::fmt::Display| e.to_string();
    let mut chart = ChartBuilder::on(root)
        .caption(&spec.title, (FAMILY, 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(90)
        .build_cartesian_2d(x, y)
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc(&spec.x_label)
        .y_desc(&spec.y_label)
        .x_label_formatter(&|v| si(*v))
        .y_label_formatter(&|v| si(*v))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(|e| error(&e))?;
    for line in &spec.lines {
        let color = PALETTE[line.color % PALETTE.len()];
        let points = line.points.iter().copied();
        let drawn = if line.dashed {
            chart.draw_series(DashedLineSeries::new(points, 8, 6, color.stroke_width(2)))
        } else {
            chart.draw_series(LineSeries::new(points, color.stroke_width(2)))
        };
        // A dashed line's legend is two dashes.
        let dashes: &[(i32, i32)] = if line.dashed { &[(0, 9), (15, 24)] } else { &[(0, 24)] };
        drawn.map_err(|e| error(&e))?.label(line.name.as_str()).legend(move |(x, y)| {
            // Parts of a composed element are placed relative to its anchor.
            let dash = |&(from, to): &(i32, i32)| {
                PathElement::new(vec![(from, 0), (to, 0)], color.stroke_width(3))
            };
            EmptyElement::at((x, y)) + dash(&dashes[0]) + dash(dashes.last().unwrap_or(&dashes[0]))
        });
        // Hollow markers on a dashed line, so lines that coincide stay distinguishable.
        let marker = if line.dashed { color.stroke_width(2) } else { color.filled() };
        chart
            .draw_series(line.points.iter().map(|&point| Circle::new(point, 4, marker)))
            .map_err(|e| error(&e))?;
    }
    draw_legend(&mut chart)
}

fn draw_bars<DB, X>(root: &DrawingArea<DB, Shift>, spec: &BarChart, x: X, base: f64) -> Drawn
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let error = |e: &dyn std::fmt::Display| e.to_string();
    let rows = spec.categories.len();
    let categories = spec.categories.clone();
    let mut chart = ChartBuilder::on(root)
        .caption(&spec.title, (FAMILY, 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(330)
        .build_cartesian_2d(x, -0.5..rows as f64 - 0.5)
        .map_err(|e| error(&e))?;
    chart
        .configure_mesh()
        .x_desc(&spec.value_label)
        .x_label_formatter(&|v| si(*v))
        .y_labels(rows.max(1))
        .y_label_formatter(&|v| {
            // Rows are drawn top to bottom: row 0 at the top.
            let row = rows as f64 - 1.0 - v;
            let index = row.round();
            if (row - index).abs() < 0.01 && index >= 0.0 {
                categories.get(index as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .disable_y_mesh()
        .light_line_style(LIGHT_GRID)
        .label_style((FAMILY, 13))
        .axis_desc_style((FAMILY, 16))
        .draw()
        .map_err(|e| error(&e))?;
    for (group_index, group) in spec.groups.iter().enumerate() {
        let color = PALETTE[group_index % PALETTE.len()];
        let mut bars = Vec::new();
        for row in 0..rows {
            let Some(value) = value_at(group, row) else { continue };
            let present: Vec<usize> = (0..spec.groups.len())
                .filter(|&g| value_at(&spec.groups[g], row).is_some())
                .collect();
            let slot = present.iter().position(|&g| g == group_index).unwrap_or(0);
            let height = 0.8 / present.len() as f64;
            let center = rows as f64 - 1.0 - row as f64;
            let top = center + 0.4 - slot as f64 * height;
            bars.push(Rectangle::new(
                [(base, top), (value.max(base), top - height * 0.9)],
                color.filled(),
            ));
        }
        chart
            .draw_series(bars)
            .map_err(|e| error(&e))?
            .label(group.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], color.filled()));
    }
    draw_legend(&mut chart)
}

/// The legend, top right on a translucent box.
fn draw_legend<'a, DB, CT>(chart: &mut ChartContext<'a, DB, CT>) -> Drawn
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

fn value_at(group: &BarGroup, row: usize) -> Option<f64> {
    group.values.get(row).copied().flatten()
}

/// A number in few characters: 1.2M, 350k, 12, 0.5.
pub fn si(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e9 {
        format!("{:.1}G", value / 1e9)
    } else if magnitude >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if magnitude >= 1e4 {
        format!("{:.0}k", value / 1e3)
    } else if magnitude >= 1e3 {
        format!("{:.1}k", value / 1e3)
    } else if magnitude >= 10.0 || value.fract() == 0.0 {
        format!("{value:.0}")
    } else if magnitude >= 0.1 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn register_font() -> Result<(), String> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
                .map_err(|_| "the embedded font does not load".to_owned())
        })
        .clone()
}

fn encode_png(pixels: &[u8], (width, height): (u32, u32)) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(pixels).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Chart {
        Chart::Lines(LineChart {
            title: "Throughput vs partitions".into(),
            x_label: "partitions (log scale)".into(),
            y_label: "msgs/s".into(),
            x_log: true,
            lines: vec![
                Line {
                    name: "Kafka".into(),
                    points: vec![(1.0, 10.0), (1024.0, 30.0)],
                    color: 0,
                    dashed: false,
                },
                Line {
                    name: "RocketMQ".into(),
                    points: vec![(1.0, 20.0), (1024.0, 25.0)],
                    color: 1,
                    dashed: true,
                },
            ],
        })
    }

    #[test]
    fn a_line_chart_renders_as_svg_with_its_labels_and_as_a_png() {
        let rendered = lines().render().unwrap();
        for text in
            ["Throughput vs partitions", "partitions (log scale)", "msgs/s", "Kafka", "RocketMQ"]
        {
            assert!(rendered.svg.contains(text), "the SVG lacks `{text}`");
        }
        assert_eq!(&rendered.png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(&rendered.png));
        let info = decoder.read_info().unwrap();
        assert_eq!((info.info().width, info.info().height), (WIDTH, LINE_HEIGHT));
    }

    #[test]
    fn grouped_bars_render_and_empty_charts_are_refused() {
        let bars = Chart::Bars(BarChart {
            title: "Latency".into(),
            value_label: "ms (log scale)".into(),
            value_log: true,
            categories: vec!["async".into(), "sync".into()],
            groups: vec![
                BarGroup { name: "p50".into(), values: vec![Some(0.4), Some(2.0)] },
                BarGroup { name: "p99".into(), values: vec![Some(1.5), None] },
            ],
        });
        let rendered = bars.render().unwrap();
        assert!(rendered.svg.contains("async") && rendered.svg.contains("p99"));
        let empty = Chart::Lines(LineChart {
            lines: vec![],
            ..match lines() {
                Chart::Lines(chart) => chart,
                Chart::Bars(_) => unreachable!(),
            }
        });
        assert!(empty.render().unwrap_err().to_string().contains("no points"));
    }

    #[test]
    fn numbers_are_short() {
        assert_eq!(si(1_234_567.0), "1.2M");
        assert_eq!(si(350_000.0), "350k");
        assert_eq!(si(1_500.0), "1.5k");
        assert_eq!(si(12.0), "12");
        assert_eq!(si(0.3), "0.3");
        assert_eq!(si(0.0), "0");
        assert_eq!(si(2.0), "2");
    }
}
