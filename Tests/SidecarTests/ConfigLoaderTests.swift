import Foundation
import HeartbeatCore
import Sidecar
import Testing

/// The config file (YAML), environment and flags, through the loader the daemon uses.
struct ConfigLoaderTests {
    func withFile(_ text: String, _ body: (String) throws -> Void) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kvmha-config-\(UUID().uuidString).yaml").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
        defer { try? FileManager.default.removeItem(atPath: path) }
        try body(path)
    }

    @Test func aFullFileLoads() throws {
        try withFile(
            """
            hostIP: 10.0.0.11
            hostUUID: 6b1e
            pools:
              - uuid: 5f0c-aa
                path: /mnt/5f0c-aa
              - uuid: other
                url: nfs://10.0.0.5/export?version=3
            interval: 2s
            ioTimeout: 1500ms
            deadAfter: 12s
            fenceAfter: 6s
            fenceDelay: 2s
            fenceAction: dry-run
            logLevel: debug
            """
        ) { path in
            let settings = try ConfigLoader.load(path: path, environment: [:], overrides: [:])
            #expect(settings.hostIP == HostAddress("10.0.0.11"))
            #expect(settings.hostUUID == "6b1e")
            #expect(settings.pools == [
                PoolSetting(uuid: "5f0c-aa", path: "/mnt/5f0c-aa"),
                PoolSetting(uuid: "other", url: "nfs://10.0.0.5/export?version=3"),
            ])
            #expect(settings.timing.interval == .seconds(2))
            #expect(settings.timing.ioTimeout == .milliseconds(1500))
            #expect(settings.timing.fenceAction == .dryRun)
            #expect(settings.logLevel == .debug)
        }
    }

    @Test func environmentBeatsTheFileAndFlagsBeatTheEnvironment() throws {
        try withFile("interval: 6s\ndeadAfter: 30s\nhostIP: 10.0.0.1\n") { path in
            let settings = try ConfigLoader.load(
                path: path, environment: ["KVMHA_INTERVAL": "7s", "KVMHA_HOST_IP": "10.0.0.2"],
                overrides: ["hostIP": "10.0.0.3"])
            #expect(settings.timing.interval == .seconds(7))
            #expect(settings.hostIP == HostAddress("10.0.0.3"))
        }
    }

    @Test func anUnknownKeyIsNamedWithTheFile() throws {
        try withFile("intervall: 5s\n") { path in
            let error = #expect(throws: ConfigError.self) { try ConfigLoader.load(path: path, environment: [:], overrides: [:]) }
            #expect(error?.description.contains("unknown key 'intervall'") == true)
            #expect(error?.description.contains(path) == true)
        }
    }

    @Test func aBadValueNamesTheKey() throws {
        try withFile("deadAfter: soon\n") { path in
            let error = #expect(throws: ConfigError.self) { try ConfigLoader.load(path: path, environment: [:], overrides: [:]) }
            #expect(error?.description.contains("key 'deadAfter'") == true)
        }
    }

    @Test func unsafeTimingNamesTheKeys() throws {
        try withFile("fenceAfter: 25s\nfenceDelay: 5s\ndeadAfter: 30s\nfenceAction: reboot\n") { path in
            let error = #expect(throws: ConfigError.self) { try ConfigLoader.load(path: path, environment: [:], overrides: [:]) }
            let text = error?.description ?? ""
            #expect(text.contains("fenceAfter + fenceDelay") && text.contains("deadAfter"), "\(text)")
        }
    }

    @Test func brokenYAMLAndMissingFilesAreClearErrors() throws {
        try withFile("pools: [unclosed\n") { path in
            let error = #expect(throws: ConfigError.self) { try ConfigLoader.load(path: path, environment: [:], overrides: [:]) }
            #expect(error?.description.contains("not valid YAML") == true)
        }
        let error = #expect(throws: ConfigError.self) {
            try ConfigLoader.load(path: "/nonexistent/kvmha.yaml", environment: [:], overrides: [:])
        }
        #expect(error?.description.contains("/nonexistent/kvmha.yaml") == true)
    }

    @Test func duplicateKeysAreRefused() throws {
        try withFile("interval: 5s\ninterval: 6s\n") { path in
            #expect(throws: ConfigError.self) { try ConfigLoader.load(path: path, environment: [:], overrides: [:]) }
        }
    }
}
