import Testing

@testable import HeartbeatCore

@Suite("Host mode: maintenance and rejoining in records and verdicts")
struct HostModeTests {
    static let modes: [HostMode] = [
        .normal, .maintenance(reason: "kernel upgrade, ticket #42"), .maintenance(reason: ""), .rejoining,
        .maintenance(reason: "quote \" backslash \\ é"),
    ]

    @Test("every mode round-trips, through the fast reader and the general one alike", arguments: modes)
    func roundTrip(mode: HostMode) throws {
        var record = Fixture.record(vms: [Fixture.vm])
        record.mode = mode
        let encoded = RecordCodec.encode(record)
        #expect(try RecordCodec.decode(encoded, expectedHost: Fixture.host).get() == record)
        #expect(try RecordCodec.decodeGenerally(encoded, expectedHost: Fixture.host) == record)
        let fast = encoded.withUnsafeBufferPointer { RecordFastReader.record(in: $0, expectedHost: Fixture.host) }
        // Escapes send the fast reader to the general one; otherwise it must read the mode itself.
        if let fast { #expect(fast == record) }
        var caching = RecordCodec.CachingEncoder()
        #expect(caching.encode(record) == encoded)
        #expect(caching.encode(record) == encoded, "from the cached VM list too")
    }

    @Test("a normal record is written without mode fields: byte-equal to what older versions wrote")
    func normalWritesNothing() {
        let text = String(decoding: RecordCodec.encode(Fixture.record()), as: UTF8.self)
        #expect(!text.contains("\"mode\""))
    }

    @Test("an unknown mode reads as normal; a reason without a mode is malformed")
    func unknownAndMalformed() throws {
        let unknown = Fixture.frame(
            Fixture.object(Fixture.members + [(key: "mode", json: #""hibernating""#)]))
        #expect(try RecordCodec.decode(unknown, expectedHost: Fixture.host).get().mode == .normal)
        let orphan = Fixture.frame(Fixture.object(Fixture.members + [(key: "modeReason", json: #""x""#)]))
        guard case .failure(.malformed(let message)) = RecordCodec.decode(orphan, expectedHost: Fixture.host) else {
            Issue.record("a reason without a mode was accepted")
            return
        }
        #expect(message.contains("modeReason"))
        let wrongType = Fixture.frame(Fixture.object(Fixture.members + [(key: "mode", json: "1")]))
        guard case .failure = RecordCodec.decode(wrongType, expectedHost: Fixture.host) else {
            Issue.record("a numeric mode was accepted")
            return
        }
    }

    @Test("alive is refined by the mode; dead and unknown stand")
    func refine() {
        #expect(HostMode.normal.refine(.alive) == "alive")
        #expect(HostMode.maintenance(reason: "x").refine(.alive) == "maintenance")
        #expect(HostMode.rejoining.refine(.alive) == "rejoining")
        for mode in Self.modes {
            #expect(mode.refine(.dead) == "dead")
            #expect(mode.refine(.unknown) == "unknown")
        }
    }

    @Test("rejoin after a fence or an unclean stop, not after a clean one")
    func startupProtection() {
        #expect(StartupProtection.mustRejoin(fenced: true, uncleanStop: false))
        #expect(StartupProtection.mustRejoin(fenced: false, uncleanStop: true))
        #expect(!StartupProtection.mustRejoin(fenced: false, uncleanStop: false))
    }
}

@Suite("The heartbeat matrix in records")
struct PeerViewsRecordTests {
    @Test("peer views round-trip, through the fast reader and the general one alike")
    func roundTrip() throws {
        var record = Fixture.record(vms: [Fixture.vm])
        record.peerViews = [
            HostAddress(10, 1, 2, 4): "alive", HostAddress(10, 1, 2, 5): "isolated", HostAddress(10, 9, 0, 1): "dead",
        ]
        record.mode = .maintenance(reason: "x")
        let encoded = RecordCodec.encode(record)
        #expect(try RecordCodec.decode(encoded, expectedHost: Fixture.host).get() == record)
        #expect(try RecordCodec.decodeGenerally(encoded, expectedHost: Fixture.host) == record)
        let fast = encoded.withUnsafeBufferPointer { RecordFastReader.record(in: $0, expectedHost: Fixture.host) }
        #expect(fast == record, "the fast reader reads plain peer views itself")
        var caching = RecordCodec.CachingEncoder()
        #expect(caching.encode(record) == encoded)
        #expect(caching.encode(record) == encoded)
        let text = String(decoding: encoded, as: UTF8.self)
        #expect(text.contains(#""peers":{"10.1.2.4":"alive","10.1.2.5":"isolated","10.9.0.1":"dead"}"#), "\(text)")
    }

    @Test("bad peer views are malformed records with a reason, never a crash", arguments: [
        #"[]"#, #"{"not-an-ip":"alive"}"#, #"{"10.0.0.1":1}"#, #""alive""#,
    ])
    func malformed(json: String) {
        let bytes = Fixture.frame(Fixture.object(Fixture.members + [(key: "peers", json: json)]))
        guard case .failure(.malformed(let message)) = RecordCodec.decode(bytes, expectedHost: Fixture.host) else {
            Issue.record("accepted peers \(json)")
            return
        }
        #expect(message.contains("peers"))
    }

    @Test("at most maxPeerViews views are written, the lowest addresses first")
    func capped() throws {
        var record = Fixture.record()
        for index in 0..<300 { record.peerViews[HostAddress(10, 2, UInt8(index / 250), UInt8(index % 250 + 1))] = "alive" }
        let decoded = try RecordCodec.decode(RecordCodec.encode(record), expectedHost: Fixture.host).get()
        #expect(decoded.peerViews.count == RecordCodec.maxPeerViews)
        #expect(decoded.peerViews.keys.max()! < record.peerViews.keys.sorted()[RecordCodec.maxPeerViews])
    }
}
