import ArgumentParser
import Foundation
import HeartbeatCore
import Logging
import Sidecar

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the sidecar daemon.",
        discussion: """
            Settings come from the config file (YAML; default \(ConfigLoader.defaultPath) when it exists), then \
            the environment (KVMHA_<KEY>, e.g. KVMHA_DEAD_AFTER=30s), then these flags; later wins.
            """
    )

    @Option(name: .long, help: "Config file (YAML).") var config: String?
    @Flag(name: .long, help: "Run on the embedded default: a local directory as the pool, host 127.0.0.1, libvirt's test driver.")
    var demo = false
    @Flag(name: .long, help: "Validate the configuration and exit.") var checkConfig = false

    @Option(name: .customLong("host-ip"), help: "This host's private IP (CloudStack's heartbeat file name).") var hostIP: String?
    @Option(name: .customLong("host-uuid"), help: "CloudStack's host UUID.") var hostUUID: String?
    @Option(name: .customLong("pool"), help: "A pool: [UUID=]PATH or [UUID=]nfs://server/export. Repeatable; replaces the configured pools.")
    var pools: [String] = []
    @Option(name: .long, help: "Beat interval (e.g. 5s).") var interval: String?
    @Option(name: .customLong("io-timeout"), help: "Deadline of every storage call.") var ioTimeout: String?
    @Option(name: .customLong("dead-after"), help: "Silence after which a peer is dead.") var deadAfter: String?
    @Option(name: .customLong("fence-after"), help: "Time without any good beat before self-fencing.") var fenceAfter: String?
    @Option(name: .customLong("fence-delay"), help: "Delay between deciding to fence and fencing.") var fenceDelay: String?
    @Option(name: .customLong("fence-action"), help: "none, log, reboot or dry-run.") var fenceAction: String?
    @Option(name: .customLong("skew-allowance"), help: "Enable the wall-clock fallback with this clock-skew allowance (off by default).")
    var skewAllowance: String?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.") var logLevel: String?
    @Option(name: .customLong("libvirt-uri"), help: "libvirt connection URI.") var libvirtURI: String?
    @Option(name: .customLong("state-dir"), help: "Directory for the daemon's own state.") var stateDir: String?
    @Flag(name: .customLong("peer-probe"), help: "Probe the peers' API ports (at apiPort) to tell a cut network from a dead host.")
    var peerProbe = false
    @Option(name: .customLong("record-key-file"), help: "Root-only file of cluster keys that sign and verify records (empty: unsigned).")
    var recordKeyFile: String?
    @Option(name: .customLong("key-grace-period"), help: "How long a retired record key is still accepted (e.g. 10m).")
    var keyGracePeriod: String?

    var overrides: [String: String] {
        var values: [String: String] = [:]
        values["hostIP"] = hostIP
        values["hostUUID"] = hostUUID
        if !pools.isEmpty { values["pools"] = pools.joined(separator: ",") }
        values["interval"] = interval
        values["ioTimeout"] = ioTimeout
        values["deadAfter"] = deadAfter
        values["fenceAfter"] = fenceAfter
        values["fenceDelay"] = fenceDelay
        values["fenceAction"] = fenceAction
        values["skewAllowance"] = skewAllowance
        values["logLevel"] = logLevel
        values["libvirtURI"] = libvirtURI
        values["stateDir"] = stateDir
        if peerProbe { values["peerProbe"] = "true" }
        values["recordKeyFile"] = recordKeyFile
        values["keyGracePeriod"] = keyGracePeriod
        return values
    }

    func run() async throws {
        var base: (name: String, root: ConfigNode)?
        if demo { base = try DemoDefaults.prepare() }
        let settings: SidecarSettings
        do {
            settings = try ConfigLoader.load(
                path: config, environment: ProcessInfo.processInfo.environment, overrides: overrides, base: base)
        } catch {
            printError(error.description)
            throw ExitCode(ExitStatus.config)
        }
        let level = Logger.Level(rawValue: settings.logLevel.rawValue) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "kvmha")
        let app: SidecarApp
        do {
            app = try SidecarApp(settings: settings, logger: logger)
        } catch {
            printError(error.description)
            throw ExitCode(ExitStatus.config)
        }
        if checkConfig {
            let pools = app.discovery == nil ? "\(app.pools.count) pool(s)" : "pools from libvirt (\(settings.libvirtURI))"
            print("configuration OK: host \(app.identity.address), \(pools), interval \(DurationText.format(settings.timing.interval)), deadAfter \(DurationText.format(settings.timing.deadAfter))")
            return
        }
        try await app.run()
    }
}

/// The embedded default behind `kvmha serve --demo`: everything under ./.kvmha-demo.
enum DemoDefaults {
    static func prepare() throws -> (name: String, root: ConfigNode) {
        let base = FileManager.default.currentDirectoryPath + "/.kvmha-demo"
        let pool = base + "/pool"
        try FileManager.default.createDirectory(atPath: pool, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: base + "/state", withIntermediateDirectories: true)
        return (
            "embedded demo defaults",
            .map([
                "hostIP": .scalar("127.0.0.1"),
                "pools": .list([.map(["uuid": .scalar("demo-pool"), "path": .scalar(pool)])]),
                "libvirtURI": .scalar("test:///default"),
                "stateDir": .scalar(base + "/state"),
                "logLevel": .scalar("debug"),
                "fenceAction": .scalar("none"),
            ])
        )
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("kvmha: \(message)\n".utf8))
}
