@testable import HeartbeatCore
import Testing

/// Signed records (issue 9, Show 1): the envelope, the keyring and its file format, and a fuzz of the opener.
@Suite("RecordSignature")
struct RecordSignatureTests {
    static let secretA = [UInt8](repeating: 0xA5, count: 32)
    static let secretB = (0..<32).map { UInt8($0) }
    static let keyA = try! RecordKey(id: "k1", secret: secretA)
    static let keyB = try! RecordKey(id: "k2", secret: secretB)
    /// The same id as `keyA`, another secret: what a forger without the key would write.
    static let forgedA = try! RecordKey(id: "k1", secret: secretB)
    static let now: Int64 = 1_750_000_000_000

    static func keyring(_ keys: [RecordKey], grace: Duration = .seconds(600)) -> RecordKeyring {
        try! RecordKeyring(keys: keys, gracePeriod: grace)
    }

    static let record = RecordCodec.encode(Fixture.record(vms: [Fixture.vm]))

    // MARK: Envelope

    @Test func aSealedRecordOpensAndDecodesToTheSameRecord() throws {
        let sealed = RecordSignature.seal(Self.record, with: Self.keyA)
        let text = String(decoding: sealed, as: UTF8.self)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 4)
        let signature = try #require(lines.last)
        #expect(signature.hasPrefix("hmac-sha256 k1 "))
        #expect(signature.count == "hmac-sha256 k1 ".count + 64)
        #expect(signature.dropFirst("hmac-sha256 k1 ".count).allSatisfy { "0123456789abcdef".contains($0) })
        #expect(Array(sealed.prefix(Self.record.count)) == Self.record, "the envelope only appends")

        let opened = try RecordSignature.open(sealed, keyring: Self.keyring([Self.keyA]), wallNowMs: Self.now).get()
        #expect(opened.recordBytes == Self.record)
        #expect(opened.keyID == "k1")
        #expect(opened.verified)
        #expect(
            RecordSignature.observation(
                of: sealed,
                expectedHost: Fixture.host,
                keyring: Self.keyring([Self.keyA]),
                wallNowMs: Self.now
            )
                == .record(Fixture.record(vms: [Fixture.vm]))
        )
    }

    @Test func theMACIsHMACSHA256OverEverythingBeforeTheLine() {
        // RFC 4231 test case 2 ("Jefe"), padded out by the key length rule: checks the primitive and the hex.
        let key = try! RecordKey(id: "t", secret: Array("Jefe".utf8) + [UInt8](repeating: 0, count: 60))
        // A zero-padded key of at most 64 bytes gives the same HMAC as the short key (RFC 2104 pads with zeros).
        let sealed = RecordSignature.seal(Array("what do ya want for nothing?".utf8), with: key)
        let line = String(decoding: sealed.suffix(from: 28), as: UTF8.self)
        #expect(line == "hmac-sha256 t 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843\n")
    }

    @Test func aForgedRecordRightFormatWrongKeyIsABadSignature() {
        let forged = RecordSignature.seal(Self.record, with: Self.forgedA)
        #expect(
            RecordSignature.open(forged, keyring: Self.keyring([Self.keyA]), wallNowMs: Self.now)
                == .failure(.badSignature(keyID: "k1"))
        )
        #expect(
            RecordSignature.observation(
                of: forged,
                expectedHost: Fixture.host,
                keyring: Self.keyring([Self.keyA]),
                wallNowMs: Self.now
            )
                == .untrusted(.badSignature(keyID: "k1"))
        )
    }

    @Test func aRecordAlteredAfterSigningIsABadSignature() {
        var sealed = RecordSignature.seal(Self.record, with: Self.keyA)
        // Raise the sequence and fix the CRC, as an attacker would: only the MAC catches it.
        var altered = Fixture.record(sequence: 2, vms: [Fixture.vm])
        altered.sequence = 999
        let reencoded = RecordCodec.encode(altered)
        sealed = reencoded + Array(sealed.suffix(sealed.count - Self.record.count))
        #expect(
            RecordSignature.open(sealed, keyring: Self.keyring([Self.keyA]), wallNowMs: Self.now)
                == .failure(.badSignature(keyID: "k1"))
        )
    }

    @Test func aRecordFromAnotherClusterIsAnUnknownKey() {
        let foreign = RecordSignature.seal(Self.record, with: try! RecordKey(id: "other-cluster", secret: Self.secretB))
        #expect(
            RecordSignature.open(foreign, keyring: Self.keyring([Self.keyA]), wallNowMs: Self.now)
                == .failure(.unknownKey("other-cluster"))
        )
    }

    @Test func anUnsignedRecordWhileKeysAreConfiguredIsUnsigned() {
        #expect(
            RecordSignature.open(Self.record, keyring: Self.keyring([Self.keyA]), wallNowMs: Self.now)
                == .failure(.unsigned)
        )
        #expect(
            RecordSignature.observation(
                of: Self.record,
                expectedHost: Fixture.host,
                keyring: Self.keyring([Self.keyA]),
                wallNowMs: Self.now
            )
                == .untrusted(.unsigned)
        )
    }

    @Test func garbageWhileKeysAreConfiguredKeepsTheRecordsOwnReason() {
        let keyring = Self.keyring([Self.keyA])
        let cases: [([UInt8], RecordProblem)] = [
            ([], .empty),
            (Array(Self.record.prefix(30)), .truncated),
            (
                RecordCodec.encode(Fixture.record(host: Fixture.otherHost)),
                .wrongHost(expected: Fixture.host, found: "10.1.2.4")
            ),
        ]
        for (bytes, problem) in cases {
            #expect(
                RecordSignature.observation(
                    of: bytes,
                    expectedHost: Fixture.host,
                    keyring: keyring,
                    wallNowMs: Self.now
                )
                    == .unusable(problem)
            )
        }
        // A signed record copied into another host's file: the signature holds, the host does not.
        let copied = RecordSignature.seal(RecordCodec.encode(Fixture.record(host: Fixture.otherHost)), with: Self.keyA)
        #expect(
            RecordSignature.observation(of: copied, expectedHost: Fixture.host, keyring: keyring, wallNowMs: Self.now)
                == .unusable(.wrongHost(expected: Fixture.host, found: "10.1.2.4"))
        )
    }

    @Test func withoutAKeyringSignaturesAreTakenOffUnchecked() throws {
        let sealed = RecordSignature.seal(Self.record, with: Self.forgedA)
        let opened = try RecordSignature.open(sealed, keyring: nil, wallNowMs: Self.now).get()
        #expect(opened.recordBytes == Self.record)
        #expect(opened.keyID == "k1")
        #expect(!opened.verified)
        let plain = try RecordSignature.open(Self.record, keyring: nil, wallNowMs: Self.now).get()
        #expect(plain == OpenedRecord(recordBytes: Self.record, keyID: nil, verified: false))
        #expect(
            RecordSignature.observation(of: sealed, expectedHost: Fixture.host, keyring: nil, wallNowMs: Self.now)
                == .record(Fixture.record(vms: [Fixture.vm]))
        )
    }

    @Test(arguments: [
        "hmac-sha256 k1 abc\n",
        "hmac-sha256 k1\n",
        "hmac-sha256  \n",
        "hmac-sha256 k1 " + String(repeating: "A", count: 64) + "\n",
        "hmac-sha256 k1 " + String(repeating: "a", count: 63) + "g\n",
        "hmac-sha256 k1 " + String(repeating: "a", count: 65) + "\n",
        "hmac-sha256 k/1 " + String(repeating: "a", count: 64) + "\n",
        "hmac-sha256 " + String(repeating: "k", count: 33) + " " + String(repeating: "a", count: 64) + "\n",
        "hmac-sha256 k1 " + String(repeating: "a", count: 64) + " extra\n",
    ])
    func malformedSignatureLines(line: String) {
        let bytes = Self.record + Array(line.utf8)
        #expect(
            RecordSignature.open(bytes, keyring: Self.keyring([Self.keyA]), wallNowMs: Self.now)
                == .failure(.malformedSignature)
        )
        #expect(RecordSignature.open(bytes, keyring: nil, wallNowMs: Self.now) == .failure(.malformedSignature))
    }

    // MARK: Rotation

    @Test func aRetiredKeyIsAcceptedUntilTheEndOfItsGracePeriod() {
        let retiredAt = Self.now - 60_000
        let old = try! RecordKey(id: "old", secret: Self.secretA, retiredAtMs: retiredAt)
        let keyring = Self.keyring([Self.keyB, old], grace: .seconds(120))
        #expect(keyring.signingKey.id == "k2", "the first active key signs")
        let sealed = RecordSignature.seal(Self.record, with: old)
        // Within the grace period, to its last millisecond.
        for now in [retiredAt - 1, retiredAt, retiredAt + 119_999, retiredAt + 120_000] {
            #expect(
                (try? RecordSignature.open(sealed, keyring: keyring, wallNowMs: now).get())?.verified == true,
                "\(now)"
            )
        }
        // After it.
        #expect(
            RecordSignature.open(sealed, keyring: keyring, wallNowMs: retiredAt + 120_001)
                == .failure(.retiredKey("old"))
        )
        // The new key verifies throughout.
        let fresh = RecordSignature.seal(Self.record, with: Self.keyB)
        #expect((try? RecordSignature.open(fresh, keyring: keyring, wallNowMs: retiredAt + 10_000_000).get()) != nil)
        // A forged record naming the retired key is still a bad signature, not a retired key.
        #expect(
            RecordSignature.open(
                RecordSignature.seal(Self.record, with: try! RecordKey(id: "old", secret: Self.secretB)),
                keyring: keyring,
                wallNowMs: retiredAt + 10_000_000
            ) == .failure(.badSignature(keyID: "old"))
        )
    }

    @Test func aSecondActiveKeyVerifiesButDoesNotSign() throws {
        // Rotation step 1: every host learns the new key before anyone signs with it.
        let keyring = Self.keyring([Self.keyA, Self.keyB])
        #expect(keyring.signingKey.id == "k1")
        let sealed = RecordSignature.seal(Self.record, with: Self.keyB)
        #expect(try RecordSignature.open(sealed, keyring: keyring, wallNowMs: Self.now).get().keyID == "k2")
    }

    // MARK: Size cap

    @Test func aRecordNearTheCapLeavesOutVMsSoTheSignatureFits() throws {
        let vms = (0..<2000).map { index in
            VMEntry(
                uuid: "9d6b0c3e-1111-4222-8333-\(String(index, radix: 16))",
                name: "i-2-\(index)-VM",
                state: index % 10 == 0 ? .running : .shutoff,
                reason: "booted",
                sinceMs: 1_699_999_000_000
            )
        }
        // A host UUID of the right length leaves less room than a signature line after the last VM that fits.
        var record = Fixture.record(vms: vms)
        var encoded = RecordCodec.encode(record)
        for length in 0..<256 where encoded.count + RecordSignature.maxLineBytes <= RecordCodec.maxBytes {
            record.hostUUID = String(repeating: "u", count: length)
            encoded = RecordCodec.encode(record)
        }
        try #require(
            encoded.count + RecordSignature.maxLineBytes > RecordCodec.maxBytes,
            "the test needs a full record"
        )
        let longKey = try RecordKey(id: String(repeating: "k", count: 32), secret: Self.secretA)
        let sealed = RecordSignature.seal(encoded, with: longKey)
        #expect(sealed.count <= RecordCodec.maxBytes, "every reader reads at most RecordCodec.maxBytes")
        let opened = try RecordSignature.open(sealed, keyring: Self.keyring([longKey]), wallNowMs: Self.now).get()
        let decoded = try RecordCodec.decode(opened.recordBytes, expectedHost: Fixture.host).get()
        let before = try RecordCodec.decode(encoded, expectedHost: Fixture.host).get()
        #expect(decoded.vms.count < before.vms.count)
        #expect(decoded.vms.count + decoded.vmsOmitted == 2000, "left-out VMs are counted")
        #expect(
            decoded.vms.filter { $0.state == .running }.count == before.vms.filter { $0.state == .running }.count,
            "shut-off VMs are left out first"
        )
        #expect(decoded.sequence == record.sequence)
    }

    @Test func aSmallRecordIsNotTouched() {
        let sealed = RecordSignature.seal(Self.record, with: Self.keyA)
        #expect(sealed.count == Self.record.count + "hmac-sha256 k1 ".count + 64 + 1)
    }

    // MARK: Fuzz

    /// Random bytes, and signed records with bytes changed, cut or added: every input opens to a result or a
    /// problem, never a trap; and no change of a signed record's bytes verifies under the key.
    @Test func openingNeverTrapsAndNoAlterationVerifies() {
        var rng = SplitMix64(seed: 0x519_0001)
        let keyring = Self.keyring([Self.keyA, try! RecordKey(id: "old", secret: Self.secretB, retiredAtMs: 0)])
        var failures = Failures()
        for round in 0..<4_000 {
            let random = rng.bytes(rng.below(300))
            _ = RecordSignature.open(random, keyring: keyring, wallNowMs: Self.now)
            _ = RecordSignature.open(random, keyring: nil, wallNowMs: Self.now)
            _ = RecordSignature.observation(
                of: random,
                expectedHost: Fixture.host,
                keyring: keyring,
                wallNowMs: Self.now
            )
            let withTag = Array("hmac-sha256 ".utf8) + rng.bytes(rng.below(120)) + [0x0A]
            _ = RecordSignature.open(rng.bytes(rng.below(40)) + [0x0A] + withTag, keyring: keyring, wallNowMs: Self.now)

            let original = RecordGenerator.record(&rng, small: true)
            let sealed = RecordSignature.seal(RecordCodec.encode(original), with: Self.keyA)
            var mutated = sealed
            switch rng.below(4) {
            case 0:
                let position = rng.below(mutated.count)
                mutated[position] ^= UInt8(1 + rng.below(255))
            case 1:
                mutated = Array(mutated.prefix(rng.below(mutated.count)))
            case 2:
                mutated.insert(rng.byte(), at: rng.below(mutated.count + 1))
            default:
                mutated.removeSubrange(rng.below(mutated.count)..<mutated.count - 1)
            }
            guard mutated != sealed else { continue }
            switch RecordSignature.open(mutated, keyring: keyring, wallNowMs: Self.now) {
            case .success(let opened) where opened.recordBytes != Array(sealed.prefix(sealed.count - 80)):
                failures.record("round \(round): altered bytes verified")
            case .success, .failure:
                break
            }
            _ = RecordSignature.observation(
                of: mutated,
                expectedHost: original.host,
                keyring: keyring,
                wallNowMs: Self.now
            )
            _ = RecordSignature.open(mutated, keyring: nil, wallNowMs: Self.now)
        }
        #expect(failures.count == 0, "\(failures.summary)")
    }

    @Test func constantTimeComparison() {
        #expect(RecordSignature.constantTimeEqual([1, 2, 3], [1, 2, 3]))
        #expect(!RecordSignature.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!RecordSignature.constantTimeEqual([1, 2, 3], [1, 2]))
        #expect(!RecordSignature.constantTimeEqual([1, 2], [1, 2, 3]))
        #expect(!RecordSignature.constantTimeEqual([], [0]))
    }

    // MARK: Keyring file format

    static let hexSecret = String(repeating: "ab", count: 32)
    /// 33 bytes in base64.
    static let base64Secret = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6ur"

    @Test func parsesTheDocumentedFormat() throws {
        let text = """
            # cluster keys
            k2 \(Self.hexSecret)

            k1 \(Self.base64Secret) retired-at=2025-06-01T12:00:00Z
            k0\thex:\(Self.hexSecret)\tretired-at=1748779200
            k-old base64:\(Self.base64Secret) retired-at=2025-06-01T14:00:00.250+02:00
            """
        let keyring = try RecordKeyring.parse(text, gracePeriod: .seconds(60))
        #expect(keyring.keys.map(\.id) == ["k2", "k1", "k0", "k-old"])
        #expect(keyring.signingKey.id == "k2")
        #expect(keyring.keys[0].secret == [UInt8](repeating: 0xAB, count: 32))
        #expect(keyring.keys[1].secret == [UInt8](repeating: 0xAB, count: 33))
        #expect(keyring.keys[1].retiredAtMs == 1_748_779_200_000)
        #expect(keyring.keys[2].retiredAtMs == 1_748_779_200_000)
        #expect(keyring.keys[3].retiredAtMs == 1_748_779_200_250)
        #expect(keyring.gracePeriod == .seconds(60))
        #expect("\(keyring.keys[0])" == "k2", "a key prints as its id, never its secret")
    }

    @Test(arguments: [
        ("", "no key"),
        ("# only a comment\n", "no key"),
        ("k1\n", "line 1: key k1 has no secret"),
        ("k1 abcd\n", "line 1: key k1: the secret is 2 bytes, at least 32"),
        ("k1 zz!!\n", "line 1: key k1: the secret is neither hex nor base64"),
        ("k/1 \(hexSecret)\n", "line 1: key id 'k/1' is not valid"),
        ("\(String(repeating: "k", count: 33)) \(hexSecret)\n", "is not valid"),
        ("k1 \(hexSecret)\nk1 \(hexSecret)\n", "line 2: key id k1 is listed twice"),
        ("k1 \(hexSecret) retired-at=2025-06-01T12:00:00Z\n", "every key is retired"),
        ("k1 \(hexSecret) retired-at=yesterday\n", "line 1: key k1: retired-at 'yesterday' is not"),
        ("k1 \(hexSecret) retired-at=2025-02-30T00:00:00Z\n", "is not an RFC 3339 time"),
        ("k1 \(hexSecret) expires=1\n", "line 1: key k1: unknown field 'expires=1'"),
        ("\nk1 \(hexSecret)\nk2 hex:abc\n", "line 3: key k2: the secret is neither hex nor base64"),
    ])
    func refusesBadKeyFiles(text: String, message: String) {
        do {
            _ = try RecordKeyring.parse(text, gracePeriod: .seconds(600))
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.contains(message), "\(error.description)")
            #expect(!error.description.contains(Self.hexSecret), "a message never shows a secret")
        }
    }

    @Test func timesInTheKeyFile() {
        #expect(RecordKeyring.parseTime("0") == 0)
        #expect(RecordKeyring.parseTime("1748779200") == 1_748_779_200_000)
        #expect(RecordKeyring.parseTime("1970-01-01T00:00:00Z") == 0)
        #expect(RecordKeyring.parseTime("2000-02-29T23:59:59Z") == 951_868_799_000)
        #expect(RecordKeyring.parseTime("2025-06-01t12:00:00z") == 1_748_779_200_000)
        #expect(RecordKeyring.parseTime("2025-06-01T12:00:00.123456Z") == 1_748_779_200_123)
        #expect(RecordKeyring.parseTime("2025-06-01T12:00:00-01:30") == 1_748_784_600_000)
        for bad in [
            "", "-1", "2025-06-01", "2025-06-01T12:00:00", "2025-13-01T00:00:00Z", "2025-06-01T24:00:00Z",
            "2025-06-01T12:00:00.Z", "2025-06-01T12:00:00+0200", "2025-06-01T12:00:00Zjunk", "9999999999999",
            "2023-02-29T00:00:00Z",
        ] {
            #expect(RecordKeyring.parseTime(Substring(bad)) == nil, "\(bad)")
        }
    }

    @Test func secretsInHexAndBase64() {
        #expect(RecordKeyring.decodeSecret("00ff") == [0, 255])
        #expect(RecordKeyring.decodeSecret("AP8=") == [0, 255])
        #expect(RecordKeyring.decodeSecret("base64:AP8A") == [0, 255, 0])
        #expect(RecordKeyring.decodeSecret("hex:0") == nil)
        #expect(RecordKeyring.decodeSecret("AP8") == nil)
        #expect(RecordKeyring.decodeSecret("A=P8") == nil)
        #expect(RecordKeyring.decodeSecret("====") == nil)
    }
}

/// `recordKeyFile` and `keyGracePeriod` in the settings: defaults, and errors that name the key.
@Suite("Record key settings")
struct RecordKeySettingsTests {
    @Test func defaultsAreUnsignedWithTenMinutesOfGrace() throws {
        let settings = try SettingsResolver().resolve(file: nil, environment: [:], overrides: [:])
        #expect(settings.recordKeyFile == nil)
        #expect(settings.keyGracePeriod == .seconds(600))
    }

    @Test func aLaterLayerCanSwitchSigningOff() throws {
        let settings = try SettingsResolver().resolve(
            file: ("sidecar.yaml", .map(["recordKeyFile": .scalar("/etc/kvmha/record-keys")])),
            environment: ["KVMHA_RECORD_KEY_FILE": ""],
            overrides: [:]
        )
        #expect(settings.recordKeyFile == nil)
    }

    @Test func errorsNameTheKey() {
        do {
            _ = try SettingsResolver().resolve(
                file: ("sidecar.yaml", .map(["recordKeyFile": .scalar("record-keys")])),
                environment: ["KVMHA_KEY_GRACE_PERIOD": "soon"],
                overrides: [:]
            )
            Issue.record("accepted")
        } catch {
            #expect(error.problems.contains { $0.contains("key 'recordKeyFile'") && $0.contains("absolute path") })
            #expect(error.problems.contains { $0.contains("KVMHA_KEY_GRACE_PERIOD") && $0.contains("not a duration") })
        }
    }
}
