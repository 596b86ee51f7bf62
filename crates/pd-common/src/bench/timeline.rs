//! The chunk events of one streamed response.
//!
//! One chunk event is one SSE message with a non-empty `choices` array, whatever the number
//! of tokens in it. The timeline keeps, per chunk, the gap to the previous chunk and the
//! number of tokens it carried; the first chunk has no gap (its time is the TTFT).
//!
//! Compact on purpose (a point keeps every chunk of every request until it is written):
//! * a gap is a `u32` of **nanoseconds** (the resolution of the monotonic clock it comes
//!   from, so nothing is lost for measured gaps; virtual-time gaps are rounded to the
//!   nearest ns); a gap of 2³² − 1 ns (≈ 4.3 s) or more is kept exactly, in seconds, in an
//!   overflow list;
//! * token counts cost nothing while every chunk carries exactly one token (the usual
//!   stream); from the first chunk that does not, one `u8` per chunk, with counts of 255 or
//!   more in an overflow list.
//!
//! So a typical chunk costs 4 bytes (5 with multi-token chunks), against 12 for an
//! `f64` + `u32` pair. Accessors return seconds (`f64`) and token counts (`u32`), as before.

/// Gaps of this many ns or more are stored exactly in the overflow list.
const GAP_OVERFLOW: u32 = u32::MAX;
/// Token counts of this value or more are stored exactly in the overflow list.
const TOKENS_OVERFLOW: u8 = u8::MAX;

/// Gaps and token counts of a response's chunk events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkTimeline {
    /// Gap before chunk i + 1, ns (`gaps.len() == len - 1`, or 0 when empty);
    /// [`GAP_OVERFLOW`] means "see `long_gaps`".
    gaps: Vec<u32>,
    /// (index into `gaps`, seconds) of the gaps too long for a `u32` of ns.
    long_gaps: Vec<(u32, f64)>,
    /// Tokens of chunk i when some chunk did not carry exactly one (empty: all ones);
    /// [`TOKENS_OVERFLOW`] means "see `many_tokens`".
    tokens: Vec<u8>,
    /// (chunk index, tokens) of chunks with 255 tokens or more.
    many_tokens: Vec<(u32, u32)>,
    /// Number of chunk events.
    len: u32,
    /// Tokens over all chunks.
    total: u64,
}

/// Nanoseconds of a gap in seconds: rounded, negative and NaN as 0.
fn gap_ns(gap_s: f64) -> u64 {
    let ns = (gap_s * 1e9).round();
    if ns >= 0.0 {
        ns.min(u64::MAX as f64) as u64
    } else {
        0
    }
}

impl ChunkTimeline {
    /// An empty timeline with room for about `chunks` chunk events.
    pub fn with_capacity(chunks: usize) -> Self {
        ChunkTimeline {
            gaps: Vec::with_capacity(chunks.saturating_sub(1)),
            ..Default::default()
        }
    }

    /// A timeline from its parts: `tokens` per chunk and the gaps between chunks
    /// (`gaps.len() + 1 == tokens.len()`), seconds; `None` when the lengths do not match.
    pub fn from_parts(gaps: Vec<f64>, tokens: Vec<u32>) -> Option<Self> {
        let ok = if tokens.is_empty() {
            gaps.is_empty()
        } else {
            gaps.len() + 1 == tokens.len()
        };
        if !ok {
            return None;
        }
        let mut t = ChunkTimeline::with_capacity(tokens.len());
        for (i, &n) in tokens.iter().enumerate() {
            let gap = if i == 0 { 0.0 } else { gaps[i - 1] };
            t.push(gap, n);
        }
        Some(t)
    }

    /// A timeline of `gaps.len() + 1` chunks of one token each.
    pub fn single_tokens(gaps: Vec<f64>) -> Self {
        let mut t = ChunkTimeline::with_capacity(gaps.len() + 1);
        t.push(0.0, 1);
        for g in gaps {
            t.push(g, 1);
        }
        t
    }

    /// Record a chunk event carrying `tokens` tokens, `gap_s` seconds after the previous
    /// one (the gap of the first chunk is ignored).
    pub fn push(&mut self, gap_s: f64, tokens: u32) {
        let gap = (self.len > 0).then(|| {
            let ns = gap_ns(gap_s);
            if ns < u64::from(GAP_OVERFLOW) {
                Ok(ns as u32)
            } else {
                Err(gap_s)
            }
        });
        self.push_raw(gap, tokens);
    }

    /// Record a chunk event `gap` after the previous one (measured gaps: exact to the ns).
    pub fn push_duration(&mut self, gap: std::time::Duration, tokens: u32) {
        let g = (self.len > 0).then(|| match u32::try_from(gap.as_nanos()) {
            Ok(ns) if ns < GAP_OVERFLOW => Ok(ns),
            _ => Err(gap.as_secs_f64()),
        });
        self.push_raw(g, tokens);
    }

    /// `gap`: None for the first chunk, Ok(ns) or Err(seconds) for a long gap.
    fn push_raw(&mut self, gap: Option<Result<u32, f64>>, tokens: u32) {
        let index = self.len;
        match gap {
            None => {}
            Some(Ok(ns)) => self.gaps.push(ns),
            Some(Err(s)) => {
                self.long_gaps.push((self.gaps.len() as u32, s));
                self.gaps.push(GAP_OVERFLOW);
            }
        }
        let first_uneven = tokens != 1 && self.tokens.is_empty();
        if first_uneven {
            // The first chunk that is not one token: from now on, one byte per chunk.
            self.tokens = Vec::with_capacity(self.gaps.capacity() + 1);
            self.tokens.resize(index as usize, 1);
        }
        if first_uneven || !self.tokens.is_empty() {
            if tokens >= u32::from(TOKENS_OVERFLOW) {
                self.many_tokens.push((index, tokens));
                self.tokens.push(TOKENS_OVERFLOW);
            } else {
                self.tokens.push(tokens as u8);
            }
        }
        self.len = self.len.saturating_add(1);
        self.total += u64::from(tokens);
    }

    /// Number of chunk events.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Gap i in seconds.
    fn gap_s(&self, i: usize, ns: u32) -> f64 {
        if ns == GAP_OVERFLOW {
            if let Ok(k) = self
                .long_gaps
                .binary_search_by_key(&i, |(j, _)| *j as usize)
            {
                return self.long_gaps[k].1;
            }
        }
        f64::from(ns) / 1e9
    }

    /// Tokens of chunk i.
    fn tokens_of(&self, i: usize) -> u32 {
        match self.tokens.get(i) {
            None => 1,
            Some(&TOKENS_OVERFLOW) => self
                .many_tokens
                .binary_search_by_key(&i, |(j, _)| *j as usize)
                .map_or(u32::from(TOKENS_OVERFLOW), |k| self.many_tokens[k].1),
            Some(&n) => u32::from(n),
        }
    }

    /// Gaps between consecutive chunk events, seconds (vLLM's per-request `itl`).
    pub fn gaps(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        self.gaps
            .iter()
            .enumerate()
            .map(|(i, &ns)| self.gap_s(i, ns))
    }

    /// The gaps as the metric code sorts them: `Ok(ns)` when under ≈ 4.3 s, else
    /// `Err(seconds)` (exact either way; `Ok(ns)` is `ns / 1e9` seconds).
    pub fn gaps_raw(&self) -> impl ExactSizeIterator<Item = Result<u32, f64>> + '_ {
        self.gaps.iter().enumerate().map(|(i, &ns)| {
            if ns == GAP_OVERFLOW {
                Err(self.gap_s(i, ns))
            } else {
                Ok(ns)
            }
        })
    }

    /// Tokens per chunk event.
    pub fn tokens(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        (0..self.len()).map(|i| self.tokens_of(i))
    }

    /// Tokens over all chunks.
    pub fn total_tokens(&self) -> u64 {
        self.total
    }

    /// Chunks that carried more than one token.
    pub fn multi_token_chunks(&self) -> usize {
        if self.tokens.is_empty() {
            return 0;
        }
        self.tokens.iter().filter(|&&n| n > 1).count()
    }

    /// Chunk event times, given the time of the first one.
    pub fn times(&self, first: f64) -> impl Iterator<Item = f64> + '_ {
        let head = (!self.is_empty()).then_some(first);
        head.into_iter().chain(self.gaps().scan(first, |t, g| {
            *t += g;
            Some(*t)
        }))
    }

    /// Token-accurate inter-token samples, each passed to `f` with its multiplicity: a
    /// chunk of n tokens after a gap g gives n samples of g / n (one call with count n);
    /// tokens of the first chunk belong to TTFT and give none; a chunk with no new token
    /// passes its gap on to the next chunk that has some.
    pub fn for_each_token_itl(&self, mut f: impl FnMut(f64, u32)) {
        let mut pending = 0.0;
        for (i, gap) in self.gaps().enumerate() {
            let n = self.tokens_of(i + 1);
            pending += gap;
            if n > 0 {
                f(pending / f64::from(n), n);
                pending = 0.0;
            }
        }
    }

    /// Token-accurate inter-token samples (see [`Self::for_each_token_itl`]) appended to
    /// `out`, one per token.
    pub fn push_token_itl(&self, out: &mut Vec<f64>) {
        self.for_each_token_itl(|v, n| out.extend(std::iter::repeat_n(v, n as usize)));
    }

    /// Bytes held on the heap (for memory accounting and tests).
    pub fn heap_bytes(&self) -> usize {
        self.gaps.capacity() * 4
            + self.long_gaps.capacity() * 16
            + self.tokens.capacity()
            + self.many_tokens.capacity() * 8
    }

    /// Give back spare capacity (a finished response's timeline is kept until its point is
    /// written).
    pub fn shrink_to_fit(&mut self) {
        self.gaps.shrink_to_fit();
        self.tokens.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_keeps_gaps_between_chunks() {
        let mut t = ChunkTimeline::default();
        t.push(9.0, 1);
        t.push(0.5, 2);
        t.push(0.25, 1);
        assert_eq!(t.len(), 3);
        assert_eq!(t.gaps().collect::<Vec<_>>(), vec![0.5, 0.25]);
        assert_eq!(t.total_tokens(), 4);
        assert_eq!(t.times(1.0).collect::<Vec<_>>(), vec![1.0, 1.5, 1.75]);
        assert_eq!(t.multi_token_chunks(), 1);
        assert_eq!(t.tokens().collect::<Vec<_>>(), vec![1, 2, 1]);
    }

    #[test]
    fn from_parts_checks_lengths() {
        assert!(ChunkTimeline::from_parts(vec![0.1], vec![1]).is_none());
        assert!(ChunkTimeline::from_parts(vec![0.1], vec![]).is_none());
        assert!(ChunkTimeline::from_parts(vec![], vec![]).is_some());
        assert_eq!(ChunkTimeline::single_tokens(vec![0.1, 0.2]).len(), 3);
    }

    #[test]
    fn token_itl_spreads_multi_token_chunks() {
        let t = ChunkTimeline::from_parts(vec![0.03, 0.02, 0.04], vec![1, 3, 0, 1]).unwrap();
        let mut out = Vec::new();
        t.push_token_itl(&mut out);
        assert_eq!(out, vec![0.01, 0.01, 0.01, 0.06]);
    }

    #[test]
    fn gaps_are_exact_to_the_nanosecond_and_long_ones_exact() {
        let mut t = ChunkTimeline::default();
        t.push_duration(std::time::Duration::ZERO, 1);
        for ns in [
            0u64,
            1,
            999_999_999,
            4_294_967_294,
            4_294_967_295,
            3_600_000_000_123,
        ] {
            t.push_duration(std::time::Duration::from_nanos(ns), 1);
        }
        let want: Vec<f64> = [
            0u64,
            1,
            999_999_999,
            4_294_967_294,
            4_294_967_295,
            3_600_000_000_123,
        ]
        .iter()
        .map(|&ns| std::time::Duration::from_nanos(ns).as_secs_f64())
        .collect();
        assert_eq!(t.gaps().collect::<Vec<_>>(), want);
        // Seconds in, seconds out: the same value as Duration::as_secs_f64 of the ns.
        let mut s = ChunkTimeline::default();
        for g in [0.0, 0.01, 0.123_456_789, 5.5, 7200.25, -1.0, f64::NAN] {
            s.push(g, 1);
        }
        assert_eq!(
            s.gaps().collect::<Vec<_>>(),
            vec![0.01, 0.123_456_789, 5.5, 7200.25, 0.0, 0.0]
        );
        assert_eq!(s.gaps_raw().filter(|g| g.is_err()).count(), 2);
    }

    #[test]
    fn token_counts_cost_nothing_until_a_chunk_is_not_one_token() {
        let mut t = ChunkTimeline::with_capacity(1000);
        for _ in 0..1000 {
            t.push(0.01, 1);
        }
        assert_eq!(t.heap_bytes(), 999 * 4, "4 bytes per chunk");
        t.push(0.01, 0);
        t.push(0.01, 300);
        t.push(0.01, 254);
        assert_eq!(t.len(), 1003);
        assert_eq!(t.total_tokens(), 1000 + 300 + 254);
        let tokens: Vec<u32> = t.tokens().collect();
        assert_eq!(&tokens[998..], &[1, 1, 0, 300, 254]);
        assert_eq!(t.multi_token_chunks(), 2);
        assert_eq!(t.tokens().map(u64::from).sum::<u64>(), t.total_tokens());
    }

    #[test]
    fn an_uneven_first_chunk_is_kept() {
        for first in [0u32, 2, 255, 1000] {
            let mut t = ChunkTimeline::with_capacity(4);
            t.push_duration(std::time::Duration::ZERO, first);
            t.push_duration(std::time::Duration::from_millis(1), 2);
            t.push_duration(std::time::Duration::from_millis(1), 1);
            assert_eq!(t.tokens().collect::<Vec<_>>(), vec![first, 2, 1]);
            assert_eq!(t.total_tokens(), u64::from(first) + 3);
        }
    }

    #[test]
    fn token_itl_multiplicities_match_the_expanded_samples() {
        let t = ChunkTimeline::from_parts(vec![0.5, 0.2, 0.9], vec![0, 300, 1, 2]).unwrap();
        let mut out = Vec::new();
        t.push_token_itl(&mut out);
        assert_eq!(out.len(), 303);
        let mut calls = Vec::new();
        t.for_each_token_itl(|v, n| calls.push((v, n)));
        assert_eq!(calls, vec![(0.5 / 300.0, 300), (0.2, 1), (0.45, 2)]);
    }
}
