import ArgumentParser
import Foundation
import HeartbeatCore
import Sidecar

struct ActivityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "activity",
        abstract:
            "Check whether a suspect host's VMs still write to their disks on a pool (CloudStack's VM activity check).",
        discussion: """
            Asks the local daemon (POST /v1/peers/IP/activity), which reads the host's heartbeat file, the \
            volumes' mtimes and the memo KVMHA/ac-IP on the pool, and rewrites the memo in CloudStack's format. \
            Same rule as kvmvmactivity.sh, except that a pool or volume that cannot be read gives unknown, not \
            activity. Exit status: 0 active, 1 inactive, 2 unknown; otherwise as below. \(DaemonOptions.exitCodes)
            """
    )

    @Argument(help: "The suspect host's private IP.") var host: String
    @Option(name: .long, help: "The pool's id (CloudStack's pool UUID).") var pool: String
    @Option(name: .long, help: "Volume file names in the pool's root, comma-separated (CloudStack's -u).") var volumes =
        ""
    @Option(name: .customLong("suspect-time"), help: "When the host became suspect, Unix seconds (CloudStack's -d).")
    var suspectTime: Int64
    @Option(
        name: .customLong("checker-time"),
        help: "The checker's time written into the memo, Unix seconds (CloudStack's -t; default: the daemon's clock)."
    )
    var checkerTime: Int64?
    @OptionGroup var daemon: DaemonOptions
    @Flag(name: .long, help: "Print the daemon's JSON answer.") var json = false

    var volumeList: [String] { volumes.split(separator: ",").map { String($0) }.filter { !$0.isEmpty } }

    func validate() throws {
        guard HostAddress(host) != nil else { throw ValidationError("'\(host)' is not an IPv4 address") }
        guard SettingsResolver.isValidPoolID(pool) else { throw ValidationError("--pool: '\(pool)' is not a pool id") }
        for volume in volumeList where !ActivityCheck.isValidVolumeName(volume) {
            throw ValidationError("--volumes: '\(volume)' is not a plain file name")
        }
        guard suspectTime >= 0, (checkerTime ?? 0) >= 0 else {
            throw ValidationError("times are Unix seconds (not negative)")
        }
    }

    func run() async throws {
        struct Body: Encodable {
            var pool: String
            var volumes: [String]
            var suspectTime: Int64
            var checkerTime: Int64?
        }
        let body = Array(
            try JSONEncoder().encode(
                Body(pool: pool, volumes: volumeList, suspectTime: suspectTime, checkerTime: checkerTime)
            )
        )
        let path = "/v1/peers/\(HostAddress(host)!)/activity"
        let answer = try await DaemonClient.with(daemon) { client throws(DaemonError) in
            try await client.request("POST", path, body: body, as: APIActivity.self)!
        }
        print(json ? DaemonOutput.json(answer) : Self.text(answer))
        throw ExitCode(DaemonOutput.exitCode(for: answer.activity))
    }

    static func text(_ answer: APIActivity) -> String {
        var lines = [
            "host \(answer.host) on pool \(answer.pool): \(answer.activity.uppercased()) — \(answer.reason)",
            "our verdict: \(answer.hostVerdict ?? "never seen"); heartbeat age: "
                + (answer.heartbeatAgeSeconds.map { "\($0)s" } ?? "-") + "; newest volume mtime: "
                + (answer.newestVolumeMtime.map(String.init) ?? "-") + "; compared with: "
                + (answer.comparedWith.map(String.init) ?? "-"),
            "memo: \(answer.previousMemo ?? "none") → "
                + (answer.memo.map { answer.memoWritten ? $0 : "\($0) (not written: \(answer.memoError ?? "-"))" }
                    ?? "not written"),
        ]
        let rows = answer.volumes.map { [$0.name, $0.status, $0.mtime.map(String.init) ?? "-", $0.error ?? ""] }
        if !rows.isEmpty { lines += TextTable.render(header: ["VOLUME", "STATUS", "MTIME", "ERROR"], rows: rows) }
        return lines.joined(separator: "\n")
    }
}
