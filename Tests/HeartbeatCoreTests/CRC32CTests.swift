import HeartbeatCore
import Testing

@Suite("CRC32C")
struct CRC32CTests {
    /// The check value of the CRC catalogue, and the iSCSI test vectors of RFC 3720 (B.4).
    @Test(
        arguments: [
            (Array("123456789".utf8), UInt32(0xE306_9283)),
            ([], 0),
            (Array(repeating: 0x00, count: 32), 0x8A91_36AA),
            (Array(repeating: 0xFF, count: 32), 0x62A8_AB43),
            ((0..<32).map { UInt8($0) }, 0x46DD_794E),
            ((0..<32).map { UInt8(31 - $0) }, 0x113F_DB5C),
        ] as [([UInt8], UInt32)]
    )
    func knownVectors(bytes: [UInt8], checksum: UInt32) {
        #expect(CRC32C.checksum(bytes) == checksum)
        #expect(CRC32C.checksum(bytes[...]) == checksum, "slices give the same")
    }

    @Test(arguments: [(UInt32(0), "00000000"), (0xABC, "00000abc"), (0xE306_9283, "e3069283"), (.max, "ffffffff")])
    func hexIsEightLowerCaseDigits(value: UInt32, text: String) {
        #expect(CRC32C.hex(value) == text)
    }
}
