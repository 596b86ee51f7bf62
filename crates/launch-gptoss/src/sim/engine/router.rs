//! Ray Serve routing: `num_routers` independent ingress routers; a request enters through
//! one picked at random, which does power-of-two choices on the in-flight counts of the
//! requests **it** sent (docs/SIMULATOR.md, "Routing"). The imperfection desynchronises the bursts of
//! a closed loop, as on the real cluster.

/// Small deterministic PRNG (splitmix64), independent of the `rand` crate's versions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n ≥ 1).
    pub fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n.max(1))) >> 32) as u32
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The routers' view of one pool of replicas (collocated, P or D).
#[derive(Debug, Clone)]
pub struct PoolRouter {
    replicas: u32,
    /// counts[router * replicas + replica] = requests in flight sent by that router.
    counts: Vec<u32>,
}

impl PoolRouter {
    pub fn new(routers: u32, replicas: u32) -> Self {
        PoolRouter {
            replicas,
            counts: vec![0; (routers.max(1) * replicas) as usize],
        }
    }

    /// Pick a replica for a request entering through `router` and count it.
    pub fn pick(&mut self, router: u32, rng: &mut Rng) -> u32 {
        let n = self.replicas;
        let base = (router * n) as usize;
        let choice = if n <= 1 {
            0
        } else {
            let a = rng.below(n);
            let mut b = rng.below(n - 1);
            if b >= a {
                b += 1;
            }
            if self.counts[base + b as usize] < self.counts[base + a as usize] {
                b
            } else {
                a
            }
        };
        self.counts[base + choice as usize] += 1;
        choice
    }

    /// The request sent by `router` to `replica` left that replica.
    pub fn done(&mut self, router: u32, replica: u32) {
        let i = (router * self.replicas + replica) as usize;
        if let Some(c) = self.counts.get_mut(i) {
            *c = c.saturating_sub(1);
        }
    }

    /// In-flight count of `router` for `replica`.
    pub fn count(&self, router: u32, replica: u32) -> u32 {
        self.counts
            .get((router * self.replicas + replica) as usize)
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic_and_in_range() {
        let mut a = Rng::new(3);
        let mut b = Rng::new(3);
        for _ in 0..1000 {
            let x = a.below(7);
            assert_eq!(x, b.below(7));
            assert!(x < 7);
            let u = a.unit();
            b.unit();
            assert!((0.0..1.0).contains(&u));
        }
    }

    #[test]
    fn each_router_only_counts_its_own_requests() {
        let mut rng = Rng::new(1);
        let mut p = PoolRouter::new(2, 2);
        // router 0 sends 10 requests: po2 with 2 replicas alternates on its own counts
        for _ in 0..10 {
            p.pick(0, &mut rng);
        }
        assert_eq!(p.count(0, 0), 5);
        assert_eq!(p.count(0, 1), 5);
        // router 1 has seen nothing of them
        assert_eq!(p.count(1, 0) + p.count(1, 1), 0);
        // load replica 0 heavily through router 0; router 1 still picks by its own counts
        for _ in 0..10 {
            p.done(0, 1);
        }
        assert_eq!(p.count(0, 1), 0);
        let mut picks = [0u32; 2];
        for _ in 0..4 {
            picks[p.pick(1, &mut rng) as usize] += 1;
        }
        assert_eq!(picks, [2, 2], "router 1 balances its own 4 requests");
        // router 0 now prefers replica 1 (0 in flight vs 5)
        assert_eq!(p.pick(0, &mut rng), 1);
    }

    #[test]
    fn single_replica_pool() {
        let mut rng = Rng::new(0);
        let mut p = PoolRouter::new(16, 1);
        assert_eq!(p.pick(5, &mut rng), 0);
        assert_eq!(p.count(5, 0), 1);
        p.done(5, 0);
        assert_eq!(p.count(5, 0), 0);
    }
}
