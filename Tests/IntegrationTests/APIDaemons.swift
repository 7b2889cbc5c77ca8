import Foundation
import HeartbeatCore

#if canImport(Glibc)
import Glibc
#endif

/// A file holding a bearer token, private (0600) as the daemon insists.
struct TokenFile {
    let path: String
    let token: String

    static func make(in folder: TempDir, name: String, token: String? = nil, mode: mode_t = 0o600) throws -> TokenFile {
        let token = token ?? "token-\(name)-\(UInt64.random(in: 0...UInt64.max))"
        let path = folder.appending(name).path
        try Data("\(token)\n".utf8).write(to: URL(fileURLWithPath: path))
        guard chmod(path, mode) == 0 else { throw HarnessError("chmod \(path): \(String(cString: strerror(errno)))") }
        return TokenFile(path: path, token: token)
    }
}

/// One `kvmha serve` with its API on `host:<free port>` (the port the daemon logs), the fast timings and
/// libvirt's test driver (one running VM named "test").
struct APIDaemon {
    let host: String
    let process: ChildProcess
    let stateDir: TempDir
    let token: TokenFile
    /// `http://host:port` or `https://…`, from the daemon's log.
    let url: String

    /// Verdicts within seconds, with storage deadlines a loaded test machine keeps (a beat that misses its
    /// deadline makes `status` report the pool degraded).
    static let moderateTiming = ["--interval", "1s", "--io-timeout", "800ms", "--dead-after", "3s"]
    /// The defaults: for tests that need storage calls to succeed on a loaded machine, not quick verdicts.
    static let defaultTiming: [String] = []

    static func start(
        host: String,
        pools: [String],
        token: TokenFile,
        environment: [String: String] = [:],
        timing: [String] = moderateTiming
    ) async throws -> APIDaemon {
        let state = try TempDir(prefix: "kvmha-api-state")
        var arguments =
            ["serve", "--host-ip", host] + timing + [
                "--fence-action", "none", "--log-level", "debug", "--state-dir", state.path, "--libvirt-uri",
                "test:///default",
            ]
        for pool in pools { arguments += ["--pool", pool] }
        var environment = environment
        environment["KVMHA_API_ADDRESS"] = environment["KVMHA_API_ADDRESS"] ?? host
        environment["KVMHA_API_PORT"] = environment["KVMHA_API_PORT"] ?? "0"
        environment["KVMHA_API_TOKEN_FILE"] = token.path
        let process = try ChildProcess(
            executable: try kvmhaBinary(),
            arguments: arguments,
            environment: environment,
            label: "kvmha \(host)"
        )
        let line: String
        do {
            line = try await process.waitForLine(matching: try .regex("API listening on https?://"))
        } catch {
            process.kill(signal: SIGKILL)
            _ = process.waitForExitBlocking(timeout: .seconds(10))
            throw error
        }
        guard let range = line.range(of: #"https?://[0-9.]+:[0-9]+"#, options: .regularExpression) else {
            process.kill(signal: SIGKILL)
            _ = process.waitForExitBlocking(timeout: .seconds(10))
            throw HarnessError("no URL in \(line)")
        }
        return APIDaemon(host: host, process: process, stateDir: state, token: token, url: String(line[range]))
    }

    func stop() {
        process.kill(signal: SIGKILL)
        _ = process.waitForExitBlocking(timeout: .seconds(10))
    }

    /// Runs `kvmha ARGUMENTS --server URL --token-file FILE` and returns its exit code and stdout.
    func cli(_ arguments: [String], extra: [String] = []) async throws -> CLIResult {
        try await runCLI(arguments + ["--server", url, "--token-file", token.path] + extra)
    }
}

struct CLIResult: CustomStringConvertible {
    let exitCode: Int32
    let stdout: String
    let stderr: String

    var description: String { "exit \(exitCode)\n--- stdout\n\(stdout)\n--- stderr\n\(stderr)" }

    /// stdout as a JSON object (for `--json`).
    func json() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any] else {
            throw HarnessError("not a JSON object: \(stdout)")
        }
        return object
    }

    /// stdout as a JSON array of objects.
    func jsonArray() throws -> [[String: Any]] {
        guard let array = try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [[String: Any]] else {
            throw HarnessError("not a JSON array of objects: \(stdout)")
        }
        return array
    }
}

/// Runs the `kvmha` binary to its end.
func runCLI(_ arguments: [String], timeout: Duration = .seconds(60)) async throws -> CLIResult {
    let process = try ChildProcess(
        executable: try kvmhaBinary(),
        arguments: arguments,
        label: "kvmha \(arguments.first ?? "")"
    )
    let code: Int32
    do {
        code = try await process.waitForExit(timeout: timeout)
    } catch {
        process.kill(signal: SIGKILL)
        _ = process.waitForExitBlocking(timeout: .seconds(10))
        throw error
    }
    let lines = process.outputLines()
    return CLIResult(
        exitCode: code,
        stdout: lines.filter { $0.source == .stdout }.map(\.text).joined(separator: "\n"),
        stderr: lines.filter { $0.source == .stderr }.map(\.text).joined(separator: "\n")
    )
}

extension Dictionary where Key == String, Value == Any {
    subscript(path path: String...) -> Any? {
        var current: Any? = self
        for key in path { current = (current as? [String: Any])?[key] }
        return current
    }
}
