//! SVG figures of an analysis (plotters): ROC curves per layer, agreement AUC by layer with its
//! bootstrap CI, and human against model accuracy per unit.

use plotters::prelude::*;

use super::report::{LayerResult, UnitResult};

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

/// Keeps a label short enough for an axis.
fn short(name: &str) -> String {
    if name.chars().count() > 32 {
        format!("{}…", name.chars().take(31).collect::<String>())
    } else {
        name.to_string()
    }
}

/// ROC curves of the observer's evidence predicting human correctness, one line per layer.
pub fn roc_svg(layers: &[LayerResult]) -> Result<String, PlotError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Agreement ROC per layer", ("sans-serif", 20))
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
        for (i, layer) in layers.iter().enumerate() {
            let c = colour(i);
            let points = layer
                .agreement
                .roc
                .iter()
                .map(|p| (p.false_positive_rate, p.true_positive_rate));
            let auc = layer
                .agreement
                .auc
                .map_or("n/a".to_string(), |a| format!("{a:.3}"));
            chart
                .draw_series(LineSeries::new(points, c.stroke_width(2)))
                .map_err(err)?
                .label(format!("{} (AUC {auc})", short(&layer.name())))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
        }
        if !layers.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(out)
}

/// Agreement AUC per layer with its 95 % bootstrap interval; the chance line at 0.5.
pub fn auc_svg(layers: &[LayerResult]) -> Result<String, PlotError> {
    let names: Vec<String> = layers.iter().map(|l| short(&l.name())).collect();
    let n = layers.len().max(1) as f64;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("Agreement AUC by layer (95 % CI)", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..1f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(layers.len().max(1))
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_desc("layer")
            .y_desc("agreement AUC")
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(-0.5, 0.5), (n - 0.5, 0.5)],
                BLACK.mix(0.3).stroke_width(1),
            ))
            .map_err(err)?;
        for (i, layer) in layers.iter().enumerate() {
            let x = i as f64;
            let c = colour(i);
            if let Some(ci) = layer.agreement.ci {
                let bars = [
                    vec![(x, ci.low), (x, ci.high)],
                    vec![(x - 0.1, ci.low), (x + 0.1, ci.low)],
                    vec![(x - 0.1, ci.high), (x + 0.1, ci.high)],
                ];
                chart
                    .draw_series(
                        bars.into_iter()
                            .map(|p| PathElement::new(p, c.stroke_width(2))),
                    )
                    .map_err(err)?;
            }
            if let Some(auc) = layer.agreement.auc {
                chart
                    .draw_series(std::iter::once(Circle::new((x, auc), 5, c.filled())))
                    .map_err(err)?;
            }
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
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::agreement::{layer, Observation};

    fn layer_result(tap: &str, shift: f64) -> LayerResult {
        let o: Vec<Observation> = (0..40)
            .map(|i| Observation {
                unit_id: i % 8,
                human_correct: i % 3 != 0,
                score: (i as f64 * 0.37).sin() + shift * (i % 3 != 0) as u8 as f64,
            })
            .collect();
        LayerResult {
            model: "alexnet".into(),
            tap: tap.into(),
            agreement: layer(&o, 200, 1),
        }
    }

    #[test]
    fn the_figures_are_svg_documents_naming_their_layers() {
        let layers = [layer_result("conv1", 0.5), layer_result("conv5", 0.0)];
        let roc = roc_svg(&layers).unwrap();
        assert!(roc.starts_with("<svg") && roc.trim_end().ends_with("</svg>"));
        assert!(
            roc.contains("alexnet/conv1 (AUC"),
            "the legend names each layer"
        );
        let auc = auc_svg(&layers).unwrap();
        assert!(auc.contains("alexnet/conv5"));
        // Two CI bars of three strokes each, two points.
        assert!(auc.matches("<circle").count() >= 2);
    }

    #[test]
    fn empty_inputs_still_give_a_figure() {
        assert!(roc_svg(&[]).unwrap().contains("<svg"));
        assert!(auc_svg(&[]).unwrap().contains("<svg"));
        assert!(accuracy_svg(&[]).unwrap().contains("<svg"));
    }
}
