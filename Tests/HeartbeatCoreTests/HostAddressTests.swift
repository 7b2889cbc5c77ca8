import Foundation
import HeartbeatCore
import Testing

@Suite("HostAddress")
struct HostAddressTests {
    @Test(
        arguments: [
            ("10.0.0.1", [10, 0, 0, 1]), ("0.0.0.0", [0, 0, 0, 0]), ("255.255.255.255", [255, 255, 255, 255]),
            ("192.168.100.200", [192, 168, 100, 200]), ("127.0.0.1", [127, 0, 0, 1]), ("1.20.100.0", [1, 20, 100, 0]),
        ] as [(String, [UInt8])]
    )
    func parsesCanonicalDottedQuads(text: String, octets: [UInt8]) {
        let address = HostAddress(text)
        #expect(address == HostAddress(octets[0], octets[1], octets[2], octets[3]))
        #expect(address?.description == text, "the description is the canonical text, usable as a file name")
    }

    @Test(arguments: [
        "", ".", "...", "10.0.0", "10.0.0.1.", ".10.0.0.1", "10..0.1", "10.0.0.1.5", "010.0.0.1", "10.00.0.1",
        "10.0.0.01", "00.0.0.0", "256.0.0.1", "10.0.0.256", "10.0.0.999", "1000.0.0.1", "10.0.0.-1", "+10.0.0.1",
        " 10.0.0.1", "10.0.0.1 ", "10.0. 0.1", "10.0.0.1\n", "10.0.0.1\0", "../10.0.0.1", "10.0.0.1/..",
        "../../etc/passwd",
        "10.0.0.1/x", "::1", "fe80::1", "::ffff:10.0.0.1", "[::1]", "10.0.0.1:22", "0x0a.0.0.1", "10.0.0.a", "a.b.c.d",
        "host.example", "10.0.0.1e0", "１０.0.0.1", "١٠.0.0.1", "10․0․0․1", "4294967296", "167772161",
    ])
    func refuses(text: String) {
        #expect(HostAddress(text) == nil, "\(text.debugDescription) must not parse")
    }

    @Test func parsesSubstrings() {
        let name = "hb-10.1.2.3"
        #expect(HostAddress(name.dropFirst(3)) == HostAddress(10, 1, 2, 3))
    }

    @Test func comparesAndHashesByValueInNumericOrder() {
        let sorted = ["10.0.0.2", "9.255.255.255", "10.0.0.10", "10.0.0.1", "192.168.0.1"].compactMap {
            HostAddress($0)
        }.sorted()
        #expect(sorted.map(\.description) == ["9.255.255.255", "10.0.0.1", "10.0.0.2", "10.0.0.10", "192.168.0.1"])
        #expect(Set([HostAddress(10, 0, 0, 1), HostAddress("10.0.0.1")!, HostAddress(10, 0, 0, 2)]).count == 2)
    }

    /// Property: every address's text parses back to it.
    @Test func descriptionRoundTrips() {
        var rng = SplitMix64(seed: 0x5EED_0030)
        for _ in 0..<5_000 {
            let address = HostAddress(rng.byte(), rng.byte(), rng.byte(), rng.byte())
            #expect(HostAddress(address.description) == address)
        }
    }

    @Test func codableAsItsText() throws {
        let address = HostAddress(10, 1, 2, 3)
        let data = try JSONEncoder().encode([address])
        #expect(String(decoding: data, as: UTF8.self) == #"["10.1.2.3"]"#)
        #expect(try JSONDecoder().decode([HostAddress].self, from: data) == [address])
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([HostAddress].self, from: Data(#"["10.1.2.300"]"#.utf8))
        }
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([HostAddress].self, from: Data("[167772161]".utf8))
        }
    }
}
