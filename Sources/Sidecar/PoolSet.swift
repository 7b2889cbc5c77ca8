import Synchronization

/// The pools the daemon uses now. Fixed when the config lists them; changed at run time by `PoolDiscovery`
/// when pools come from libvirt. The writer and the monitor read `current` once per round, so a round
/// always works on one consistent list.
public final class PoolSet: Sendable {
    /// Sorted by id.
    private let pools: Mutex<[Pool]>

    public init(_ pools: [Pool] = []) {
        self.pools = Mutex(pools.sorted { $0.id < $1.id })
    }

    /// The pools now, sorted by id.
    public var current: [Pool] {
        pools.withLock { $0 }
    }

    public var ids: [String] {
        pools.withLock { $0.map(\.id) }
    }

    public var isEmpty: Bool {
        pools.withLock { $0.isEmpty }
    }

    public func pool(id: String) -> Pool? {
        pools.withLock { $0.first { $0.id == id } }
    }

    /// Adds `pool` unless one with its id is there already; returns whether it was added. A pool that is
    /// not added is stopped, since nobody else holds it.
    @discardableResult
    public func add(_ pool: Pool) -> Bool {
        let added = pools.withLock { pools -> Bool in
            guard !pools.contains(where: { $0.id == pool.id }) else { return false }
            let index = pools.firstIndex { $0.id > pool.id } ?? pools.endIndex
            pools.insert(pool, at: index)
            return true
        }
        if !added { pool.stop() }
        return added
    }

    /// Removes the pool with this id and stops its I/O thread (a call in flight on it fails as stopped).
    /// Returns the removed pool, or nil if there was none.
    @discardableResult
    public func remove(id: String) -> Pool? {
        let removed = pools.withLock { pools -> Pool? in
            guard let index = pools.firstIndex(where: { $0.id == id }) else { return nil }
            return pools.remove(at: index)
        }
        removed?.stop()
        return removed
    }

    /// Stops every pool's I/O thread and empties the set (at shutdown).
    public func stopAll() {
        let all = pools.withLock { pools -> [Pool] in
            defer { pools = [] }
            return pools
        }
        for pool in all { pool.stop() }
    }
}
