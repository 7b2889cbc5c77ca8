import ArgumentParser
import Foundation
import HeartbeatCore
import Sidecar

struct Vms: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vms",
        abstract: "List this host's VMs and their power states, from libvirt.",
        discussion: """
            Reads libvirt directly (the URI from --libvirt-uri, else KVMHA_LIBVIRT_URI, else libvirtURI in the \
            config file, else qemu:///system). The table is in `virsh list --all` order; --json prints an array \
            of {uuid, name, id, state, reason} (id is null for a VM that is not running). \
            With --from-daemon (or --server): asks the local daemon instead (GET /v1/vms, its libvirt \
            watcher's list, with the API settings of the config file); id is then null, and a warning on stderr \
            says when the daemon's libvirt connection is down. \
            Exit status: 0, 69 when libvirt (or the daemon) cannot be reached, 77 when the daemon refuses the \
            token, 78 for a configuration error.
            """
    )

    @Option(name: .long, help: "Config file (YAML).") var config: String?
    @Option(name: .customLong("libvirt-uri"), help: "libvirt connection URI.") var libvirtURI: String?
    @Flag(name: .long, help: "Print JSON.") var json = false
    @Flag(name: .customLong("from-daemon"), help: "Ask the local daemon instead of libvirt.") var fromDaemon = false
    @Option(name: .long, help: "The daemon's API URL (implies --from-daemon).") var server: String?
    @Option(name: .customLong("token-file"), help: "The API's token file (with --from-daemon).") var tokenFile: String?

    func run() async throws {
        if fromDaemon || server != nil {
            let arguments =
                (config.map { ["--config", $0] } ?? []) + (server.map { ["--server", $0] } ?? [])
                + (tokenFile.map { ["--token-file", $0] } ?? [])
            return try await DaemonVMs.print(try DaemonOptions.parse(arguments), json: json)
        }
        let settings: SidecarSettings
        do {
            var overrides: [String: String] = [:]
            overrides["libvirtURI"] = libvirtURI
            settings = try ConfigLoader.load(
                path: config,
                environment: ProcessInfo.processInfo.environment,
                overrides: overrides
            )
        } catch {
            printError(error.description)
            throw ExitCode(ExitStatus.config)
        }
        let vms: [LocalVM]
        do {
            vms = try await LocalVM.readAll(libvirtURI: settings.libvirtURI)
        } catch {
            printError("cannot list VMs: \(error)")
            throw ExitCode(ExitStatus.unavailable)
        }
        print(json ? JSONOutput.encode(vms) : Self.table(vms))
    }

    /// The human table: `virsh list --all`'s columns (Id, Name, State) plus reason, since and UUID.
    static func table(_ vms: [LocalVM]) -> String {
        let rows = vms.map { vm -> [String] in
            [
                vm.id.map(String.init) ?? "-", vm.name, vm.state.rawValue, vm.reason,
                vm.sinceMs.map(Self.timestamp) ?? "-", vm.uuid,
            ]
        }
        return TextTable.render(header: ["ID", "NAME", "STATE", "REASON", "SINCE", "UUID"], rows: rows)
            .joined(separator: "\n")
    }

    /// UTC, to the second: "2026-11-23T14:33:27Z".
    static func timestamp(_ unixMs: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date(timeIntervalSince1970: Double(unixMs) / 1000))
    }
}
