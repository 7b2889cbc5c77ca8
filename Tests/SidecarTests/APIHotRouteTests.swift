import Foundation
import HeartbeatCore
import Hummingbird
import HummingbirdTesting
import Sidecar
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// CheckOnHost answered on the event loop (`APIHotRoute`) against the same request through the router: a live
/// server on loopback, with the daemon's HTTP/1 configuration.
@Suite("API hot route: CheckOnHost on the event loop")
struct APIHotRouteTests {
    private func live(
        _ fixture: APIFixture, _ stats: APIHotRouteStats,
        _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        let dependencies = fixture.dependencies()
        let application = Application(
            responder: buildAPIResponder(dependencies),
            server: .http1(configuration: apiHTTP1Configuration(dependencies, stats: stats)),
            logger: testLogger())
        try await application.test(.live, body)
    }

    @Test("the hot answer is the router's answer: status, body, content type and length, a Date; same metric")
    func sameAnswer() async throws {
        let fixture = try APIFixture()
        let stats = APIHotRouteStats()
        try await live(fixture, stats) { client in
            let hot = try await API.get(client, "/v1/peers/\(APIFixture.alivePeer)")
            #expect(stats.answeredCount == 1)
            // A query string is never taken by the hot route: this one goes through the router.
            let routed = try await API.get(client, "/v1/peers/\(APIFixture.alivePeer)?via=router")
            #expect(stats.answeredCount == 1)
            #expect(hot.status == .ok)
            #expect(routed.status == .ok)
            #expect(hot.text == routed.text)
            #expect(hot.text.contains(#""host":"\#(APIFixture.alivePeer)""#))
            #expect(hot.headers[.contentType] == routed.headers[.contentType])
            #expect(hot.headers[.contentLength] == routed.headers[.contentLength])
            #expect(hot.headers[.contentLength] == String(hot.body.readableBytes))
            #expect(hot.headers[.date] != nil && routed.headers[.date] != nil)
            if let date = hot.headers[.date] {
                #expect(date.hasSuffix(" GMT") && date.count == 29, "\(date)")
            }

            let metrics = try await API.get(client, "/metrics")
            #expect(metrics.text.contains(#"kvmha_api_requests_total{route="/v1/peers/{ip}",status="200"} 2"#), "\(metrics.text)")
        }
    }

    @Test("what the hot route does not answer gets the router's answer: 401, 400, 404, other routes, Connection: close")
    func passesOn() async throws {
        let fixture = try APIFixture()
        let stats = APIHotRouteStats()
        try await live(fixture, stats) { client in
            let wrongToken = try await API.get(
                client, "/v1/peers/\(APIFixture.alivePeer)", headers: [.authorization: "Bearer wrong-token-0123456789"])
            #expect(wrongToken.status == .unauthorized)
            #expect(wrongToken.body.readableBytes == 0)
            let noToken = try await API.get(client, "/v1/peers/\(APIFixture.alivePeer)", headers: [:])
            #expect(noToken.status == .unauthorized)
            let unknown = try await API.get(client, "/v1/peers/\(APIFixture.strangerPeer)")
            #expect(unknown.status == .notFound)
            #expect(unknown.errorCode == "unknown-peer")
            let ownHost = try await API.get(client, "/v1/peers/\(APIFixture.own)")
            #expect(ownHost.status == .notFound)
            for bad in ["..%2F..%2Fetc", "10.0.0.256", "10.0.0", "10.0.0.2."] {
                let response = try await API.get(client, "/v1/peers/\(bad)")
                #expect(response.status == .badRequest || response.status == .notFound, "\(bad): \(response.status)")
            }
            let vms = try await API.get(client, "/v1/peers/\(APIFixture.alivePeer)/vms")
            #expect(vms.status == .ok)
            #expect(vms.text.contains(#""vms""#))
            #expect(stats.answeredCount == 0)

            // `Connection: close` (the test client cannot send it): the router answers, then closes.
            let port = try #require(client.port)
            let closing = try RawHTTP.exchange(
                port: port,
                send: "GET /v1/peers/\(APIFixture.alivePeer) HTTP/1.1\r\nAuthorization: Bearer \(APIFixture.token)\r\n"
                    + "Host: localhost\r\nConnection: close\r\n\r\n",
                responses: 1, thenClosed: true)
            #expect(closing.first?.hasPrefix("HTTP/1.1 200") == true)
            #expect(stats.answeredCount == 0)
        }
    }

    @Test("pipelined requests are answered in order when one of them goes through the router")
    func pipelinedOrder() async throws {
        let fixture = try APIFixture()
        let stats = APIHotRouteStats()
        try await live(fixture, stats) { client in
            let port = try #require(client.port)
            let auth = "Authorization: Bearer \(APIFixture.token)\r\nHost: localhost\r\n"
            // Health first (through the router, a task away), then CheckOnHost twice, in one write.
            let requests =
                "GET /v1/health HTTP/1.1\r\n\(auth)\r\n"
                + "GET /v1/peers/\(APIFixture.alivePeer) HTTP/1.1\r\n\(auth)\r\n"
                + "GET /v1/peers/\(APIFixture.deadPeer) HTTP/1.1\r\n\(auth)\r\n"
            let answers = try RawHTTP.exchange(port: port, send: requests, responses: 3)
            #expect(answers.count == 3)
            guard answers.count == 3 else { return }
            #expect(answers[0].contains(#""pools""#), "\(answers[0].prefix(200))")
            #expect(answers[1].contains(#""host":"\#(APIFixture.alivePeer)""#), "\(answers[1].prefix(200))")
            #expect(answers[2].contains(#""host":"\#(APIFixture.deadPeer)""#), "\(answers[2].prefix(200))")
            // And a hot request alone on a connection is answered on the event loop.
            let single = try RawHTTP.exchange(
                port: port, send: "GET /v1/peers/\(APIFixture.alivePeer) HTTP/1.1\r\n\(auth)\r\n", responses: 1)
            #expect(single.first?.hasPrefix("HTTP/1.1 200") == true)
            #expect(stats.answeredCount >= 1)
        }
    }
}

/// A bare HTTP/1.1 exchange over one loopback socket: writes `send` at once and reads `responses` answers
/// (each with a `Content-Length`), within a 10 s receive timeout.
enum RawHTTP {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// - Parameter thenClosed: also wait for the server to close the connection after the last answer.
    static func exchange(port: Int, send: String, responses: Int, thenClosed: Bool = false) throws -> [String] {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failure(description: "connect: \(errno)") }
        let bytes = Array(send.utf8)
        guard bytes.withUnsafeBytes({ Glibc.send(fd, $0.baseAddress, $0.count, 0) }) == bytes.count else {
            throw Failure(description: "send: \(errno)")
        }
        var received: [UInt8] = []
        var answers: [String] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while answers.count < responses {
            if let (answer, used) = parse(received) {
                answers.append(answer)
                received.removeFirst(used)
                continue
            }
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { throw Failure(description: "connection ended after \(answers.count) answer(s)") }
            received.append(contentsOf: buffer[0..<count])
        }
        if thenClosed {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count == 0 else { throw Failure(description: "connection still open after the answer (\(count))") }
        }
        return answers
    }

    /// One whole response at the start of `bytes` (head and `Content-Length` body) and its length.
    private static func parse(_ bytes: [UInt8]) -> (String, Int)? {
        let separator = Array("\r\n\r\n".utf8)
        guard bytes.count >= 4, let end = (0...(bytes.count - 4)).first(where: { Array(bytes[$0..<($0 + 4)]) == separator })
        else { return nil }
        let head = String(decoding: bytes[0..<end], as: UTF8.self)
        let length =
            head.split(separator: "\r\n")
            .first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        let total = end + 4 + length
        guard bytes.count >= total else { return nil }
        return (String(decoding: bytes[0..<total], as: UTF8.self), total)
    }
}
