import Foundation
import HeartbeatCore
import Hummingbird
import HummingbirdTesting
@testable import Sidecar
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// CheckOnHost with a BMC's evidence: the documented shape, the hand-written JSON, the metrics.
@Suite("BMC in the API")
struct BMCRouteTests {
    /// BMC readings for the fixture's peers: the alive one powered off (conflict), the dead one powered on
    /// (sidecar silent), the garbled one unreachable.
    static func dependencies(_ fixture: APIFixture) -> APIDependencies {
        var dependencies = fixture.dependencies()
        dependencies.bmc = {
            let now = ContinuousClock.now
            func snapshot(_ reading: BMCPowerReading?) -> BMCSnapshot {
                BMCSnapshot(
                    observation: reading.map { BMCObservation(reading: $0, at: now, wallMs: 1_700_000_000_123) },
                    now: now, staleAfter: .seconds(30))
            }
            return [
                APIFixture.alivePeer: snapshot(.off),
                APIFixture.deadPeer: snapshot(.on),
                APIFixture.garbledPeer: snapshot(.unreachable("no answer from 10.0.1.4:623 within 5s")),
                APIFixture.strangerPeer: snapshot(nil),
            ]
        }
        return dependencies
    }

    static func test(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let fixture = try APIFixture()
        let application = Application(responder: buildAPIResponder(dependencies(fixture)), logger: testLogger())
        try await application.test(.router, body)
    }

    @Test func checkOnHostCarriesTheBMCAndConformsToTheDocument() async throws {
        try await Self.test { client in
            let document = APIDocument.shared
            let alive = try await API.get(client, "/v1/peers/\(APIFixture.alivePeer)")
            document.expect(try alive.jsonValue(), conformsTo: "PeerReport")
            let conflict = try alive.decode(APIPeerReport.self)
            #expect(conflict.overall.verdict == "alive")
            #expect(conflict.overall.reasonCode == "bmc-power-off-conflict")
            #expect(conflict.certainty == "conflicting")
            #expect(conflict.bmc == APIBMCStatus(state: "off", checkedMs: 1_700_000_000_123, error: nil))

            let dead = try await API.get(client, "/v1/peers/\(APIFixture.deadPeer)")
            document.expect(try dead.jsonValue(), conformsTo: "PeerReport")
            let silent = try dead.decode(APIPeerReport.self)
            #expect(silent.overall.verdict == "dead")
            #expect(silent.overall.reasonCode == "host-powered-sidecar-silent")
            #expect(silent.overall.reason.hasPrefix("host powered, sidecar silent"))
            #expect(silent.pools.first?.verdict.reasonCode == "no-change", "pools keep storage's own reasons")

            let garbled = try await API.get(client, "/v1/peers/\(APIFixture.garbledPeer)")
            document.expect(try garbled.jsonValue(), conformsTo: "PeerReport")
            let unreachable = try garbled.decode(APIPeerReport.self)
            #expect(unreachable.overall.verdict == "unknown")
            #expect(unreachable.certainty == "storage")
            #expect(unreachable.bmc?.state == "unreachable")
            #expect(unreachable.bmc?.error == "no answer from 10.0.1.4:623 within 5s")

            let list = try await API.get(client, "/v1/peers")
            document.expect(try list.jsonValue(), conformsTo: "PeerList")
            #expect(try list.decode(APIPeerList.self).peers.map(\.certainty) == ["conflicting", "storage", "storage"])
        }
    }

    /// The hand-written writer and `JSONEncoder` agree byte for byte, with and without a BMC, with every state.
    @Test func theWriterMatchesJSONEncoder() async throws {
        let report = APIFixture.standardReports()[APIFixture.deadPeer]!
        let clock = ContinuousClock.now
        let readings: [BMCPowerReading?] = [
            nil, .on, .off, .unreachable("no answer \"quoted\" \\ /slash\n"), .error("é\u{1}\t"),
        ]
        var reports = [APIPeerReport(report)]
        for reading in readings {
            let observation = reading.map { BMCObservation(reading: $0, at: clock, wallMs: -5) }
            for storage in [report.overall, PeerVerdict(.alive, .changing), PeerVerdict(.unknown, .neverSeen)] {
                var changed = report
                changed.overall = storage
                let evidence = BMCSnapshot(observation: observation, now: clock, staleAfter: .seconds(1)).combine(storage)
                reports.append(APIPeerReport(changed, bmc: evidence))
            }
        }
        for value in reports {
            var writer = APIJSONWriter()
            value.write(to: &writer)
            #expect(writer.bytes == APIJSON.encode(value), "\(String(decoding: writer.bytes, as: UTF8.self))")
        }
        var writer = APIJSONWriter()
        let list = APIPeerList(checker: "10.0.0.1", peers: reports)
        list.write(to: &writer)
        #expect(writer.bytes == APIJSON.encode(list))
    }

    @Test func metricsShowEachBMC() async throws {
        try await Self.test { client in
            let text = try await API.get(client, "/metrics").text
            #expect(text.contains(#"kvmha_bmc_power{peer="10.0.0.2"} 0"#), "\(text)")
            #expect(text.contains(#"kvmha_bmc_power{peer="10.0.0.3"} 1"#))
            #expect(text.contains(#"kvmha_bmc_power{peer="10.0.0.4"} -1"#))
            #expect(text.contains(#"kvmha_bmc_state{peer="10.0.0.4",state="unreachable"} 1"#))
            #expect(text.contains(#"kvmha_bmc_state{peer="10.0.0.99",state="unknown"} 1"#))
        }
    }

    @Test func withoutABMCTheAnswerSaysNull() async throws {
        let fixture = try APIFixture()
        try await fixture.test { client in
            let response = try await API.get(client, "/v1/peers/\(APIFixture.deadPeer)")
            let report = try response.decode(APIPeerReport.self)
            #expect(report.bmc == nil)
            #expect(report.certainty == "storage")
            #expect(report.overall.reasonCode == "no-change")
            #expect(response.text.contains(#""bmc":null,"certainty":"storage","#), "\(response.text)")
        }
    }
}

@Suite("BMC credentials")
struct BMCCredentialsTests {
    @Test func theFileFormat() throws {
        #expect(try BMCCredentials.parse("user=admin\npassword=secret\n") == BMCCredentials(user: "admin", password: "secret"))
        #expect(
            try BMCCredentials.parse("# BMC of 10.0.0.12\r\n\n  user = ADMIN \r\npassword= p=ss word \n")
                == BMCCredentials(user: "ADMIN", password: "p=ss word"))
        #expect(try BMCCredentials.parse("password=\nuser=\n") == BMCCredentials(user: "", password: ""))
    }

    @Test(arguments: [
        ("user=a\n", "no `password=` line"),
        ("password=a\n", "no `user=` line"),
        ("user=a\npassword=b\nuser=c\n", "'user' is given twice"),
        ("user=a\nsecret\n", "line 2 is not `key=value` (keys: user, password)"),
        ("user=a\npass=b\n", "line 2: unknown key 'pass' (keys: user, password)"),
        ("user=a\npassword=123456789012345678901\n", "the password is longer than IPMI's 20 bytes"),
        ("user=12345678901234567\npassword=b\n", "the user is longer than IPMI's 16 bytes"),
    ])
    func problemsAreNamed(_ text: String, _ expected: String) {
        #expect(throws: APIStartError.self) { try BMCCredentials.parse(text) }
        do {
            _ = try BMCCredentials.parse(text)
        } catch {
            #expect(error.description == expected)
            #expect(!error.description.contains("123456789012345678901"), "never quotes the password")
        }
    }

    @Test func theFileMustBePrivate() throws {
        let folder = try TemporaryFolder(prefix: "kvmha-bmc-credentials")
        let path = folder.path + "/bmc"
        try Data("user=admin\npassword=secret\n".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o640)
        #expect(throws: APIStartError.self) { try BMCCredentials.load(path: path) }
        do {
            _ = try BMCCredentials.load(path: path)
        } catch {
            #expect(error.description.contains("accessible by group or others (mode 640): run `chmod 600 \(path)`"))
        }
        chmod(path, 0o600)
        #expect(try BMCCredentials.load(path: path) == BMCCredentials(user: "admin", password: "secret"))
        do {
            _ = try BMCCredentials.load(path: folder.path + "/missing")
            Issue.record("a missing file was accepted")
        } catch {
            #expect(error.description.contains("create it with `user=NAME` and `password=SECRET` lines"))
        }
    }
}

@Suite("BMC ipmitool")
struct BMCIPMIToolTests {
    static let bmc = BMCSetting(address: "10.0.1.12", port: 6230, credentialsFile: "/c", timeout: .milliseconds(1500))

    @Test func thePasswordIsNeverAnArgument() {
        let arguments = IPMITool.arguments(Self.bmc, user: "admin")
        #expect(
            arguments == [
                "-I", "lanplus", "-C", "3", "-N", "1", "-R", "1", "-v", "-H", "10.0.1.12", "-p", "6230", "-U", "admin",
                "-f", "/proc/self/fd/3", "chassis", "power", "status",
            ])
    }

    @Test(arguments: [
        (Int32?.some(0), "Chassis Power is on\n", BMCPowerReading.on),
        (0, "Loading IANA PEN Registry...\nRunning Get VSO Capabilities my_addr 0x20, transit 0, target 0x20\nChassis Power is off\n", .off),
        (nil, "", .unreachable("no answer from 10.0.1.12:6230 within 1500ms")),
        (
            1,
            "Loading IANA PEN Registry...\nGet Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\nError: Unable to establish IPMI v2 / RMCP+ session\n",
            .unreachable(
                "no answer from 10.0.1.12:6230 (ipmitool: Get Auth Capabilities error; Error issuing Get Channel Authentication Capabilities request; Error: Unable to establish IPMI v2 / RMCP+ session)"
            )
        ),
        (
            1, "Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n",
            .error(
                "authentication failed: wrong password for user 'admin' (ipmitool: > RAKP 2 HMAC is invalid; Error: Unable to establish IPMI v2 / RMCP+ session)"
            )
        ),
        (
            1,
            "RAKP 2 message indicates an error : unauthorized name\nError: Unable to establish IPMI v2 / RMCP+ session\n",
            .error(
                "authentication failed: the BMC has no user 'admin' (ipmitool: RAKP 2 message indicates an error : unauthorized name; Error: Unable to establish IPMI v2 / RMCP+ session)"
            )
        ),
        (0, "Chassis Power Control: Up/On\n", .error("unexpected answer from ipmitool: Chassis Power Control: Up/On")),
        (137, "", .error("ipmitool exited with 137: no output")),
    ])
    func whatIpmitoolSaid(_ exitCode: Int32?, _ output: String, _ expected: BMCPowerReading) {
        #expect(IPMITool.reading(exitCode: exitCode, output: output, bmc: Self.bmc, user: "admin") == expected)
    }

    /// A stand-in for ipmitool: a script that sees what the real one would.
    static func fakeTool(_ body: String, in folder: TemporaryFolder) throws -> IPMITool {
        let path = folder.path + "/ipmitool"
        try Data("#!/bin/sh\n\(body)\n".utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o755)
        return IPMITool(executable: path)
    }

    @Test func thePasswordArrivesOnItsPipeAndSIGPIPEIsDefault() async throws {
        let folder = try TemporaryFolder(prefix: "kvmha-fake-ipmitool")
        // The daemon ignores SIGPIPE; the child must not inherit that.
        signal(SIGPIPE, SIG_IGN)
        let tool = try Self.fakeTool(
            """
            password=$(cat /proc/self/fd/3)
            ignored=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status)
            pipe=$(( 0x$ignored & 0x1000 ))
            if [ "$password" = "s3cret" ] && [ "$pipe" = 0 ] && [ ! -e /proc/self/fd/4 ]; then
                echo "Chassis Power is on"
            else
                echo "password '$password' SigIgn $ignored" >&2
                exit 3
            fi
            """, in: folder)
        let reading = await tool.probe(Self.bmc, credentials: BMCCredentials(user: "admin", password: "s3cret"))
        #expect(reading == .on)
    }

    @Test func aHungIpmitoolIsKilledAtTheTimeout() async throws {
        let folder = try TemporaryFolder(prefix: "kvmha-fake-ipmitool")
        let tool = try Self.fakeTool("exec sleep 60", in: folder)
        let bmc = BMCSetting(address: "10.0.1.12", credentialsFile: "/c", timeout: .milliseconds(300))
        let started = ContinuousClock.now
        let reading = await tool.probe(bmc, credentials: BMCCredentials(user: "a", password: "b"))
        #expect(reading == .unreachable("no answer from 10.0.1.12:623 within 300ms"))
        #expect(started.duration(to: .now) < .seconds(30), "a hang guard, not a timing assertion")
    }

    @Test func cancellingAProbeKillsIpmitool() async throws {
        let folder = try TemporaryFolder(prefix: "kvmha-fake-ipmitool")
        let marker = folder.path + "/started"
        let tool = try Self.fakeTool("touch \(marker)\nexec sleep 60", in: folder)
        let bmc = BMCSetting(address: "10.0.1.12", credentialsFile: "/c", timeout: .seconds(60))
        let task = Task { await tool.probe(bmc, credentials: BMCCredentials(user: "a", password: "b")) }
        let started = ContinuousClock.now
        // Cancel once ipmitool runs (a bounded poll for its marker), so that it is the child that gets killed.
        while access(marker, F_OK) != 0 && started.duration(to: .now) < .seconds(20) {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(access(marker, F_OK) == 0)
        task.cancel()
        #expect(await task.value == .unreachable("probe cancelled"))
        #expect(started.duration(to: .now) < .seconds(30), "a hang guard, not a timing assertion")
    }

    @Test func withoutIpmitoolEveryProbeSaysHowToInstallIt() async {
        let reading = await IPMITool(executable: nil).probe(Self.bmc, credentials: BMCCredentials(user: "a", password: "b"))
        #expect(reading == .error("ipmitool is not installed: `apt install ipmitool`"))
    }
}

@Suite("BMC config example")
struct BMCConfigExampleTests {
    static let packagedConfig = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()  // SidecarTests
        .deletingLastPathComponent()  // Tests
        .deletingLastPathComponent()  // repository
        .appendingPathComponent("packaging/sidecar.yaml").path

    /// The commented `peers:` example of the packaged config, uncommented, is valid YAML and valid settings.
    @Test func thePackagedExampleIsValid() throws {
        let text = try String(contentsOfFile: Self.packagedConfig, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let start = try #require(lines.firstIndex(of: "#peers:"))
        let block = lines[start...].prefix { $0.hasPrefix("#") }.map { String($0.dropFirst()) }
        let root = try ConfigLoader.parse(yaml: block.joined(separator: "\n"), name: "example")
        let settings = try SettingsResolver().resolve(file: ("example", root), environment: [:], overrides: [:])
        #expect(
            settings.peers == [
                PeerSetting(
                    ip: HostAddress(10, 0, 0, 12),
                    bmc: BMCSetting(
                        address: "10.0.100.12", port: 623, credentialsFile: "/etc/kvmha/bmc-10.0.0.12",
                        timeout: .seconds(5)))
            ])
    }
}
