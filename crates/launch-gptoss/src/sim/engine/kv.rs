//! The KV-block manager of one replica: a pool of allocation units (see [`KvLayout`]) and
//! vLLM V1's prefix cache (full prompt blocks keyed by their chained hash, reference
//! counted, evicted least-recently-freed first).
//!
//! The scheduler ([`super::scheduler`]) decides *when* a sequence gets or loses blocks;
//! this module keeps the books: free and evictable units, cached blocks and their
//! references, and each sequence's holding ([`SeqBlocks`]).

use std::collections::{BTreeMap, HashMap};

use super::model::KvLayout;

#[derive(Debug, Clone, Copy)]
struct CacheEntry {
    refs: u32,
    stamp: u64,
}

/// The blocks one sequence holds.
#[derive(Debug, Default)]
pub struct SeqBlocks {
    /// Units owned privately (not through the prefix cache).
    pub units: u64,
    /// Leading prompt blocks referenced through the prefix cache.
    pub shared: u32,
    /// Every full prompt block is published in the prefix cache.
    registered: bool,
    /// Hashes of the prompt's full blocks, chained (empty: no prefix caching).
    hashes: Vec<u64>,
}

impl SeqBlocks {
    pub fn new(hashes: Vec<u64>) -> Self {
        SeqBlocks {
            hashes,
            ..SeqBlocks::default()
        }
    }
    /// Whether the sequence can use the prefix cache.
    pub fn hashed(&self) -> bool {
        !self.hashes.is_empty()
    }
}

/// The KV cache of one replica.
#[derive(Debug)]
pub struct KvBlocks {
    layout: KvLayout,
    capacity: u64,
    free: u64,
    evictable: u64,
    cache: HashMap<u64, CacheEntry>,
    /// Unreferenced cached blocks by the time they were freed (stamp → hash).
    lru: BTreeMap<u64, u64>,
    clock: u64,
}

impl KvBlocks {
    pub fn new(layout: KvLayout, capacity_units: u64) -> Self {
        KvBlocks {
            layout,
            capacity: capacity_units,
            free: capacity_units,
            evictable: 0,
            cache: HashMap::new(),
            lru: BTreeMap::new(),
            clock: 0,
        }
    }

    pub fn layout(&self) -> KvLayout {
        self.layout
    }
    pub fn capacity_units(&self) -> u64 {
        self.capacity
    }
    /// Whether a sequence of `tokens` tokens can ever fit.
    pub fn fits_ever(&self, tokens: u32) -> bool {
        self.layout.units(tokens) <= self.capacity
    }
    /// Usage 0..1 (evictable prefix-cache blocks count as free, like vLLM).
    pub fn usage(&self) -> f64 {
        if self.capacity == 0 {
            return 0.0;
        }
        1.0 - (self.free + self.evictable) as f64 / self.capacity as f64
    }
    /// Units that can be allocated (free plus evictable).
    pub fn available(&self) -> u64 {
        self.free + self.evictable
    }

    /// Take `need` units from the free pool, evicting LRU prefix-cache blocks if needed.
    pub fn allocate(&mut self, need: u64) {
        let u = self.layout.shared_block_units();
        while self.free < need {
            let Some((&stamp, &hash)) = self.lru.iter().next() else {
                break;
            };
            self.lru.remove(&stamp);
            self.cache.remove(&hash);
            self.evictable -= u;
            self.free += u;
        }
        self.free = self.free.saturating_sub(need);
    }

    /// Private units a sequence needs to hold `tokens` tokens.
    pub fn private_units(&self, b: &SeqBlocks, tokens: u32) -> u64 {
        self.layout
            .units(tokens)
            .saturating_sub(u64::from(b.shared) * self.layout.shared_block_units())
    }

    /// Units to allocate for a sequence that takes `hits` cached blocks and then holds
    /// `tokens` tokens: (private units, cached units leaving the evictable pool).
    pub fn admission_need(&self, b: &SeqBlocks, hits: u32, tokens: u32) -> (u64, u64) {
        let u = self.layout.shared_block_units();
        let hit_evictable = self.evictable_hits(b, hits) * u;
        let private = self
            .layout
            .units(tokens)
            .saturating_sub(u64::from(hits) * u);
        (private, hit_evictable)
    }

    /// Drop every block of a sequence (private and shared references).
    pub fn release(&mut self, b: &mut SeqBlocks) {
        let u = self.layout.shared_block_units();
        self.free += b.units;
        for h in b.hashes.iter().take(b.shared as usize) {
            if let Some(e) = self.cache.get_mut(h) {
                e.refs = e.refs.saturating_sub(1);
                if e.refs == 0 {
                    self.clock += 1;
                    e.stamp = self.clock;
                    self.lru.insert(self.clock, *h);
                    self.evictable += u;
                }
            }
        }
        b.units = 0;
        b.shared = 0;
        b.registered = false;
    }

    /// How many of the first `hits` cached blocks of a sequence nobody references (taking
    /// them removes them from the evictable pool).
    fn evictable_hits(&self, b: &SeqBlocks, hits: u32) -> u64 {
        if hits == 0 {
            return 0;
        }
        b.hashes
            .iter()
            .take(hits as usize)
            .filter(|h| self.cache.get(h).is_some_and(|e| e.refs == 0))
            .count() as u64
    }

    /// Leading prompt blocks of a `prompt`-token sequence present in the prefix cache (at
    /// most (prompt−1)/block: the last token is always computed).
    pub fn cache_hits(&self, b: &SeqBlocks, prompt: u32) -> u32 {
        let max = ((prompt - 1) / self.layout.block_size) as usize;
        b.hashes
            .iter()
            .take(max)
            .take_while(|h| self.cache.contains_key(h))
            .count() as u32
    }

    /// Take references on the first `hits` cached blocks of a sequence.
    pub fn take_hits(&mut self, b: &mut SeqBlocks, hits: u32) {
        let u = self.layout.shared_block_units();
        for h in b.hashes.iter().take(hits as usize) {
            if let Some(e) = self.cache.get_mut(h) {
                if e.refs == 0 {
                    self.lru.remove(&e.stamp);
                    self.evictable -= u;
                }
                e.refs += 1;
            }
        }
        b.shared = hits;
    }

    /// Publish the full prompt blocks covering the first `tokens` tokens of a
    /// `prompt`-token sequence in the prefix cache (vLLM caches the blocks a step will
    /// compute when it schedules them).
    pub fn register_upto(&mut self, b: &mut SeqBlocks, prompt: u32, tokens: u32) {
        if b.hashes.is_empty() || b.registered {
            return;
        }
        let u = self.layout.shared_block_units();
        let bs = self.layout.block_size;
        let full_prompt_blocks = b.hashes.len().min((prompt / bs) as usize);
        let start = b.shared as usize;
        let limit = full_prompt_blocks.min((tokens / bs) as usize);
        if limit <= start {
            return;
        }
        let mut moved = 0u64;
        for h in b.hashes.iter().take(limit).skip(start) {
            match self.cache.get_mut(h) {
                Some(e) => {
                    if e.refs == 0 {
                        self.lru.remove(&e.stamp);
                        self.evictable -= u;
                    }
                    e.refs += 1;
                    // our private copy is redundant
                    self.free += u;
                }
                None => {
                    self.cache.insert(*h, CacheEntry { refs: 1, stamp: 0 });
                }
            }
            moved += u;
        }
        b.units = b.units.saturating_sub(moved);
        b.shared = limit as u32;
        b.registered = limit >= full_prompt_blocks;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> KvLayout {
        KvLayout {
            block_size: 16,
            hybrid: false,
            window_blocks: 9,
        }
    }

    #[test]
    fn shared_prefix_blocks_are_counted_once_and_evicted_lru() {
        let mut kv = KvBlocks::new(layout(), 100);
        let u = layout().shared_block_units();
        // A 64-token prompt: 4 full blocks, hashes 1..=4.
        let mut a = SeqBlocks::new(vec![1, 2, 3, 4]);
        let need = kv.private_units(&a, 64);
        kv.allocate(need);
        a.units = need;
        kv.register_upto(&mut a, 64, 64);
        assert_eq!(a.shared, 4);
        assert_eq!(
            a.units,
            need - 4 * u,
            "published blocks are no longer private"
        );
        // A second sequence with the same first three blocks hits them (not the last:
        // a hit covers at most prompt − 1 tokens).
        let mut b = SeqBlocks::new(vec![1, 2, 3, 9]);
        assert_eq!(kv.cache_hits(&b, 64), 3);
        assert_eq!(
            kv.admission_need(&b, 3, 64).1,
            0,
            "a's blocks are referenced"
        );
        kv.take_hits(&mut b, 3);
        let before = kv.available();
        kv.release(&mut a);
        // a's private units come back and block 4 is now unreferenced (evictable);
        // blocks 1..3 are still held by b.
        assert_eq!(kv.available(), before + need - 4 * u + u);
        assert_eq!(
            kv.admission_need(&SeqBlocks::new(vec![1, 2, 3, 4]), 4, 64)
                .1,
            u
        );
        // Allocating everything evicts the unreferenced block 4 but keeps 1..3.
        let all = kv.available();
        kv.allocate(all);
        assert_eq!(kv.available(), 0);
        assert_eq!(kv.cache_hits(&SeqBlocks::new(vec![1, 2, 3, 4]), 80), 3);
        assert!(kv.usage() > 0.99);
    }
}
