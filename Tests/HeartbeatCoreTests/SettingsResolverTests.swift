import HeartbeatCore
import Testing

@Suite("SettingsResolver")
struct SettingsResolverTests {
    static let fileName = "/etc/kvmha/sidecar.yaml"

    static func resolve(
        file: ConfigNode? = nil,
        env: [String: String] = [:],
        flags: [String: String] = [:]
    ) -> Result<SidecarSettings, ConfigError> {
        Result { () throws(ConfigError) in
            try SettingsResolver().resolve(file: file.map { (fileName, $0) }, environment: env, overrides: flags)
        }
    }

    static func problems(
        file: ConfigNode? = nil,
        env: [String: String] = [:],
        flags: [String: String] = [:]
    ) -> [String] {
        guard case .failure(let error) = resolve(file: file, env: env, flags: flags) else { return [] }
        return error.problems
    }

    static func map(_ entries: [String: String]) -> ConfigNode { .map(entries.mapValues { .scalar($0) }) }

    // MARK: Defaults and precedence

    @Test func noSourcesGiveTheDefaults() throws {
        let settings = try Self.resolve().get()
        #expect(settings.hostIP == nil)
        #expect(settings.hostUUID == nil)
        #expect(settings.pools == [], "empty: discover from libvirt")
        #expect(settings.timing == TimingSettings())
        #expect(settings.skewAllowance == nil, "the wall-clock fallback is off unless set")
        #expect(settings.logLevel == .info)
        #expect(settings.libvirtURI == "qemu:///system")
        #expect(settings.stateDir == "/var/lib/kvmha")
        #expect(settings.agentProperties == "/etc/cloudstack/agent/agent.properties")
        #expect(try Self.resolve(file: .null).get().timing == TimingSettings(), "an empty file is no settings")
    }

    /// file < environment < flags, each layer present or not.
    @Test(arguments: [false, true], [false, true])
    func precedence(fileSets: Bool, envSets: Bool) throws {
        for flagSets in [false, true] {
            let settings = try Self.resolve(
                file: fileSets ? Self.map(["deadAfter": "40s"]) : nil,
                env: envSets ? ["KVMHA_DEAD_AFTER": "50s"] : [:],
                flags: flagSets ? ["deadAfter": "60s"] : [:]
            ).get()
            let expected: Duration =
                flagSets ? .seconds(60) : envSets ? .seconds(50) : fileSets ? .seconds(40) : .seconds(30)
            #expect(settings.timing.deadAfter == expected, "file \(fileSets) env \(envSets) flag \(flagSets)")
        }
    }

    @Test func layersMergeKeyByKey() throws {
        let settings = try Self.resolve(
            file: Self.map(["deadAfter": "40s", "logLevel": "debug", "hostIP": "10.0.0.1"]),
            env: ["KVMHA_LOG_LEVEL": "warning", "KVMHA_HOST_UUID": "host-uuid"],
            flags: ["hostIP": "10.0.0.2"]
        ).get()
        #expect(settings.timing.deadAfter == .seconds(40))
        #expect(settings.logLevel == .warning)
        #expect(settings.hostUUID == "host-uuid")
        #expect(settings.hostIP == HostAddress(10, 0, 0, 2))
    }

    @Test func aLaterLayerCanSwitchTheSkewFallbackOff() throws {
        #expect(try Self.resolve(file: Self.map(["skewAllowance": "90s"])).get().skewAllowance == .seconds(90))
        for off in ["off", "none", "", " off "] {
            let settings = try Self.resolve(
                file: Self.map(["skewAllowance": "90s"]),
                env: ["KVMHA_SKEW_ALLOWANCE": off]
            ).get()
            #expect(settings.skewAllowance == nil, "\(off.debugDescription)")
        }
    }

    // MARK: Every key, from every source

    enum Source: String, Sendable, CaseIterable { case file, environment, flag }

    struct KeyCase: Sendable, CustomTestStringConvertible {
        var key: String
        var value: String
        /// Other keys the value is only valid with, given as flags.
        var companions: [String: String] = [:]
        var check: @Sendable (SidecarSettings) -> Bool
        var testDescription: String { "\(key)=\(value)" }
    }

    static let keyCases: [KeyCase] = [
        KeyCase(key: "hostIP", value: " 10.1.2.3 ") { $0.hostIP == HostAddress(10, 1, 2, 3) },
        KeyCase(key: "hostUUID", value: "1b4e28ba-2fa1-11d2-883f-0016d3cca427") {
            $0.hostUUID == "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
        },
        KeyCase(key: "pools", value: "p1=/mnt/p1") { $0.pools == [PoolSetting(uuid: "p1", path: "/mnt/p1")] },
        KeyCase(key: "interval", value: "4500ms") { $0.timing.interval == .milliseconds(4500) },
        KeyCase(key: "ioTimeout", value: "3s") { $0.timing.ioTimeout == .seconds(3) },
        KeyCase(key: "deadAfter", value: "1m") { $0.timing.deadAfter == .seconds(60) },
        KeyCase(key: "fenceAfter", value: "15") { $0.timing.fenceAfter == .seconds(15) },
        KeyCase(key: "fenceDelay", value: "2.5s") { $0.timing.fenceDelay == .milliseconds(2500) },
        KeyCase(key: "fenceAction", value: "dry-run") { $0.timing.fenceAction == .dryRun },
        KeyCase(key: "skewAllowance", value: "90s") { $0.skewAllowance == .seconds(90) },
        KeyCase(key: "logLevel", value: "DEBUG") { $0.logLevel == .debug },
        KeyCase(key: "libvirtURI", value: "test:///default") { $0.libvirtURI == "test:///default" },
        KeyCase(key: "stateDir", value: "/tmp/kvmha-state") { $0.stateDir == "/tmp/kvmha-state" },
        KeyCase(key: "agentProperties", value: "/tmp/agent.properties") {
            $0.agentProperties == "/tmp/agent.properties"
        },
        KeyCase(key: "apiAddress", value: "0.0.0.0") { $0.api.address == HostAddress(0, 0, 0, 0) },
        KeyCase(key: "apiPort", value: "0") { $0.api.port == 0 },
        KeyCase(key: "apiTokenFile", value: "/tmp/token") { $0.api.tokenFile == "/tmp/token" },
        KeyCase(key: "tlsCertificate", value: "/tmp/cert.pem", companions: ["tlsKey": "/tmp/key.pem"]) {
            $0.api.tlsCertificate == "/tmp/cert.pem" && $0.api.usesTLS
        },
        KeyCase(key: "tlsKey", value: "/tmp/key.pem", companions: ["tlsCertificate": "/tmp/cert.pem"]) {
            $0.api.tlsKey == "/tmp/key.pem"
        },
        KeyCase(
            key: "tlsCA",
            value: "/tmp/ca.pem",
            companions: ["tlsCertificate": "/tmp/c.pem", "tlsKey": "/tmp/k.pem"]
        ) {
            $0.api.tlsCA == "/tmp/ca.pem"
        },
        KeyCase(key: "peerProbe", value: "true", companions: ["apiPort": "7733"]) { $0.peerProbe },
        KeyCase(key: "recordKeyFile", value: "/etc/kvmha/record-keys") { $0.recordKeyFile == "/etc/kvmha/record-keys" },
        KeyCase(key: "keyGracePeriod", value: "90s") { $0.keyGracePeriod == .seconds(90) },
    ]

    @Test func theKeyTableCoversEveryKey() {
        #expect(Set(Self.keyCases.map(\.key)) == Set(SettingsResolver.keys))
        #expect(SettingsResolver.keys.count == Set(SettingsResolver.keys).count)
    }

    @Test(arguments: keyCases, Source.allCases)
    func everyKeyFromEverySource(_ row: KeyCase, source: Source) throws {
        let result: Result<SidecarSettings, ConfigError>
        switch source {
        case .file: result = Self.resolve(file: Self.map([row.key: row.value]), flags: row.companions)
        case .environment:
            result = Self.resolve(env: [SettingsResolver.environmentName(row.key): row.value], flags: row.companions)
        case .flag: result = Self.resolve(flags: row.companions.merging([row.key: row.value]) { $1 })
        }
        let settings = try result.get()
        #expect(row.check(settings))
    }

    @Test(arguments: [
        ("hostIP", "KVMHA_HOST_IP", "host-ip"), ("hostUUID", "KVMHA_HOST_UUID", "host-uuid"),
        ("pools", "KVMHA_POOLS", "pools"),
        ("interval", "KVMHA_INTERVAL", "interval"), ("ioTimeout", "KVMHA_IO_TIMEOUT", "io-timeout"),
        ("deadAfter", "KVMHA_DEAD_AFTER", "dead-after"), ("fenceAfter", "KVMHA_FENCE_AFTER", "fence-after"),
        ("fenceDelay", "KVMHA_FENCE_DELAY", "fence-delay"), ("fenceAction", "KVMHA_FENCE_ACTION", "fence-action"),
        ("skewAllowance", "KVMHA_SKEW_ALLOWANCE", "skew-allowance"), ("logLevel", "KVMHA_LOG_LEVEL", "log-level"),
        ("libvirtURI", "KVMHA_LIBVIRT_URI", "libvirt-uri"), ("stateDir", "KVMHA_STATE_DIR", "state-dir"),
        ("agentProperties", "KVMHA_AGENT_PROPERTIES", "agent-properties"),
        ("apiAddress", "KVMHA_API_ADDRESS", "api-address"),
        ("apiPort", "KVMHA_API_PORT", "api-port"), ("apiTokenFile", "KVMHA_API_TOKEN_FILE", "api-token-file"),
        ("tlsCertificate", "KVMHA_TLS_CERTIFICATE", "tls-certificate"), ("tlsKey", "KVMHA_TLS_KEY", "tls-key"),
        ("tlsCA", "KVMHA_TLS_CA", "tls-ca"), ("peerProbe", "KVMHA_PEER_PROBE", "peer-probe"),
    ])
    func environmentAndFlagNames(key: String, environment: String, flag: String) {
        #expect(SettingsResolver.environmentName(key) == environment)
        #expect(SettingsResolver.flagName(key) == flag)
    }

    // MARK: Errors name the key and the source

    @Test func peerProbeNeedsAFixedPortAndABoolean() {
        let problems = Self.problems(flags: ["peerProbe": "true", "apiPort": "0"])
        #expect(problems.count == 1 && problems[0].hasPrefix("peerProbe:"), "\(problems)")
        let wrong = Self.problems(flags: ["peerProbe": "maybe"])
        #expect(wrong == ["flag --peer-probe: 'maybe' is not true or false"], "\(wrong)")
    }

    @Test func anUnknownFileKeyIsNamed() {
        let problems = Self.problems(file: Self.map(["deadAfer": "40s", "interval": "5s"]))
        #expect(problems.count == 1)
        #expect(problems.first?.hasPrefix("\(Self.fileName): unknown key 'deadAfer'") == true, "\(problems)")
        #expect(problems.first?.contains("deadAfter") == true, "lists the known keys")
    }

    @Test func anUnknownFlagIsNamed() {
        #expect(Self.problems(flags: ["bogus": "1"]) == ["unknown setting 'bogus'"])
    }

    @Test func unrelatedEnvironmentIsIgnored() throws {
        let settings = try Self.resolve(env: [
            "KVMHA_BOGUS": "1", "PATH": "/usr/bin", "kvmha_dead_after": "x", "DEAD_AFTER": "x",
        ]).get()
        #expect(settings.timing.deadAfter == .seconds(30))
    }

    @Test(arguments: Source.allCases)
    func aBadValueNamesKeyAndSource(source: Source) {
        let problems: [String]
        let expected: String
        switch source {
        case .file:
            problems = Self.problems(file: Self.map(["deadAfter": "soon"]))
            expected = "\(Self.fileName): key 'deadAfter': 'soon' is not a duration"
        case .environment:
            problems = Self.problems(env: ["KVMHA_DEAD_AFTER": "soon"])
            expected = "environment KVMHA_DEAD_AFTER: 'soon' is not a duration"
        case .flag:
            problems = Self.problems(flags: ["deadAfter": "soon"])
            expected = "flag --dead-after: 'soon' is not a duration"
        }
        #expect(problems.count == 1)
        #expect(problems.first?.hasPrefix(expected) == true, "\(problems)")
    }

    @Test(arguments: [
        ("hostIP", "10.0.0.01", "not an IPv4 address"), ("hostIP", "::1", "not an IPv4 address"),
        ("interval", "-5s", "not a duration"), ("interval", "1e300", "not a duration"),
        ("ioTimeout", "5 s", "not a duration"),
        ("skewAllowance", "-1", "not a duration"), ("fenceAction", "halt", "none, log, reboot, dry-run"),
        ("logLevel", "loud", "trace, debug, info"), ("libvirtURI", "", "must not be empty"),
        ("stateDir", "var/lib/kvmha", "must be an absolute path"),
        ("agentProperties", "agent.properties", "must be an absolute path"),
    ])
    func badValues(key: String, value: String, message: String) {
        let problems = Self.problems(flags: [key: value])
        #expect(problems.count == 1, "\(problems)")
        #expect(
            problems.first?.hasPrefix("flag --\(SettingsResolver.flagName(key)): '\(value)'") == true || value.isEmpty,
            "\(problems)"
        )
        #expect(problems.first?.contains(message) == true, "\(problems)")
    }

    @Test func everyProblemIsReportedAtOnce() {
        let result = Self.resolve(
            file: Self.map(["interval": "x", "nope": "1"]),
            env: ["KVMHA_IO_TIMEOUT": "y"],
            flags: ["deadAfter": "z"]
        )
        guard case .failure(let error) = result else { return #expect(Bool(false)) }
        #expect(error.problems.count == 4, "\(error.problems)")
        #expect(error.description.hasPrefix("configuration errors:\n  - "))
        #expect(ConfigError(["one"]).description == "configuration error: one")
    }

    @Test func timingRulesAreCheckedAfterTheSourcesAndNameTheKeys() {
        let problems = Self.problems(flags: ["deadAfter": "10s"])
        #expect(problems.count == 2, "\(problems)")
        #expect(problems.allSatisfy { $0.hasPrefix("timing: ") })
        #expect(problems.contains { $0.contains("deadAfter (10s)") && $0.contains("3 × interval") })
        #expect(problems.contains { $0.contains("fenceAfter + fenceDelay") && $0.contains("deadAfter (10s)") })
        #expect(Self.problems(flags: ["deadAfter": "10s", "fenceAction": "none"]).count == 1)
        #expect(
            Self.problems(flags: ["ioTimeout": "5s"]).first?.contains("ioTimeout (5s) must be less than interval (5s)")
                == true
        )
    }

    @Test func timingRulesWaitUntilTheValuesParse() {
        // A bad value elsewhere: the timing rules would only add noise about defaults.
        #expect(Self.problems(flags: ["deadAfter": "10s", "logLevel": "loud"]).count == 1)
    }

    // MARK: File shape

    @Test(arguments: [ConfigNode.list([]), .scalar("deadAfter: 40s")])
    func theTopLevelMustBeAMapping(root: ConfigNode) {
        #expect(Self.problems(file: root) == ["\(Self.fileName): the top level must be a mapping of keys to values"])
    }

    @Test func aKeyWithoutAValueOrWithAListIsNamed() {
        #expect(Self.problems(file: .map(["deadAfter": .null])) == ["\(Self.fileName): key 'deadAfter': has no value"])
        let list = Self.problems(file: .map(["deadAfter": .list([.scalar("1s")])]))
        #expect(list == ["\(Self.fileName): key 'deadAfter': must be a single value, not a list or mapping"])
        let pools = Self.problems(file: .map(["pools": .map(["uuid": .scalar("a")])]))
        #expect(pools == ["\(Self.fileName): key 'pools': must be a list of {uuid, path, url}"])
    }

    // MARK: Pools

    static func pool(_ fields: [String: String]) -> ConfigNode { map(fields) }

    @Test func poolsAsAList() throws {
        let file = ConfigNode.map([
            "pools": .list([
                Self.pool(["uuid": "5f0c1c2a-aaaa", "path": "/mnt/5f0c1c2a-aaaa"]),
                Self.pool(["uuid": "b", "url": "nfs://nfs1/export/b"]),
                Self.pool(["uuid": "c", "path": "/mnt/c", "url": "nfs://nfs1/export/c"]),
            ])
        ])
        #expect(
            try Self.resolve(file: file).get().pools == [
                PoolSetting(uuid: "5f0c1c2a-aaaa", path: "/mnt/5f0c1c2a-aaaa"),
                PoolSetting(uuid: "b", url: "nfs://nfs1/export/b"),
                PoolSetting(uuid: "c", path: "/mnt/c", url: "nfs://nfs1/export/c"),
            ]
        )
    }

    @Test(arguments: [
        (ConfigNode.map(["path": .scalar("/mnt/a")]), "item 2: field 'uuid' is missing"),
        (ConfigNode.map(["uuid": .scalar("a"), "paht": .scalar("/mnt/a")]), "item 2: unknown field 'paht'"),
        (ConfigNode.scalar("/mnt/a"), "item 2: must be a mapping"),
        (ConfigNode.list([]), "item 2: must be a mapping"),
    ])
    func badPoolItems(item: ConfigNode, message: String) {
        let file = ConfigNode.map(["pools": .list([Self.pool(["uuid": "ok", "path": "/mnt/ok"]), item])])
        let problems = Self.problems(file: file)
        #expect(problems.count == 1)
        #expect(problems.first?.hasPrefix("\(Self.fileName): key 'pools': \(message)") == true, "\(problems)")
    }

    @Test(arguments: [
        ("a=/mnt/a", PoolSetting(uuid: "a", path: "/mnt/a")),
        ("a=nfs://srv/export", PoolSetting(uuid: "a", url: "nfs://srv/export")),
        ("/mnt/5f0c1c2a-aaaa", PoolSetting(uuid: "5f0c1c2a-aaaa", path: "/mnt/5f0c1c2a-aaaa")),
        ("/mnt/5f0c1c2a-aaaa/", PoolSetting(uuid: "5f0c1c2a-aaaa", path: "/mnt/5f0c1c2a-aaaa/")),
        ("nfs://srv/export/pool1", PoolSetting(uuid: "pool1", url: "nfs://srv/export/pool1")),
        (
            "nfs://srv/export/pool1?nfsport=2049&mountport=20048",
            PoolSetting(uuid: "pool1", url: "nfs://srv/export/pool1?nfsport=2049&mountport=20048")
        ),
        ("p=nfs://srv/e?nfsport=2049", PoolSetting(uuid: "p", url: "nfs://srv/e?nfsport=2049")),
        ("/mnt/a=b", PoolSetting(uuid: "a=b", path: "/mnt/a=b")),
        ("mnt/a", PoolSetting(uuid: "a", path: "mnt/a")),
    ])
    func poolFromText(text: String, pool: PoolSetting) {
        #expect(SettingsResolver.pool(fromText: text) == pool)
    }

    @Test func poolsAsText() throws {
        let settings = try Self.resolve(env: ["KVMHA_POOLS": " a=/mnt/a , b=nfs://srv/export,, /mnt/c ,"]).get()
        #expect(
            settings.pools == [
                PoolSetting(uuid: "a", path: "/mnt/a"), PoolSetting(uuid: "b", url: "nfs://srv/export"),
                PoolSetting(uuid: "c", path: "/mnt/c"),
            ]
        )
        #expect(
            try Self.resolve(file: Self.map(["pools": "a=/mnt/a"]), env: ["KVMHA_POOLS": ""]).get().pools == [],
            "empty text: discover"
        )
        let flagWins = try Self.resolve(file: Self.map(["pools": "a=/mnt/a"]), flags: ["pools": "b=/mnt/b"]).get()
        #expect(flagWins.pools == [PoolSetting(uuid: "b", path: "/mnt/b")], "pools are replaced, not merged")
    }

    @Test(arguments: [
        ("a=/mnt/a,a=/mnt/b", "pools: pool 'a' is listed twice"),
        ("/mnt/a,/srv/a", "pools: pool 'a' is listed twice"),
        ("a=mnt/a", "pools: pool 'a': path 'mnt/a' must be absolute"),
        ("a=", "pools: pool 'a': path '' must be absolute"),
        ("bad id=/mnt/x", "pools: 'bad id' is not a valid pool id"),
        ("..=/mnt/x", "pools: '..' is not a valid pool id"),
        ("=/mnt/x", "pools: '' is not a valid pool id"),
        ("a=http://srv/export", "pools: pool 'a': path 'http://srv/export' must be absolute"),
    ])
    func poolProblems(text: String, message: String) {
        let problems = Self.problems(flags: ["pools": text])
        #expect(problems.contains { $0.hasPrefix(message) }, "\(problems)")
    }

    @Test func aPoolNeedsALocationAndAnNFSURL() {
        let noLocation = ConfigNode.map(["pools": .list([Self.pool(["uuid": "a"])])])
        #expect(Self.problems(file: noLocation) == ["pools: pool 'a' needs a path or a url"])
        let badURL = ConfigNode.map(["pools": .list([Self.pool(["uuid": "a", "url": "http://srv/a"])])])
        #expect(Self.problems(file: badURL) == ["pools: pool 'a': url 'http://srv/a' must start with nfs://"])
    }

    @Test(arguments: [
        ("5f0c1c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b", true), ("pool_1.A", true), ("a", true), ("...", true),
        (String(repeating: "a", count: 128), true), (String(repeating: "a", count: 129), false), ("", false),
        (".", false),
        ("..", false), ("a/b", false), ("a b", false), ("poöl", false), ("a\0", false), ("a\n", false), ("~a", false),
    ])
    func poolIDs(id: String, valid: Bool) {
        #expect(SettingsResolver.isValidPoolID(id) == valid)
    }
}
