//! The chunk events of one streamed response.
//!
//! One chunk event is one SSE message with a non-empty `choices` array, whatever the number
//! of tokens in it. The timeline keeps, per chunk, the gap to the previous chunk and the
//! number of tokens it carried; the first chunk has no gap (its time is the TTFT). The
//! representation is private so that it can be made more compact without touching callers.

/// Gaps and token counts of a response's chunk events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkTimeline {
    /// Gap before chunk i + 1, seconds (`gaps.len() == tokens.len() - 1`, or both empty).
    gaps: Vec<f64>,
    /// Tokens carried by chunk i.
    tokens: Vec<u32>,
}

impl ChunkTimeline {
    /// An empty timeline with room for about `chunks` chunk events.
    pub fn with_capacity(chunks: usize) -> Self {
        ChunkTimeline {
            gaps: Vec::with_capacity(chunks.saturating_sub(1)),
            tokens: Vec::with_capacity(chunks),
        }
    }

    /// A timeline from its parts: `tokens` per chunk and the gaps between chunks
    /// (`gaps.len() + 1 == tokens.len()`); `None` when the lengths do not match.
    pub fn from_parts(gaps: Vec<f64>, tokens: Vec<u32>) -> Option<Self> {
        let ok = if tokens.is_empty() {
            gaps.is_empty()
        } else {
            gaps.len() + 1 == tokens.len()
        };
        ok.then_some(ChunkTimeline { gaps, tokens })
    }

    /// A timeline of `gaps.len() + 1` chunks of one token each.
    pub fn single_tokens(gaps: Vec<f64>) -> Self {
        let tokens = vec![1; gaps.len() + 1];
        ChunkTimeline { gaps, tokens }
    }

    /// Record a chunk event carrying `tokens` tokens, `gap_s` seconds after the previous
    /// one (the gap of the first chunk is ignored).
    pub fn push(&mut self, gap_s: f64, tokens: u32) {
        if !self.tokens.is_empty() {
            self.gaps.push(gap_s);
        }
        self.tokens.push(tokens);
    }

    /// Number of chunk events.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Gaps between consecutive chunk events, seconds (vLLM's per-request `itl`).
    pub fn gaps(&self) -> impl ExactSizeIterator<Item = f64> + '_ {
        self.gaps.iter().copied()
    }

    /// Tokens per chunk event.
    pub fn tokens(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.tokens.iter().copied()
    }

    /// Tokens over all chunks.
    pub fn total_tokens(&self) -> u64 {
        self.tokens.iter().map(|&n| u64::from(n)).sum()
    }

    /// Chunks that carried more than one token.
    pub fn multi_token_chunks(&self) -> usize {
        self.tokens.iter().filter(|&&n| n > 1).count()
    }

    /// Chunk event times, given the time of the first one.
    pub fn times(&self, first: f64) -> impl Iterator<Item = f64> + '_ {
        let head = (!self.tokens.is_empty()).then_some(first);
        head.into_iter().chain(self.gaps.iter().scan(first, |t, g| {
            *t += g;
            Some(*t)
        }))
    }

    /// Token-accurate inter-token samples: a chunk of n tokens after a gap g gives n
    /// samples of g / n; tokens of the first chunk belong to TTFT and give none; a chunk
    /// with no new token passes its gap on to the next chunk that has some.
    pub fn push_token_itl(&self, out: &mut Vec<f64>) {
        let mut pending = 0.0;
        for (gap, &n) in self.gaps.iter().zip(self.tokens.iter().skip(1)) {
            pending += gap;
            if n > 0 {
                let per = pending / f64::from(n);
                out.extend(std::iter::repeat_n(per, n as usize));
                pending = 0.0;
            }
        }
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
}
