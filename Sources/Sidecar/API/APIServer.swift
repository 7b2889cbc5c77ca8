import Foundation
public import HeartbeatCore
import Hummingbird
public import HummingbirdTLS
public import Logging
public import ServiceLifecycle

/// The HTTP API as a service beside the others.
public struct APIService: Service {
    let application: Application<APIResponder>

    public func run() async throws {
        try await application.run()
    }
}

/// Builds the API server from the settings (`apiAddress`, `apiPort`, TLS files) and its dependencies. Reads
/// the TLS files now, so a bad file stops the daemon at start-up with an error naming it.
///
/// - Parameter onListening: called with the bound address and port once the server listens (with `apiPort`
///   0, the port picked).
public func buildAPIService(
    settings: APISettings,
    dependencies: APIDependencies,
    logger: Logger,
    onListening: @escaping @Sendable (_ address: String, _ port: Int) -> Void = { _, _ in }
) throws(APIStartError) -> APIService {
    let tls = try APITLS.serverConfiguration(settings)
    let scheme = tls == nil ? "http" : "https"
    var apiLogger = logger
    apiLogger[metadataKey: "service"] = "api"
    let configuredLogger = apiLogger
    let responder = buildAPIResponder(dependencies)
    let http1 = apiHTTP1Configuration(dependencies)
    let configuration = ApplicationConfiguration(
        address: .hostname(settings.address.description, port: settings.port),
        serverName: nil
    )
    let running: @Sendable (Int?) -> Void = { boundPort in
        let port = boundPort ?? settings.port
        let address = settings.address.description
        configuredLogger.notice(
            "API listening on \(scheme)://\(address):\(port)",
            metadata: ["clientCertificates": "\(settings.tlsCA == nil ? "not required" : "required")"]
        )
        onListening(address, port)
    }
    let application: Application<APIResponder>
    if let tls {
        do {
            application = Application(
                responder: responder,
                server: try .tls(.http1(configuration: http1), tlsConfiguration: tls),
                configuration: configuration,
                onServerRunning: { running($0.localAddress?.port) },
                logger: configuredLogger
            )
        } catch {
            throw APIStartError(
                "TLS (tlsCertificate \(settings.tlsCertificate ?? "-"), tlsKey \(settings.tlsKey ?? "-")): \(error)"
            )
        }
    } else {
        application = Application(
            responder: responder,
            server: .http1(configuration: http1),
            configuration: configuration,
            onServerRunning: { running($0.localAddress?.port) },
            logger: configuredLogger
        )
    }
    return APIService(application: application)
}

/// TLS for the API from PEM files (CloudStack agents keep theirs under /etc/cloudstack/agent/).
public enum APITLS {
    /// nil when TLS is off. With `tlsCA`, clients must present a certificate signed by it.
    public static func serverConfiguration(_ settings: APISettings) throws(APIStartError) -> TLSConfiguration? {
        guard let certificatePath = settings.tlsCertificate, let keyPath = settings.tlsKey else { return nil }
        let chain = try certificates(certificatePath, key: "tlsCertificate")
        let key = try privateKey(keyPath, key: "tlsKey")
        var configuration: TLSConfiguration
        if let caPath = settings.tlsCA {
            let roots = try certificates(caPath, key: "tlsCA")
            configuration = .makeServerConfigurationWithMTLS(
                certificateChain: chain.map { .certificate($0) },
                privateKey: .privateKey(key),
                trustRoots: .certificates(roots)
            )
        } else {
            configuration = .makeServerConfiguration(
                certificateChain: chain.map { .certificate($0) },
                privateKey: .privateKey(key)
            )
        }
        configuration.minimumTLSVersion = .tlsv12
        return configuration
    }

    /// For the `kvmha` client commands: trust `caFile` (else the system's roots) and present a client
    /// certificate when both files are given.
    public static func clientConfiguration(
        caFile: String?,
        certificateFile: String?,
        keyFile: String?
    ) throws(APIStartError)
        -> TLSConfiguration
    {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        if let caFile { configuration.trustRoots = .certificates(try certificates(caFile, key: "--ca")) }
        switch (certificateFile, keyFile) {
        case (let certificate?, let key?):
            configuration.certificateChain = try certificates(certificate, key: "--cert").map { .certificate($0) }
            configuration.privateKey = .privateKey(try privateKey(key, key: "--key"))
        case (nil, nil): break
        default: throw APIStartError("--cert and --key go together")
        }
        return configuration
    }

    private static func contents(_ path: String, key: String) throws(APIStartError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw APIStartError("\(key): cannot read \(path)")
        }
        return Array(data)
    }

    private static func certificates(_ path: String, key: String) throws(APIStartError) -> [NIOSSLCertificate] {
        let bytes = try contents(path, key: key)
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMBytes(bytes)
        } catch {
            throw APIStartError("\(key): \(path) is not a PEM certificate file (\(error))")
        }
        guard !certificates.isEmpty else { throw APIStartError("\(key): \(path) holds no PEM certificate") }
        return certificates
    }

    private static func privateKey(_ path: String, key: String) throws(APIStartError) -> NIOSSLPrivateKey {
        let bytes = try contents(path, key: key)
        do {
            return try NIOSSLPrivateKey(bytes: bytes, format: .pem)
        } catch {
            throw APIStartError("\(key): \(path) is not a PEM private key (\(error))")
        }
    }
}
