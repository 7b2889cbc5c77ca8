import ArgumentParser
import Foundation
import HeartbeatCore
import Sidecar

extension CheckHost {
    /// CheckOnHost through the local daemon: its verdict from memory, never a wait on storage.
    func askDaemon() async throws {
        let peer = HostAddress(host)!
        let report = try await DaemonClient.with(daemon) { client throws(DaemonError) in
            try await client.request("GET", "/v1/peers/\(peer)", as: APIPeerReport.self, notFound: ["unknown-peer"])
        }
        guard let report else {
            if json {
                print(
                    DaemonOutput.json(["host": peer.description, "verdict": "unknown", "reasonCode": "unknown-peer"])
                )
            } else {
                print("host \(peer): UNKNOWN — the daemon has never seen a record of it on any pool")
            }
            throw ExitCode(ExitStatus.unknown)
        }
        print(json ? DaemonOutput.json(report) : Self.table(report))
        throw ExitCode(DaemonOutput.exitCode(for: report.overall.verdict))
    }

    static func table(_ report: APIPeerReport) -> String {
        var lines = ["host \(report.host): \(report.overall.verdict.uppercased()) — \(report.overall.reason)"]
        let rows = report.pools.map { pool -> [String] in
            let verdict = pool.verdict
            return [
                pool.pool, verdict.verdict, verdict.sequence.map(String.init) ?? "-",
                DaemonOutput.seconds(verdict.secondsSinceChange), DaemonOutput.seconds(verdict.wallClockAgeSeconds),
                verdict.reason,
            ]
        }
        lines.append(
            contentsOf: TextTable.render(
                header: ["POOL", "VERDICT", "SEQUENCE", "SINCE-CHANGE", "WALL-AGE", "REASON"],
                rows: rows
            )
        )
        if let bmc = report.bmc { lines.append(Self.bmcLine(bmc, certainty: report.certainty)) }
        if let api = report.api {
            lines.append("api: \(api.state)\(api.error.map { " — \($0)" } ?? "") (probed \(DaemonOutput.time(api.checkedMs)))")
        }
        if !report.views.isEmpty {
            lines.append("other hosts' records on it: " + report.views.map { "\($0.host) \($0.verdict)" }.joined(separator: ", "))
        }
        if !report.sees.isEmpty {
            lines.append("its record on the others: " + report.sees.map { "\($0.host) \($0.verdict)" }.joined(separator: ", "))
        }
        lines += report.notes.map { "note: \($0)" }
        return lines.joined(separator: "\n")
    }

    /// `bmc: power off (checked 2024-… UTC); certainty: confirmed`, or why there is no power state.
    static func bmcLine(_ bmc: APIBMCStatus, certainty: String) -> String {
        let checked = bmc.checkedMs.map { "checked \(DaemonOutput.time($0))" } ?? "never checked"
        let state: String
        switch bmc.state {
        case "on", "off": state = "power \(bmc.state)"
        default: state = bmc.state.uppercased() + (bmc.error.map { " — \($0)" } ?? "")
        }
        return "bmc: \(state) (\(checked)); certainty: \(certainty)"
    }
}
