import HeartbeatCore
import Testing

/// The API's keys: defaults, values, and errors that name the key.
@Suite("APISettings")
struct APISettingsTests {
    static func resolve(
        _ file: [String: String] = [:],
        env: [String: String] = [:]
    ) -> Result<SidecarSettings, ConfigError> {
        let root = ConfigNode.map(file.mapValues { .scalar($0) })
        return Result { () throws(ConfigError) in
            try SettingsResolver().resolve(file: ("sidecar.yaml", root), environment: env, overrides: [:])
        }
    }

    @Test func defaults() throws {
        let api = try Self.resolve().get().api
        #expect(api.address == HostAddress(127, 0, 0, 1))
        #expect(api.port == 7733)
        #expect(api.tokenFile == "/etc/kvmha/api-token")
        #expect(api.tlsCertificate == nil && api.tlsKey == nil && api.tlsCA == nil)
        #expect(!api.usesTLS)
    }

    @Test func tlsWithClientCertificates() throws {
        let api = try Self.resolve([
            "tlsCertificate": "/etc/cloudstack/agent/cloud.crt", "tlsKey": "/etc/cloudstack/agent/cloud.key",
            "tlsCA": "/etc/cloudstack/agent/cloud.ca.crt",
        ]).get().api
        #expect(api.usesTLS)
        #expect(api.tlsCA == "/etc/cloudstack/agent/cloud.ca.crt")
    }

    @Test func aLaterLayerCanSwitchTLSOff() throws {
        let api = try Self.resolve(
            ["tlsCertificate": "/c.pem", "tlsKey": "/k.pem"],
            env: ["KVMHA_TLS_CERTIFICATE": "", "KVMHA_TLS_KEY": " "]
        ).get().api
        #expect(!api.usesTLS)
    }

    @Test(arguments: [
        (["apiAddress": "localhost"], "key 'apiAddress': 'localhost' is not an IPv4 address"),
        (["apiAddress": "::1"], "key 'apiAddress'"),
        (["apiPort": "65536"], "key 'apiPort': '65536' is not a port number"),
        (["apiPort": "http"], "key 'apiPort'"),
        (["apiTokenFile": "api-token"], "key 'apiTokenFile': 'api-token' must be an absolute path"),
        (["tlsCertificate": "cert.pem", "tlsKey": "/k"], "key 'tlsCertificate'"),
        (["tlsKey": "/k.pem"], "tlsCertificate and tlsKey must be set together"),
        (["tlsCertificate": "/c.pem"], "tlsCertificate and tlsKey must be set together"),
        (["tlsCA": "/ca.pem"], "tlsCA needs tlsCertificate and tlsKey"),
    ])
    func errorsNameTheKey(file: [String: String], fragment: String) {
        guard case .failure(let error) = Self.resolve(file) else {
            Issue.record("accepted \(file)")
            return
        }
        #expect(error.problems.contains { $0.contains(fragment) }, "\(error.problems)")
    }
}
