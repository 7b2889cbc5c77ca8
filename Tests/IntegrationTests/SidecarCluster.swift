import Foundation
import HeartbeatCore

#if canImport(Glibc)
import Glibc
#endif

/// Short timings for multi-process tests: the rules are the same at any scale.
enum FastTiming {
    static let interval = "300ms"
    static let ioTimeout = "200ms"
    static let deadAfter = "1500ms"
    static let deadAfterSeconds = 1.5
    static let intervalSeconds = 0.3
}

/// One `kvmha serve` process of a test.
struct SidecarProcess {
    let host: String
    let process: ChildProcess
    let stateDir: TempDir

    /// Starts `kvmha serve` for `host` on `pools` (`UUID=PATH`) with the fast timings.
    static func start(
        host: String, pools: [String], fakeTime: String? = nil, fenceAction: String = "none",
        environment: [String: String] = [:], extraArguments: [String] = []
    ) throws -> SidecarProcess {
        let binary = try kvmhaBinary()
        let state = try TempDir(prefix: "kvmha-state")
        var arguments = [
            "serve", "--host-ip", host, "--interval", FastTiming.interval, "--io-timeout", FastTiming.ioTimeout,
            "--dead-after", FastTiming.deadAfter, "--fence-action", fenceAction, "--log-level", "debug",
            "--state-dir", state.path,
        ]
        for pool in pools { arguments += ["--pool", pool] }
        arguments += extraArguments
        let process: ChildProcess
        if let fakeTime {
            process = try ChildProcess.withFakeTime(
                offset: fakeTime, executable: binary, arguments: arguments, environment: environment,
                label: "kvmha \(host) (\(fakeTime))")
        } else {
            process = try ChildProcess(executable: binary, arguments: arguments, environment: environment, label: "kvmha \(host)")
        }
        return SidecarProcess(host: host, process: process, stateDir: state)
    }

    /// Waits until this daemon has written `count` beats (counting from its start).
    func waitForBeat(_ count: Int, timeout: Duration = .seconds(30)) async throws {
        try await process.waitForLine(containing: "beat \(count) written", timeout: timeout)
    }

    func stop() {
        process.kill(signal: SIGKILL)
        _ = process.waitForExitBlocking(timeout: .seconds(10))
    }
}

/// The result of running `kvmha check-host … --json`.
struct CheckHostResult {
    let exitCode: Int32
    let json: [String: Any]
    let output: String

    var verdict: String? { (json["overall"] as? [String: Any])?["verdict"] as? String }
    var reasonCode: String? { (json["overall"] as? [String: Any])?["reasonCode"] as? String }
    var reason: String? { (json["overall"] as? [String: Any])?["reason"] as? String }
    func pool(_ id: String) -> [String: Any]? {
        (json["pools"] as? [[String: Any]])?.first { $0["pool"] as? String == id }?["verdict"] as? [String: Any]
    }
}

/// Runs `kvmha check-host` as a process and parses its JSON.
func checkHost(
    _ host: String, pools: [String], deadAfter: String = FastTiming.deadAfter, ioTimeout: String = FastTiming.ioTimeout,
    sampleEvery: String = "100ms", waitForExit: Bool = true
) async throws -> CheckHostResult {
    var arguments = ["check-host", host, "--json", "--dead-after", deadAfter, "--io-timeout", ioTimeout, "--sample-every", sampleEvery]
    for pool in pools { arguments += ["--pool", pool] }
    let process = try ChildProcess(executable: try kvmhaBinary(), arguments: arguments, label: "check-host \(host)")
    // The JSON ends with a closing brace alone on a line.
    try await process.waitForLine(matching: .regex("^\\}$"), timeout: .seconds(60))
    let output = process.lines().joined(separator: "\n")
    let start = output.firstIndex(of: "{") ?? output.startIndex
    let object = try JSONSerialization.jsonObject(with: Data(output[start...].utf8)) as? [String: Any] ?? [:]
    let code = waitForExit ? try await process.waitForExit(timeout: .seconds(60)) : -1
    return CheckHostResult(exitCode: code, json: object, output: output)
}

/// Threads of a process, from /proc.
func threadCount(of pid: pid_t) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("Threads:") {
        return Int(line.dropFirst("Threads:".count).trimmingCharacters(in: .whitespaces))
    }
    return nil
}

/// Reads a host's record straight from a pool directory.
func readRecord(pool: URL, host: String) -> HeartbeatRecord? {
    let path = pool.appendingPathComponent(PoolLayout.record(HostAddress(host)!)).path
    guard let data = FileManager.default.contents(atPath: path) else { return nil }
    return try? RecordCodec.decode(Array(data), expectedHost: HostAddress(host)!).get()
}
