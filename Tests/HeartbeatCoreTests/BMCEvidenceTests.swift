import HeartbeatCore
import Testing

/// The rule that combines a storage verdict with a BMC's power reading, on a manual clock.
@Suite("BMC evidence")
struct BMCEvidenceTests {
    static let staleAfter: Duration = .seconds(30)

    static func dead(sinceChange: Double? = 40) -> PeerVerdict {
        PeerVerdict(.dead, .noChange, evidence: VerdictEvidence(sequence: 5, secondsSinceChange: sinceChange))
    }
    static let alive = PeerVerdict(.alive, .changing, evidence: VerdictEvidence(sequence: 9, secondsSinceChange: 0.5))
    static let unknown = PeerVerdict(.unknown, .ownStorageFailing("read timed out"))

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var storage: PeerVerdict
        /// nil: no reading yet.
        var reading: BMCPowerReading?
        /// How long ago the reading was taken.
        var age: Duration = .seconds(2)
        var liveness: Liveness
        var code: String
        var certainty: VerdictCertainty
        var state: BMCStatus.State
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "dead + power off: confirmed", storage: dead(), reading: .off, liveness: .dead, code: "bmc-power-off",
            certainty: .confirmed, state: .off),
        Case(
            name: "dead + power on: host powered, sidecar silent", storage: dead(), reading: .on, liveness: .dead,
            code: "host-powered-sidecar-silent", certainty: .storage, state: .on),
        Case(
            name: "dead + BMC unreachable: storage alone", storage: dead(), reading: .unreachable("no answer"),
            liveness: .dead, code: "no-change", certainty: .storage, state: .unreachable),
        Case(
            name: "dead + BMC error: storage alone", storage: dead(), reading: .error("authentication failed"),
            liveness: .dead, code: "no-change", certainty: .storage, state: .error),
        Case(
            name: "dead + no reading yet: storage alone", storage: dead(), reading: nil, liveness: .dead,
            code: "no-change", certainty: .storage, state: .unknown),
        Case(
            name: "dead + stale power off: unknown BMC, storage alone", storage: dead(), reading: .off,
            age: .seconds(31), liveness: .dead, code: "no-change", certainty: .storage, state: .unknown),
        Case(
            name: "dead + stale power on: storage alone", storage: dead(), reading: .on, age: .seconds(45),
            liveness: .dead, code: "no-change", certainty: .storage, state: .unknown),
        Case(
            name: "dead + power off read exactly at the stale limit: still fresh", storage: dead(), reading: .off,
            age: .seconds(30), liveness: .dead, code: "bmc-power-off", certainty: .confirmed, state: .off),
        Case(
            name: "dead + power off read before the last beat: proves nothing now", storage: dead(sinceChange: 20),
            reading: .off, age: .seconds(25), liveness: .dead, code: "no-change", certainty: .storage, state: .off),
        Case(
            name: "dead without a change time + power off: confirmed", storage: dead(sinceChange: nil), reading: .off,
            liveness: .dead, code: "bmc-power-off", certainty: .confirmed, state: .off),
        Case(
            name: "alive + power off: conflicting, still alive", storage: alive, reading: .off, liveness: .alive,
            code: "bmc-power-off-conflict", certainty: .conflicting, state: .off),
        Case(
            name: "alive + power on: storage", storage: alive, reading: .on, liveness: .alive, code: "changing",
            certainty: .storage, state: .on),
        Case(
            name: "alive + BMC unreachable: storage", storage: alive, reading: .unreachable("no answer"),
            liveness: .alive, code: "changing", certainty: .storage, state: .unreachable),
        Case(
            name: "alive + stale power off: no conflict claimed", storage: alive, reading: .off, age: .seconds(60),
            liveness: .alive, code: "changing", certainty: .storage, state: .unknown),
        Case(
            name: "unknown (own storage failing) + power off: still unknown", storage: unknown, reading: .off,
            liveness: .unknown, code: "own-storage-failing", certainty: .storage, state: .off),
        Case(
            name: "unknown + power on: still unknown", storage: unknown, reading: .on, liveness: .unknown,
            code: "own-storage-failing", certainty: .storage, state: .on),
    ]

    @Test(arguments: cases)
    func theRule(_ row: Case) {
        let clock = ManualClock()
        clock.advance(by: .seconds(1000))
        let observation = row.reading.map { BMCObservation(reading: $0, at: clock.now, wallMs: 1_700_000_000_000) }
        clock.advance(by: row.age)
        let verdict = BMCEvidence.combine(
            storage: row.storage, observation: observation, now: clock.now, staleAfter: Self.staleAfter)
        #expect(verdict.liveness == row.liveness)
        #expect(verdict.reason.code == row.code)
        #expect(verdict.certainty == row.certainty)
        #expect(verdict.bmc.state == row.state)
        #expect(verdict.reason.storageReason == row.storage.reason, "the storage reason is kept beside the BMC's")
        #expect(verdict.bmc.checkedMs == (row.reading == nil ? nil : 1_700_000_000_000))
        switch row.state {
        case .on, .off: #expect(verdict.bmc.error == nil)
        case .unreachable, .error, .unknown: #expect(verdict.bmc.error?.isEmpty == false)
        }
    }

    /// Whatever the BMC says and however old it is, the liveness is the storage verdict's: the BMC qualifies a
    /// verdict, it never turns `alive` (or `unknown`) into `dead`, nor `dead` into anything else.
    @Test func theBMCNeverChangesTheLiveness() {
        let storages = [Self.alive, Self.dead(), Self.dead(sinceChange: 1), Self.dead(sinceChange: nil), Self.unknown]
        let readings: [BMCPowerReading?] = [nil, .on, .off, .unreachable("x"), .error("y")]
        let ages: [Duration] = [.zero, .milliseconds(500), .seconds(5), .seconds(30), .seconds(31), .seconds(3600)]
        for storage in storages {
            for reading in readings {
                for age in ages {
                    let clock = ManualClock()
                    let observation = reading.map { BMCObservation(reading: $0, at: clock.now, wallMs: 1) }
                    clock.advance(by: age)
                    let verdict = BMCEvidence.combine(
                        storage: storage, observation: observation, now: clock.now, staleAfter: Self.staleAfter)
                    #expect(verdict.liveness == storage.liveness, "\(storage) \(String(describing: reading)) \(age)")
                    if verdict.certainty == .confirmed { #expect(storage.liveness == .dead && reading == .off) }
                    if verdict.certainty == .conflicting { #expect(storage.liveness == .alive && reading == .off) }
                }
            }
        }
    }

    /// A reading ages on the clock: fresh, then stale (unknown) until the next probe lands.
    @Test func aReadingGoesStaleAndANewOneReplacesIt() {
        let clock = ManualClock()
        var observation = BMCObservation(reading: .off, at: clock.now, wallMs: 1000)
        func combined() -> BMCVerdict {
            BMCEvidence.combine(storage: Self.dead(), observation: observation, now: clock.now, staleAfter: Self.staleAfter)
        }
        #expect(combined().certainty == .confirmed)
        clock.advance(by: .seconds(29))
        #expect(combined().certainty == .confirmed)
        clock.advance(by: .seconds(2))
        #expect(combined().certainty == .storage)
        #expect(combined().bmc.state == .unknown)
        #expect(combined().bmc.error == "stale: the last reading (off) is 31.0s old")
        #expect(combined().bmc.checkedMs == 1000, "when the stale reading was taken")
        observation = BMCObservation(reading: .on, at: clock.now, wallMs: 32_000)
        #expect(combined().reason.code == "host-powered-sidecar-silent")
        #expect(combined().bmc.checkedMs == 32_000)
    }

    @Test func noReadingYetSaysSo() {
        let status = BMCEvidence.status(
            Optional<BMCObservation<ManualClock.Instant>>.none, now: ManualClock().now, staleAfter: Self.staleAfter)
        #expect(status == BMCStatus(state: .unknown, checkedMs: nil, error: "no reading yet"))
    }

    @Test func reasonsReadAsTheIssueAsks() {
        let clock = ManualClock()
        let on = BMCObservation(reading: .on, at: clock.now, wallMs: 0)
        let silent = BMCEvidence.combine(storage: Self.dead(), observation: on, now: clock.now, staleAfter: Self.staleAfter)
        #expect(silent.description == "dead (host powered, sidecar silent)")
        #expect(silent.reason.description.hasPrefix("host powered, sidecar silent: "))
        #expect(silent.reason.description.contains(VerdictReason.noChange.description), "names the storage reason")
        let off = BMCObservation(reading: .off, at: clock.now, wallMs: 0)
        let confirmed = BMCEvidence.combine(storage: Self.dead(), observation: off, now: clock.now, staleAfter: Self.staleAfter)
        #expect(confirmed.reason.description.hasPrefix("confirmed: the BMC reports chassis power off"))
        let conflict = BMCEvidence.combine(storage: Self.alive, observation: off, now: clock.now, staleAfter: Self.staleAfter)
        #expect(conflict.reason.description.hasPrefix("conflicting evidence"))
        let unreachable = BMCObservation(reading: .unreachable("no answer within 5s"), at: clock.now, wallMs: 0)
        let alone = BMCEvidence.combine(storage: Self.dead(), observation: unreachable, now: clock.now, staleAfter: Self.staleAfter)
        #expect(alone.reason.description == VerdictReason.noChange.description, "storage alone, in its own words")
        #expect(alone.bmc.error == "no answer within 5s")
    }

    @Test func staleAfterIsAFewProbePeriods() {
        #expect(BMCEvidence.staleAfter(probeInterval: .seconds(5), probeTimeout: .seconds(5)) == .seconds(30))
        #expect(BMCEvidence.staleAfter(probeInterval: .milliseconds(300), probeTimeout: .seconds(1)) == .milliseconds(3900))
    }
}

/// The `peers:` list of the config file.
@Suite("BMC settings")
struct BMCSettingsTests {
    static func resolve(_ peers: ConfigNode, hostIP: String? = nil) -> Result<SidecarSettings, ConfigError> {
        var entries: [String: ConfigNode] = ["peers": peers]
        if let hostIP { entries["hostIP"] = .scalar(hostIP) }
        return Result { () throws(ConfigError) in
            try SettingsResolver().resolve(file: ("sidecar.yaml", .map(entries)), environment: [:], overrides: [:])
        }
    }

    static func bmc(_ fields: [String: String]) -> ConfigNode { .map(fields.mapValues { .scalar($0) }) }

    @Test func aPeerWithABMCAndDefaults() throws {
        let settings = try Self.resolve(
            .list([
                .map([
                    "ip": .scalar("10.0.0.12"),
                    "bmc": Self.bmc(["address": "10.0.1.12", "credentialsFile": "/etc/kvmha/bmc-10.0.0.12"]),
                ]),
                .map([
                    "ip": .scalar("10.0.0.13"),
                    "bmc": Self.bmc([
                        "address": "bmc13.example.org", "port": "6230", "credentialsFile": "/etc/kvmha/bmc-13",
                        "timeout": "1500ms",
                    ]),
                ]),
                .map(["ip": .scalar("10.0.0.14")]),
            ])
        ).get()
        #expect(
            settings.peers == [
                PeerSetting(
                    ip: HostAddress(10, 0, 0, 12),
                    bmc: BMCSetting(address: "10.0.1.12", credentialsFile: "/etc/kvmha/bmc-10.0.0.12")),
                PeerSetting(
                    ip: HostAddress(10, 0, 0, 13),
                    bmc: BMCSetting(
                        address: "bmc13.example.org", port: 6230, credentialsFile: "/etc/kvmha/bmc-13",
                        timeout: .milliseconds(1500))),
                PeerSetting(ip: HostAddress(10, 0, 0, 14)),
            ])
        #expect(settings.peers[0].bmc?.port == 623)
        #expect(settings.peers[0].bmc?.timeout == .seconds(5))
    }

    @Test func noPeersByDefaultAndAnEmptyListIsNone() throws {
        #expect(try SettingsResolver().resolve(file: nil, environment: [:], overrides: [:]).peers.isEmpty)
        #expect(try Self.resolve(.null).get().peers.isEmpty)
        #expect(try Self.resolve(.list([])).get().peers.isEmpty)
    }

    @Test(arguments: [
        (ConfigNode.scalar("10.0.0.12"), "must be a list"),
        (.list([.scalar("10.0.0.12")]), "item 1: must be a mapping"),
        (.list([.map(["bmc": bmc(["address": "a", "credentialsFile": "/c"])])]), "item 1: field 'ip' is missing"),
        (.list([.map(["ip": .scalar("10.0.0.300")])]), "item 1: ip: '10.0.0.300' is not an IPv4 address"),
        (.list([.map(["ip": .scalar("10.0.0.12"), "ipmi": .null])]), "item 1: unknown field 'ipmi' (known: ip, bmc)"),
        (
            .list([.map(["ip": .scalar("10.0.0.12")]), .map(["ip": .scalar("10.0.0.12")])]),
            "item 2: peer 10.0.0.12 is listed twice"
        ),
        (
            .list([.map(["ip": .scalar("10.0.0.12"), "bmc": bmc(["credentialsFile": "/c"])])]),
            "item 1: peer 10.0.0.12: bmc: field 'address' is missing"
        ),
        (
            .list([.map(["ip": .scalar("10.0.0.12"), "bmc": bmc(["address": "-oProxyCommand", "credentialsFile": "/c"])])]),
            "item 1: peer 10.0.0.12: bmc: address: '-oProxyCommand' is not a host name or IP address"
        ),
        (
            .list([.map(["ip": .scalar("10.0.0.12"), "bmc": bmc(["address": "b", "credentialsFile": "/c", "port": "0"])])]),
            "item 1: peer 10.0.0.12: bmc: port: '0' is not a port number (1-65535)"
        ),
        (
            .list([.map(["ip": .scalar("10.0.0.12"), "bmc": bmc(["address": "b"])])]),
            "item 1: peer 10.0.0.12: bmc: field 'credentialsFile' is missing"
        ),
        (
            .list([.map(["ip": .scalar("10.0.0.12"), "bmc": bmc(["address": "b", "credentialsFile": "creds"])])]),
            "item 1: peer 10.0.0.12: bmc: credentialsFile: 'creds' must be an absolute path"
        ),
        (
            .list([
                .map(["ip": .scalar("10.0.0.12"), "bmc": bmc(["address": "b", "credentialsFile": "/c", "timeout": "0s"])])
            ]),
            "item 1: peer 10.0.0.12: bmc: timeout: '0s' is not a duration between 0 and 60s"
        ),
        (
            .list([
                .map(["ip": .scalar("10.0.0.12"), "bmc": bmc(["address": "b", "credentialsFile": "/c", "user": "admin"])])
            ]),
            "item 1: peer 10.0.0.12: bmc: unknown field 'user' (known: address, port, credentialsFile, timeout)"
        ),
    ])
    func badEntriesAreNamed(_ peers: ConfigNode, _ expected: String) {
        guard case .failure(let error) = Self.resolve(peers) else {
            Issue.record("accepted \(peers)")
            return
        }
        #expect(error.problems.count == 1)
        #expect(error.problems.first?.hasPrefix("sidecar.yaml: key 'peers': \(expected)") == true, "\(error.problems)")
    }

    @Test func thisHostIsNotAPeer() {
        guard case .failure(let error) = Self.resolve(.list([.map(["ip": .scalar("10.0.0.11")])]), hostIP: "10.0.0.11")
        else {
            Issue.record("accepted this host as a peer")
            return
        }
        #expect(error.problems == ["peers: 10.0.0.11 is this host (hostIP): list only other hosts"])
    }

    @Test func peersIsAFileOnlyKey() {
        let fromFlag = Result { () throws(ConfigError) in
            try SettingsResolver().resolve(file: nil, environment: [:], overrides: ["peers": "10.0.0.12"])
        }
        guard case .failure(let error) = fromFlag else {
            Issue.record("a flag set peers")
            return
        }
        #expect(error.problems == ["unknown setting 'peers'"])
        let unknown = Result { () throws(ConfigError) in
            try SettingsResolver().resolve(
                file: ("sidecar.yaml", .map(["peer": .list([])])), environment: [:], overrides: [:])
        }
        guard case .failure(let unknownError) = unknown else {
            Issue.record("accepted 'peer'")
            return
        }
        #expect(unknownError.problems.first?.contains("known keys:") == true)
        #expect(unknownError.problems.first?.hasSuffix("peers)") == true, "lists peers among the known keys")
    }
}
