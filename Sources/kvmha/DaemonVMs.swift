import ArgumentParser
import Foundation
import HeartbeatCore
import Sidecar

/// `kvmha vms` answered by the local daemon (GET /v1/vms) instead of libvirt: the daemon's watcher list,
/// with how fresh it is. Printed in the same shapes as the libvirt mode (the table, or the JSON array of
/// {uuid, name, id, state, reason, sinceMs}; `id` is null, the daemon does not publish libvirt ids).
enum DaemonVMs {
    static func print(_ options: DaemonOptions, json: Bool) async throws {
        let answer = try await DaemonClient.with(options) { client throws(DaemonError) in
            try await client.request("GET", "/v1/vms", as: APILocalVMs.self)!
        }
        if !answer.libvirt.connected {
            printError(
                "the daemon's libvirt connection is down since \(DaemonOutput.time(answer.libvirt.sinceMs)) "
                    + "(\(answer.libvirt.lastError ?? "-")): this is the list known then"
            )
        }
        let vms = answer.vms.map {
            LocalVM(
                uuid: $0.uuid,
                name: $0.name,
                id: nil,
                state: VMPowerState(rawValue: $0.state),
                reason: $0.reason,
                sinceMs: $0.sinceMs
            )
        }
        Swift.print(json ? JSONOutput.encode(vms) : Vms.table(vms))
    }
}
