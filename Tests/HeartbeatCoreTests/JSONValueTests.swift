import HeartbeatCore
import Testing

@Suite("JSONValue and JSONWriter")
struct JSONValueTests {
    static func parse(_ text: String) -> Result<JSONValue, JSONValue.ParseError> {
        Result { () throws(JSONValue.ParseError) in try JSONValue.parse(ArraySlice(text.utf8)) }
    }

    @Test(arguments: [
        ("null", JSONValue.null),
        ("true", .bool(true)),
        (" false ", .bool(false)),
        ("0", .number("0")),
        ("-12", .number("-12")),
        ("1.5e3", .number("1.5e3")),
        ("18446744073709551616", .number("18446744073709551616")),
        (#""""#, .string("")),
        (#""a\"b\\c\/d\b\f\n\r\t""#, .string("a\"b\\c/d\u{08}\u{0C}\n\r\t")),
        (#""\u00e9\u00E9é""#, .string("ééé")),
        (#""\ud83d\ude00😀""#, .string("😀😀")),
        (#""\u0000""#, .string("\u{0}")),
        ("[]", .array([])),
        ("{}", .object([:])),
        (
            "\n\t{ \"a\" : [ 1 , { \"b\" : null } ] , \"c\":\"\" }\r\n",
            .object(["a": .array([.number("1"), .object(["b": .null])]), "c": .string("")])
        ),
    ])
    func parses(text: String, value: JSONValue) {
        #expect(Self.parse(text) == .success(value))
    }

    @Test(arguments: [
        ("", "unexpected end"), ("   ", "unexpected end"), ("[", "unexpected end"), ("[1", "unterminated array"),
        ("{", "expected a member name"), (#"{"a"}"#, "expected ':'"), (#"{"a":1,}"#, "expected a member name"),
        (#"{"a":1"#, "unterminated object"), (#"{"a":1 "b":2}"#, "expected ',' or '}'"),
        ("[1 2]", "expected ',' or ']'"),
        ("[1,]", "unexpected character"), ("tru", "truncated literal"), ("nul", "truncated literal"),
        ("nope", "unexpected literal"), ("-", "bad number"), (String(repeating: "1", count: 41), "number too long"),
        ("1 2", "trailing characters"), (#""abc"#, "unterminated string"), (#""\"#, "unterminated escape"),
        (#""\x""#, "bad escape"), ("\"a\nb\"", "control character in string"),
        ("\"\u{1F}\"", "control character in string"),
        (#""\u12zz""#, "bad hex digit"), (#""\u12"#, #"truncated \u escape"#), (#""\u12G4""#, "bad hex digit"),
        (#""\ud800""#, "lone surrogate"), (#""\udc00""#, "lone surrogate"), (#""\ud800\u0041""#, "bad surrogate pair"),
        (#""\ud800x""#, "lone surrogate"), (#"{"a":1,"a":2}"#, "duplicate key 'a'"), ("'a'", "unexpected character"),
        ("{a:1}", "expected a member name"),
    ])
    func refuses(text: String, what: String) {
        guard case .failure(let error) = Self.parse(text) else {
            Issue.record("\(text) parsed")
            return
        }
        #expect(error.what == what)
        #expect(error.description.contains(what))
    }

    @Test func errorsGiveTheByteOffset() {
        guard case .failure(let error) = Self.parse("[1,]") else { return #expect(Bool(false)) }
        #expect(error.offset == 3)
        #expect(error.description == "invalid JSON at byte 3: unexpected character")
    }

    @Test func worksOnASliceThatDoesNotStartAtZero() {
        let bytes = Array("xx[1,]".utf8)
        do {
            _ = try JSONValue.parse(bytes[2...])
            Issue.record("parsed")
        } catch {
            #expect(error.offset == 3, "offsets count from the slice's start")
        }
        #expect((try? JSONValue.parse(bytes[2..<4])) == nil)
        #expect((try? JSONValue.parse(Array("xx[1]".utf8)[2...])) == .array([.number("1")]))
    }

    @Test func depthIsLimited() {
        let deepest = JSONValue.maxDepth
        let ok = String(repeating: "[", count: deepest) + String(repeating: "]", count: deepest)
        let tooDeep = String(repeating: "[", count: deepest + 1) + String(repeating: "]", count: deepest + 1)
        #expect((try? Self.parse(ok).get()) != nil)
        guard case .failure(let error) = Self.parse(tooDeep) else { return #expect(Bool(false)) }
        #expect(error.what == "nested too deeply")
        let hugelyDeep = String(repeating: "[", count: 1_000_000)
        #expect((try? Self.parse(hugelyDeep).get()) == nil, "no recursion without bound")
    }

    @Test func subscriptReadsObjectMembersOnly() {
        let object = JSONValue.object(["a": .number("1")])
        #expect(object["a"] == .number("1"))
        #expect(object["b"] == nil)
        #expect(JSONValue.array([.number("1")])["a"] == nil)
        #expect(JSONValue.string("a")["a"] == nil)
    }

    @Test(arguments: [
        ("", #""""#), ("plain", #""plain""#), ("a\"b", #""a\"b""#), ("a\\b", #""a\\b""#), ("/", #""/""#),
        ("\n\r\t", #""\n\r\t""#), ("\u{0}", #""\u0000""#), ("\u{1}\u{1F}", #""\u0001\u001f""#),
        ("\u{8}\u{C}", #""\u0008\u000c""#),
        ("\u{7F}", "\"\u{7F}\""), ("é😀", "\"é😀\""), ("\u{2028}", "\"\u{2028}\""),
    ])
    func writerEscapes(text: String, json: String) {
        var writer = JSONWriter()
        writer.string(text)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == json)
    }

    @Test func writerWritesIntegersKeysAndRawText() {
        var writer = JSONWriter(capacity: 8)
        writer.raw("{")
        writer.key("min")
        writer.integer(Int64.min)
        writer.raw(",")
        writer.key("max")
        writer.integer(UInt64.max)
        writer.raw("}")
        let text = String(decoding: writer.bytes, as: UTF8.self)
        #expect(text == #"{"min":-9223372036854775808,"max":18446744073709551615}"#)
        #expect(
            Self.parse(text)
                == .success(.object(["min": .number("-9223372036854775808"), "max": .number("18446744073709551615")]))
        )
    }

    /// Property: whatever string the writer writes, the reader reads back, scalar for scalar.
    @Test func writerAndReaderRoundTripStrings() {
        var rng = SplitMix64(seed: 0x5EED_0010)
        var failures = Failures()
        for index in 0..<5_000 {
            let text = RecordGenerator.string(&rng, maxBytes: 64, fullOneIn: 4)
            var writer = JSONWriter()
            writer.string(text)
            let parsed = try? JSONValue.parse(writer.bytes[...])
            guard case .string(let back)? = parsed, Array(back.unicodeScalars) == Array(text.unicodeScalars) else {
                failures.record("#\(index): \(text.debugDescription) came back as \(String(describing: parsed))")
                continue
            }
        }
        #expect(failures.count == 0, "seed 0x5EED_0010: \(failures.summary)")
    }
}
