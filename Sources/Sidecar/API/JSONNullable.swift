/// An optional that is written as JSON `null` rather than left out, so that every documented key of an API
/// response is always present (docs/API.md lists them; a test holds the responses to it).
@propertyWrapper
public struct JSONNullable<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    public var wrappedValue: Value?

    public init(wrappedValue: Value?) {
        self.wrappedValue = wrappedValue
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? nil : try container.decode(Value.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

extension KeyedDecodingContainer {
    /// A missing key reads as nil, like a plain optional (used by the synthesized `init(from:)`).
    public func decode<Value>(_ type: JSONNullable<Value>.Type, forKey key: Key) throws -> JSONNullable<Value> {
        try decodeIfPresent(type, forKey: key) ?? JSONNullable(wrappedValue: nil)
    }
}
