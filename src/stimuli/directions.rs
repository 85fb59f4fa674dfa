//! Units as directions in a tap's channel space (DESIGN 1.1): one-hot neurons, principal axes of the
//! centred activation matrix, and spherical k-means centroids. Pure functions of the activations.

use anyhow::{bail, ensure};
use faer::{Mat, Side};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    Neuron,
    Pca,
    Kmeans,
}

impl Basis {
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Neuron => "neuron",
            Basis::Pca => "pca",
            Basis::Kmeans => "kmeans",
        }
    }
}

impl std::str::FromStr for Basis {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Basis> {
        match s {
            "neuron" => Ok(Basis::Neuron),
            "pca" => Ok(Basis::Pca),
            "kmeans" => Ok(Basis::Kmeans),
            other => bail!("unknown basis `{other}` (known: neuron, pca, kmeans)"),
        }
    }
}

/// How a k-means unit scores an image: `distance` is the seed paper's Eq. 6, f(x) = -||y(x) - v||
/// with y(x) the centred, L2-normalised activations the clustering saw; `projection` is a(x) . v.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KmeansActivation {
    #[default]
    Distance,
    Projection,
}

impl KmeansActivation {
    pub fn as_str(self) -> &'static str {
        match self {
            KmeansActivation::Distance => "distance",
            KmeansActivation::Projection => "projection",
        }
    }
}

impl std::str::FromStr for KmeansActivation {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<KmeansActivation> {
        match s {
            "distance" => Ok(KmeansActivation::Distance),
            "projection" => Ok(KmeansActivation::Projection),
            other => bail!("unknown k-means activation `{other}` (known: distance, projection)"),
        }
    }
}

/// A unit's direction; `explained_variance` is the share of variance of a principal axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Direction {
    pub index: usize,
    pub vector: Vec<f32>,
    pub explained_variance: Option<f64>,
}

impl Direction {
    /// The unit's activation on an image: the projection of its channel means onto the direction.
    pub fn project(&self, means: &[f32]) -> f32 {
        dot(&self.vector, means)
    }
}

/// Activations of one tap: `rows[image][channel]`.
pub fn channels(rows: &[Vec<f32>]) -> anyhow::Result<usize> {
    let c = rows.first().map(Vec::len).unwrap_or(0);
    ensure!(c > 0, "no activations");
    ensure!(
        rows.iter().all(|r| r.len() == c),
        "activation rows differ in length"
    );
    Ok(c)
}

pub fn neurons(rows: &[Vec<f32>]) -> anyhow::Result<Vec<Direction>> {
    let c = channels(rows)?;
    Ok((0..c)
        .map(|i| {
            let mut vector = vec![0.0; c];
            vector[i] = 1.0;
            Direction {
                index: i,
                vector,
                explained_variance: None,
            }
        })
        .collect())
}

/// Principal axes in order of explained variance; each axis's largest-magnitude loading is positive.
pub fn principal_axes(rows: &[Vec<f32>]) -> anyhow::Result<Vec<Direction>> {
    let c = channels(rows)?;
    ensure!(rows.len() >= 2, "PCA needs at least two images");
    let centred = centre(rows, c);
    let n = centred.len() as f64;
    let cov = Mat::<f64>::from_fn(c, c, |i, j| {
        centred.iter().map(|r| r[i] * r[j]).sum::<f64>() / (n - 1.0)
    });
    let eigen = cov
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| anyhow::anyhow!("PCA did not converge: {e:?}"))?;
    let (values, vectors) = (eigen.S().column_vector(), eigen.U());
    let total: f64 = (0..c).map(|k| values[k].max(0.0)).sum();
    // faer sorts eigenvalues in nondecreasing order; components count down from the largest.
    let components = c.min(rows.len() - 1);
    Ok((0..components)
        .map(|k| {
            let col = c - 1 - k;
            let mut vector: Vec<f64> = (0..c).map(|i| vectors[(i, col)]).collect();
            let largest = vector
                .iter()
                .copied()
                .max_by(|a, b| a.abs().total_cmp(&b.abs()))
                .unwrap_or(0.0);
            if largest < 0.0 {
                vector.iter_mut().for_each(|v| *v = -*v);
            }
            Direction {
                index: k,
                vector: vector.iter().map(|&v| v as f32).collect(),
                explained_variance: Some(if total > 0.0 {
                    values[col].max(0.0) / total
                } else {
                    0.0
                }),
            }
        })
        .collect())
}

/// The data spherical k-means clusters: each image's activations, centred over the images and scaled
/// to unit length (an image at the mean stays zero).
pub fn spherical_points(rows: &[Vec<f32>]) -> anyhow::Result<Vec<Vec<f64>>> {
    let c = channels(rows)?;
    Ok(centre(rows, c)
        .into_iter()
        .map(|mut r| {
            normalise(&mut r);
            r
        })
        .collect())
}

/// Eq. 6 of the seed paper: -||y(x) - v|| for every image's clustered point y(x) and centroid v.
pub fn centroid_closeness(points: &[Vec<f64>], centroid: &[f32]) -> Vec<f32> {
    points
        .iter()
        .map(|p| {
            let squared: f64 = p
                .iter()
                .zip(centroid)
                .map(|(y, &v)| (y - v as f64).powi(2))
                .sum();
            -(squared.sqrt() as f32)
        })
        .collect()
}

/// Spherical k-means (cosine similarity) on the centred, L2-normalised activations, seeded k-means++
/// initialisation; centroids are unit vectors, ordered by cluster size (largest first).
pub fn spherical_kmeans(rows: &[Vec<f32>], k: usize, seed: u64) -> anyhow::Result<Vec<Direction>> {
    let c = channels(rows)?;
    ensure!(k >= 1, "k-means needs k >= 1");
    ensure!(
        rows.len() >= k,
        "k-means with k = {k} needs at least {k} images (have {})",
        rows.len()
    );
    let points = spherical_points(rows)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centroids = plus_plus(&points, k, &mut rng);
    let mut assignment = vec![usize::MAX; points.len()];
    for _ in 0..100 {
        let mut changed = false;
        for (i, p) in points.iter().enumerate() {
            let best = nearest(&centroids, p).0;
            if assignment[i] != best {
                assignment[i] = best;
                changed = true;
            }
        }
        let mut sums = vec![vec![0.0f64; c]; k];
        for (p, &a) in points.iter().zip(&assignment) {
            sums[a].iter_mut().zip(p).for_each(|(s, v)| *s += v);
        }
        for (j, mut sum) in sums.into_iter().enumerate() {
            // An empty cluster takes the point its centroid explains worst.
            if normalise(&mut sum) {
                centroids[j] = sum;
            } else {
                let far = (0..points.len())
                    .min_by(|&a, &b| {
                        let sa = cos(&points[a], &centroids[assignment[a]]);
                        let sb = cos(&points[b], &centroids[assignment[b]]);
                        sa.total_cmp(&sb)
                    })
                    .unwrap_or(0);
                centroids[j] = points[far].clone();
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut sizes: Vec<(usize, usize)> = (0..k)
        .map(|j| (j, assignment.iter().filter(|&&a| a == j).count()))
        .collect();
    sizes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(sizes
        .into_iter()
        .enumerate()
        .map(|(index, (j, _))| Direction {
            index,
            vector: centroids[j].iter().map(|&v| v as f32).collect(),
            explained_variance: None,
        })
        .collect())
}

fn plus_plus(points: &[Vec<f64>], k: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f64>> {
    let indices: Vec<usize> = (0..points.len()).collect();
    let first = *indices.choose(rng).expect("points are not empty");
    let mut centroids = vec![points[first].clone()];
    while centroids.len() < k {
        // Cosine distance 1 - cos, squared, as the seeding weight.
        let weights: Vec<f64> = points
            .iter()
            .map(|p| (1.0 - nearest(&centroids, p).1).max(0.0).powi(2))
            .collect();
        let total: f64 = weights.iter().sum();
        let next = if total <= 0.0 {
            rng.random_range(0..points.len())
        } else {
            let mut target = rng.random_range(0.0..total);
            weights
                .iter()
                .position(|&w| {
                    target -= w;
                    target < 0.0
                })
                .unwrap_or(points.len() - 1)
        };
        centroids.push(points[next].clone());
    }
    centroids
}

fn nearest(centroids: &[Vec<f64>], p: &[f64]) -> (usize, f64) {
    centroids
        .iter()
        .enumerate()
        .map(|(j, c)| (j, cos(c, p)))
        .fold(
            (0, f64::NEG_INFINITY),
            |best, x| if x.1 > best.1 { x } else { best },
        )
}

fn centre(rows: &[Vec<f32>], c: usize) -> Vec<Vec<f64>> {
    let n = rows.len() as f64;
    let mut mean = vec![0.0f64; c];
    for r in rows {
        mean.iter_mut()
            .zip(r)
            .for_each(|(m, &v)| *m += v as f64 / n);
    }
    rows.iter()
        .map(|r| r.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect())
        .collect()
}

/// Scales to unit length; false for a zero vector.
fn normalise(v: &mut [f64]) -> bool {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
        true
    } else {
        false
    }
}

fn cos(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64) * (*y as f64))
        .sum::<f64>() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_rows(n: usize, c: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Correlated channels, so the principal axes are not the coordinate axes.
        (0..n)
            .map(|_| {
                let z: Vec<f32> = (0..3).map(|_| rng.random_range(-1.0..1.0)).collect();
                (0..c)
                    .map(|j| z[j % 3] * (j as f32 + 1.0) + 0.1 * rng.random_range(-1.0f32..1.0))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn neurons_reproduce_channel_activations_exactly() {
        let rows = random_rows(40, 7, 1);
        for d in neurons(&rows).unwrap() {
            for r in &rows {
                assert_eq!(d.project(r), r[d.index]);
            }
        }
    }

    #[test]
    fn principal_axes_are_orthonormal_with_nonincreasing_variance() {
        let rows = random_rows(200, 8, 2);
        let axes = principal_axes(&rows).unwrap();
        assert_eq!(axes.len(), 8);
        for a in &axes {
            for b in &axes {
                let d = dot(&a.vector, &b.vector);
                let expected = if a.index == b.index { 1.0 } else { 0.0 };
                assert!(
                    (d - expected).abs() < 1e-5,
                    "{} . {} = {d}",
                    a.index,
                    b.index
                );
            }
            let largest = a
                .vector
                .iter()
                .copied()
                .max_by(|x, y| x.abs().total_cmp(&y.abs()))
                .unwrap();
            assert!(largest > 0.0, "sign convention");
        }
        let shares: Vec<f64> = axes.iter().map(|a| a.explained_variance.unwrap()).collect();
        assert!(shares.windows(2).all(|w| w[0] >= w[1]), "{shares:?}");
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // Three latent factors carry nearly all the variance.
        assert!(shares[..3].iter().sum::<f64>() > 0.95, "{shares:?}");
    }

    #[test]
    fn first_axis_maximises_projected_variance() {
        let rows = random_rows(300, 6, 3);
        let axes = principal_axes(&rows).unwrap();
        let variance = |v: &[f32]| {
            let p: Vec<f64> = rows.iter().map(|r| dot(v, r) as f64).collect();
            let m = p.iter().sum::<f64>() / p.len() as f64;
            p.iter().map(|x| (x - m).powi(2)).sum::<f64>()
        };
        let best = variance(&axes[0].vector);
        for channel in neurons(&rows).unwrap() {
            assert!(variance(&channel.vector) <= best + 1e-6);
        }
    }

    #[test]
    fn kmeans_is_deterministic_for_a_seed_and_unit_length() {
        let rows = random_rows(120, 5, 4);
        let a = spherical_kmeans(&rows, 4, 7).unwrap();
        let b = spherical_kmeans(&rows, 4, 7).unwrap();
        assert_eq!(a, b);
        for d in &a {
            let norm = dot(&d.vector, &d.vector);
            assert!((norm - 1.0).abs() < 1e-5);
        }
        let c = spherical_kmeans(&rows, 4, 8).unwrap();
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn kmeans_finds_separated_clusters() {
        // Two tight clusters in opposite directions around the mean.
        let mut rows = Vec::new();
        for i in 0..30 {
            let e = i as f32 * 1e-3;
            rows.push(vec![1.0 + e, 0.0, 0.0]);
            rows.push(vec![-1.0, 0.0 + e, 0.0]);
        }
        let centroids = spherical_kmeans(&rows, 2, 1).unwrap();
        let xs: Vec<f32> = centroids.iter().map(|d| d.vector[0]).collect();
        assert!(
            xs.iter().any(|&x| x > 0.99) && xs.iter().any(|&x| x < -0.99),
            "{xs:?}"
        );
    }

    #[test]
    fn the_distance_activation_is_minus_the_distance_to_the_centroid_on_normalised_data() {
        // The rows have mean zero, so y(x) is each row scaled to unit length.
        let rows = vec![
            vec![2.0, 0.0],
            vec![0.5, 0.1],
            vec![-2.0, 0.0],
            vec![-0.5, -0.1],
        ];
        let v = [0.6f32, 0.8];
        let distance = centroid_closeness(&spherical_points(&rows).unwrap(), &v);
        // ||y - v|| = sqrt(2 - 2 cos(y, v)) for unit vectors.
        let by_hand = |x: f64, y: f64| {
            let cos = (0.6 * x + 0.8 * y) / (x * x + y * y).sqrt();
            -(2.0 - 2.0 * cos).sqrt()
        };
        let expected = [
            -(0.8f64).sqrt(),
            by_hand(0.5, 0.1),
            by_hand(-2.0, 0.0),
            by_hand(-0.5, -0.1),
        ];
        for (got, want) in distance.iter().zip(expected) {
            assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        }
        // The projection prefers the long row (2, 0); closeness prefers (0.5, 0.1), nearer v in angle.
        let direction = Direction {
            index: 0,
            vector: v.to_vec(),
            explained_variance: None,
        };
        let projection: Vec<f32> = rows.iter().map(|r| direction.project(r)).collect();
        assert!(projection[0] > projection[1]);
        assert!(distance[1] > distance[0]);
        assert_eq!(
            "distance".parse::<KmeansActivation>().unwrap(),
            KmeansActivation::default()
        );
        assert!("nearest".parse::<KmeansActivation>().is_err());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(principal_axes(&[vec![1.0, 2.0]]).is_err());
        assert!(spherical_kmeans(&[vec![1.0], vec![2.0]], 3, 0).is_err());
        assert!(neurons(&[vec![1.0], vec![1.0, 2.0]]).is_err());
    }
}
