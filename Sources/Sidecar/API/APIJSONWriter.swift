/// Writes the JSON of the hottest answers (CheckOnHost and the peer list) without going through Codable,
/// which cost three quarters of a CheckOnHost request. The bytes are the same as `APIJSON.encode` (keys
/// sorted, slashes unescaped, numbers as `JSONEncoder` prints them); a test holds the two to each other.
struct APIJSONWriter {
    private(set) var bytes: [UInt8]

    init(capacity: Int = 1024) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// `"name":`, with a comma first unless `first`.
    mutating func key(_ name: StaticString, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        raw(name)
        raw("\":")
    }

    mutating func string(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x08: raw("\\b")
            case 0x09: raw("\\t")
            case 0x0A: raw("\\n")
            case 0x0C: raw("\\f")
            case 0x0D: raw("\\r")
            case 0..<0x20:
                raw("\\u00")
                bytes.append(Self.hex[Int(byte >> 4)])
                bytes.append(Self.hex[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private static let hex = Array("0123456789abcdef".utf8)

    mutating func integer(_ value: some BinaryInteger) {
        bytes.append(contentsOf: String(value).utf8)
    }

    /// As `JSONEncoder`: the shortest text that reads back the same, without a trailing `.0`.
    mutating func number(_ value: Double) {
        guard value.isFinite else { return raw("null") }
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        bytes.append(contentsOf: text.utf8)
    }

    mutating func optional(_ value: String?) {
        if let value { string(value) } else { raw("null") }
    }

    mutating func optional(_ value: UInt64?) {
        if let value { integer(value) } else { raw("null") }
    }

    mutating func optional(_ value: Int64?) {
        if let value { integer(value) } else { raw("null") }
    }

    mutating func optional(_ value: Double?) {
        if let value { number(value) } else { raw("null") }
    }

    mutating func array<Element>(_ elements: [Element], _ write: (inout APIJSONWriter, Element) -> Void) {
        bytes.append(UInt8(ascii: "["))
        for (index, element) in elements.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            write(&self, element)
        }
        bytes.append(UInt8(ascii: "]"))
    }
}

/// Answers written by `APIJSONWriter` rather than `JSONEncoder`.
protocol APIJSONWritable: Encodable {
    func write(to writer: inout APIJSONWriter)
}

// Keys in sorted order, as `JSONEncoder` with `.sortedKeys` writes them.

extension APIVerdict: APIJSONWritable {
    func write(to writer: inout APIJSONWriter) {
        writer.raw("{")
        writer.key("incarnation", first: true)
        writer.optional(incarnation)
        writer.key("reason")
        writer.string(reason)
        writer.key("reasonCode")
        writer.string(reasonCode)
        writer.key("secondsObserved")
        writer.optional(secondsObserved)
        writer.key("secondsSinceChange")
        writer.optional(secondsSinceChange)
        writer.key("sequence")
        writer.optional(sequence)
        writer.key("verdict")
        writer.string(verdict)
        writer.key("wallClockAgeSeconds")
        writer.optional(wallClockAgeSeconds)
        writer.raw("}")
    }
}

extension APIPoolVerdict: APIJSONWritable {
    func write(to writer: inout APIJSONWriter) {
        writer.raw("{")
        writer.key("pool", first: true)
        writer.string(pool)
        writer.key("verdict")
        verdict.write(to: &writer)
        writer.raw("}")
    }
}

extension APIBMCStatus: APIJSONWritable {
    func write(to writer: inout APIJSONWriter) {
        writer.raw("{")
        writer.key("checkedMs", first: true)
        writer.optional(checkedMs)
        writer.key("error")
        writer.optional(error)
        writer.key("state")
        writer.string(state)
        writer.raw("}")
    }
}

extension APIPeerReport: APIJSONWritable {
    func write(to writer: inout APIJSONWriter) {
        writer.raw("{")
        writer.key("api", first: true)
        if let api { api.write(to: &writer) } else { writer.raw("null") }
        writer.key("bmc")
        if let bmc { bmc.write(to: &writer) } else { writer.raw("null") }
        writer.key("certainty")
        writer.string(certainty)
        writer.key("host")
        writer.string(host)
        writer.key("notes")
        writer.array(notes) { writer, note in writer.string(note) }
        writer.key("overall")
        overall.write(to: &writer)
        writer.key("pools")
        writer.array(pools) { writer, pool in pool.write(to: &writer) }
        writer.key("sees")
        writer.array(sees) { writer, view in view.write(to: &writer) }
        writer.key("views")
        writer.array(views) { writer, view in view.write(to: &writer) }
        writer.raw("}")
    }
}

extension APIPeerView: APIJSONWritable {
    func write(to writer: inout APIJSONWriter) {
        writer.raw("{")
        writer.key("host", first: true)
        writer.string(host)
        writer.key("verdict")
        writer.string(verdict)
        writer.raw("}")
    }
}

extension APIPeerList: APIJSONWritable {
    func write(to writer: inout APIJSONWriter) {
        writer.raw("{")
        writer.key("checker", first: true)
        writer.string(checker)
        writer.key("peers")
        writer.array(peers) { writer, peer in peer.write(to: &writer) }
        writer.raw("}")
    }
}

extension APIPeerProbe: APIJSONWritable {
    func write(to writer: inout APIJSONWriter) {
        writer.raw("{")
        writer.key("checkedMs", first: true)
        if let checkedMs { writer.integer(checkedMs) } else { writer.raw("null") }
        writer.key("error")
        writer.optional(error)
        writer.key("state")
        writer.string(state)
        writer.raw("}")
    }
}
