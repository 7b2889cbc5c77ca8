/// Where and how the HTTP API listens. Keys: `apiAddress`, `apiPort`, `apiTokenFile`, `tlsCertificate`,
/// `tlsKey`, `tlsCA` (see `SettingsResolver`).
public struct APISettings: Hashable, Sendable {
    /// An IPv4 address of this host, or 0.0.0.0 for all. Loopback by default: the .deb config sets the
    /// management interface.
    public var address = HostAddress(127, 0, 0, 1)
    /// Unprivileged by default; 0 picks a free port (the daemon logs which), for tests.
    public var port = 7733
    /// The bearer token, one line; must not be accessible by group or others.
    public var tokenFile = "/etc/kvmha/api-token"
    /// PEM server certificate (chain) and key; TLS is on when both are set.
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// PEM CA bundle; when set, clients must present a certificate it signed.
    public var tlsCA: String?

    public static let defaultPort = 7733

    public init() {}

    public var usesTLS: Bool { tlsCertificate != nil && tlsKey != nil }

    /// Problems with these settings, each naming the keys involved.
    public func problems() -> [String] {
        var problems: [String] = []
        if (tlsCertificate == nil) != (tlsKey == nil) {
            problems.append("tlsCertificate and tlsKey must be set together (TLS needs both the certificate and its key)")
        }
        if tlsCA != nil && !usesTLS {
            problems.append("tlsCA needs tlsCertificate and tlsKey: client certificates are checked only over TLS")
        }
        return problems
    }
}
