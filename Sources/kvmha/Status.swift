import ArgumentParser
import Foundation
import Sidecar

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the local daemon's health: pools, libvirt, version, uptime.",
        discussion: """
            Asks the daemon (GET /v1/health). ok: every pool reachable and libvirt connected; failing: no pool \
            reachable (this host may soon be called dead); degraded: anything between. \
            \(DaemonOptions.exitCodes)
            """
    )

    @OptionGroup var daemon: DaemonOptions
    @Flag(name: .long, help: "Print the daemon's JSON answer.") var json = false

    func run() async throws {
        let health = try await DaemonClient.with(daemon) { client throws(DaemonError) in
            try await client.request("GET", "/v1/health", as: APIHealth.self)!
        }
        print(json ? DaemonOutput.json(health) : Self.text(health))
        throw ExitCode(DaemonOutput.exitCode(for: health.status))
    }

    static func text(_ health: APIHealth) -> String {
        var lines = [
            "kvmha \(health.version) on \(health.host): \(health.status.uppercased())",
            "up \(DaemonOutput.seconds(health.uptimeSeconds)), incarnation \(health.incarnation)"
                + (health.hostUUID.map { ", host UUID \($0)" } ?? ""),
            "libvirt: "
                + (health.libvirt.connected
                    ? "connected since \(DaemonOutput.time(health.libvirt.sinceMs))"
                    : "DISCONNECTED since \(DaemonOutput.time(health.libvirt.sinceMs)): \(health.libvirt.lastError ?? "-")"),
        ]
        let rows = health.pools.map { pool -> [String] in
            [
                pool.pool, pool.reachable ? "reachable" : "UNREACHABLE", DaemonOutput.time(pool.lastGoodBeatMs),
                "\(pool.beatsOK)/\(pool.beatsFailed)",
                pool.ioStuckSeconds.map { "stuck \(DaemonOutput.seconds($0))" } ?? "-",
                pool.lastError ?? "-",
            ]
        }
        lines += TextTable.render(
            header: ["POOL", "STATE", "LAST-GOOD-BEAT", "OK/FAILED", "IO", "LAST-ERROR"],
            rows: rows
        )
        if health.pools.isEmpty { lines.append("no pools yet") }
        if let fencing = health.fencing {
            switch fencing.state {
            case "healthy": lines.append("fencing: armed (\(fencing.action)), beats landing")
            case "alert":
                lines.append(
                    "fencing: ALERT (\(fencing.action)): no beat on \(fencing.failingPools.joined(separator: ", ")) "
                        + "while other pools take them; no fencing for that")
            case "fencing": lines.append("fencing: FENCING (\(fencing.action)): no beat landed on any pool")
            case "fenced": lines.append("fencing: FENCED (\(fencing.action))")
            default: lines.append("fencing: \(fencing.state) (\(fencing.action))")
            }
        }
        return lines.joined(separator: "\n")
    }
}
