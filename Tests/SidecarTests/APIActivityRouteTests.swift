import Foundation
import HeartbeatCore
import Hummingbird
import HummingbirdTesting
import Sidecar
import Testing

/// `POST /v1/peers/{ip}/activity` against a real pool folder whose volume mtimes the tests set.
@Suite("API activity check")
struct APIActivityRouteTests {
    /// 10.0.0.3 is dead by our own verdict; 10.0.0.99 never seen; 10.0.0.2 alive.
    static let suspectTime: Int64 = 1_700_000_000
    static let stale = "\(1_600_000_000)\n"

    static func body(
        pool: String = "p1",
        volumes: [String],
        suspectTime: Int64 = suspectTime,
        checkerTime: Int64? = 1_700_000_500
    ) -> String {
        let list = volumes.map { "\"\($0)\"" }.joined(separator: ",")
        let checker = checkerTime.map { #","checkerTime":\#($0)"# } ?? ""
        return #"{"pool":"\#(pool)","volumes":[\#(list)],"suspectTime":\#(suspectTime)\#(checker)}"#
    }

    @Test func writtenAfterTheSuspectTimeIsActiveAndTheMemoIsWrittenInCloudStacksFormat() async throws {
        let fixture = try APIFixture()
        try fixture.makeFile("KVMHA/hb-10.0.0.3", contents: Self.stale)
        try fixture.makeFile("vol-a", mtime: Self.suspectTime - 100)
        try fixture.makeFile("vol-b", mtime: Self.suspectTime + 20)
        try await fixture.test { client in
            let response = try await API.post(
                client,
                "/v1/peers/10.0.0.3/activity",
                body: Self.body(volumes: ["vol-a", "vol-b", "vol-gone"])
            )
            #expect(response.status == .ok, "\(response.text)")
            let answer = try response.decode(APIActivity.self)
            #expect(answer.activity == "active")
            #expect(answer.reasonCode == "written-since-suspect-time")
            #expect(answer.hostVerdict == "dead")
            #expect(answer.newestVolumeMtime == Self.suspectTime + 20)
            #expect(answer.comparedWith == Self.suspectTime)
            #expect(answer.heartbeatAgeSeconds == APIFixture.nowMs / 1000 - 1_600_000_000)
            #expect(answer.volumes.map(\.status) == ["modified", "modified", "missing"])
            #expect(answer.volumes.map(\.mtime) == [Self.suspectTime - 100, Self.suspectTime + 20, nil])
            #expect(answer.previousMemo == nil)
            #expect(answer.memo == "1700000000:1700000020:1700000500")
            #expect(answer.memoWritten)
        }
        #expect(fixture.readFile("KVMHA/ac-10.0.0.3") == "1700000000:1700000020:1700000500\n")
        // No temporary file left behind.
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: fixture.folder.path + "/KVMHA").sorted() == [
                "ac-10.0.0.3", "hb-10.0.0.3",
            ]
        )
    }

    @Test func aMemoWrittenByCloudStacksScriptIsTheBaseline() async throws {
        let fixture = try APIFixture()
        try fixture.makeFile("KVMHA/hb-10.0.0.99", contents: Self.stale)
        // As `echo "$SuspectTime:$latestUpdateTime:$MSTime" > $acFile` leaves it.
        try fixture.makeFile("KVMHA/ac-10.0.0.99", contents: "1700000000:1700000050:1700000400\n")
        try fixture.makeFile("vol-a", mtime: Self.suspectTime + 50)
        try await fixture.test { client in
            let first = try await API.post(client, "/v1/peers/10.0.0.99/activity", body: Self.body(volumes: ["vol-a"]))
                .decode(APIActivity.self)
            #expect(first.activity == "inactive")
            #expect(first.reasonCode == "not-written-since-previous-check")
            #expect(first.hostVerdict == nil)
            #expect(first.previousMemo == "1700000000:1700000050:1700000400")
            #expect(first.comparedWith == Self.suspectTime + 50)
            #expect(first.memoWritten)

            // The VM writes again: the next check sees it.
            try fixture.makeFile("vol-a", contents: "x", mtime: Self.suspectTime + 80)
            let second = try await API.post(
                client,
                "/v1/peers/10.0.0.99/activity",
                body: Self.body(volumes: ["vol-a"], checkerTime: 1_700_000_600)
            )
            .decode(APIActivity.self)
            #expect(second.activity == "active")
            #expect(second.reasonCode == "written-since-previous-check")
            #expect(second.previousMemo == "1700000000:1700000050:1700000500")
        }
        #expect(fixture.readFile("KVMHA/ac-10.0.0.99") == "1700000000:1700000080:1700000600\n")
    }

    @Test func aFreshHeartbeatIsActiveWithoutAMemoAlsoWithNoVolumes() async throws {
        let fixture = try APIFixture()
        try fixture.makeFile("KVMHA/hb-10.0.0.3", contents: "\(APIFixture.nowMs / 1000 - 10)\n")
        try await fixture.test { client in
            let answer = try await API.post(client, "/v1/peers/10.0.0.3/activity", body: Self.body(volumes: []))
                .decode(APIActivity.self)
            #expect(answer.activity == "active")
            #expect(answer.reasonCode == "heartbeat-fresh")
            #expect(answer.heartbeatAgeSeconds == 10)
            #expect(answer.memo == nil)
            #expect(!answer.memoWritten)
        }
        #expect(fixture.readFile("KVMHA/ac-10.0.0.3") == nil)
    }

    @Test func ourAliveVerdictAnswersWithoutTouchingStorage() async throws {
        let fixture = try APIFixture()
        let before = fixture.poolSnapshot()
        try await fixture.test { client in
            let answer = try await API.post(client, "/v1/peers/10.0.0.2/activity", body: Self.body(volumes: ["vol-a"]))
                .decode(APIActivity.self)
            #expect(answer.activity == "active")
            #expect(answer.reasonCode == "host-alive")
            #expect(answer.volumes.map(\.status) == ["not-read"])
        }
        #expect(fixture.poolSnapshot() == before)
        #expect(fixture.pool.health.lastError == "not used yet", "no storage call was made")
    }

    @Test func emptyListWithAStaleHeartbeatIsInactive() async throws {
        let fixture = try APIFixture()
        try fixture.makeFile("KVMHA/hb-10.0.0.3", contents: Self.stale)
        try await fixture.test { client in
            let answer = try await API.post(
                client,
                "/v1/peers/10.0.0.3/activity",
                body: Self.body(volumes: [], checkerTime: nil)
            )
            .decode(APIActivity.self)
            #expect(answer.activity == "inactive")
            #expect(answer.reasonCode == "empty-volume-list")
            #expect(answer.checkerTime == APIFixture.nowMs / 1000)
        }
    }

    @Test func aVolumeThatIsNotAFileMakesNoActivityUnknown() async throws {
        let fixture = try APIFixture()
        try fixture.makeFile("KVMHA/hb-10.0.0.3", contents: Self.stale)
        try FileManager.default.createDirectory(
            atPath: fixture.folder.path + "/vol-dir",
            withIntermediateDirectories: false
        )
        try fixture.makeFile("vol-a", mtime: Self.suspectTime - 1)
        try await fixture.test { client in
            let answer = try await API.post(
                client,
                "/v1/peers/10.0.0.3/activity",
                body: Self.body(volumes: ["vol-a", "vol-dir"])
            )
            .decode(APIActivity.self)
            #expect(answer.activity == "unknown")
            #expect(answer.reasonCode == "volume-unreadable")
            #expect(answer.volumes.map(\.status) == ["modified", "failed"])
            #expect(!answer.memoWritten)
        }
        #expect(fixture.readFile("KVMHA/ac-10.0.0.3") == nil, "no memo from a half-seen pool")
    }

    @Test func anUnknownPoolIs404() async throws {
        let fixture = try APIFixture()
        try await fixture.test { client in
            let response = try await API.post(
                client,
                "/v1/peers/10.0.0.3/activity",
                body: Self.body(pool: "p2", volumes: ["v"])
            )
            #expect(response.status == .notFound)
            #expect(response.errorCode == "unknown-pool")
        }
    }

    static let badBodies: [(String, String, String)] = [
        ("not JSON", "{pool: p1}", "malformed-json"),
        ("truncated", #"{"pool":"p1","volumes":["v"#, "malformed-json"),
        ("an array", #"["p1"]"#, "malformed-json"),
        ("empty", "", "malformed-json"),
        ("pool traversal", Self.body(pool: "../../etc", volumes: ["v"]), "invalid-pool"),
        ("pool with a slash", Self.body(pool: "p1/KVMHA", volumes: ["v"]), "invalid-pool"),
        ("pool dot-dot", Self.body(pool: "..", volumes: ["v"]), "invalid-pool"),
        ("volume traversal", Self.body(volumes: ["../../etc/passwd"]), "invalid-volume"),
        ("volume into our folder", Self.body(volumes: ["KVMHA/ac-10.0.0.3"]), "invalid-volume"),
        ("volume absolute", Self.body(volumes: ["/etc/shadow"]), "invalid-volume"),
        ("volume dot-dot", Self.body(volumes: [".."]), "invalid-volume"),
        ("volume empty", Self.body(volumes: [""]), "invalid-volume"),
        ("volume NUL", #"{"pool":"p1","volumes":["a\u0000b"],"suspectTime":1}"#, "invalid-volume"),
        ("volume too long", Self.body(volumes: [String(repeating: "v", count: 256)]), "invalid-volume"),
        ("volumes as a string", #"{"pool":"p1","volumes":"a,b","suspectTime":1}"#, "invalid-field"),
        ("volume a number", #"{"pool":"p1","volumes":[1],"suspectTime":1}"#, "invalid-field"),
        ("suspect time a string", #"{"pool":"p1","volumes":["v"],"suspectTime":"1700000000"}"#, "invalid-field"),
        ("suspect time a fraction", #"{"pool":"p1","volumes":["v"],"suspectTime":1.5}"#, "invalid-field"),
        ("suspect time negative", #"{"pool":"p1","volumes":["v"],"suspectTime":-1}"#, "invalid-field"),
        ("suspect time huge", #"{"pool":"p1","volumes":["v"],"suspectTime":99999999999999999999}"#, "invalid-field"),
        ("checker time a bool", #"{"pool":"p1","volumes":["v"],"suspectTime":1,"checkerTime":true}"#, "invalid-field"),
        ("pool a number", #"{"pool":5,"volumes":["v"],"suspectTime":1}"#, "invalid-field"),
        ("no pool", #"{"volumes":["v"],"suspectTime":1}"#, "missing-field"),
        ("no volumes", #"{"pool":"p1","suspectTime":1}"#, "missing-field"),
        ("no suspect time", #"{"pool":"p1","volumes":["v"]}"#, "missing-field"),
        ("unknown field", #"{"pool":"p1","volumes":["v"],"suspectTime":1,"uuids":"a"}"#, "unknown-field"),
        ("too deep", String(repeating: "[", count: 100), "malformed-json"),
    ]

    @Test(arguments: badBodies)
    func badBodiesAre400AndTouchNothing(what: String, body: String, code: String) async throws {
        let fixture = try APIFixture()
        try fixture.makeFile("KVMHA/hb-10.0.0.3", contents: Self.stale)
        try fixture.makeFile("v", mtime: Self.suspectTime + 1)
        let before = fixture.poolSnapshot()
        try await fixture.test { client in
            let response = try await API.post(client, "/v1/peers/10.0.0.3/activity", body: body)
            #expect(response.status == .badRequest, "\(what): \(response.status) \(response.text)")
            #expect(response.errorCode == code, "\(what): \(response.text)")
        }
        #expect(fixture.poolSnapshot() == before, "\(what)")
        #expect(fixture.pool.health.lastError == "not used yet", "\(what): no storage call was made")
    }

    @Test func anOversizedBodyIs413AndTouchesNothing() async throws {
        let fixture = try APIFixture()
        let before = fixture.poolSnapshot()
        let volumes = (0..<5000).map { "volume-\($0)-\(String(repeating: "x", count: 8))" }
        let body = Self.body(volumes: volumes)
        #expect(body.utf8.count > APILimits.maxBodyBytes)
        try await fixture.test { client in
            let response = try await API.post(client, "/v1/peers/10.0.0.3/activity", body: body)
            #expect(response.status == .contentTooLarge)
            #expect(response.errorCode == "body-too-large")
        }
        #expect(fixture.poolSnapshot() == before)
    }
}
