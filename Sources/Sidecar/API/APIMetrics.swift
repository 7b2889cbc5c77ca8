import CoreMetrics
public import HeartbeatCore
public import Prometheus

/// The daemon's metrics, kept in a registry of its own (no global bootstrap, so tests and several daemons
/// in one process do not share counters), reported through swift-metrics and rendered by swift-prometheus.
///
/// Counters and the beat latency are fed as things happen (`recordBeat`, `recordRequest`); peer verdicts
/// and pool states are read from the daemon's memory when `/metrics` is scraped.
public final class APIMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory

    public static let beatDurationBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500),
        .seconds(5),
    ]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["kvmha_beat_duration_seconds"] = Self.beatDurationBuckets
        self.factory = factory
    }

    /// One pool's part of a beat: written or not, and how long it took.
    public func recordBeat(pool: String, ok: Bool, latency: Duration) {
        CoreMetrics.Counter(
            label: "kvmha_beats_total",
            dimensions: [("pool", pool), ("result", ok ? "ok" : "failed")],
            factory: factory
        )
        .increment()
        CoreMetrics.Timer(label: "kvmha_beat_duration_seconds", dimensions: [("pool", pool)], factory: factory)
            .recordNanoseconds(latency.nanoseconds)
    }

    /// One API request, by route template (`/v1/peers/{ip}`, never the raw path) and status.
    public func recordRequest(route: String, status: Int) {
        CoreMetrics.Counter(
            label: "kvmha_api_requests_total",
            dimensions: [("route", route), ("status", String(status))],
            factory: factory
        ).increment()
    }

    public func recordActivity(_ activity: String) {
        CoreMetrics.Counter(
            label: "kvmha_activity_checks_total",
            dimensions: [("activity", activity)],
            factory: factory
        )
        .increment()
    }

    /// The BMC gauges, from the BMC probe's memory: `kvmha_bmc_power` 1 on, 0 off, -1 no power state; and
    /// `kvmha_bmc_state` 1 for the current state.
    public func recordBMC(_ statuses: [HostAddress: BMCStatus]) {
        for (peer, status) in statuses {
            let power = status.state == .on ? 1 : status.state == .off ? 0 : -1
            gauge("kvmha_bmc_power", [("peer", peer.description)]).record(power)
            for state in BMCStatus.State.allCases {
                gauge("kvmha_bmc_state", [("peer", peer.description), ("state", state.rawValue)])
                    .record(status.state == state ? 1 : 0)
            }
        }
    }

    /// The conflicts of one peer monitor round, by kind (every kind, zero included).
    public func recordConflicts(_ conflicts: [ClusterConflict]) {
        for kind in ClusterConflict.Kind.allCases {
            gauge("kvmha_conflicts", [("kind", kind.rawValue)]).record(conflicts.filter { $0.kind == kind }.count)
        }
    }

    /// Sets the gauges read from memory, then renders everything in Prometheus' text format.
    public func render(peers: [PeerReport], pools: [Pool], fencing: Fencer.Status? = nil) -> [UInt8] {
        var counts: [Liveness: Int] = [:]
        for report in peers { counts[report.overall.liveness, default: 0] += 1 }
        for liveness in Liveness.allCases {
            gauge("kvmha_peers", [("verdict", liveness.rawValue)]).record(counts[liveness] ?? 0)
        }
        let now = ContinuousClock.now
        for pool in pools {
            let stuck = pool.stuckSince
            gauge("kvmha_pool_io_stuck", [("pool", pool.id)]).record(stuck == nil ? 0 : 1)
            gauge("kvmha_pool_io_stuck_seconds", [("pool", pool.id)]).record(
                stuck.map { $0.duration(to: now).seconds } ?? 0
            )
            gauge("kvmha_pool_reachable", [("pool", pool.id)]).record(pool.health.reachable ? 1 : 0)
        }
        if let fencing {
            // One series per state, 1 for the current one; and the alert on its own for simple alert rules.
            for state in ["healthy", "alert", "fencing", "fenced", "disarmed"] {
                gauge("kvmha_fence_state", [("state", state)]).record(fencing.state == state ? 1 : 0)
            }
            gauge("kvmha_fence_alert", []).record(APIFencingStatus(fencing).alert ? 1 : 0)
            gauge("kvmha_fence_failing_pools", []).record(fencing.failingPools.count)
        }
        return registry.emitToBuffer()
    }

    private func gauge(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: label, dimensions: dimensions, factory: factory)
    }
}
