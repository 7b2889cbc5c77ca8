import HeartbeatCore
import Testing

@Suite("PoolLayout")
struct PoolLayoutTests {
    let host = HostAddress(10, 1, 2, 3)

    @Test func pathsInsideAPool() {
        #expect(PoolLayout.haFolder == "KVMHA")
        #expect(PoolLayout.cloudStackHeartbeat(host) == "KVMHA/hb-10.1.2.3", "CloudStack's own name, unchanged")
        #expect(PoolLayout.activityMemo(host) == "KVMHA/ac-10.1.2.3")
        #expect(PoolLayout.recordFileName(host) == "10.1.2.3.record")
        #expect(PoolLayout.record(host) == "KVMHA/kvmha/10.1.2.3.record")
        #expect(PoolLayout.record(host).hasPrefix(PoolLayout.recordFolder + "/"))
        #expect(PoolLayout.recordFolder.hasPrefix(PoolLayout.haFolder + "/"))
        #expect(PoolLayout.temporaryRecordPrefix(host) == ".10.1.2.3.record.tmp-")
    }

    @Test(arguments: [
        ("10.1.2.3.record", HostAddress(10, 1, 2, 3) as HostAddress?),
        ("0.0.0.0.record", HostAddress(0, 0, 0, 0)),
        ("255.255.255.255.record", HostAddress(255, 255, 255, 255)),
        (".10.1.2.3.record.tmp-8f3a", nil),  // our own temporary file
        (".10.1.2.3.record", nil),  // hidden
        ("10.1.2.3.record.tmp-8f3a", nil),
        ("10.1.2.3.record~", nil),
        ("10.1.2.3.record.bak", nil),
        ("10.1.2.3.json", nil),
        ("10.1.2.3", nil),
        ("hb-10.1.2.3", nil),
        ("ac-10.1.2.3", nil),
        (".record", nil),
        ("record", nil),
        ("010.1.2.3.record", nil),
        ("10.1.2.300.record", nil),
        ("10.1.2.3.record.record", nil),
        ("x10.1.2.3.record", nil),
        ("..record", nil),
        ("../10.1.2.3.record", nil),
        ("fe80::1.record", nil),
        ("", nil),
    ])
    func recordFileNameToHost(name: String, host: HostAddress?) {
        #expect(PoolLayout.host(ofRecordFileName: name) == host)
    }

    @Test(arguments: [
        ("hb-10.1.2.3", HostAddress(10, 1, 2, 3) as HostAddress?),
        ("hb-0.0.0.0", HostAddress(0, 0, 0, 0)),
        ("hb-", nil),
        ("hb-10.1.2.3.tmp", nil),
        ("hb-10.1.2.3 ", nil),
        ("ac-10.1.2.3", nil),
        ("HB-10.1.2.3", nil),
        ("10.1.2.3", nil),
        ("hb-localhost", nil),
        ("hb-../10.1.2.3", nil),
        (".hb-10.1.2.3", nil),
    ])
    func cloudStackFileNameToHost(name: String, host: HostAddress?) {
        #expect(PoolLayout.host(ofCloudStackFileName: name) == host)
    }

    /// Property: the names we write map back to the writer; our temporary files map to nobody.
    @Test func namesMapBackToTheirHost() {
        var rng = SplitMix64(seed: 0x5EED_0040)
        for _ in 0..<2_000 {
            let host = HostAddress(rng.byte(), rng.byte(), rng.byte(), rng.byte())
            #expect(PoolLayout.host(ofRecordFileName: PoolLayout.recordFileName(host)) == host)
            #expect(
                PoolLayout.host(ofCloudStackFileName: String(PoolLayout.cloudStackHeartbeat(host).dropFirst(6))) == host
            )
            let temporary = PoolLayout.temporaryRecordPrefix(host) + String(rng.next(), radix: 36)
            #expect(PoolLayout.host(ofRecordFileName: temporary) == nil)
            #expect(!PoolLayout.record(host).contains(".."))
        }
    }
}
