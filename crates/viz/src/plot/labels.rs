//! Placement of point labels so that they never overlap each other, a marker or a line:
//! each label tries eight positions around its point (upper right first) and takes the
//! first that stays inside the plot and touches nothing placed so far; a label with no
//! free position is left out.

/// An axis-aligned rectangle in pixels (x0 ≤ x1, y0 ≤ y1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Rect {
    pub fn new(x0: i32, y0: i32, x1: i32, y1: i32) -> Self {
        Rect {
            x0: x0.min(x1),
            y0: y0.min(y1),
            x1: x0.max(x1),
            y1: y0.max(y1),
        }
    }

    /// A square of half-side `r` around `c`.
    pub fn around(c: (i32, i32), r: i32) -> Self {
        Rect::new(c.0 - r, c.1 - r, c.0 + r, c.1 + r)
    }

    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    pub fn inside(&self, o: &Rect) -> bool {
        self.x0 >= o.x0 && self.x1 <= o.x1 && self.y0 >= o.y0 && self.y1 <= o.y1
    }
}

/// Labels placed so far and what they must avoid.
#[derive(Debug, Clone)]
pub struct Placer {
    bounds: Rect,
    obstacles: Vec<Rect>,
    placed: Vec<Rect>,
    /// Labels that found no free position.
    pub dropped: usize,
}

impl Placer {
    /// Labels must stay inside `bounds`.
    pub fn new(bounds: Rect) -> Self {
        Placer {
            bounds,
            obstacles: Vec::new(),
            placed: Vec::new(),
            dropped: 0,
        }
    }

    /// Something labels must not cover.
    pub fn avoid(&mut self, r: Rect) {
        self.obstacles.push(r);
    }

    /// Avoid a line from `a` to `b` (`half` pixels either side).
    pub fn avoid_segment(&mut self, a: (i32, i32), b: (i32, i32), half: i32) {
        let (dx, dy) = (f64::from(b.0 - a.0), f64::from(b.1 - a.1));
        let len = (dx * dx + dy * dy).sqrt();
        let steps = (len / f64::from(half.max(1))).ceil().max(1.0) as i32;
        for k in 0..=steps {
            let t = f64::from(k) / f64::from(steps);
            let c = (a.0 + (dx * t).round() as i32, a.1 + (dy * t).round() as i32);
            self.obstacles.push(Rect::around(c, half));
        }
    }

    /// Top-left corner of a free spot for a `w` × `h` label of the point `p` whose
    /// marker has radius `r`; `None` (counted in `dropped`) when every spot is taken.
    pub fn place(&mut self, p: (i32, i32), w: i32, h: i32, r: i32) -> Option<(i32, i32)> {
        let g = r + 4;
        let candidates = [
            (p.0 + g, p.1 - g - h),     // upper right
            (p.0 + g, p.1 + g),         // lower right
            (p.0 - g - w, p.1 - g - h), // upper left
            (p.0 - g - w, p.1 + g),     // lower left
            (p.0 + g + 2, p.1 - h / 2), // right
            (p.0 - g - 2 - w, p.1 - h / 2),
            (p.0 - w / 2, p.1 - g - 2 - h), // above
            (p.0 - w / 2, p.1 + g + 2),     // below
        ];
        for (x, y) in candidates {
            let rect = Rect::new(x, y, x + w, y + h);
            if rect.inside(&self.bounds)
                && !self.placed.iter().any(|o| o.overlaps(&rect))
                && !self.obstacles.iter().any(|o| o.overlaps(&rect))
            {
                self.placed.push(rect);
                return Some((x, y));
            }
        }
        self.dropped += 1;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_never_overlap_and_avoid_markers_and_lines() {
        let bounds = Rect::new(0, 0, 400, 300);
        let mut p = Placer::new(bounds);
        let pts = [(100, 100), (110, 105), (120, 110), (125, 112), (390, 5)];
        for &c in &pts {
            p.avoid(Rect::around(c, 8));
        }
        p.avoid_segment(pts[0], pts[1], 3);
        let mut rects = Vec::new();
        for &c in &pts {
            if let Some((x, y)) = p.place(c, 40, 16, 8) {
                let r = Rect::new(x, y, x + 40, y + 16);
                assert!(r.inside(&bounds));
                for &q in &pts {
                    assert!(!r.overlaps(&Rect::around(q, 8)), "{r:?} covers {q:?}");
                }
                rects.push(r);
            }
        }
        for (i, a) in rects.iter().enumerate() {
            for b in &rects[i + 1..] {
                assert!(!a.overlaps(b), "{a:?} {b:?}");
            }
        }
        assert_eq!(rects.len() + p.dropped, pts.len());
        assert!(rects.len() >= 3);
        // The first label takes the upper right.
        assert_eq!(rects[0].x0, 112);
    }

    #[test]
    fn a_full_plot_drops_labels() {
        let mut p = Placer::new(Rect::new(0, 0, 50, 50));
        p.avoid(Rect::new(0, 0, 50, 50));
        assert_eq!(p.place((25, 25), 10, 10, 3), None);
        assert_eq!(p.dropped, 1);
    }
}
