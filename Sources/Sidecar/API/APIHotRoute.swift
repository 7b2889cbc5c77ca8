import Foundation
import HeartbeatCore
public import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTPTypes
import Synchronization

/// CheckOnHost (`GET /v1/peers/{ip}`) — the route that neighbours and the management server poll — answered on
/// the connection's event loop, as one more handler in Hummingbird's HTTP/1 channel pipeline
/// (`additionalChannelHandlers`), without the trip through the async request stream, a task and the router.
///
/// It answers only what it can answer exactly as the router would: a `GET` of `/v1/peers/<IPv4>` (no query, no
/// body, no `Connection: close`), with the right bearer token, for a known peer — with the same handler code
/// (`APIHandlers.peerBody`), the same headers (`Content-Type`, `Content-Length`, `Date`) and the same request
/// metric. Everything else — a wrong token, a bad or unknown address, any other route — goes on to the router
/// unchanged, which gives the `401`, `400` or `404`.
///
/// **Order.** HTTP/1.1 lets a client send requests before the answers to earlier ones: while a request that
/// went on to the router has not been answered in full (its response's end has not passed this handler on
/// the way out), every later request goes on to the router too, so answers always leave in request order.
final class APIHotRoute: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let handlers: APIHandlers
    private let token: APIToken
    private let metrics: APIMetrics
    private let stats: APIHotRouteStats
    /// Requests passed on to the router whose response has not ended yet.
    private var passedOn = 0
    /// The answer to the request being read (its head was taken here; its end has not come yet).
    private var answer: [UInt8]?

    init(handlers: APIHandlers, token: APIToken, metrics: APIMetrics, stats: APIHotRouteStats) {
        self.handlers = handlers
        self.token = token
        self.metrics = metrics
        self.stats = stats
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if passedOn == 0, let body = hotAnswer(head) {
                answer = body
                return
            }
            passedOn += 1
            context.fireChannelRead(data)
        case .body:
            // A hot request has no body (checked on its head); anything else is the router's.
            if answer == nil { context.fireChannelRead(data) }
        case .end:
            guard let body = answer else {
                context.fireChannelRead(data)
                return
            }
            answer = nil
            respond(context: context, body: body)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), passedOn > 0 { passedOn -= 1 }
        context.write(data, promise: promise)
    }

    /// The body of the answer when this request is one to answer here; nil to pass it on.
    private func hotAnswer(_ head: HTTPRequest) -> [UInt8]? {
        guard head.method == .get, let path = head.path, path.hasPrefix(Self.prefix) else { return nil }
        let fields = head.headerFields
        guard fields[.contentLength] == nil, fields[.transferEncoding] == nil else { return nil }
        // `Connection: close` (the router closes after answering) and upgrades are the router's.
        if let connection = fields[.connection]?.lowercased(), connection.contains("close") || connection.contains("upgrade") {
            return nil
        }
        // Only a plain dotted quad: no query, no percent-encoding, no further path segment.
        let text = path.utf8.dropFirst(Self.prefix.utf8.count)
        guard !text.isEmpty, text.count <= 15, text.allSatisfy({ $0 == UInt8(ascii: ".") || ($0 >= 48 && $0 <= 57) }),
            let host = HostAddress(String(decoding: text, as: UTF8.self))
        else { return nil }
        guard token.accepts(authorization: fields[.authorization]) else { return nil }
        guard let body = try? handlers.peerBody(host) else { return nil }
        metrics.recordRequest(route: Self.route, status: 200)
        stats.answered()
        return body
    }

    private func respond(context: ChannelHandlerContext, body: [UInt8]) {
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(body.count)
        fields[.date] = HTTPDateText.now()
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .ok, headerFields: fields))), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: body.count)
        buffer.writeBytes(body)
        context.write(wrapOutboundOut(.body(buffer)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    static let prefix = "/v1/peers/"
    /// The router's name for the route, as the request metric labels it.
    static let route = "/v1/peers/{ip}"
}

/// How many requests the hot route answered (for tests and diagnostics).
public final class APIHotRouteStats: Sendable {
    private let count = Atomic<Int>(0)
    public init() {}
    public var answeredCount: Int { count.load(ordering: .relaxed) }
    func answered() { count.add(1, ordering: .relaxed) }
}

/// The `Date` header (RFC 9110 IMF-fixdate), made once per second.
enum HTTPDateText {
    private static let cache = Mutex<(second: Int, text: String)>((-1, ""))

    static func now() -> String {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        let second = spec.tv_sec
        if let cached = cache.withLock({ $0.second == second ? $0.text : nil }) { return cached }
        let text = format(second)
        cache.withLock { $0 = (second, text) }
        return text
    }

    static func format(_ second: Int) -> String {
        var time = second
        var parts = tm()
        gmtime_r(&time, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}

/// The HTTP/1 channel of the API: Hummingbird's, with CheckOnHost answered on the event loop (`APIHotRoute`).
public func apiHTTP1Configuration(_ dependencies: APIDependencies, stats: APIHotRouteStats = APIHotRouteStats())
    -> HTTP1Channel.Configuration
{
    let handlers = APIHandlers(dependencies)
    return HTTP1Channel.Configuration(
        additionalChannelHandlers: [
            APIHotRoute(handlers: handlers, token: dependencies.token, metrics: dependencies.metrics, stats: stats)
        ])
}
