import ArgumentParser
import AsyncHTTPClient
import Foundation
import HeartbeatCore
import Sidecar

/// Exit codes of the commands that talk to the daemon, beyond those in `ExitStatus` (sysexits.h).
extension ExitStatus {
    /// The daemon answered something this client does not understand.
    static let protocolError: Int32 = 76
    /// The daemon refused the token (401) or the TLS handshake.
    static let permission: Int32 = 77
}

/// How to reach the local daemon's API: flags first, then the daemon's own config (address, port, token
/// file, TLS files), so on a host `kvmha status` needs no flags at all.
struct DaemonOptions: ParsableArguments {
    @Option(
        name: .long,
        help: "The daemon's API, e.g. https://10.0.0.5:7733 (default: apiAddress/apiPort of the config)."
    )
    var server: String?
    @Option(
        name: .customLong("token-file"),
        help: "File holding the API's bearer token (default: apiTokenFile of the config)."
    )
    var tokenFile: String?
    @Option(
        name: .long,
        help: "Config file (YAML) to read the API settings from (default \(ConfigLoader.defaultPath) when it exists)."
    )
    var config: String?
    @Option(name: .long, help: "CA bundle (PEM) that signed the daemon's certificate (default: tlsCA of the config).")
    var ca: String?
    @Option(
        name: .long,
        help: "Client certificate (PEM) when the daemon requires one (default: tlsCertificate of the config)."
    )
    var cert: String?
    @Option(name: .long, help: "Client key (PEM) for --cert (default: tlsKey of the config).") var key: String?
    @Option(name: .long, help: "Give up on the daemon after this long.") var timeout = "10s"

    func validate() throws {
        guard let duration = DurationText.parse(timeout), duration > .zero else {
            throw ValidationError("--timeout: '\(timeout)' is not a positive duration (examples: 5s, 500ms)")
        }
        if let server {
            guard let url = URL(string: server), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
                throw ValidationError("--server: '\(server)' is not an http:// or https:// URL")
            }
        }
        if (cert == nil) != (key == nil) { throw ValidationError("--cert and --key go together") }
    }

    /// The help text shared by every daemon command.
    static let exitCodes = """
        Exit status: 0 alive/active/ok, 1 dead/inactive/failing, 2 unknown/degraded (also a host the daemon has \
        never seen), 64 usage, 69 daemon unreachable, 76 unexpected answer, 77 token or certificate refused, \
        78 configuration error.
        """
}

/// Why a daemon command could not get an answer, with the exit status it maps to.
struct DaemonError: Error, CustomStringConvertible {
    var description: String
    var exitCode: Int32
}

/// A connection to the daemon's API for one command.
struct DaemonClient {
    let baseURL: String
    let token: String
    let client: HTTPClient
    let timeout: Duration

    /// Resolves the options against the config and opens a client. Call `close()` when done.
    static func open(_ options: DaemonOptions) throws(DaemonError) -> DaemonClient {
        let settings: SidecarSettings
        do {
            settings = try ConfigLoader.load(
                path: options.config,
                environment: ProcessInfo.processInfo.environment,
                overrides: [:]
            )
        } catch {
            throw DaemonError(description: error.description, exitCode: ExitStatus.config)
        }
        let api = settings.api
        let baseURL: String
        if let server = options.server {
            baseURL = server.hasSuffix("/") ? String(server.dropLast()) : server
        } else {
            // A daemon listening on every interface is reached through loopback.
            let host = api.address == HostAddress(0, 0, 0, 0) ? "127.0.0.1" : api.address.description
            baseURL =
                "\(api.usesTLS ? "https" : "http")://\(host):\(api.port == 0 ? APISettings.defaultPort : api.port)"
        }
        let token: String
        do {
            token = try APIToken.readForClient(path: options.tokenFile ?? api.tokenFile)
        } catch {
            throw DaemonError(description: error.description, exitCode: ExitStatus.config)
        }
        var configuration = HTTPClient.Configuration()
        if baseURL.hasPrefix("https:") {
            // The config's own certificate doubles as the client's when the daemon requires client certificates.
            let useOwnCertificate = options.cert == nil && api.tlsCA != nil
            do {
                configuration.tlsConfiguration = try APITLS.clientConfiguration(
                    caFile: options.ca ?? api.tlsCA,
                    certificateFile: options.cert ?? (useOwnCertificate ? api.tlsCertificate : nil),
                    keyFile: options.key ?? (useOwnCertificate ? api.tlsKey : nil)
                )
            } catch {
                throw DaemonError(description: error.description, exitCode: ExitStatus.config)
            }
        }
        let timeout = DurationText.parse(options.timeout)!
        configuration.timeout = .init(
            connect: .milliseconds(Int64(timeout.seconds * 1000)),
            read: .milliseconds(Int64(timeout.seconds * 1000))
        )
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        return DaemonClient(baseURL: baseURL, token: token, client: client, timeout: timeout)
    }

    func close() async {
        try? await client.shutdown()
    }

    /// Sends one request and decodes a 2xx answer as `T`; any other answer becomes a `DaemonError` (a
    /// documented error body gives its message; 404s listed in `notFoundAs` are returned as nil instead).
    func request<T: Decodable>(
        _ method: String,
        _ path: String,
        body: [UInt8]? = nil,
        as type: T.Type,
        notFound: Set<String> = []
    ) async throws(DaemonError) -> T? {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = .init(rawValue: method)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(body)
        }
        let status: UInt
        let bytes: [UInt8]
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(timeout.seconds * 1000)))
            status = response.status.code
            var buffer = try await response.body.collect(upTo: 16 << 20)
            bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
        } catch {
            let text = "\(error)"
            let refusedByTLS = text.contains("handshake") || text.contains("certificate") || text.contains("SSL")
            throw DaemonError(
                description: "cannot reach the kvmha daemon at \(baseURL): \(text)",
                exitCode: refusedByTLS ? ExitStatus.permission : ExitStatus.unavailable
            )
        }
        if status == 401 {
            throw DaemonError(
                description: "the daemon at \(baseURL) refused the API token (401)",
                exitCode: ExitStatus.permission
            )
        }
        let decoder = JSONDecoder()
        guard (200..<300).contains(status) else {
            if let error = try? decoder.decode(APIErrorBody.self, from: Data(bytes)) {
                if status == 404 && notFound.contains(error.error) { return nil }
                throw DaemonError(
                    description: "the daemon answered \(status): \(error.message)",
                    exitCode: status == 400 || status == 404 || status == 413
                        ? ExitStatus.usage : ExitStatus.protocolError
                )
            }
            throw DaemonError(description: "the daemon answered \(status)", exitCode: ExitStatus.protocolError)
        }
        do {
            return try decoder.decode(T.self, from: Data(bytes))
        } catch {
            throw DaemonError(
                description: "the daemon's answer is not what this client expects: \(error)",
                exitCode: ExitStatus.protocolError
            )
        }
    }

    /// Runs `body` with a client, closing it on every path; prints a `DaemonError` and exits with its code.
    static func with<T>(
        _ options: DaemonOptions,
        _ body: (DaemonClient) async throws(DaemonError) -> T
    ) async throws -> T {
        let client: DaemonClient
        do {
            client = try open(options)
        } catch {
            printError(error.description)
            throw ExitCode(error.exitCode)
        }
        do {
            let value = try await body(client)
            await client.close()
            return value
        } catch {
            await client.close()
            printError(error.description)
            throw ExitCode(error.exitCode)
        }
    }
}

/// Output helpers shared by the daemon commands.
enum DaemonOutput {
    /// Pretty, sorted JSON of an API answer, as `--json` prints it.
    static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "{}"
    }

    /// UTC to the second.
    static func time(_ unixMs: Int64?) -> String {
        guard let unixMs else { return "-" }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: Date(timeIntervalSince1970: Double(unixMs) / 1000))
    }

    static func seconds(_ value: Double?) -> String {
        value.map { String(format: "%.1fs", $0) } ?? "-"
    }

    static func exitCode(for liveness: String) -> Int32 {
        switch liveness {
        // In maintenance a host is not dead (nothing to restart elsewhere); rejoining is not alive yet.
        case "alive", "active", "ok", "maintenance": ExitStatus.alive
        case "dead", "inactive", "failing": ExitStatus.dead
        default: ExitStatus.unknown
        }
    }
}
