//! SVG figures of an analysis (plotters): ROC curves per stratum, agreement AUCs with their bootstrap
//! CIs (per stratum, and per studied layer x observer), and human against model accuracy per unit.

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::bootstrap::Interval;
use super::report::{AgreementRow, UnitResult};

const SIZE: (u32, u32) = (640, 480);

/// A plotting failure (plotters reports drawing errors through its backend's error type).
#[derive(Debug, thiserror::Error)]
#[error("plot: {0}")]
pub struct PlotError(String);

fn err<E: std::fmt::Debug>(e: E) -> PlotError {
    PlotError(format!("{e:?}"))
}

fn colour(i: usize) -> RGBColor {
    let (r, g, b) = Palette99::pick(i).to_rgba().rgb();
    RGBColor(r, g, b)
}

/// The series labels, at the lower right on a light box.
fn legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)
}

/// Keeps a label short enough for an axis.
fn short(name: &str) -> String {
    if name.chars().count() > 48 {
        format!("{}…", name.chars().take(47).collect::<String>())
    } else {
        name.to_string()
    }
}

/// ROC curves of the observer's evidence predicting human correctness, one line per stratum.
pub fn roc_svg(strata: &[&AgreementRow]) -> Result<String, PlotError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Agreement ROC per stratum", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("false positive rate (human wrong, model evidence above threshold)")
            .y_desc("true positive rate")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                BLACK.mix(0.3).stroke_width(1),
            ))
            .map_err(err)?;
        for (i, stratum) in strata.iter().enumerate() {
            let c = colour(i);
            let points = stratum
                .agreement
                .roc
                .iter()
                .map(|p| (p.false_positive_rate, p.true_positive_rate));
            let auc = stratum
                .agreement
                .auc_correct
                .map_or("n/a".to_string(), |a| format!("{a:.3}"));
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))
                .map_err(err)?
                .label(format!("{} (AUC {auc})", short(&stratum.name())))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
        }
        if !strata.is_empty() {
            legend(&mut chart)?;
        }
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// One point of an AUC figure: its place on the x axis, its series, the AUC and its interval.
pub struct AucPoint {
    pub x: String,
    pub series: String,
    pub auc: Option<f64>,
    pub ci: Option<Interval>,
}

/// AUCs with their 95 % bootstrap intervals, grouped along x and coloured by series; chance at 0.5.
pub fn auc_svg(title: &str, x_desc: &str, points: &[AucPoint]) -> Result<String, PlotError> {
    let mut names: Vec<&str> = Vec::new();
    let mut series: Vec<&str> = Vec::new();
    for p in points {
        if !names.contains(&p.x.as_str()) {
            names.push(&p.x);
        }
        if !series.contains(&p.series.as_str()) {
            series.push(&p.series);
        }
    }
    let labels: Vec<String> = names.iter().map(|n| short(n)).collect();
    let n = names.len().max(1) as f64;
    // Series side by side within each x group.
    let width = 0.7 / series.len().max(1) as f64;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..1f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(names.len().max(1))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc(x_desc)
            .y_desc("AUC")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(-0.5, 0.5), (n - 0.5, 0.5)],
                BLACK.mix(0.3).stroke_width(1),
            ))
            .map_err(err)?;
        for (k, name) in series.iter().enumerate() {
            let c = colour(k);
            let offset = (k as f64 - (series.len() as f64 - 1.0) / 2.0) * width;
            let mine: Vec<(f64, &AucPoint)> = points
                .iter()
                .filter(|p| p.series == *name)
                .filter_map(|p| {
                    let i = names.iter().position(|n| *n == p.x)?;
                    Some((i as f64 + offset, p))
                })
                .collect();
            for &(x, p) in &mine {
                if let Some(ci) = p.ci {
                    let bars = [
                        vec![(x, ci.low), (x, ci.high)],
                        vec![(x - 0.05, ci.low), (x + 0.05, ci.low)],
                        vec![(x - 0.05, ci.high), (x + 0.05, ci.high)],
                    ];
                    chart
                        .draw_series(
                            bars.into_iter()
                                .map(|p| PathElement::new(p, c.stroke_width(2))),
                        )
                        .map_err(err)?;
                }
            }
            chart
                .draw_series(
                    mine.iter()
                        .filter_map(|&(x, p)| Some(Circle::new((x, p.auc?), 5, c.filled()))),
                )
                .map_err(err)?
                .label(short(name))
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
        if !series.is_empty() {
            legend(&mut chart)?;
        }
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// Human against model (observer) accuracy, one point per unit, coloured by layer; the diagonal y = x.
pub fn accuracy_svg(units: &[UnitResult]) -> Result<String, PlotError> {
    let mut layers: Vec<String> = units
        .iter()
        .map(|u| format!("{}/{}", u.model, u.tap))
        .collect();
    layers.sort();
    layers.dedup();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Human vs model accuracy per unit", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..1.02f64, 0f64..1.02f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("model accuracy (observer)")
            .y_desc("human accuracy")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(0.0, 0.0), (1.0, 1.0)],
                BLACK.mix(0.3).stroke_width(1),
            ))
            .map_err(err)?;
        for (i, layer) in layers.iter().enumerate() {
            let c = colour(i);
            let points: Vec<(f64, f64)> = units
                .iter()
                .filter(|u| format!("{}/{}", u.model, u.tap) == *layer)
                .filter_map(|u| Some((u.model_accuracy?, u.human_accuracy?)))
                .collect();
            if points.is_empty() {
                continue;
            }
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 4, c.mix(0.7).filled())),
                )
                .map_err(err)?
                .label(short(layer))
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
        if !layers.is_empty() {
            legend(&mut chart)?;
        }
        root.present().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::agreement::{measure, Observation};

    fn row(tap: &str, shift: f64) -> AgreementRow {
        let o: Vec<Observation> = (0..40)
            .map(|i| Observation {
                unit_id: i % 8,
                participant_id: i % 5,
                stratum: 0,
                human_correct: i % 3 != 0,
                max_first: i % 2 == 0,
                score: (i as f64 * 0.37).sin() + shift * (i % 3 != 0) as u8 as f64,
            })
            .collect();
        AgreementRow {
            observer: "lpips-alex/max-set".into(),
            model: "alexnet".into(),
            tap: tap.into(),
            basis: "neuron".into(),
            condition: "easy".into(),
            summary: false,
            agreement: measure(&o, 200, 1),
        }
    }

    #[test]
    fn the_figures_are_svg_documents_naming_their_strata_and_series() {
        let rows = [row("conv1", 0.5), row("conv5", 0.0)];
        let roc = roc_svg(&rows.iter().collect::<Vec<_>>()).unwrap();
        assert!(roc.starts_with("<svg") && roc.trim_end().ends_with("</svg>"));
        assert!(
            roc.contains("alexnet/conv1 · neuron · easy (AUC"),
            "the legend names each stratum"
        );
        let points: Vec<AucPoint> = rows
            .iter()
            .flat_map(|r| {
                ["lpips-alex/max-set", "colour/max-set"].map(|o| AucPoint {
                    x: r.layer(),
                    series: o.into(),
                    auc: r.agreement.auc_correct,
                    ci: r.agreement.ci_correct,
                })
            })
            .collect();
        let auc = auc_svg("Agreement", "studied layer", &points).unwrap();
        assert!(auc.contains("alexnet/conv5") && auc.contains("colour/max-set"));
        // Four points and two legend marks.
        assert!(auc.matches("<circle").count() >= 6);
    }

    #[test]
    fn empty_inputs_still_give_a_figure() {
        assert!(roc_svg(&[]).unwrap().contains("<svg"));
        assert!(auc_svg("t", "x", &[]).unwrap().contains("<svg"));
        assert!(accuracy_svg(&[]).unwrap().contains("<svg"));
    }
}
