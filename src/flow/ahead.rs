//! Packets on their way into a flow table, held a few packets back so that the cache lines
//! each will need are fetched while the packets before it are processed: its index line when it
//! enters ([`AHEAD`] packets before its turn); [`CLOSER`] packets before, its flow's slab slot,
//! or for a packet that will start a flow (no open flow has its key hash) the first lines the
//! sink will read ([`crate::flow::FlowSink::coming`]: the host context), and [`CLOSEST`]
//! packets before, the lines found through those. Under a flood nearly every packet misses the
//! cache several times; fetched ahead, the misses overlap. Packets leave in the order they
//! came: what the table does with them, and when, is unchanged.

use std::collections::VecDeque;

use super::FlowSink;
use super::key::FlowKey;
use super::table::FlowTable;
use crate::decode::PacketMeta;
use crate::prefetch::prefetch;

/// Packets between a packet's index prefetch and its turn.
pub const AHEAD: usize = 8;
/// Packets between the probe of its (prefetched) index line and its turn.
pub const CLOSER: usize = 5;
/// Packets between the sink's second hint and its turn.
pub const CLOSEST: usize = 2;

/// The packets held back, each with a tag of the caller's (`X`: a sequence number, or `()`).
#[derive(Debug)]
pub struct Lookahead<X> {
    /// Each packet with its key and whether it will start a flow (as far as the index said
    /// [`CLOSER`] packets before its turn).
    q: VecDeque<(X, PacketMeta, Keyed, bool)>,
}

impl<X> Default for Lookahead<X> {
    fn default() -> Self {
        Lookahead {
            q: VecDeque::with_capacity(AHEAD + 1),
        }
    }
}

impl<X> Lookahead<X> {
    /// Takes a packet in; gives back the one whose turn it is (the caller pushes it with
    /// [`FlowTable::push_keyed`]), once [`AHEAD`] packets are held.
    pub fn add(
        &mut self,
        table: &FlowTable,
        x: X,
        p: PacketMeta,
        sink: &impl FlowSink,
    ) -> Option<(X, PacketMeta, Keyed)> {
        let k = table.keyed(&p);
        table.prefetch_index(&k);
        self.q.push_back((x, p, k, false));
        if let Some((_, p, k, new)) = self.q.get_mut(CLOSER) {
            *new = table.prefetch_flow(k);
            if *new {
                sink.coming(p, false);
            }
        }
        if let Some((_, p, _, true)) = self.q.get(CLOSEST) {
            sink.coming(p, true);
        }
        if self.q.len() > AHEAD {
            self.q.pop_front().map(|(x, p, k, _)| (x, p, k))
        } else {
            None
        }
    }

    /// The oldest packet held (to drain before a sweep, a flush or an idle capture).
    pub fn pop(&mut self) -> Option<(X, PacketMeta, Keyed)> {
        self.q.pop_front().map(|(x, p, k, _)| (x, p, k))
    }
}

/// A packet's key, which side of it sent the packet, and the key's hash
/// ([`FlowTable::keyed`]).
#[derive(Clone, Copy, Debug)]
pub struct Keyed {
    pub(super) key: FlowKey,
    pub(super) src_is_lo: bool,
    pub(super) hash: u32,
}

/// How many evictions ahead a full table prefetches the flow it will evict.
const EVICT_AHEAD: usize = 8;

impl FlowTable {
    /// A packet's key and key hash, computed ahead of [`FlowTable::push_keyed`].
    pub fn keyed(&self, pkt: &PacketMeta) -> Keyed {
        let (key, src_is_lo) = FlowKey::of(pkt);
        Keyed {
            hash: self.hash(&key),
            key,
            src_is_lo,
        }
    }

    /// Prefetches the index line a packet will probe (a few packets before it comes).
    pub fn prefetch_index(&self, k: &Keyed) {
        self.index.prefetch(k.hash);
    }

    /// Probes the index line (prefetched by now) for a packet that comes soon and prefetches
    /// its flow's slab slot; true when no open flow carries its key hash (it will start one).
    pub fn prefetch_flow(&self, k: &Keyed) -> bool {
        let slab = &self.slab;
        let found = self.index.find(k.hash, |i| {
            if let Some(s) = slab.get(i as usize) {
                prefetch(s);
            }
            true
        });
        found.is_none()
    }

    /// A full table evicts its oldest flow for each new one: asks for the slab slot of the
    /// flow [`EVICT_AHEAD`] evictions away and for the index line of the one half as far.
    pub(super) fn prefetch_evictions(&self) {
        let slot = |n: usize| {
            let &(_, t) = self.expiry.get(n)?;
            self.slab.get(t.slot as usize)
        };
        if let Some(s) = slot(EVICT_AHEAD) {
            prefetch(s);
        }
        if let Some(Some(s)) = slot(EVICT_AHEAD / 2) {
            self.index.prefetch(self.hash(&s.key));
        }
    }
}
