//! Pareto frontier of (x, y) points where larger is better on both axes.

/// Indices of the non-dominated points, sorted by x ascending. A point is dominated
/// when another has x ≥ and y ≥ with one of them strictly greater.
pub fn frontier(points: &[(f64, f64)]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..points.len())
        .filter(|&i| points[i].0.is_finite() && points[i].1.is_finite())
        .collect();
    // x descending, then y descending.
    idx.sort_by(|&a, &b| {
        points[b]
            .0
            .total_cmp(&points[a].0)
            .then(points[b].1.total_cmp(&points[a].1))
    });
    let mut best_y = f64::NEG_INFINITY;
    let mut out = Vec::new();
    for i in idx {
        if points[i].1 > best_y {
            best_y = points[i].1;
            out.push(i);
        }
    }
    out.reverse();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_non_dominated() {
        let pts = [
            (100.0, 10.0), // frontier (highest x)
            (50.0, 40.0),  // frontier
            (40.0, 30.0),  // dominated by (50, 40)
            (10.0, 80.0),  // frontier (highest y)
            (10.0, 70.0),  // dominated by (10, 80)
            (100.0, 5.0),  // dominated by (100, 10)
        ];
        assert_eq!(frontier(&pts), vec![3, 1, 0]);
        assert!(frontier(&[]).is_empty());
        assert_eq!(frontier(&[(1.0, f64::NAN), (1.0, 1.0)]), vec![1]);
    }
}
