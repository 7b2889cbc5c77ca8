import ArgumentParser
import Foundation
import Sidecar

struct Peers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List every peer the local daemon has seen, with its verdict.",
        discussion: """
            Asks the daemon (GET /v1/peers); answered from its memory. Exit status 0 when the list was read; \
            otherwise as below. \(DaemonOptions.exitCodes)
            """
    )

    @OptionGroup var daemon: DaemonOptions
    @Flag(name: .long, help: "Print the daemon's JSON answer.") var json = false

    func run() async throws {
        let list = try await DaemonClient.with(daemon) { client throws(DaemonError) in
            try await client.request("GET", "/v1/peers", as: APIPeerList.self)!
        }
        print(json ? DaemonOutput.json(list) : Self.text(list))
    }

    static func text(_ list: APIPeerList) -> String {
        let rows = list.peers.map { peer -> [String] in
            [
                peer.host, peer.overall.verdict, peer.overall.sequence.map(String.init) ?? "-",
                DaemonOutput.seconds(peer.overall.secondsSinceChange),
                DaemonOutput.seconds(peer.overall.wallClockAgeSeconds),
                peer.overall.reason,
            ]
        }
        let table = TextTable.render(
            header: ["HOST", "VERDICT", "SEQUENCE", "SINCE-CHANGE", "WALL-AGE", "REASON"],
            rows: rows
        )
        return (["peers seen by \(list.checker): \(list.peers.count)"] + table).joined(separator: "\n")
    }
}
