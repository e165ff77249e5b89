//! SVG charts of sweeps, drawn with `plotters`' SVG backend (text is
//! written as SVG `<text>`, so no system fonts are needed).

use std::path::Path;

use plotters::prelude::*;

use crate::{cli::LoadArgs, fanout::Point};

/// One line on a panel.
pub struct Series {
    pub name: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

/// One chart of the figure.
pub struct Panel {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub series: Vec<Series>,
    /// Shown instead of lines when no series has a point.
    pub empty_note: String,
}

const P50: RGBColor = RGBColor(31, 119, 180);
const P99: RGBColor = RGBColor(214, 39, 40);
const MEM: RGBColor = RGBColor(44, 160, 44);
const PER: RGBColor = RGBColor(148, 103, 189);

/// Load sweep: delivery latency against clients, server memory against
/// open sockets.
pub fn load_sweep(path: &Path, points: &[Point], a: &LoadArgs) -> Result<(), String> {
    let lat = |f: fn(&Point) -> Option<f64>| -> Vec<(f64, f64)> {
        points
            .iter()
            .filter_map(|p| Some((p.clients as f64, f(p)?)))
            .collect()
    };
    let mem: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.open as f64, p.rss_kib? as f64)))
        .collect();
    let instances = a.target.urls().len();
    let title = format!(
        "Chat server fan-out: {} posts/s for {} s per step{}",
        a.rate,
        a.duration,
        if instances > 1 {
            format!(", {instances} instances")
        } else {
            String::new()
        }
    );
    let panels = [
        Panel {
            title: "Delivery latency (POST issued to frame read)".into(),
            x_desc: "WebSocket clients".into(),
            y_desc: "latency (ms)".into(),
            series: vec![
                Series {
                    name: "p50".into(),
                    color: P50,
                    points: lat(|p| p.p50_ms),
                },
                Series {
                    name: "p99".into(),
                    color: P99,
                    points: lat(|p| p.p99_ms),
                },
            ],
            empty_note: "no deliveries".into(),
        },
        Panel {
            title: "Server memory at the end of each step".into(),
            x_desc: "open WebSockets".into(),
            y_desc: "server VmRSS (KiB)".into(),
            series: vec![Series {
                name: if a.target.pid.len() > 1 {
                    "VmRSS, servers summed".into()
                } else {
                    "VmRSS".into()
                },
                color: MEM,
                points: mem,
            }],
            empty_note: "not measured: pass --pid <server pid>".into(),
        },
    ];
    write(path, &render(&title, &panels)?)
}

/// Idle sweep: server memory and KiB per socket against open sockets.
/// `baseline_kib` is the reading with only the `warm` warm-up sockets open.
pub fn idle_sweep(
    path: &Path,
    points: &[Point],
    warm: usize,
    baseline_kib: Option<u64>,
) -> Result<(), String> {
    let mem: Vec<(f64, f64)> = baseline_kib
        .map(|b| (warm as f64, b as f64))
        .into_iter()
        .chain(
            points
                .iter()
                .filter_map(|p| Some((p.open as f64, p.rss_kib? as f64))),
        )
        .collect();
    let per: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| Some((p.open as f64, p.kib_per_conn?)))
        .collect();
    let title =
        format!("Chat server memory with idle WebSockets ({warm} warm-up sockets included)");
    let panels = [
        Panel {
            title: "Server memory (first point: warm-up only)".into(),
            x_desc: "open WebSockets".into(),
            y_desc: "server VmRSS (KiB)".into(),
            series: vec![Series {
                name: "VmRSS".into(),
                color: MEM,
                points: mem,
            }],
            empty_note: "not measured: pass --pid <server pid>".into(),
        },
        Panel {
            title: "Growth per measured socket since the baseline".into(),
            x_desc: "open WebSockets".into(),
            y_desc: "KiB per socket".into(),
            series: vec![Series {
                name: "KiB/socket".into(),
                color: PER,
                points: per,
            }],
            empty_note: "not measured: pass --pid <server pid>".into(),
        },
    ];
    write(path, &render(&title, &panels)?)
}

fn write(path: &Path, svg: &str) -> Result<(), String> {
    std::fs::write(path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Upper end of an axis: room above the largest value for the legend (at least 1).
fn axis_max(values: impl Iterator<Item = f64>) -> f64 {
    let m = values.fold(0.0f64, f64::max);
    if m > 0.0 {
        m * 1.3
    } else {
        1.0
    }
}

fn label(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The figure as SVG text: a title and the panels side by side.
pub fn render(title: &str, panels: &[Panel]) -> Result<String, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let mut svg = String::new();
    {
        let width = 620 * panels.len().max(1) as u32;
        let root = SVGBackend::with_string(&mut svg, (width, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let root = root
            .titled(title, ("sans-serif", 22))
            .map_err(|e| err(&e))?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            let all = || panel.series.iter().flat_map(|s| s.points.iter().copied());
            let x_max = axis_max(all().map(|(x, _)| x));
            let y_max = axis_max(all().map(|(_, y)| y));
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 16))
                .margin(16)
                .x_label_area_size(48)
                .y_label_area_size(72)
                .build_cartesian_2d(0f64..x_max, 0f64..y_max)
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_desc(panel.x_desc.as_str())
                .y_desc(panel.y_desc.as_str())
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| label(*v))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(|e| err(&e))?;
            if all().next().is_none() {
                chart
                    .draw_series(std::iter::once(Text::new(
                        panel.empty_note.clone(),
                        (x_max * 0.05, y_max * 0.5),
                        ("sans-serif", 16)
                            .into_font()
                            .color(&RGBColor(120, 120, 120)),
                    )))
                    .map_err(|e| err(&e))?;
                continue;
            }
            for s in &panel.series {
                let color = s.color;
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| err(&e))?
                    .label(s.name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(
                        s.points
                            .iter()
                            .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
                    )
                    .map_err(|e| err(&e))?;
                chart
                    .draw_series(s.points.iter().map(|&(x, y)| {
                        // The value just above and right of its point.
                        EmptyElement::at((x, y))
                            + Text::new(
                                label(y),
                                (6, -18),
                                ("sans-serif", 13).into_font().color(&color),
                            )
                    }))
                    .map_err(|e| err(&e))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .draw()
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_titles_axes_and_points() {
        let panels = [
            Panel {
                title: "Delivery latency".into(),
                x_desc: "WebSocket clients".into(),
                y_desc: "latency (ms)".into(),
                series: vec![
                    Series {
                        name: "p50".into(),
                        color: P50,
                        points: vec![(100.0, 1.5), (500.0, 3.0)],
                    },
                    Series {
                        name: "p99".into(),
                        color: P99,
                        points: vec![(100.0, 4.0), (500.0, 9.5)],
                    },
                ],
                empty_note: "none".into(),
            },
            Panel {
                title: "Memory".into(),
                x_desc: "open WebSockets".into(),
                y_desc: "KiB".into(),
                series: vec![Series {
                    name: "VmRSS".into(),
                    color: MEM,
                    points: vec![],
                }],
                empty_note: "not measured: pass --pid".into(),
            },
        ];
        let svg = render("Sweep & test", &panels).unwrap();
        assert!(svg.starts_with("<svg"));
        for text in [
            "Sweep &amp; test",
            "Delivery latency",
            "WebSocket clients",
            "latency (ms)",
            "p99",
            "9.50",
            "not measured: pass --pid",
        ] {
            assert!(svg.contains(text), "missing {text:?}");
        }
        assert!(svg.contains("<text"));
        assert!(svg.contains("<circle"));
    }

    #[test]
    fn axis_ranges() {
        assert_eq!(axis_max(std::iter::empty()), 1.0);
        assert!((axis_max([1.0, 10.0].into_iter()) - 13.0).abs() < 1e-9);
        assert_eq!(label(1234.4), "1234");
        assert_eq!(label(12.34), "12.3");
        assert_eq!(label(1.234), "1.23");
        assert_eq!(label(0.0), "0");
    }
}
