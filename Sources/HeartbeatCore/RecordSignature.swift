import Crypto

/// Why a record's signature does not make it evidence of life. Every input maps to a record or one of these;
/// opening never traps.
public enum SignatureProblem: Error, Hashable, Sendable, CustomStringConvertible {
    /// No signature line while this host has keys configured.
    case unsigned
    /// Signed with a key this host does not know (a record from another cluster, or a key not yet given here).
    case unknownKey(String)
    /// Right format, wrong MAC: forged, or altered after signing.
    case badSignature(keyID: String)
    /// Signed with a key that was retired longer ago than the grace period.
    case retiredKey(String)
    /// A last line that starts like a signature but is not one.
    case malformedSignature

    public var description: String {
        switch self {
        case .unsigned: "unsigned record (this host requires signed records)"
        case .unknownKey(let id):
            "unknown key \(id) (another cluster's record, or a key missing from this host's key file)"
        case .badSignature(let id): "bad signature (key \(id)): forged or altered record"
        case .retiredKey(let id): "retired key \(id), past its grace period"
        case .malformedSignature: "malformed signature line"
        }
    }

    /// A short, stable token for logs, metrics and the API (`unusable-record:<code>`).
    public var code: String {
        switch self {
        case .unsigned: "unsigned"
        case .unknownKey: "unknown-key"
        case .badSignature: "bad-signature"
        case .retiredKey: "retired-key"
        case .malformedSignature: "malformed-signature"
        }
    }
}

/// A record file whose envelope was opened: the bytes `RecordCodec` decodes, and who signed them.
public struct OpenedRecord: Hashable, Sendable {
    /// The record without its signature line.
    public var recordBytes: [UInt8]
    /// The key id the signature line names; nil when the record carried none.
    public var keyID: String?
    /// Whether the signature was checked and holds (false without a keyring: nothing to check with).
    public var verified: Bool
}

/// The signature envelope around a record as `RecordCodec` writes it: one more line,
///
/// ```
/// hmac-sha256 <key id> <64 lower-case hex digits>
/// ```
///
/// the HMAC-SHA256, under the named cluster key, of every byte before that line (header, body and checksum
/// line). Readers that do not know it see a record whose last line is not its checksum; so every reader of
/// records opens the envelope first.
public enum RecordSignature {
    static let tag = Array("hmac-sha256 ".utf8)
    static let macHexLength = 64
    static let hexDigits = Array("0123456789abcdef".utf8)
    /// The longest signature line, with its newline.
    public static let maxLineBytes = tag.count + RecordKeyring.maxKeyIDLength + 1 + macHexLength + 1

    /// `recordBytes` (a record as `RecordCodec` encodes it) with the signature line under `key` appended, within
    /// `RecordCodec.maxBytes`, the cap of every reader: a record so near the cap that the line would not fit is
    /// encoded again without some of its VMs (shut-off ones first, as `RecordCodec.encode` leaves them out),
    /// counted in `vmsOmitted`.
    public static func seal(_ recordBytes: [UInt8], with key: RecordKey) -> [UInt8] {
        var bytes = fitted(recordBytes)
        let mac = mac(bytes[...], key: key)
        bytes.reserveCapacity(bytes.count + maxLineBytes)
        bytes.append(contentsOf: tag)
        bytes.append(contentsOf: key.id.utf8)
        bytes.append(UInt8(ascii: " "))
        for byte in mac {
            bytes.append(hexDigits[Int(byte >> 4)])
            bytes.append(hexDigits[Int(byte & 0xF)])
        }
        bytes.append(0x0A)
        return bytes
    }

    /// The record with room for a signature line under the cap. Rare (only a host with thousands of VMs), so
    /// it may decode and encode again.
    static func fitted(_ recordBytes: [UInt8]) -> [UInt8] {
        guard recordBytes.count + maxLineBytes > RecordCodec.maxBytes,
            case .success(let written) = RecordCodec.decode(recordBytes, expectedHost: nil)
        else { return recordBytes }
        // `written` holds what the encoder kept, already clamped: drop from the end of its order of importance.
        var kept = written.vms.enumerated().sorted { lhs, rhs in
            lhs.element.state.isActive != rhs.element.state.isActive
                ? lhs.element.state.isActive : lhs.offset < rhs.offset
        }.map(\.element)
        let total = written.vms.count + written.vmsOmitted
        var bytes = recordBytes
        while bytes.count + maxLineBytes > RecordCodec.maxBytes && !kept.isEmpty {
            // A VM entry takes more than 50 bytes: drop enough for the line in one go.
            let excess = bytes.count + maxLineBytes - RecordCodec.maxBytes
            kept.removeLast(min(kept.count, excess / 50 + 1))
            var smaller = written
            smaller.vms = kept
            smaller.vmsOmitted = total - kept.count
            bytes = RecordCodec.encode(smaller)
        }
        return bytes
    }

    /// Opens the envelope of a record file.
    ///
    /// - With a keyring: the record must be signed with a key of the keyring that is still accepted at
    ///   `wallNowMs`, and the MAC must hold.
    /// - Without one (unsigned mode): a signature line is taken off unchecked, and an unsigned record passes.
    ///
    /// Bytes that are no record at all are passed on as they are (without a signature line they are not
    /// judged here): `RecordCodec.decode` gives their reason.
    public static func open(
        _ bytes: [UInt8],
        keyring: RecordKeyring?,
        wallNowMs: Int64
    ) -> Result<OpenedRecord, SignatureProblem> {
        guard let line = signatureLine(bytes) else {
            if keyring == nil { return .success(OpenedRecord(recordBytes: bytes, keyID: nil, verified: false)) }
            return .failure(.unsigned)
        }
        guard let (keyID, stated) = parse(bytes[line]) else { return .failure(.malformedSignature) }
        let recordBytes = Array(bytes[..<line.lowerBound])
        guard let keyring else {
            return .success(OpenedRecord(recordBytes: recordBytes, keyID: keyID, verified: false))
        }
        guard let key = keyring.key(id: keyID) else { return .failure(.unknownKey(keyID)) }
        guard constantTimeEqual(mac(recordBytes[...], key: key), stated) else {
            return .failure(.badSignature(keyID: keyID))
        }
        guard keyring.accepts(key, wallNowMs: wallNowMs) else { return .failure(.retiredKey(keyID)) }
        return .success(OpenedRecord(recordBytes: recordBytes, keyID: keyID, verified: true))
    }

    /// What one read of a peer's record file is, to the liveness rules: the envelope opened with `keyring`,
    /// then the record decoded. A file that fails both ways gets the record's own reason (an empty or cut file
    /// is better told as such than as "unsigned").
    public static func observation(
        of bytes: [UInt8],
        expectedHost: HostAddress,
        keyring: RecordKeyring?,
        wallNowMs: Int64
    ) -> PeerObservation {
        switch open(bytes, keyring: keyring, wallNowMs: wallNowMs) {
        case .success(let opened):
            switch RecordCodec.decode(opened.recordBytes, expectedHost: expectedHost) {
            case .success(let record): return .record(record)
            case .failure(let problem): return .unusable(problem)
            }
        case .failure(.unsigned):
            if case .failure(let problem) = RecordCodec.decode(bytes, expectedHost: expectedHost) {
                return .unusable(problem)
            }
            return .untrusted(.unsigned)
        case .failure(let signatureProblem):
            return .untrusted(signatureProblem)
        }
    }

    // MARK: Parts

    /// The range of the last line (without its newline) when it starts with the signature tag.
    static func signatureLine(_ bytes: [UInt8]) -> Range<Int>? {
        guard bytes.count > tag.count, bytes.last == 0x0A else { return nil }
        let end = bytes.count - 1
        // The line is short: look back no further than the longest signature line.
        var start = end
        let limit = max(0, end - 4 * maxLineBytes)
        while start > limit && bytes[start - 1] != 0x0A { start -= 1 }
        guard start > 0, bytes[start - 1] == 0x0A, end - start >= tag.count,
            bytes[start..<(start + tag.count)].elementsEqual(tag)
        else { return nil }
        return start..<end
    }

    /// The key id and the 32-byte MAC of a signature line; nil when it is not exactly that.
    static func parse(_ line: ArraySlice<UInt8>) -> (String, [UInt8])? {
        let rest = line.dropFirst(tag.count)
        guard let space = rest.firstIndex(of: UInt8(ascii: " ")) else { return nil }
        let id = rest[..<space]
        let hex = rest[(space + 1)...]
        guard !id.isEmpty, id.count <= RecordKeyring.maxKeyIDLength, id.allSatisfy(RecordKeyring.isKeyIDByte),
            hex.count == macHexLength,
            hex.allSatisfy({
                ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "f"))
            }),
            let mac = RecordKeyring.decodeHex(hex)
        else { return nil }
        return (String(decoding: id, as: UTF8.self), mac)
    }

    static func mac(_ bytes: ArraySlice<UInt8>, key: RecordKey) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: bytes, using: SymmetricKey(data: key.secret)))
    }

    /// Compares every byte whatever the inputs are, so a MAC cannot be found byte by byte through timing.
    static func constantTimeEqual(_ expected: [UInt8], _ given: [UInt8]) -> Bool {
        var difference: UInt8 = expected.count == given.count ? 0 : 1
        for index in expected.indices {
            difference |= expected[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }
}
