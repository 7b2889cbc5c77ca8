import Dispatch
public import HeartbeatCore
public import Logging
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Probes every known peer's API port with a TCP connect, once per interval, so that CheckOnHost can tell
/// "the network to the host is cut" from "the host is gone" (`PeerNetworkNotes`). A probe proves only that
/// something accepts connections on the peer's address and port; it carries no token and sends no data.
///
/// All peers are probed at once: non-blocking connects, then one `poll` until the timeout, on a Dispatch
/// worker thread, never on the daemon's cooperative threads. CheckOnHost reads the cached results.
public final class PeerProber: Service, Sendable {
    public typealias Result = PeerProbeResult<ContinuousClock.Instant>

    private let port: Int
    private let interval: Duration
    private let timeout: Duration
    private let peers: @Sendable () -> [HostAddress]
    private let logger: Logger
    private let results = Mutex<[HostAddress: Result]>([:])

    /// - Parameters:
    ///   - port: the peers' API port (the cluster uses one port everywhere).
    ///   - timeout: how long a connect may take before the peer counts as unreachable.
    ///   - peers: the peers to probe, asked before every round (those seen on any pool).
    public init(
        port: Int, interval: Duration, timeout: Duration, peers: @escaping @Sendable () -> [HostAddress],
        logger: Logger
    ) {
        self.port = port
        self.interval = interval
        self.timeout = timeout
        self.peers = peers
        self.logger = logger
    }

    /// The last probe of `peer`, if it is recent enough to mean anything (`PeerNetworkNotes.freshPeriods`).
    public func result(for peer: HostAddress, now: ContinuousClock.Instant = .now) -> Result? {
        guard let result = results.withLock({ $0[peer] }) else { return nil }
        let age = result.checkedAt.duration(to: now)
        return age <= interval * PeerNetworkNotes.freshPeriods + timeout ? result : nil
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown { [self] in
            while !Task.isCancelled {
                let started = ContinuousClock.now
                await probeRound()
                let elapsed = started.duration(to: .now)
                try await MonotonicSleeper.shared.sleep(for: max(interval - elapsed, interval / 10))
            }
        }
    }

    /// Probes every peer once and records the results; logs changes.
    public func probeRound() async {
        let targets = peers()
        guard !targets.isEmpty else { return }
        let port = self.port
        let timeout = self.timeout
        let outcome: [HostAddress: PeerReachability] = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: Self.probe(targets, port: port, timeout: timeout))
            }
        }
        let now = ContinuousClock.now
        let nowMs = WallClock.nowMs()
        let changes = results.withLock { results -> [(HostAddress, PeerReachability)] in
            var changes: [(HostAddress, PeerReachability)] = []
            for (peer, reachability) in outcome {
                if results[peer]?.reachability.state != reachability.state { changes.append((peer, reachability)) }
                results[peer] = Result(reachability: reachability, checkedAt: now, checkedMs: nowMs)
            }
            return changes
        }
        for (peer, reachability) in changes.sorted(by: { $0.0 < $1.0 }) {
            logger.info(
                "peer \(peer) API port \(port) is now \(reachability.state)\(reachability.error.map { ": \($0)" } ?? "")")
        }
    }

    /// Connects to every `host:port` at once and waits at most `timeout` for all of them.
    static func probe(_ hosts: [HostAddress], port: Int, timeout: Duration) -> [HostAddress: PeerReachability] {
        var outcome: [HostAddress: PeerReachability] = [:]
        var pending: [(host: HostAddress, fd: Int32)] = []
        defer { for entry in pending { close(entry.fd) } }
        for host in hosts {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else {
                outcome[host] = .unreachable("socket: \(String(cString: strerror(errno)))")
                continue
            }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = host.networkOrder
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if result == 0 {
                outcome[host] = .reachable
                close(fd)
            } else if errno == EINPROGRESS {
                pending.append((host, fd))
            } else {
                outcome[host] = classify(errno)
                close(fd)
            }
        }
        let deadline = ContinuousClock.now + timeout
        while !pending.isEmpty {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { break }
            var fds = pending.map { pollfd(fd: $0.fd, events: Int16(POLLOUT), revents: 0) }
            let milliseconds = Int32(clamping: max(1, left.wholeMilliseconds))
            let ready = poll(&fds, nfds_t(fds.count), milliseconds)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { continue }
            var still: [(host: HostAddress, fd: Int32)] = []
            for (index, entry) in pending.enumerated() {
                guard fds[index].revents != 0 else {
                    still.append(entry)
                    continue
                }
                var error: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(entry.fd, SOL_SOCKET, SO_ERROR, &error, &length)
                outcome[entry.host] = error == 0 ? .reachable : classify(error)
                close(entry.fd)
            }
            pending = still
        }
        for entry in pending {
            outcome[entry.host] = .unreachable("no answer within \(DurationText.format(timeout))")
        }
        return outcome
    }

    private static func classify(_ error: Int32) -> PeerReachability {
        let text = String(cString: strerror(error))
        return error == ECONNREFUSED ? .refused(text) : .unreachable(text)
    }
}

extension HostAddress {
    /// The address as `sin_addr.s_addr` wants it.
    fileprivate var networkOrder: UInt32 {
        let (a, b, c, d) = octets
        return (UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)).bigEndian
    }
}
