import Foundation

/// One answer of a sidecar's API to the poller.
struct DrillAnswer: @unchecked Sendable {
    // @unchecked: `json` holds only the immutable JSONSerialization values (dictionaries, arrays, strings, numbers).
    /// HTTP status; 0 when no HTTP answer came (curl's error is in `failure`).
    let status: Int
    let json: [String: Any]
    let body: String
    let failure: String?
    /// When the request was sent and when its answer arrived, drill seconds.
    let sentAt: Double
    let receivedAt: Double

    var ok: Bool { status == 200 }
    /// The route does not exist in this daemon (yet): `404` with the error code `not-found`.
    var routeMissing: Bool { status == 404 && json["error"] as? String == "not-found" }

    /// A short text for the timeline when the answer is not a 200.
    var problem: String {
        if let failure { return "no answer (\(failure))" }
        if let code = json["error"] as? String { return "HTTP \(status) \(code): \(json["message"] as? String ?? "")" }
        return "HTTP \(status): \(body.prefix(200))"
    }
}

/// The management server of the drill: it asks the hosts' APIs with curl, from inside the manager's namespace
/// (`ip netns exec`), so every request crosses the drill's management bridge like a real one would.
struct DrillPoller: Sendable {
    let namespace: String
    let port: Int
    let clock: DrillClock
    let curl: String
    let requestTimeout: Double

    init(namespace: String, port: Int, clock: DrillClock, requestTimeout: Double = 3) throws {
        guard let curl = ChildProcess.findExecutable("curl") else {
            throw HarnessError("curl is not installed — apt-get install -y curl")
        }
        self.namespace = namespace
        self.port = port
        self.clock = clock
        self.curl = curl.path
        self.requestTimeout = requestTimeout
    }

    func get(_ host: DrillHost, _ path: String, timeout: Double? = nil) async throws -> DrillAnswer {
        try await request(host, path, body: nil, timeout: timeout)
    }

    func post(
        _ host: DrillHost,
        _ path: String,
        _ body: [String: Any],
        timeout: Double? = nil
    ) async throws -> DrillAnswer {
        let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        return try await request(host, path, body: String(decoding: data, as: UTF8.self), timeout: timeout)
    }

    private func request(_ host: DrillHost, _ path: String, body: String?, timeout: Double?) async throws -> DrillAnswer
    {
        let marker = "\n@@kvmha-drill-status "
        var arguments = [
            "netns", "exec", namespace, curl, "--silent", "--show-error", "--max-time",
            String(timeout ?? requestTimeout),
            "--header", "@\(host.headerFile)", "--write-out", "\(marker)%{http_code}",
        ]
        if let body {
            arguments += ["--header", "Content-Type: application/json", "--data-binary", body]
        }
        arguments.append("http://\(host.ip):\(port)\(path)")
        let sentAt = clock.now
        let result = try await DrillCommand.run("/usr/sbin/ip", arguments, timeout: .seconds(30))
        let receivedAt = clock.now
        var text = result.stdout
        var status = 0
        if let range = text.range(of: marker.dropFirst(), options: .backwards) {
            status = Int(text[range.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
            text = String(text[..<range.lowerBound]).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let json = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
        let failure: String? =
            result.exitCode == 0 ? nil : (result.stderr.isEmpty ? "curl exit \(result.exitCode)" : result.stderr)
        return DrillAnswer(
            status: status,
            json: json,
            body: text,
            failure: failure,
            sentAt: sentAt,
            receivedAt: receivedAt
        )
    }
}

/// Seconds since the drill started, on the monotonic clock, plus the wall clock for comparing with the
/// records' Unix times.
struct DrillClock: Sendable {
    let start = ContinuousClock.now
    let startWall = Date()

    var now: Double {
        let elapsed = start.duration(to: .now)
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Drill seconds of a Unix time in milliseconds (same machine, same wall clock as the sidecars').
    func drillSeconds(unixMs: Int64) -> Double {
        Double(unixMs) / 1000 - startWall.timeIntervalSince1970
    }

    var unixSeconds: Double { startWall.timeIntervalSince1970 + now }
}
