import ArgumentParser
import Foundation
import HeartbeatCore
import Sidecar

struct Maintenance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maintenance",
        abstract: "Put this host in maintenance (self-fencing disarmed), take it out, or show its mode.",
        discussion: """
            `on` disarms the daemon's self-fencing and marks this host's record `maintenance` with the reason; \
            peers then answer `maintenance` instead of `alive` while the record keeps changing, and `dead` as \
            usual if it stops. It survives restarts of the sidecar until `off`. `status` (the default) prints \
            the mode: normal, maintenance or rejoining (after a fence or an unclean stop, for one deadAfter). \
            Asks the local daemon (GET/POST /v1/maintenance). \(DaemonOptions.exitCodes)
            """
    )

    enum Action: String, ExpressibleByArgument, CaseIterable {
        case on, off, status
    }

    @Argument(help: "on, off or status.") var action: Action = .status
    @Option(name: .long, help: "Why (with `on`): shown to peers and operators, at most 256 bytes.") var reason: String?
    @Flag(name: .long, help: "Print the daemon's JSON answer.") var json = false
    @OptionGroup var daemon: DaemonOptions

    func validate() throws {
        if reason != nil && action != .on {
            throw ValidationError("--reason goes with `on` only")
        }
    }

    func run() async throws {
        let action = self.action
        var body: [UInt8]?
        if action != .status {
            var json = JSONWriter(capacity: 64)
            json.raw(action == .on ? #"{"maintenance":true"# : #"{"maintenance":false"#)
            if let reason {
                json.raw(",")
                json.key("reason")
                json.string(reason)
            }
            json.raw("}")
            body = json.bytes
        }
        let requestBody = body
        let mode = try await DaemonClient.with(daemon) { client throws(DaemonError) in
            try await client.request(
                action == .status ? "GET" : "POST", "/v1/maintenance", body: requestBody, as: APIHostMode.self)!
        }
        if json {
            print(DaemonOutput.json(mode))
            return
        }
        switch mode.mode {
        case "maintenance":
            print(
                "maintenance since \(DaemonOutput.time(mode.maintenanceSinceMs)): \(mode.reason.map { $0.isEmpty ? "no reason given" : $0 } ?? "-")"
            )
            print("self-fencing disarmed; peers answer `maintenance` while this host keeps writing")
        case "rejoining":
            print(
                "rejoining after \(mode.rejoiningBecause ?? "-") until \(DaemonOutput.time(mode.rejoiningUntilMs)); not in maintenance"
            )
        default:
            print("normal: not in maintenance; self-fencing armed as configured")
        }
    }
}
