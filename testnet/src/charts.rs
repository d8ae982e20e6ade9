//! PNG charts of benchmark results (the `plotters` crate, bitmap backend): line charts of
//! one or more series over a shared x axis, and the load curve of a `cairn-testnet bench`
//! results file (finalized TPS and latency against offered load).
//!
//! Text needs a TrueType font: [`find_font`] looks for one at `CAIRN_CHART_FONT` and then
//! at the usual Debian paths (`fonts-dejavu-core`, `fonts-liberation`; `scripts/install-deps.sh`
//! installs the first). Without one, [`ChartError::NoFont`] says so and nothing is written.
//! Charts are [`CHART_WIDTH_PX`] × [`CHART_HEIGHT_PX`] pixels; a series holds at most
//! [`SERIES_POINTS_MAX`] points and a chart at most [`CHART_SERIES_MAX`] series.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;
use serde_json::Value;

/// Width of every chart, pixels.
pub const CHART_WIDTH_PX: u32 = 1000;
/// Height of a single chart, pixels (the load curve stacks two: twice this).
pub const CHART_HEIGHT_PX: u32 = 420;
/// Most points in one series.
pub const SERIES_POINTS_MAX: usize = 100_000;
/// Most series in one chart.
pub const CHART_SERIES_MAX: usize = 8;
/// Where [`find_font`] looks after `CAIRN_CHART_FONT`, in order.
pub const FONT_PATHS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];
/// Largest font file read, bytes.
pub const FONT_BYTES_MAX: u64 = 32 << 20;

/// Series colours, in order.
const PALETTE: [RGBColor; CHART_SERIES_MAX] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Why a chart was not written.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// No usable TrueType font.
    #[error(
        "no TrueType font for chart text: set CAIRN_CHART_FONT to a .ttf file or install fonts-dejavu-core (looked at {looked})"
    )]
    NoFont {
        /// The paths tried.
        looked: String,
    },
    /// The data cannot be charted.
    #[error("cannot chart {what}: {reason}")]
    BadData {
        /// Which chart.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// Drawing or writing the PNG failed.
    #[error("cannot draw {path}: {reason}")]
    Draw {
        /// The output file.
        path: PathBuf,
        /// The backend's error.
        reason: String,
    },
}

/// One line of a chart: a name for the legend and `(x, y)` points, x ascending.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// The points.
    pub points: Vec<(f64, f64)>,
}

/// A line chart: title, axis descriptions, series.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    /// Caption above the chart.
    pub title: String,
    /// X axis description (with its unit).
    pub x_desc: String,
    /// Y axis description (with its unit).
    pub y_desc: String,
    /// The lines, at most [`CHART_SERIES_MAX`].
    pub series: Vec<Series>,
}

impl LineChart {
    fn check(&self) -> Result<(f64, f64), ChartError> {
        let bad = |reason: String| ChartError::BadData {
            what: self.title.clone(),
            reason,
        };
        if self.series.is_empty() || self.series.len() > CHART_SERIES_MAX {
            return Err(bad(format!(
                "{} series (1..={CHART_SERIES_MAX})",
                self.series.len()
            )));
        }
        let (mut x_max, mut y_max) = (0f64, 0f64);
        for s in &self.series {
            if s.points.len() > SERIES_POINTS_MAX {
                return Err(bad(format!(
                    "{} has over {SERIES_POINTS_MAX} points",
                    s.name
                )));
            }
            for &(x, y) in &s.points {
                if !(x.is_finite() && y.is_finite() && x >= 0.0 && y >= 0.0) {
                    return Err(bad(format!("{} has a point ({x}, {y})", s.name)));
                }
                x_max = x_max.max(x);
                y_max = y_max.max(y);
            }
        }
        if self.series.iter().all(|s| s.points.is_empty()) {
            return Err(bad("no points".into()));
        }
        // Room above the highest point; a flat zero line still gets an axis.
        Ok((nice_max(x_max), nice_max(y_max * 1.1)))
    }
}

/// A round axis end at or above `v` (1, 2 or 5 times a power of ten).
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let step = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * step)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * step)
}

/// An axis label: whole numbers without decimals, fractions with two.
fn axis_label(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// The font file chart text uses: `CAIRN_CHART_FONT`, else the first of [`FONT_PATHS`]
/// that exists.
///
/// # Errors
/// [`ChartError::NoFont`] when none exists.
pub fn find_font() -> Result<PathBuf, ChartError> {
    let mut looked = Vec::new();
    let env = std::env::var_os("CAIRN_CHART_FONT").map(PathBuf::from);
    for path in env.into_iter().chain(FONT_PATHS.iter().map(PathBuf::from)) {
        if path.is_file() {
            return Ok(path);
        }
        looked.push(path.display().to_string());
    }
    Err(ChartError::NoFont {
        looked: looked.join(", "),
    })
}

/// Registers the chart font once per process (plotters keeps it for the process's life).
fn ensure_font() -> Result<(), ChartError> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let path = find_font().map_err(|e| e.to_string())?;
        let len = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
        if len > FONT_BYTES_MAX {
            return Err(format!("{} is over {FONT_BYTES_MAX} bytes", path.display()));
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // plotters keeps registered fonts for the process's life: leak one copy, once.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{} is not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(|looked| ChartError::NoFont { looked })
}

/// Draws `chart` into `area`.
fn draw_into<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    chart: &LineChart,
) -> Result<(), String> {
    let (x_max, y_max) = chart.check().map_err(|e| e.to_string())?;
    let mut c = ChartBuilder::on(area)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)
        .map_err(|e| e.to_string())?;
    c.configure_mesh()
        .x_desc(&chart.x_desc)
        .y_desc(&chart.y_desc)
        .label_style(("sans-serif", 14))
        .x_label_formatter(&|v| axis_label(*v))
        .y_label_formatter(&|v| axis_label(*v))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in chart.series.iter().enumerate() {
        let color = PALETTE[i];
        c.draw_series(LineSeries::new(
            s.points.iter().copied(),
            color.stroke_width(2),
        ))
        .map_err(|e| e.to_string())?
        .label(&s.name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        c.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes `charts` stacked vertically into one PNG at `out`
/// ([`CHART_WIDTH_PX`] × `charts.len()` · [`CHART_HEIGHT_PX`]).
///
/// # Errors
/// [`ChartError::NoFont`], [`ChartError::BadData`] (no series, too many, a point that is
/// negative or not finite), [`ChartError::Draw`].
pub fn write_png(out: &Path, charts: &[LineChart]) -> Result<(), ChartError> {
    if charts.is_empty() || charts.len() > CHART_SERIES_MAX {
        return Err(ChartError::BadData {
            what: out.display().to_string(),
            reason: format!(
                "{} charts in one file (1..={CHART_SERIES_MAX})",
                charts.len()
            ),
        });
    }
    for c in charts {
        c.check()?;
    }
    ensure_font()?;
    let draw_err = |reason: String| ChartError::Draw {
        path: out.to_path_buf(),
        reason,
    };
    let height = CHART_HEIGHT_PX * charts.len() as u32;
    let root = BitMapBackend::new(out, (CHART_WIDTH_PX, height)).into_drawing_area();
    draw_all(&root, charts).map_err(draw_err)
}

/// Draws `charts` stacked into an RGB buffer (3 bytes a pixel, rows top to bottom) of
/// [`CHART_WIDTH_PX`] × `charts.len()` · [`CHART_HEIGHT_PX`]: the same picture
/// [`write_png`] writes.
///
/// # Errors
/// As [`write_png`].
pub fn render_rgb(charts: &[LineChart]) -> Result<Vec<u8>, ChartError> {
    if charts.is_empty() || charts.len() > CHART_SERIES_MAX {
        return Err(ChartError::BadData {
            what: "charts".into(),
            reason: format!(
                "{} charts in one picture (1..={CHART_SERIES_MAX})",
                charts.len()
            ),
        });
    }
    for c in charts {
        c.check()?;
    }
    ensure_font()?;
    let height = CHART_HEIGHT_PX * charts.len() as u32;
    let mut buf = vec![0u8; (CHART_WIDTH_PX * height * 3) as usize];
    {
        let root =
            BitMapBackend::with_buffer(&mut buf, (CHART_WIDTH_PX, height)).into_drawing_area();
        draw_all(&root, charts).map_err(|reason| ChartError::Draw {
            path: PathBuf::from("(memory)"),
            reason,
        })?;
    }
    Ok(buf)
}

fn draw_all<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    charts: &[LineChart],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((charts.len(), 1));
    for (area, chart) in areas.iter().zip(charts) {
        draw_into(area, chart)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// The load curve of a `cairn-testnet bench` results file (its JSON, so files of earlier
/// versions chart too): finalized TPS against offered TPS for every search step (with the
/// offered load itself as the ideal), and p50 / p99 finality latency against offered TPS.
///
/// # Errors
/// [`ChartError::BadData`] when the results hold no search steps.
pub fn load_curve(results: &Value) -> Result<Vec<LineChart>, ChartError> {
    let steps = results["steps"].as_array().cloned().unwrap_or_default();
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mut finalized = Vec::new();
    let mut ideal = Vec::new();
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for s in &steps {
        let offered = num(&s["offered_tps"]);
        finalized.push((offered, num(&s["finalized_tps"])));
        ideal.push((offered, offered));
        p50.push((offered, num(&s["latency"]["p50_ms"])));
        p99.push((offered, num(&s["latency"]["p99_ms"])));
    }
    if steps.is_empty() {
        return Err(ChartError::BadData {
            what: "load curve".into(),
            reason: "the results hold no search steps".into(),
        });
    }
    let validators = results["validators"].as_u64().unwrap_or(0);
    Ok(vec![
        LineChart {
            title: format!("Finalized throughput, {validators} validator(s)"),
            x_desc: "offered load (transfers/s)".into(),
            y_desc: "finalized (transfers/s)".into(),
            series: vec![
                Series {
                    name: "finalized".into(),
                    points: finalized,
                },
                Series {
                    name: "offered (ideal)".into(),
                    points: ideal,
                },
            ],
        },
        latency_chart(
            format!("Finality latency, {validators} validator(s)"),
            "offered load (transfers/s)",
            p50,
            p99,
        ),
    ])
}

/// A latency chart: p50 and p99 submission-to-finality latency against `x_desc`.
fn latency_chart(
    title: String,
    x_desc: &str,
    p50: Vec<(f64, f64)>,
    p99: Vec<(f64, f64)>,
) -> LineChart {
    LineChart {
        title,
        x_desc: x_desc.into(),
        y_desc: "submission to finality (ms)".into(),
        series: vec![
            Series {
                name: "p50".into(),
                points: p50,
            },
            Series {
                name: "p99".into(),
                points: p99,
            },
        ],
    }
}

/// The state-size curve of several `cairn-testnet bench` results files (their JSON), one
/// point per file, by `accounts` (log10 on the x axis: 10,000 is 4, 10,000,000 is 7):
/// saturation and sustained finalized TPS, and the sustained run's per-block execution and
/// commit time.
///
/// # Errors
/// [`ChartError::BadData`] when a file has no account count (or 0) or none has a sustained
/// run.
pub fn state_size_curve(results: &[Value]) -> Result<Vec<LineChart>, ChartError> {
    let bad = |reason: String| ChartError::BadData {
        what: "state-size curve".into(),
        reason,
    };
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mut rows: Vec<&Value> = results.iter().collect();
    rows.sort_by(|a, b| num(&a["accounts"]).total_cmp(&num(&b["accounts"])));
    let (mut saturation, mut sustained, mut execute, mut commit) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in &rows {
        let accounts = num(&r["accounts"]);
        // NaN (no count) fails this too.
        if accounts.is_nan() || accounts < 1.0 {
            return Err(bad(format!(
                "a results file has accounts = {}",
                r["accounts"]
            )));
        }
        let x = accounts.log10();
        saturation.push((x, num(&r["saturation_tps"])));
        if let Some(t) = r["sustained"]["finalized_tps"].as_f64() {
            sustained.push((x, t));
        }
        let times = &r["sustained_block_times"];
        if let (Some(e), Some(c)) = (
            times["execute_ms_per_block"].as_f64(),
            times["commit_ms_per_block"].as_f64(),
        ) {
            execute.push((x, e));
            commit.push((x, c));
        }
    }
    if sustained.is_empty() {
        return Err(bad("no results file has a sustained run".into()));
    }
    let validators = rows
        .first()
        .and_then(|r| r["validators"].as_u64())
        .unwrap_or(0);
    Ok(vec![
        LineChart {
            title: format!("Throughput against state size, {validators} validator(s)"),
            x_desc: "funded accounts (log10)".into(),
            y_desc: "finalized (transfers/s)".into(),
            series: vec![
                Series {
                    name: "sustained".into(),
                    points: sustained,
                },
                Series {
                    name: "saturation (search)".into(),
                    points: saturation,
                },
            ],
        },
        LineChart {
            title: "Per-block time in the sustained run (mean over validators)".into(),
            x_desc: "funded accounts (log10)".into(),
            y_desc: "ms per block".into(),
            series: vec![
                Series {
                    name: "execute".into(),
                    points: execute,
                },
                Series {
                    name: "commit".into(),
                    points: commit,
                },
            ],
        },
    ])
}

/// The soak phase of a `bench` results file over time, if it has one: finalized TPS and
/// p50/p99 latency per window, and each node's resident memory and RocksDB write-stall
/// time at every sample, plus its live Rust heap when the samples carry one (nodes built
/// with `heap-stats`) (x: minutes since the soak started). `Ok(vec![])` without a soak.
///
/// # Errors
/// [`ChartError::BadData`] when the soak has no windows.
pub fn soak_curve(results: &Value) -> Result<Vec<LineChart>, ChartError> {
    let soak = &results["soak"];
    if soak.is_null() {
        return Ok(Vec::new());
    }
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let windows = soak["report"]["windows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if windows.is_empty() {
        return Err(ChartError::BadData {
            what: "soak".into(),
            reason: "the soak has no windows".into(),
        });
    }
    let (mut tps, mut p50, mut p99) = (Vec::new(), Vec::new(), Vec::new());
    // How long the load was offered; a window mostly after it is the drain's tail.
    let offered_s = soak["report"]["duration_s"]
        .as_f64()
        .unwrap_or(f64::INFINITY);
    for w in &windows {
        // The drain's tail after the last offer (a second or so, with the last few
        // transfers' finality) is not a measurement: plotted, it reads as a collapse.
        if num(&w["start_s"]) + num(&w["length_s"]) / 2.0 >= offered_s
            || (num(&w["offered_tps"]) == 0.0 && num(&w["finalized_tps"]) == 0.0)
        {
            continue;
        }
        // Plotted at the window's middle.
        let x = (num(&w["start_s"]) + num(&w["length_s"]) / 2.0) / 60.0;
        tps.push((x, num(&w["finalized_tps"])));
        p50.push((x, num(&w["latency"]["p50_ms"])));
        p99.push((x, num(&w["latency"]["p99_ms"])));
    }
    let mut rss: Vec<Series> = Vec::new();
    let mut stall: Vec<Series> = Vec::new();
    // The live Rust heap, only in samples of nodes built with `heap-stats` (NaN or null
    // otherwise): drawn beside RSS so that allocator-held memory shows as the gap.
    let mut heap: Vec<Series> = Vec::new();
    // Samples start with the soak phase, before its funding and pre-signing
    // (`report.setup_s`); on the charts' clock the load starts at 0, earlier samples are left
    // out.
    let setup_s = soak["report"]["setup_s"].as_f64().unwrap_or(0.0);
    for sample in soak["samples"].as_array().into_iter().flatten() {
        let x = (num(&sample["t_s"]) - setup_s) / 60.0;
        if x < 0.0 {
            continue;
        }
        for (i, n) in sample["nodes"].as_array().into_iter().flatten().enumerate() {
            if i >= CHART_SERIES_MAX {
                break;
            }
            if rss.len() <= i {
                let name = n["node"].as_str().unwrap_or("node").to_string();
                rss.push(Series {
                    name: name.clone(),
                    points: Vec::new(),
                });
                stall.push(Series {
                    name: name.clone(),
                    points: Vec::new(),
                });
                heap.push(Series {
                    name,
                    points: Vec::new(),
                });
            }
            let (r, st) = (num(&n["rss_mib"]), num(&n["stall_micros"]));
            if r.is_finite() {
                rss[i].points.push((x, r));
            }
            let h = num(&n["heap_allocated_mib"]);
            if h.is_finite() {
                heap[i].points.push((x, h));
            }
            if st.is_finite() {
                stall[i].points.push((x, st / 1000.0));
            }
        }
    }
    let fraction = num(&soak["fraction"]);
    let mut charts = vec![
        LineChart {
            title: format!(
                "Soak at {:.0}% of saturation: finalized throughput per window",
                100.0 * fraction
            ),
            x_desc: "minutes since the soak started".into(),
            y_desc: "finalized (transfers/s)".into(),
            series: vec![Series {
                name: "finalized".into(),
                points: tps,
            }],
        },
        latency_chart(
            "Soak: finality latency per window".into(),
            "minutes since the soak started",
            p50,
            p99,
        ),
    ];
    if rss.iter().any(|s| !s.points.is_empty()) {
        charts.push(LineChart {
            title: "Soak: resident memory per node".into(),
            x_desc: "minutes since the soak started".into(),
            y_desc: "RSS (MiB)".into(),
            series: rss,
        });
        charts.push(LineChart {
            title: "Soak: RocksDB write-stall time per node (cumulative)".into(),
            x_desc: "minutes since the soak started".into(),
            y_desc: "stalled (ms)".into(),
            series: stall,
        });
    }
    if heap.iter().any(|s| !s.points.is_empty()) {
        charts.push(LineChart {
            title: "Soak: live Rust heap per node (feature heap-stats)".into(),
            x_desc: "minutes since the soak started".into(),
            y_desc: "allocated (MiB)".into(),
            series: heap,
        });
    }
    Ok(charts)
}

/// The validator-count curve of several `bench` results files, one point per file by
/// `validators`: sustained finalized TPS and TPS × validators, half-load p50/p99 latency,
/// and the consensus and block gossip bytes per finalized block in the sustained run.
///
/// # Errors
/// [`ChartError::BadData`] when a file has no validator count or none has a sustained run.
pub fn validator_curve(results: &[Value]) -> Result<Vec<LineChart>, ChartError> {
    let bad = |reason: String| ChartError::BadData {
        what: "validator-count curve".into(),
        reason,
    };
    let num = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let mut rows: Vec<&Value> = results.iter().collect();
    rows.sort_by(|a, b| num(&a["validators"]).total_cmp(&num(&b["validators"])));
    let (mut tps, mut tps_x, mut p50, mut p99, mut consensus_kb, mut block_kb) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for r in &rows {
        let v = num(&r["validators"]);
        if v.is_nan() || v < 1.0 {
            return Err(bad(format!(
                "a results file has validators = {}",
                r["validators"]
            )));
        }
        if let Some(t) = r["sustained"]["finalized_tps"].as_f64() {
            tps.push((v, t));
            tps_x.push((v, t * v));
        }
        if let (Some(a), Some(b)) = (
            r["half_load"]["latency"]["p50_ms"].as_f64(),
            r["half_load"]["latency"]["p99_ms"].as_f64(),
        ) {
            p50.push((v, a));
            p99.push((v, b));
        }
        let g = &r["sustained_gossip"]["bytes_per_block"];
        if let Some(c) = g["consensus"].as_f64() {
            consensus_kb.push((v, c / 1024.0));
        }
        if let Some(b) = g["block"].as_f64() {
            block_kb.push((v, b / 1024.0));
        }
    }
    if tps.is_empty() {
        return Err(bad("no results file has a sustained run".into()));
    }
    let mut charts = vec![
        LineChart {
            title: "Sustained throughput against the validator count".into(),
            x_desc: "validators".into(),
            y_desc: "transfers/s".into(),
            series: vec![
                Series {
                    name: "finalized".into(),
                    points: tps,
                },
                Series {
                    name: "finalized × validators (signature checks/s)".into(),
                    points: tps_x,
                },
            ],
        },
        latency_chart(
            "Half-load finality latency against the validator count".into(),
            "validators",
            p50,
            p99,
        ),
    ];
    if !consensus_kb.is_empty() {
        charts.push(LineChart {
            title: "Gossip sent per finalized block, all validators (sustained run)".into(),
            x_desc: "validators".into(),
            y_desc: "KiB per block".into(),
            series: vec![
                Series {
                    name: "consensus (votes, certificates)".into(),
                    points: consensus_kb,
                },
                Series {
                    name: "block (compact proposals)".into(),
                    points: block_kb,
                },
            ],
        });
    }
    Ok(charts)
}

/// The PNG path beside a results file: `bench-results.json` → `bench-results.png`.
pub fn png_beside(results: &Path) -> PathBuf {
    results.with_extension("png")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axis_ends() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(0.7), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(16_000.0), 20_000.0);
        assert_eq!(nice_max(50_000.0), 50_000.0);
        assert_eq!(nice_max(51_000.0), 100_000.0);
    }

    #[test]
    fn bad_data_is_refused_before_drawing() {
        let chart = |points: Vec<(f64, f64)>| LineChart {
            title: "t".into(),
            x_desc: "x".into(),
            y_desc: "y".into(),
            series: vec![Series {
                name: "s".into(),
                points,
            }],
        };
        let out = Path::new("/nonexistent/never-written.png");
        for points in [
            vec![],
            vec![(1.0, f64::NAN)],
            vec![(-1.0, 2.0)],
            vec![(1.0, f64::INFINITY)],
        ] {
            assert!(matches!(
                write_png(out, &[chart(points.clone())]),
                Err(ChartError::BadData { .. })
            ));
        }
        assert!(matches!(
            write_png(out, &[]),
            Err(ChartError::BadData { .. })
        ));
        assert!(matches!(
            load_curve(&serde_json::json!({"steps": []})),
            Err(ChartError::BadData { .. })
        ));
    }

    /// The load curve of the committed 4-validator results renders: a PNG of the stated
    /// size, mostly white, with the first series' colour drawn.
    #[test]
    fn load_curve_of_committed_results_renders() {
        if find_font().is_err() {
            eprintln!("skipped: no TrueType font on this machine (install fonts-dejavu-core)");
            return;
        }
        let results: Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bench-results-4v.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let charts = load_curve(&results).unwrap();
        assert_eq!(charts.len(), 2);
        let steps = results["steps"].as_array().unwrap().len();
        assert_eq!(charts[0].series[0].points.len(), steps);
        let dir = tempfile::tempdir().unwrap();
        let out = png_beside(&dir.path().join("bench-results.json"));
        write_png(&out, &charts).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big endian, right after the signature and chunk header.
        let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
        assert_eq!((be(16), be(20)), (CHART_WIDTH_PX, 2 * CHART_HEIGHT_PX));
        // The same picture in memory: count the first series' colour and the background.
        let rgb = render_rgb(&charts).unwrap();
        let c = PALETTE[0];
        let blue = rgb
            .chunks_exact(3)
            .filter(|p| *p == [c.0, c.1, c.2])
            .count();
        let white = rgb
            .chunks_exact(3)
            .filter(|p| *p == [255, 255, 255])
            .count();
        let total = rgb.len() / 3;
        assert!(blue > 500, "the finalized line is drawn ({blue} pixels)");
        assert!(white > total / 2, "mostly background ({white} of {total})");
    }

    #[test]
    fn state_size_curve_orders_by_accounts_and_needs_them() {
        let r = |accounts: u64, tps: f64, commit: f64| {
            serde_json::json!({
                "validators": 4,
                "accounts": accounts,
                "saturation_tps": tps + 100.0,
                "sustained": {"finalized_tps": tps},
                "sustained_block_times": {"execute_ms_per_block": 2.0, "commit_ms_per_block": commit},
            })
        };
        let charts = state_size_curve(&[r(1_000_000, 900.0, 5.0), r(10_000, 1000.0, 4.0)]).unwrap();
        assert_eq!(
            charts[0].series[0].points,
            vec![(4.0, 1000.0), (6.0, 900.0)]
        );
        assert_eq!(charts[1].series[1].points, vec![(4.0, 4.0), (6.0, 5.0)]);
        assert!(state_size_curve(&[r(0, 1.0, 1.0)]).is_err());
        assert!(state_size_curve(&[serde_json::json!({"accounts": 10})]).is_err());
    }

    #[test]
    fn validator_curve_orders_by_validators_and_multiplies() {
        let r = |v: u64, tps: f64| {
            serde_json::json!({
                "validators": v,
                "sustained": {"finalized_tps": tps},
                "half_load": {"latency": {"p50_ms": 100 * v, "p99_ms": 300 * v}},
                "sustained_gossip": {"bytes_per_block": {"consensus": 2048.0 * v as f64, "block": 1024.0}},
            })
        };
        let charts = validator_curve(&[r(7, 1000.0), r(4, 2000.0)]).unwrap();
        assert_eq!(charts.len(), 3);
        assert_eq!(
            charts[0].series[0].points,
            vec![(4.0, 2000.0), (7.0, 1000.0)]
        );
        assert_eq!(
            charts[0].series[1].points,
            vec![(4.0, 8000.0), (7.0, 7000.0)]
        );
        assert_eq!(
            charts[1].series[1].points,
            vec![(4.0, 1200.0), (7.0, 2100.0)]
        );
        assert_eq!(charts[2].series[0].points, vec![(4.0, 8.0), (7.0, 14.0)]);
        assert!(validator_curve(&[serde_json::json!({"validators": 4})]).is_err());
    }

    #[test]
    fn soak_curve_draws_windows_and_samples_or_nothing() {
        assert!(
            soak_curve(&serde_json::json!({"steps": []}))
                .unwrap()
                .is_empty()
        );
        let v = serde_json::json!({"soak": {
            "fraction": 0.7,
            "report": {"windows": [
                {"start_s": 0.0, "length_s": 600.0, "finalized_tps": 5000.0, "latency": {"p50_ms": 90, "p99_ms": 300}},
                {"start_s": 600.0, "length_s": 600.0, "finalized_tps": 4900.0, "latency": {"p50_ms": 95, "p99_ms": 320}},
                {"start_s": 1200.0, "length_s": 1.5, "offered_tps": 73.0, "finalized_tps": 1952.0, "latency": {"p50_ms": 102, "p99_ms": 102}},
                {"start_s": 1201.5, "length_s": 30.0, "offered_tps": 0.0, "finalized_tps": 0.0, "latency": {"p50_ms": 0, "p99_ms": 0}},
            ], "setup_s": 60.0, "duration_s": 1200.0},
            "samples": [
                {"t_s": 30.0, "nodes": [{"node": "validator-0", "rss_mib": 50.0, "stall_micros": 0.0}]},
                {"t_s": 60.0, "nodes": [{"node": "validator-0", "rss_mib": 100.0, "stall_micros": 0.0}]},
                {"t_s": 120.0, "nodes": [{"node": "validator-0", "rss_mib": 110.0, "stall_micros": 2000.0, "heap_allocated_mib": null}]},
            ],
        }});
        let c = soak_curve(&v).unwrap();
        // No sample carries a live-heap figure: no heap chart.
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].series[0].points, vec![(5.0, 5000.0), (15.0, 4900.0)]);
        assert_eq!(c[2].series[0].points, vec![(0.0, 100.0), (1.0, 110.0)]);
        assert_eq!(c[3].series[0].points, vec![(0.0, 0.0), (1.0, 2.0)]);
        let mut with_heap = v.clone();
        with_heap["soak"]["samples"][1]["nodes"][0]["heap_allocated_mib"] = 80.5.into();
        with_heap["soak"]["samples"][2]["nodes"][0]["heap_allocated_mib"] = 82.0.into();
        let c = soak_curve(&with_heap).unwrap();
        assert_eq!(c.len(), 5);
        assert_eq!(c[4].series[0].name, "validator-0");
        assert_eq!(c[4].series[0].points, vec![(0.0, 80.5), (1.0, 82.0)]);
        let empty = serde_json::json!({"soak": {"report": {"windows": []}}});
        assert!(soak_curve(&empty).is_err());
    }
}
