/// When a host must take itself out: a state machine over a clock, fed beat outcomes per pool and time,
/// returning actions.
///
/// The rule (DESIGN.md "Timing rules"): fence when **no** beat on **any** pool succeeded for `fenceAfter`;
/// then wait `fenceDelay` (a sync attempt, as CloudStack does) and fence, unless a beat succeeds meanwhile.
/// One bad pool among good ones is an alert, never a fence — one bad pool rebooting the host is the top
/// complaint about CloudStack's heartbeat. `fenceAfter + fenceDelay < deadAfter` (checked at start-up)
/// makes the host gone before its neighbours call it dead and restart its VMs elsewhere.
public struct FencePolicy<C: Clock>: Sendable where C.Duration == Duration, C.Instant: Sendable {
    public enum Action: Hashable, Sendable {
        /// These pools have had no good beat for `fenceAfter` while others are fine.
        case alert(failingPools: [String])
        /// Every pool is fine again.
        case alertCleared
        /// No beat on any pool for `fenceAfter`: fencing in `fenceDelay` (start the sync now).
        case fenceScheduled(silentFor: Duration)
        /// A beat succeeded during the delay: fencing called off.
        case fenceAborted
        /// Fence now.
        case fence
    }

    public enum State: Hashable, Sendable {
        case healthy
        case degraded(failingPools: [String])
        case fencing(at: C.Instant)
        case fenced
        /// Maintenance: nothing fires.
        case disarmed
    }

    public let fenceAfter: Duration
    public let fenceDelay: Duration
    public private(set) var state: State = .healthy
    private var lastSuccess: [String: C.Instant] = [:]
    private var started: C.Instant
    private var armed = true

    public init(fenceAfter: Duration, fenceDelay: Duration, pools: [String], start: C.Instant) {
        self.fenceAfter = fenceAfter
        self.fenceDelay = fenceDelay
        self.started = start
        for pool in pools { lastSuccess[pool] = nil }
        self.pools = Set(pools)
    }

    private var pools: Set<String>

    /// The pools being watched changed (discovery): new pools start their clock now.
    public mutating func setPools(_ ids: [String], at now: C.Instant) {
        let new = Set(ids)
        for added in new.subtracting(pools) where lastSuccess[added] == nil { lastSuccess[added] = now }
        for removed in pools.subtracting(new) { lastSuccess[removed] = nil }
        pools = new
    }

    /// Maintenance mode disarms fencing; re-arming restarts every clock (the host gets a full `fenceAfter`).
    public mutating func setArmed(_ armed: Bool, at now: C.Instant) -> [Action] {
        guard armed != self.armed else { return [] }
        self.armed = armed
        if armed {
            started = now
            for pool in pools { lastSuccess[pool] = now }
            state = .healthy
            return []
        }
        let wasFencing = if case .fencing = state { true } else { false }
        state = .disarmed
        return wasFencing ? [.fenceAborted] : []
    }

    /// One beat outcome on one pool.
    public mutating func beat(pool: String, succeeded: Bool, at now: C.Instant) -> [Action] {
        if succeeded { lastSuccess[pool] = now }
        return evaluate(at: now)
    }

    /// Time passing with no beat outcome (a beat stuck in storage reports nothing).
    public mutating func tick(at now: C.Instant) -> [Action] {
        evaluate(at: now)
    }

    private func silence(of pool: String, at now: C.Instant) -> Duration {
        (lastSuccess[pool] ?? started).duration(to: now)
    }

    private mutating func evaluate(at now: C.Instant) -> [Action] {
        guard armed else { return [] }
        if case .fenced = state { return [] }
        let watched = pools.sorted()
        guard !watched.isEmpty else { return [] }
        let failing = watched.filter { silence(of: $0, at: now) >= fenceAfter }
        let allSilent = failing.count == watched.count

        switch state {
        case .fencing(let at):
            if !allSilent {
                state = failing.isEmpty ? .healthy : .degraded(failingPools: failing)
                return [.fenceAborted] + (failing.isEmpty ? [] : [.alert(failingPools: failing)])
            }
            if now >= at {
                state = .fenced
                return [.fence]
            }
            return []
        case .fenced, .disarmed:
            return []
        case .healthy, .degraded:
            if allSilent {
                let silentFor = watched.map { silence(of: $0, at: now) }.min() ?? fenceAfter
                // The delay counts from when the silence reached fenceAfter, not from when we noticed.
                let fenceAt = now.advanced(by: fenceDelay - (silentFor - fenceAfter))
                if fenceDelay <= .zero || now >= fenceAt {
                    state = .fenced
                    return [.fenceScheduled(silentFor: silentFor), .fence]
                }
                state = .fencing(at: fenceAt)
                return [.fenceScheduled(silentFor: silentFor)]
            }
            if failing.isEmpty {
                if case .degraded = state {
                    state = .healthy
                    return [.alertCleared]
                }
                return []
            }
            if case .degraded(let previous) = state, previous == failing { return [] }
            state = .degraded(failingPools: failing)
            return [.alert(failingPools: failing)]
        }
    }
}
