/// A parsed configuration document (YAML or another format), reduced to what settings need.
public indirect enum ConfigNode: Equatable, Sendable {
    case scalar(String)
    case list([ConfigNode])
    case map([String: ConfigNode])
    case null
}

/// One pool to watch: a mounted directory, an `nfs://` URL, or both.
public struct PoolSetting: Hashable, Sendable {
    public var uuid: String
    public var path: String?
    public var url: String?

    public init(uuid: String, path: String? = nil, url: String? = nil) {
        self.uuid = uuid
        self.path = path
        self.url = url
    }
}

public enum LogLevelSetting: String, Sendable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

/// Every setting of the daemon, after defaults, file, environment and flags have been applied (in that
/// order, later wins).
public struct SidecarSettings: Sendable {
    /// This host's private IP (CloudStack's heartbeat file name). nil: find it at start-up.
    public var hostIP: HostAddress?
    public var hostUUID: String?
    /// Empty: discover the pools from libvirt.
    public var pools: [PoolSetting] = []
    public var timing = TimingSettings()
    /// Off (nil) unless set: see `PeerLiveness.skewAllowance`.
    public var skewAllowance: Duration?
    public var logLevel: LogLevelSetting = .info
    public var libvirtURI = "qemu:///system"
    /// Where the daemon keeps its own state (incarnation history, maintenance flag, dry-run fence marker).
    public var stateDir = "/var/lib/kvmha"
    /// CloudStack's agent configuration, read for host identity defaults.
    public var agentProperties = "/etc/cloudstack/agent/agent.properties"
    /// The HTTP API's listener, token and TLS files.
    public var api = APISettings()
    /// Probe every peer's API port (the same `apiPort`, at the peer's address) once per interval, so that
    /// CheckOnHost can tell a cut network from a dead host (`PeerNetworkNotes`).
    public var peerProbe = false
    /// What the config says about particular peers (their BMCs); file only (`peers:`).
    public var peers: [PeerSetting] = []
    /// The root-only file of cluster keys that sign and verify records (`RecordKeyring`); nil: records are
    /// written unsigned and peers' signatures are not checked.
    public var recordKeyFile: String?
    /// How long a retired key (`retired-at=` in the key file) is still accepted.
    public var keyGracePeriod: Duration = .seconds(600)

    public init() {}
}

/// Every problem found in the configuration, each naming where and which key.
public struct ConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    public var problems: [String]
    public init(_ problems: [String]) { self.problems = problems }
    public var description: String {
        problems.count == 1
            ? "configuration error: \(problems[0])"
            : "configuration errors:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

/// Applies configuration sources to `SidecarSettings` and validates the result.
public struct SettingsResolver: Sendable {
    /// The keys, as written in the config file. Environment: `KVMHA_` + upper snake case
    /// (`KVMHA_DEAD_AFTER`); flags: kebab case (`--dead-after`).
    public static let keys: [String] = [
        "hostIP", "hostUUID", "pools", "interval", "ioTimeout", "deadAfter", "fenceAfter", "fenceDelay",
        "fenceAction", "skewAllowance", "logLevel", "libvirtURI", "stateDir", "agentProperties",
        "apiAddress", "apiPort", "apiTokenFile", "tlsCertificate", "tlsKey", "tlsCA", "peerProbe",
        "recordKeyFile", "keyGracePeriod",
    ]

    /// Keys of structured values that only the config file can set (no environment variable or flag).
    public static let fileOnlyKeys: [String] = ["peers"]

    public static func environmentName(_ key: String) -> String {
        var out = "KVMHA_"
        var previousWasLower = false
        for character in key {
            if character.isUppercase && previousWasLower { out.append("_") }
            out.append(contentsOf: character.uppercased())
            previousWasLower = character.isLowercase
        }
        return out
    }

    public static func flagName(_ key: String) -> String {
        var out = ""
        var previousWasLower = false
        for character in key {
            if character.isUppercase && previousWasLower { out.append("-") }
            out.append(contentsOf: character.lowercased())
            previousWasLower = character.isLowercase
        }
        return out
    }

    public init() {}

    /// - Parameters:
    ///   - file: the parsed config file and its name for messages, if any.
    ///   - environment: the process environment; only `KVMHA_<KEY>` variables of known keys are read.
    ///   - overrides: values from command-line flags, by config key.
    public func resolve(
        file: (name: String, root: ConfigNode)?,
        environment: [String: String],
        overrides: [String: String]
    ) throws(ConfigError) -> SidecarSettings {
        var settings = SidecarSettings()
        var problems: [String] = []

        if let file {
            switch file.root {
            case .map(let entries):
                for key in entries.keys.sorted() {
                    let node = entries[key]!
                    guard Self.keys.contains(key) || Self.fileOnlyKeys.contains(key) else {
                        problems.append(
                            "\(file.name): unknown key '\(key)' (known keys: \((Self.keys + Self.fileOnlyKeys).joined(separator: ", ")))"
                        )
                        continue
                    }
                    if let problem = apply(key: key, node: node, to: &settings) {
                        problems.append("\(file.name): key '\(key)': \(problem)")
                    }
                }
            case .null:
                break
            default:
                problems.append("\(file.name): the top level must be a mapping of keys to values")
            }
        }
        for key in Self.keys {
            let name = Self.environmentName(key)
            guard let value = environment[name] else { continue }
            if let problem = apply(key: key, text: value, to: &settings) {
                problems.append("environment \(name): \(problem)")
            }
        }
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
            guard Self.keys.contains(key) else {
                problems.append("unknown setting '\(key)'")
                continue
            }
            if let problem = apply(key: key, text: value, to: &settings) {
                problems.append("flag --\(Self.flagName(key)): \(problem)")
            }
        }
        if problems.isEmpty {
            problems += settings.timing.problems().map { "timing: \($0)" }
            problems += poolProblems(settings.pools)
            problems += settings.api.problems()
            if settings.peerProbe && settings.api.port == 0 {
                problems.append(
                    "peerProbe: the peers' API port is this host's apiPort, which is 0 (a free port picked at start): set a fixed apiPort")
            }
            if let hostIP = settings.hostIP, settings.peers.contains(where: { $0.ip == hostIP }) {
                problems.append("peers: \(hostIP) is this host (hostIP): list only other hosts")
            }
        }
        guard problems.isEmpty else { throw ConfigError(problems) }
        return settings
    }

    private func apply(key: String, node: ConfigNode, to settings: inout SidecarSettings) -> String? {
        if key == "peers" {
            switch PeerSetting.list(from: node) {
            case .success(let peers): settings.peers = peers
            case .failure(let problem): return problem.text
            }
            return nil
        }
        switch node {
        case .scalar(let text):
            return apply(key: key, text: text, to: &settings)
        case .null:
            return "has no value"
        case .list(let items) where key == "pools":
            var pools: [PoolSetting] = []
            for (index, item) in items.enumerated() {
                switch pool(from: item) {
                case .success(let pool): pools.append(pool)
                case .failure(let problem): return "item \(index + 1): \(problem.text)"
                }
            }
            settings.pools = pools
            return nil
        default:
            return key == "pools" ? "must be a list of {uuid, path, url}" : "must be a single value, not a list or mapping"
        }
    }

    struct Problem: Error { var text: String }

    private func pool(from node: ConfigNode) -> Result<PoolSetting, Problem> {
        guard case .map(let fields) = node else { return .failure(Problem(text: "must be a mapping with uuid, path and/or url")) }
        for name in fields.keys.sorted() where !["uuid", "path", "url"].contains(name) {
            return .failure(Problem(text: "unknown field '\(name)' (known: uuid, path, url)"))
        }
        func text(_ name: String) -> String? {
            if case .scalar(let value)? = fields[name] { return value }
            return nil
        }
        guard let uuid = text("uuid") else { return .failure(Problem(text: "field 'uuid' is missing")) }
        return .success(PoolSetting(uuid: uuid, path: text("path"), url: text("url")))
    }

    private func apply(key: String, text: String, to settings: inout SidecarSettings) -> String? {
        func duration(_ assign: (Duration) -> Void) -> String? {
            guard let value = DurationText.parse(text) else {
                return "'\(text)' is not a duration (examples: 5s, 500ms, 2m)"
            }
            assign(value)
            return nil
        }
        switch key {
        case "hostIP":
            guard let address = HostAddress(text.trimmingSpaces) else { return "'\(text)' is not an IPv4 address" }
            settings.hostIP = address
        case "hostUUID":
            settings.hostUUID = text.isEmpty ? nil : text
        case "pools":
            // Text form (environment, flags): `UUID=PATH_OR_URL` items separated by commas; a bare path
            // takes its last component as the UUID (CloudStack mounts pools at /mnt/<uuid>).
            var pools: [PoolSetting] = []
            for item in text.split(separator: ",").map({ String($0).trimmingSpaces }) where !item.isEmpty {
                pools.append(Self.pool(fromText: item))
            }
            settings.pools = pools
        case "interval": return duration { settings.timing.interval = $0 }
        case "ioTimeout": return duration { settings.timing.ioTimeout = $0 }
        case "deadAfter": return duration { settings.timing.deadAfter = $0 }
        case "fenceAfter": return duration { settings.timing.fenceAfter = $0 }
        case "fenceDelay": return duration { settings.timing.fenceDelay = $0 }
        case "skewAllowance":
            if ["", "off", "none"].contains(text.trimmingSpaces) {
                settings.skewAllowance = nil
                return nil
            }
            return duration { settings.skewAllowance = $0 }
        case "fenceAction":
            guard let action = FenceAction(rawValue: text.trimmingSpaces) else {
                return "'\(text)' is not one of \(FenceAction.allCases.map(\.rawValue).joined(separator: ", "))"
            }
            settings.timing.fenceAction = action
        case "logLevel":
            guard let level = LogLevelSetting(rawValue: text.trimmingSpaces.lowercased()) else {
                return "'\(text)' is not one of \(LogLevelSetting.allCases.map(\.rawValue).joined(separator: ", "))"
            }
            settings.logLevel = level
        case "libvirtURI":
            guard !text.isEmpty else { return "must not be empty" }
            settings.libvirtURI = text
        case "stateDir":
            guard text.hasPrefix("/") else { return "'\(text)' must be an absolute path" }
            settings.stateDir = text
        case "agentProperties":
            guard text.hasPrefix("/") else { return "'\(text)' must be an absolute path" }
            settings.agentProperties = text
        case "apiAddress":
            guard let address = HostAddress(text.trimmingSpaces) else {
                return "'\(text)' is not an IPv4 address (0.0.0.0 listens on every interface)"
            }
            settings.api.address = address
        case "apiPort":
            guard let port = Int(text.trimmingSpaces), (0...65535).contains(port) else {
                return "'\(text)' is not a port number (0-65535; 0 picks a free port)"
            }
            settings.api.port = port
        case "apiTokenFile":
            guard text.hasPrefix("/") else { return "'\(text)' must be an absolute path" }
            settings.api.tokenFile = text
        case "recordKeyFile":
            // Empty switches signing off again in a later layer.
            let path: String? = text.trimmingSpaces.isEmpty ? nil : text
            if let path, !path.hasPrefix("/") { return "'\(text)' must be an absolute path" }
            settings.recordKeyFile = path
        case "keyGracePeriod": return duration { settings.keyGracePeriod = $0 }
        case "peerProbe":
            switch text.trimmingSpaces.lowercased() {
            case "true", "yes", "on", "1": settings.peerProbe = true
            case "false", "no", "off", "0", "": settings.peerProbe = false
            default: return "'\(text)' is not true or false"
            }
        case "tlsCertificate", "tlsKey", "tlsCA":
            // Empty switches TLS (or client certificates) off again in a later layer.
            let path: String? = text.trimmingSpaces.isEmpty ? nil : text
            if let path, !path.hasPrefix("/") { return "'\(text)' must be an absolute path" }
            switch key {
            case "tlsCertificate": settings.api.tlsCertificate = path
            case "tlsKey": settings.api.tlsKey = path
            default: settings.api.tlsCA = path
            }
        default:
            return "unknown setting"
        }
        return nil
    }

    /// `UUID=LOCATION` or a bare location; a location starting with `nfs://` is a URL, else a path.
    public static func pool(fromText item: String) -> PoolSetting {
        var uuid: String
        var location: String
        if let equals = item.firstIndex(of: "="), !item[..<equals].contains("/") {
            uuid = String(item[..<equals])
            location = String(item[item.index(after: equals)...])
        } else {
            location = item
            uuid = location.split(separator: "/").last.map(String.init) ?? ""
            if let query = uuid.firstIndex(of: "?") { uuid = String(uuid[..<query]) }
        }
        return location.hasPrefix("nfs://")
            ? PoolSetting(uuid: uuid, url: location) : PoolSetting(uuid: uuid, path: location)
    }

    private func poolProblems(_ pools: [PoolSetting]) -> [String] {
        var problems: [String] = []
        var seen: Set<String> = []
        for pool in pools {
            if !Self.isValidPoolID(pool.uuid) {
                problems.append("pools: '\(pool.uuid)' is not a valid pool id (letters, digits, '-', '_', '.')")
            }
            if !seen.insert(pool.uuid).inserted { problems.append("pools: pool '\(pool.uuid)' is listed twice") }
            if pool.path == nil && pool.url == nil {
                problems.append("pools: pool '\(pool.uuid)' needs a path or a url")
            }
            if let path = pool.path, !path.hasPrefix("/") {
                problems.append("pools: pool '\(pool.uuid)': path '\(path)' must be absolute")
            }
            if let url = pool.url, !url.hasPrefix("nfs://") {
                problems.append("pools: pool '\(pool.uuid)': url '\(url)' must start with nfs://")
            }
        }
        return problems
    }

    /// Pool ids come from CloudStack (UUIDs) or from operators; they may appear in paths, so only a safe
    /// alphabet is accepted.
    public static func isValidPoolID(_ id: String) -> Bool {
        guard !id.isEmpty, id.count <= 128, id != ".", id != ".." else { return false }
        return id.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || $0 == "-" || $0 == "_" || $0 == "."
        }
    }
}
