/// Where an NFS export lives: `nfs://host[:port]/export[?version=3|4][&nfsport=N][&mountport=N]`.
///
/// libnfs 4.0.0 reaches a non-default port only through the URL arguments `nfsport=` and `mountport=`
/// (its `nfs_mount` takes no port). A port in the authority (`host:2050`) is therefore accepted as
/// another spelling of `nfsport=`; ``libnfsURL`` always carries it as an argument.
/// Without `nfsport`/`mountport`, libnfs asks the server's portmapper (port 111) for NFSv3; NFSv4 uses
/// port 2049 and needs no portmapper.
public struct NFSURL: Sendable, Equatable, CustomStringConvertible {
    /// Host name or address (an IPv6 address without brackets).
    public let server: String
    /// The exported path on the server, always absolute, no trailing slash (except the root `/`).
    public let export: String
    public let version: NFSVersion
    /// The NFS port, when not the default (2049 for NFSv4, from the portmapper for NFSv3).
    public let nfsPort: UInt16?
    /// The MOUNT protocol port (NFSv3 only), when not taken from the portmapper.
    public let mountPort: UInt16?

    public init(
        server: String,
        export: String,
        version: NFSVersion = .v3,
        nfsPort: UInt16? = nil,
        mountPort: UInt16? = nil
    ) throws(NFSURLError) {
        let text = "nfs://\(server)\(export)"
        try Self.validateHost(server, in: text)
        self.server = server.hasPrefix("[") && server.hasSuffix("]") ? String(server.dropFirst().dropLast()) : server
        self.export = try Self.normalizedExport(export, in: text)
        self.version = version
        if nfsPort == 0 { throw NFSURLError(url: text, part: .nfsPort, reason: "port 0 is not a port") }
        if mountPort == 0 { throw NFSURLError(url: text, part: .mountPort, reason: "port 0 is not a port") }
        self.nfsPort = nfsPort
        self.mountPort = mountPort
    }

    /// Parses `nfs://host[:port]/export[?version=3|4][&nfsport=N][&mountport=N]`.
    public init(parsing text: String) throws(NFSURLError) {
        let scheme = "nfs://"
        guard text.lowercased().hasPrefix(scheme) else {
            throw NFSURLError(url: text, part: .scheme, reason: "must start with nfs://")
        }
        if let bad = text.first(where: { $0.isWhitespace || $0 == "#" || $0 == "%" || $0 == "\0" }) {
            throw NFSURLError(
                url: text,
                part: .syntax,
                reason: "character \(String(reflecting: String(bad))) is not supported (no escapes or fragments)"
            )
        }
        let rest = text.dropFirst(scheme.count)
        let beforeQuery: Substring
        let query: Substring?
        if let q = rest.firstIndex(of: "?") {
            beforeQuery = rest[..<q]
            query = rest[rest.index(after: q)...]
        } else {
            beforeQuery = rest
            query = nil
        }
        guard let slash = beforeQuery.firstIndex(of: "/") else {
            throw NFSURLError(url: text, part: .export, reason: "missing the export path after the host")
        }
        let authority = beforeQuery[..<slash]
        let exportPath = String(beforeQuery[slash...])
        if authority.contains("@") {
            throw NFSURLError(url: text, part: .host, reason: "user information (user@) is not supported")
        }

        // host, [v6], host:port, [v6]:port
        var host = String(authority)
        var authorityPort: UInt16?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else {
                throw NFSURLError(url: text, part: .host, reason: "IPv6 address lacks its closing ]")
            }
            host = String(authority[...close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw NFSURLError(url: text, part: .host, reason: "unexpected \(after) after the IPv6 address")
                }
                authorityPort = try Self.parsePort(after.dropFirst(), part: .port, in: text)
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            authorityPort = try Self.parsePort(authority[authority.index(after: colon)...], part: .port, in: text)
        }
        var version = NFSVersion.v3
        var nfsPort: UInt16?
        var mountPort: UInt16?
        var seen: Set<String> = []
        if let query {
            guard !query.isEmpty else {
                throw NFSURLError(url: text, part: .query, reason: "empty query after ?")
            }
            for item in query.split(separator: "&", omittingEmptySubsequences: false) {
                guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                    throw NFSURLError(url: text, part: .query, reason: "argument \"\(item)\" is not key=value")
                }
                let key = String(item[..<eq])
                let value = item[item.index(after: eq)...]
                guard seen.insert(key).inserted else {
                    throw NFSURLError(url: text, part: .query, reason: "argument \(key) given twice")
                }
                switch key {
                case "version":
                    guard let number = Int(value), let v = NFSVersion(rawValue: number) else {
                        throw NFSURLError(url: text, part: .version, reason: "version=\(value): must be 3 or 4")
                    }
                    version = v
                case "nfsport":
                    nfsPort = try Self.parsePort(value, part: .nfsPort, in: text)
                case "mountport":
                    mountPort = try Self.parsePort(value, part: .mountPort, in: text)
                default:
                    throw NFSURLError(
                        url: text,
                        part: .query,
                        reason: "unknown argument \(key) (known: version, nfsport, mountport)"
                    )
                }
            }
        }
        if let authorityPort {
            if let nfsPort, nfsPort != authorityPort {
                throw NFSURLError(
                    url: text,
                    part: .port,
                    reason: "port \(authorityPort) in the host part contradicts nfsport=\(nfsPort)"
                )
            }
            nfsPort = authorityPort
        }
        try self.init(server: host, export: exportPath, version: version, nfsPort: nfsPort, mountPort: mountPort)
    }

    /// The URL handed to libnfs's `nfs_parse_url_dir`: ports only as arguments, which libnfs 4.0.0 honours.
    public var libnfsURL: String {
        var url = "nfs://\(hostForURL)\(export)?version=\(version.rawValue)"
        if let nfsPort { url += "&nfsport=\(nfsPort)" }
        if let mountPort { url += "&mountport=\(mountPort)" }
        return url
    }

    public var description: String { libnfsURL }

    private var hostForURL: String { server.contains(":") ? "[\(server)]" : server }

    private static func parsePort(
        _ text: Substring,
        part: NFSURLError.Part,
        in url: String
    ) throws(NFSURLError)
        -> UInt16
    {
        guard !text.isEmpty, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber),
            let number = UInt16(text), number > 0
        else {
            throw NFSURLError(url: url, part: part, reason: "\"\(text)\" is not a port number (1-65535)")
        }
        return number
    }

    private static func validateHost(_ host: String, in url: String) throws(NFSURLError) {
        guard !host.isEmpty else {
            throw NFSURLError(url: url, part: .host, reason: "the host is empty")
        }
        if host.hasPrefix("[") {
            let inner = host.dropFirst().dropLast()
            guard host.hasSuffix("]"), !inner.isEmpty, inner.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." })
            else {
                throw NFSURLError(url: url, part: .host, reason: "\(host) is not an IPv6 address")
            }
            return
        }
        // libnfs 4.0.0 drops a one-character host name in nfs_parse_url_dir; letters, digits, '-', '.', ':' only.
        let allowed = host.allSatisfy {
            $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "." || $0 == ":")
        }
        guard allowed else {
            throw NFSURLError(url: url, part: .host, reason: "\(host) is not a host name or address")
        }
        guard host.count > 1 else {
            throw NFSURLError(url: url, part: .host, reason: "one-character host names are not supported by libnfs")
        }
    }

    private static func normalizedExport(_ path: String, in url: String) throws(NFSURLError) -> String {
        guard path.hasPrefix("/") else {
            throw NFSURLError(url: url, part: .export, reason: "the export path must start with /")
        }
        if path.contains("//") {
            throw NFSURLError(url: url, part: .export, reason: "the export path contains an empty component (//)")
        }
        if path.split(separator: "/").contains(where: { $0 == "." || $0 == ".." }) {
            throw NFSURLError(url: url, part: .export, reason: "the export path must not contain . or ..")
        }
        var normalized = path
        while normalized.count > 1, normalized.hasSuffix("/") { normalized.removeLast() }
        return normalized
    }
}
