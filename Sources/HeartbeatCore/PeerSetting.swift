/// What the config says about one peer (the `peers:` list, one entry per peer, keyed by `ip`).
public struct PeerSetting: Hashable, Sendable {
    /// The peer's private IP, as it names its records.
    public var ip: HostAddress
    /// Its BMC, for out-of-band power evidence; nil: none.
    public var bmc: BMCSetting?

    public init(ip: HostAddress, bmc: BMCSetting? = nil) {
        self.ip = ip
        self.bmc = bmc
    }

    /// The fields a peer entry may have.
    public static let fields = ["ip", "bmc"]
}

/// A peer's BMC, reached with `ipmitool -I lanplus`.
public struct BMCSetting: Hashable, Sendable {
    /// Host name or IP address of the BMC's LAN interface.
    public var address: String
    /// UDP port (RMCP+).
    public var port: Int
    /// A root-only file with `user=` and `password=` lines (see `BMCCredentials` in Sidecar).
    public var credentialsFile: String
    /// Deadline of one probe; ipmitool is killed when it passes and the BMC counts as unreachable.
    public var timeout: Duration

    public static let defaultPort = 623
    public static let defaultTimeout: Duration = .seconds(5)
    public static let fields = ["address", "port", "credentialsFile", "timeout"]

    public init(address: String, port: Int = defaultPort, credentialsFile: String, timeout: Duration = defaultTimeout) {
        self.address = address
        self.port = port
        self.credentialsFile = credentialsFile
        self.timeout = timeout
    }

    /// An address ipmitool takes as a host and never as an option: a host name, IPv4 or IPv6 address.
    public static func isValidAddress(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253, !text.hasPrefix("-") else { return false }
        return text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || $0 == "-" || $0 == "." || $0 == ":" || $0 == "_"
        }
    }
}

extension PeerSetting {
    /// Reads the `peers:` list of the config file. Problems name the entry (by position and, when known,
    /// its `ip`) and the field.
    static func list(from node: ConfigNode) -> Result<[PeerSetting], SettingsResolver.Problem> {
        if case .null = node { return .success([]) }
        guard case .list(let items) = node else {
            return .failure(.init(text: "must be a list of {ip, bmc: {address, port, credentialsFile, timeout}}"))
        }
        var peers: [PeerSetting] = []
        var seen: Set<HostAddress> = []
        for (index, item) in items.enumerated() {
            switch peer(from: item) {
            case .success(let peer):
                guard seen.insert(peer.ip).inserted else {
                    return .failure(.init(text: "item \(index + 1): peer \(peer.ip) is listed twice"))
                }
                peers.append(peer)
            case .failure(let problem):
                return .failure(.init(text: "item \(index + 1): \(problem.text)"))
            }
        }
        return .success(peers)
    }

    private static func peer(from node: ConfigNode) -> Result<PeerSetting, SettingsResolver.Problem> {
        guard case .map(let fields) = node else {
            return .failure(.init(text: "must be a mapping with ip and bmc"))
        }
        if let unknown = fields.keys.sorted().first(where: { !Self.fields.contains($0) }) {
            return .failure(.init(text: "unknown field '\(unknown)' (known: \(Self.fields.joined(separator: ", ")))"))
        }
        guard case .scalar(let text)? = fields["ip"] else { return .failure(.init(text: "field 'ip' is missing")) }
        guard let ip = HostAddress(text.trimmingSpaces) else {
            return .failure(.init(text: "ip: '\(text)' is not an IPv4 address"))
        }
        var peer = PeerSetting(ip: ip)
        switch fields["bmc"] {
        case nil, .null?:
            break
        case let node?:
            switch BMCSetting.from(node) {
            case .success(let bmc): peer.bmc = bmc
            case .failure(let problem): return .failure(.init(text: "peer \(ip): bmc: \(problem.text)"))
            }
        }
        return .success(peer)
    }
}

extension BMCSetting {
    static func from(_ node: ConfigNode) -> Result<BMCSetting, SettingsResolver.Problem> {
        guard case .map(let fields) = node else {
            return .failure(.init(text: "must be a mapping with address, port, credentialsFile and timeout"))
        }
        if let unknown = fields.keys.sorted().first(where: { !Self.fields.contains($0) }) {
            return .failure(.init(text: "unknown field '\(unknown)' (known: \(Self.fields.joined(separator: ", ")))"))
        }
        func text(_ name: String) -> String? {
            if case .scalar(let value)? = fields[name] { return value.trimmingSpaces }
            return nil
        }
        for name in Self.fields where fields[name] != nil && text(name) == nil {
            return .failure(.init(text: "\(name): must be a single value"))
        }
        guard let address = text("address") else { return .failure(.init(text: "field 'address' is missing")) }
        guard Self.isValidAddress(address) else {
            return .failure(.init(text: "address: '\(address)' is not a host name or IP address"))
        }
        var port = Self.defaultPort
        if let value = text("port") {
            guard let number = Int(value), (1...65535).contains(number) else {
                return .failure(.init(text: "port: '\(value)' is not a port number (1-65535)"))
            }
            port = number
        }
        guard let credentialsFile = text("credentialsFile") else {
            return .failure(
                .init(text: "field 'credentialsFile' is missing (a root-only file with user= and password= lines)"))
        }
        guard credentialsFile.hasPrefix("/") else {
            return .failure(.init(text: "credentialsFile: '\(credentialsFile)' must be an absolute path"))
        }
        var timeout = Self.defaultTimeout
        if let value = text("timeout") {
            guard let duration = DurationText.parse(value), duration > .zero, duration <= .seconds(60) else {
                return .failure(
                    .init(text: "timeout: '\(value)' is not a duration between 0 and 60s (examples: 5s, 1500ms)"))
            }
            timeout = duration
        }
        return .success(BMCSetting(address: address, port: port, credentialsFile: credentialsFile, timeout: timeout))
    }
}
