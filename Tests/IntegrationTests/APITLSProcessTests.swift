import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Certificates made by the test with Debian's openssl: a CA, a server certificate for 127.0.0.1 and .2, a client
/// certificate, and a client certificate from another CA.
struct TestCertificates {
    let folder: TempDir
    var ca: String { folder.appending("ca.pem").path }
    var serverCertificate: String { folder.appending("server.pem").path }
    var serverKey: String { folder.appending("server.key").path }
    var clientCertificate: String { folder.appending("client.pem").path }
    var clientKey: String { folder.appending("client.key").path }
    var rogueCertificate: String { folder.appending("rogue-client.pem").path }
    var rogueKey: String { folder.appending("rogue-client.key").path }

    static func make() async throws -> TestCertificates {
        guard ChildProcess.findExecutable("openssl") != nil else {
            throw HarnessError("openssl is not installed — apt-get install openssl")
        }
        let folder = try TempDir(prefix: "kvmha-tls")
        let path = { (name: String) in folder.appending(name).path }
        try Data("subjectAltName=IP:127.0.0.1,IP:127.0.0.2\nextendedKeyUsage=serverAuth\n".utf8).write(
            to: folder.appending("server.ext")
        )
        try Data("extendedKeyUsage=clientAuth\n".utf8).write(to: folder.appending("client.ext"))
        let newKey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        let steps: [[String]] = [
            ["req", "-x509"] + newKey + [
                "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "2", "-subj", "/CN=kvmha test CA",
            ],
            ["req", "-x509"] + newKey + [
                "-keyout", path("rogue-ca.key"), "-out", path("rogue-ca.pem"), "-days", "2", "-subj", "/CN=rogue CA",
            ],
            ["req"] + newKey + ["-keyout", path("server.key"), "-out", path("server.csr"), "-subj", "/CN=127.0.0.1"],
            [
                "x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                "-CAcreateserial",
                "-out", path("server.pem"), "-days", "2", "-extfile", path("server.ext"),
            ],
            ["req"] + newKey + [
                "-keyout", path("client.key"), "-out", path("client.csr"), "-subj", "/CN=kvmha client",
            ],
            [
                "x509", "-req", "-in", path("client.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                "-CAcreateserial",
                "-out", path("client.pem"), "-days", "2", "-extfile", path("client.ext"),
            ],
            ["req"] + newKey + [
                "-keyout", path("rogue-client.key"), "-out", path("rogue-client.csr"), "-subj", "/CN=rogue client",
            ],
            [
                "x509", "-req", "-in", path("rogue-client.csr"), "-CA", path("rogue-ca.pem"), "-CAkey",
                path("rogue-ca.key"),
                "-CAcreateserial", "-out", path("rogue-client.pem"), "-days", "2", "-extfile", path("client.ext"),
            ],
        ]
        for arguments in steps {
            let process = try ChildProcess(
                executable: ChildProcess.findExecutable("openssl")!,
                arguments: arguments,
                label: "openssl"
            )
            let code = try await process.waitForExit()
            guard code == 0 else {
                throw HarnessError("openssl \(arguments.joined(separator: " ")) failed:\n\(process.transcript)")
            }
        }
        return TestCertificates(folder: folder)
    }
}

/// The API over TLS, with and without client certificates (issue 5, Show 3).
@Suite(.serialized)
struct APITLSProcessTests {
    @Test("TLS with a CA: clients need a certificate it signed; without a CA, server TLS only")
    func tls() async throws {
        let certificates = try await TestCertificates.make()
        let pool = try TempDir(prefix: "kvmha-api-pool")
        let tokens = try TempDir(prefix: "kvmha-api-tokens")
        let token = try TokenFile.make(in: tokens, name: "token")
        let mutual = try await APIDaemon.start(
            host: "127.0.0.1",
            pools: ["p1=\(pool.path)"],
            token: token,
            environment: [
                "KVMHA_TLS_CERTIFICATE": certificates.serverCertificate, "KVMHA_TLS_KEY": certificates.serverKey,
                "KVMHA_TLS_CA": certificates.ca,
            ],
            timing: APIDaemon.defaultTiming
        )
        defer { mutual.stop() }
        #expect(mutual.url.hasPrefix("https://127.0.0.1:"), "\(mutual.url)")

        // The CLI with the CA and a client certificate from it.
        let good = try await mutual.cli(
            ["status", "--json"],
            extra: ["--ca", certificates.ca, "--cert", certificates.clientCertificate, "--key", certificates.clientKey]
        )
        #expect(good.exitCode == 0, "\(good)")
        #expect(try good.json()["host"] as? String == "127.0.0.1")

        // No client certificate, one from another CA, or not trusting the server's CA: refused.
        let noClientCertificate = try await mutual.cli(["status"], extra: ["--ca", certificates.ca])
        #expect(noClientCertificate.exitCode == 77, "\(noClientCertificate)")
        let rogue = try await mutual.cli(
            ["status"],
            extra: ["--ca", certificates.ca, "--cert", certificates.rogueCertificate, "--key", certificates.rogueKey]
        )
        #expect(rogue.exitCode == 77, "\(rogue)")
        let untrusted = try await mutual.cli(
            ["status"],
            extra: ["--cert", certificates.clientCertificate, "--key", certificates.clientKey]
        )
        #expect(untrusted.exitCode == 77, "\(untrusted)")

        // curl agrees; plain HTTP on the TLS port gets nothing.
        let port = mutual.url.split(separator: ":").last.map(String.init) ?? ""
        let curlArguments = [
            "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-H",
            "Authorization: Bearer \(token.token)",
        ]
        let curlGood = try await Self.curl(
            curlArguments + [
                "--cacert", certificates.ca, "--cert", certificates.clientCertificate, "--key", certificates.clientKey,
                "\(mutual.url)/v1/health",
            ]
        )
        #expect(curlGood.code == 0 && curlGood.output == "200", "\(curlGood)")
        let curlNoCertificate = try await Self.curl(
            curlArguments + ["--cacert", certificates.ca, "\(mutual.url)/v1/health"]
        )
        #expect(curlNoCertificate.code != 0 && curlNoCertificate.output != "200", "\(curlNoCertificate)")
        let curlPlain = try await Self.curl(curlArguments + ["http://127.0.0.1:\(port)/v1/health"])
        #expect(curlPlain.output != "200", "\(curlPlain)")

        // Server TLS only (no tlsCA): any client that trusts the CA gets in with the token.
        let serverOnly = try await APIDaemon.start(
            host: "127.0.0.2",
            pools: ["p1=\(pool.path)"],
            token: token,
            environment: [
                "KVMHA_TLS_CERTIFICATE": certificates.serverCertificate, "KVMHA_TLS_KEY": certificates.serverKey,
            ],
            timing: APIDaemon.defaultTiming
        )
        defer { serverOnly.stop() }
        let serverTLS = try await serverOnly.cli(["status", "--json"], extra: ["--ca", certificates.ca])
        #expect(serverTLS.exitCode == 0, "\(serverTLS)")
        #expect(try serverTLS.json()["host"] as? String == "127.0.0.2")
        let wrongToken = try await Self.curl(
            [
                "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "-H",
                "Authorization: Bearer nope-nope-nope-nope",
                "--cacert", certificates.ca, "\(serverOnly.url)/v1/health",
            ])
        #expect(wrongToken.output == "401", "\(wrongToken)")
    }

    static func curl(_ arguments: [String]) async throws -> (code: Int32, output: String) {
        guard let curl = ChildProcess.findExecutable("curl") else {
            throw HarnessError("curl is not installed — apt-get install curl")
        }
        let process = try ChildProcess(executable: curl, arguments: arguments, label: "curl")
        let code = try await process.waitForExit()
        return (code, process.lines(after: 0, source: .stdout).joined())
    }
}
