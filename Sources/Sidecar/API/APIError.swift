import Foundation
public import Hummingbird

/// An error answer: a status and a JSON body `{"error": code, "message": text}`. Messages say what was
/// wrong with the request; they never echo more than a short, printable excerpt of it.
public struct APIError: Error, Sendable, HTTPResponseError, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    public var description: String { "\(status.code) \(code): \(message)" }

    public var headers: HTTPFields { [.contentType: "application/json"] }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        response()
    }

    func response() -> Response {
        let body = APIJSON.encode(APIErrorBody(error: code, message: message))
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func badRequest(_ code: String, _ message: String) -> APIError { APIError(.badRequest, code, message) }

    static func invalidHost(_ text: String) -> APIError {
        .badRequest("invalid-host", "\(APIText.excerpt(text)) is not an IPv4 address")
    }

    static func unknownPeer(_ host: String) -> APIError {
        APIError(.notFound, "unknown-peer", "no record of \(host) has been seen on any pool")
    }

    static let notFound = APIError(.notFound, "not-found", "no such route (or not with this method)")

    static let bodyTooLarge = APIError(
        .contentTooLarge,
        "body-too-large",
        "request body larger than \(APILimits.maxBodyBytes) bytes"
    )
}

/// Limits on what a request may carry.
public enum APILimits {
    /// Request bodies: a reconcile request for a few hundred VMs fits easily.
    public static let maxBodyBytes = 64 * 1024
    /// Entries in one reconcile request.
    public static let maxBelievedVMs = 4096
    /// Length of a VM uuid or name in a reconcile request.
    public static let maxVMFieldLength = 256
}

enum APIText {
    /// At most 64 printable ASCII characters of untrusted text, quoted, for error messages.
    static func excerpt(_ text: some StringProtocol) -> String {
        var out = ""
        for scalar in text.unicodeScalars.prefix(64) {
            out += scalar.value >= 0x20 && scalar.value < 0x7f && scalar != "\"" ? String(scalar) : "?"
        }
        if text.unicodeScalars.count > 64 { out += "…" }
        return "\"\(out)\""
    }
}

/// JSON for responses: compact, keys sorted, so answers are byte-for-byte stable.
public enum APIJSON {
    public static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // The shapes are plain structs of strings, numbers and arrays: encoding cannot fail.
        return (try? Array(encoder.encode(value))) ?? Array(#"{"error":"internal","message":"encoding failed"}"#.utf8)
    }

    /// The hot answers, without Codable (`APIJSONWriter`).
    static func response(_ value: some APIJSONWritable, status: HTTPResponse.Status = .ok) -> Response {
        var writer = APIJSONWriter()
        value.write(to: &writer)
        return response(bytes: writer.bytes, status: status)
    }

    static func response(bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: encode(value)))
        )
    }
}
