import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The end-to-end HA drill (issue 8): the field bug — a powered-off host whose VMs stay "Running" on it and are
/// never restarted — played against three real sidecars on one NFSv3 pool, with a poller in the management
/// server's place asking what CloudStack would ask. Prints a timeline and writes a JSON report
/// (`KVMHA_DRILL_REPORT`, default under the system's temporary folder; the path is printed).
///
/// Run alone: `swift test --skip-build --disable-xctest --filter HADrill` (root; about 90 s, most of it step 2
/// waiting out CloudStack's 61 s heartbeat-freshness rule of the activity check).
@Suite(.serialized)
struct HADrill {
    @Test("HA drill: steady state, B powered off, VMs restarted on C, B back (split brain), partition, storage cut")
    func drill() async throws {
        let clock = DrillClock()
        let timeline = DrillTimeline(clock: clock)
        let reportPath = Self.reportPath()
        let reportDirectory = URL(fileURLWithPath: reportPath).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: reportDirectory, withIntermediateDirectories: true)
        var header: [String] = ["HA drill (issue 8)"]
        var extra: [String: Any] = [
            "drill": "kvmha HA drill (issue 8)", "startedAt": ISO8601DateFormatter().string(from: clock.startWall),
        ]
        var harnessFailure: (any Error)?

        do {
            try await DrillLab.with { lab in
                header = Self.header(lab)
                extra.merge(Self.describe(lab)) { _, new in new }
                for line in header { print("[drill] \(line)") }
                let run = DrillRun(
                    lab: lab,
                    poller: try DrillPoller(namespace: lab.managerNamespace, port: DrillLab.apiPort, clock: clock),
                    timeline: timeline
                )
                defer { lab.saveLogs(to: reportDirectory) }
                try await run.setUp()
                try await run.steadyState()
                try await run.powerOffB()
                try await run.restartBsVMsOnC()
                try await run.bComesBack()
                try await run.partition()
                try await run.storageCutForB()
                timeline.endStep()
            }
        } catch {
            harnessFailure = error
            // The first lines only: harness errors carry a process's last 50 lines (the logs are saved apart).
            let text = "\(error)".split(separator: "\n").prefix(3).joined(separator: " / ")
            timeline.record(
                "the drill itself", "stopped by a harness error: \(text) — the steps after this one did not run", .fail)
            timeline.endStep()
        }

        let text = timeline.rendered(header: header)
        print("\n" + text)
        let report = timeline.report(extra: extra)
        let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: reportPath))
        try Data((text + "\n").utf8).write(to: URL(fileURLWithPath: reportDirectory + "/ha-drill-timeline.txt"))
        print("[drill] JSON report: \(reportPath)")
        print("[drill] timeline and sidecar logs: \(reportDirectory)")

        for failure in timeline.failures {
            Issue.record("step \(failure.step): \(failure.asked) → \(failure.answered)")
        }
        if let harnessFailure { throw harnessFailure }
    }

    /// `KVMHA_DRILL_REPORT`, else a folder of its own under the temporary folder (kept: the lab's folder goes).
    static func reportPath() -> String {
        if let path = ProcessInfo.processInfo.environment["KVMHA_DRILL_REPORT"], !path.isEmpty {
            return URL(fileURLWithPath: path).standardizedFileURL.path
        }
        return FileManager.default.temporaryDirectory.appendingPathComponent("kvmha-drill-report-\(getpid())")
            .appendingPathComponent("ha-drill-report.json").path
    }

    static func header(_ lab: DrillLab) -> [String] {
        let t = lab.timing
        var lines = [
            "HA drill (issue 8): three KVM hosts with a kvmha sidecar each, one NFSv3 pool, a management server polling them.",
            String(
                format:
                    "Timing: beat interval %.1f s, storage deadline %.1f s, dead after %.1f s of silence, self-fence after %.1f s + %.1f s without a beat (dry run: a marker file).",
                t.interval,
                t.ioTimeout,
                t.deadAfter,
                t.fenceAfter,
                t.fenceDelay
            ),
            "Storage: nfs-ganesha at \(lab.storageIP) (\(lab.nfsURL)), pool id \(DrillLab.poolID). Manager (the poller): \(lab.managerIP), asking with curl.",
        ]
        for host in lab.hosts {
            lines.append(
                "Host \(host.letter): \(host.ip) (storage link \(host.storageIP)), VMs \(host.vms.map(\.name).joined(separator: ", "))"
            )
        }
        lines.append(
            lab.peerProbe
                ? "Peer API probe: on (--peer-probe)."
                : "Peer API probe: this kvmha serve has no --peer-probe yet; step 5's network verdict is skipped."
        )
        lines.append(
            "Questions: CheckOnHost = GET /v1/peers/{ip}; activity = POST /v1/peers/{ip}/activity; a peer's VMs = GET /v1/peers/{ip}/vms; reconcile = POST /v1/reconcile; conflicts = GET /v1/conflicts."
        )
        return lines
    }

    static func describe(_ lab: DrillLab) -> [String: Any] {
        let t = lab.timing
        return [
            "timingSeconds": [
                "interval": t.interval, "ioTimeout": t.ioTimeout, "deadAfter": t.deadAfter, "fenceAfter": t.fenceAfter,
                "fenceDelay": t.fenceDelay,
            ],
            "storage": ["ip": lab.storageIP, "url": lab.nfsURL, "pool": DrillLab.poolID],
            "manager": ["ip": lab.managerIP],
            "peerProbe": lab.peerProbe,
            "hosts": lab.hosts.map { host -> [String: Any] in
                [
                    "name": host.letter, "ip": host.ip, "storageIP": host.storageIP,
                    "vms": host.vms.map { ["name": $0.name, "uuid": $0.uuid, "volume": $0.volume] },
                ]
            },
        ]
    }
}

/// The steps of one drill run.
struct DrillRun {
    let lab: DrillLab
    let poller: DrillPoller
    let timeline: DrillTimeline

    var clock: DrillClock { timeline.clock }
    var timing: DrillLab.Timing { lab.timing }
    var a: DrillHost { lab.a }
    var b: DrillHost { lab.b }
    var c: DrillHost { lab.c }

    // MARK: Set-up

    func setUp() async throws {
        timeline.beginStep(0, "set-up", expect: "every host's sidecar serving, its VMs running in its own libvirtd")
        for host in lab.hosts { try await lab.startVMs(host.vms, on: host) }
        try lab.startDiskWrites(Set(lab.hosts.flatMap(\.vms).map(\.volume)))
        timeline.record(
            "drill",
            "VMs started in each host's libvirtd; their volume files are written twice a second",
            .info
        )
        for host in lab.hosts {
            _ = try await lab.startSidecar(host)
            timeline.record(
                "drill",
                "started kvmha serve in \(host.letter)'s namespace (API http://\(host.ip):\(DrillLab.apiPort))",
                .info
            )
        }
    }

    // MARK: Step 1

    func steadyState() async throws {
        timeline.beginStep(
            1,
            "steady state",
            expect: "every host says every other one is alive; every VM is reported where it runs"
        )
        let started = clock.now
        // Readiness: a peer is alive once its record has been seen changing.
        for checker in lab.hosts {
            for peer in lab.hosts where peer !== checker {
                let answer = try await poll(every: 0.25, for: 20) { () -> DrillAnswer? in
                    let answer = try await poller.get(checker, "/v1/peers/\(peer.ip)")
                    return verdict(answer) == "alive" ? answer : nil
                }
                timeline.check(
                    "\(checker.letter): CheckOnHost(\(peer.letter))",
                    answer.map(verdictText) ?? "not alive within 20 s",
                    answer != nil
                )
            }
        }
        timeline.timing("allAliveAfterStartSeconds", clock.now - started)
        for host in lab.hosts {
            let answer = try await poll(every: 0.25, for: 10) { () -> DrillAnswer? in
                let answer = try await poller.get(host, "/v1/vms")
                return runningNames(answer) == Set(host.vms.map(\.name)) ? answer : nil
            }
            timeline.check(
                "\(host.letter): its VMs (GET /v1/vms)",
                answer.map { "running: \(sorted(runningNames($0)))" } ?? "not \(host.vms.map(\.name)) within 10 s",
                answer != nil
            )
        }
        for (checker, peer) in [(a, b), (b, c), (c, a)] {
            let answer = try await poll(every: 0.25, for: 10) { () -> DrillAnswer? in
                let answer = try await poller.get(checker, "/v1/peers/\(peer.ip)/vms")
                return runningNames(answer) == Set(peer.vms.map(\.name)) ? answer : nil
            }
            timeline.check(
                "\(checker.letter): \(peer.letter)'s published VMs (GET /v1/peers/\(peer.ip)/vms)",
                answer.map { "running: \(sorted(runningNames($0)))" } ?? "not \(peer.vms.map(\.name)) within 10 s",
                answer != nil
            )
        }
        for host in lab.hosts {
            let answer = try await poller.post(host, "/v1/reconcile", reconcileBody(host: nil, running: host.vms))
            timeline.check(
                "\(host.letter): reconcile the manager's picture of \(host.letter) (\(host.vms.count) VMs Running)",
                reconcileText(answer),
                isClean(answer)
            )
        }
        try await checkNoConflicts(on: lab.hosts)
        if lab.peerProbe {
            let answer = try await poller.get(a, "/v1/peers/\(b.ip)")
            if let api = answer.json["api"] as? [String: Any] {
                timeline.check(
                    "A: CheckOnHost(B), API probe",
                    "api \(api["state"] ?? "?")",
                    api["state"] as? String == "reachable"
                )
            } else {
                timeline.skip("A: CheckOnHost(B), API probe", because: "CheckOnHost has no \"api\" field yet")
            }
        }
    }

    // MARK: Step 2

    func powerOffB() async throws {
        timeline.beginStep(
            2,
            "B powered off (sidecar SIGKILLed, libvirtd and VMs gone, links down, disks stop changing)",
            expect: String(
                format:
                    "A and C say B dead within deadAfter + one interval (%.1f s) of the power-off, never before deadAfter (%.1f s) after B's last beat; activity inactive; B's last VM list readable; the stale picture (B's VMs Running on B) reconciles to 'running nowhere'",
                timing.deadAfter + timing.interval,
                timing.deadAfter
            )
        )
        guard let sidecar = b.sidecar else { throw HarnessError("B has no sidecar") }
        let volumes = b.vms.map(\.volume)
        lab.stopDiskWrites(volumes)
        // Right after a beat has landed: the worst case for "never before deadAfter", measured from the power-off.
        let mark = sidecar.lineCount
        try await sidecar.waitForLine(
            matching: try .regex("beat [0-9]+ written to 1 pool"),
            after: mark,
            timeout: .seconds(10)
        )
        sidecar.kill(signal: SIGKILL)
        let killedAt = clock.now
        let suspectTime = Int64(clock.unixSeconds.rounded(.up))
        try await lab.powerOff(b)
        let lastBeat = lab.record(of: b).map { clock.drillSeconds(unixMs: $0.wallTimeMs) }
        timeline.record(
            "drill",
            "B powered off: its sidecar SIGKILLed right after a beat landed, every process in its namespace killed, its links down",
            .info,
            at: killedAt
        )
        if let lastBeat {
            timeline.record(
                "drill",
                String(
                    format: "B's last record on storage was written at t+%.2fs (%.2f s before the power-off)",
                    lastBeat,
                    killedAt - lastBeat
                ),
                .info
            )
            timeline.timing("lastBeatBeforePowerOffSeconds", killedAt - lastBeat)
        }

        // Detection, polled by the manager every 200 ms.
        let deadline = killedAt + timing.deadAfter + timing.interval + 10
        var firstDead: [String: DrillAnswer] = [:]
        var early: [String: DrillAnswer] = [:]
        var previous: [String: String] = [:]
        while firstDead.count < 2 && clock.now < deadline {
            for checker in [a, c] where firstDead[checker.letter] == nil {
                let answer = try await poller.get(checker, "/v1/peers/\(b.ip)")
                let state = verdict(answer) ?? answer.problem
                if previous[checker.letter] != state {
                    previous[checker.letter] = state
                    if state != "dead" {
                        timeline.record(
                            "\(checker.letter): CheckOnHost(B)",
                            verdictText(answer),
                            .info,
                            at: answer.receivedAt
                        )
                    }
                }
                if state == "dead" {
                    firstDead[checker.letter] = answer
                    let tooEarly =
                        answer.receivedAt - killedAt < timing.deadAfter - 0.15
                        || (lastBeat.map { answer.receivedAt < $0 + timing.deadAfter } ?? false)
                    if tooEarly { early[checker.letter] = answer }
                }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        for checker in [a, c] {
            guard let answer = firstDead[checker.letter] else {
                timeline.check(
                    "\(checker.letter): CheckOnHost(B)",
                    "never said dead within \(Int(deadline - killedAt)) s",
                    false
                )
                continue
            }
            let sinceKill = answer.receivedAt - killedAt
            let sinceBeat = lastBeat.map { answer.receivedAt - $0 }
            timeline.timing("\(checker.letter).deadAfterPowerOffSeconds", sinceKill)
            if let sinceBeat { timeline.timing("\(checker.letter).deadAfterLastBeatSeconds", sinceBeat) }
            let bound = timing.deadAfter + timing.interval + 0.5
            let text =
                verdictText(answer)
                + String(format: " — %.2f s after the power-off", sinceKill)
                + (sinceBeat.map { String(format: ", %.2f s after B's last beat", $0) } ?? "")
            let onTime = sinceKill <= bound && early[checker.letter] == nil
            timeline.check(
                "\(checker.letter): CheckOnHost(B)",
                text + (onTime ? "" : String(format: " (allowed %.1f–%.1f s)", timing.deadAfter, bound)),
                onTime,
                at: answer.receivedAt
            )
        }

        // B's last VM list, from its last record.
        for checker in [a, c] {
            let answer = try await poller.get(checker, "/v1/peers/\(b.ip)/vms")
            let names = runningNames(answer)
            timeline.check(
                "\(checker.letter): B's last published VMs (GET /v1/peers/\(b.ip)/vms)",
                answer.ok
                    ? "\(sorted(names)) running as last published; verdict on B \(nested(answer.json, "verdict", "verdict") ?? "?")"
                    : answer.problem,
                names == Set(b.vms.map(\.name))
            )
        }

        // The manager's stale picture: B's VMs Running on B.
        for checker in [a, c] {
            let answer = try await poller.post(checker, "/v1/reconcile", reconcileBody(host: b.ip, running: b.vms))
            let mismatches = answer.json["mismatches"] as? [[String: Any]] ?? []
            let allNowhere =
                mismatches.count == b.vms.count
                && mismatches.allSatisfy { mismatch in
                    mismatch["kind"] as? String == "believed-running-on-dead-host"
                        && runsNowhereElse(mismatch)
                }
            timeline.check(
                "\(checker.letter): reconcile the stale picture (B's \(b.vms.count) VMs Running on B)",
                reconcileText(answer),
                allNowhere
            )
        }
        try await showConflicts(on: [a, c], expectation: "informational: what the hosts call B's stranded VMs")

        // Activity: CloudStack's rule keeps "active" while B's heartbeat file is younger than 61 s.
        timeline.note(
            "CloudStack's activity rule answers 'active' while the suspect's heartbeat file (KVMHA/hb-<ip>) is younger than 61 s; the sidecar keeps that rule, so 'inactive' comes about 61 s after B's last beat."
        )
        let body: [String: Any] = ["pool": DrillLab.poolID, "volumes": volumes, "suspectTime": suspectTime]
        var inactive: [String: DrillAnswer] = [:]
        var previousActivity: [String: String] = [:]
        let activityDeadline = killedAt + 61 + 20
        while inactive.count < 2 && clock.now < activityDeadline {
            for checker in [a, c] where inactive[checker.letter] == nil {
                let answer = try await poller.post(checker, "/v1/peers/\(b.ip)/activity", body)
                let state = answer.json["activity"] as? String ?? answer.problem
                if state == "inactive" {
                    inactive[checker.letter] = answer
                } else if previousActivity[checker.letter] != state {
                    timeline.record(
                        "\(checker.letter): activity of B on \(volumes.count) volumes",
                        activityText(answer),
                        .info,
                        at: answer.receivedAt
                    )
                }
                previousActivity[checker.letter] = state
            }
            if inactive.count < 2 { try await Task.sleep(for: .seconds(1)) }
        }
        for checker in [a, c] {
            guard let answer = inactive[checker.letter] else {
                timeline.check(
                    "\(checker.letter): activity of B",
                    "not inactive within \(Int(activityDeadline - killedAt)) s of the power-off",
                    false
                )
                continue
            }
            timeline.timing("\(checker.letter).inactiveAfterPowerOffSeconds", answer.receivedAt - killedAt)
            timeline.check(
                "\(checker.letter): activity of B on \(volumes.count) volumes",
                activityText(answer) + String(format: " — %.1f s after the power-off", answer.receivedAt - killedAt),
                answer.json["hostVerdict"] as? String == "dead",
                at: answer.receivedAt
            )
        }
    }

    // MARK: Step 3

    func restartBsVMsOnC() async throws {
        timeline.beginStep(
            3,
            "B's VMs started on C",
            expect: "C reports them running; reconcile of the new picture is clean; no conflict"
        )
        try await lab.startVMs(b.vms, on: c)
        lab.resumeDiskWrites(b.vms.map(\.volume))
        timeline.record(
            "drill",
            "started \(b.vms.map(\.name).joined(separator: ", ")) in C's libvirtd (virsh create)",
            .info
        )
        let onC = Set((b.vms + c.vms).map(\.name))
        let local = try await poll(every: 0.2, for: 10) { () -> DrillAnswer? in
            let answer = try await poller.get(c, "/v1/vms")
            return runningNames(answer) == onC ? answer : nil
        }
        timeline.check(
            "C: its VMs (GET /v1/vms)",
            local.map { "running: \(sorted(runningNames($0)))" } ?? "not \(sorted(onC)) within 10 s",
            local != nil
        )
        let published = try await poll(every: 0.2, for: 10) { () -> DrillAnswer? in
            let answer = try await poller.get(a, "/v1/peers/\(c.ip)/vms")
            return runningNames(answer) == onC ? answer : nil
        }
        timeline.check(
            "A: C's published VMs (GET /v1/peers/\(c.ip)/vms)",
            published.map { "running: \(sorted(runningNames($0)))" } ?? "not \(sorted(onC)) within 10 s",
            published != nil
        )
        // (who is asked, about which host — nil: itself, what the manager now believes runs there)
        let pictures: [(DrillHost, DrillHost?, [DrillVM])] = [
            (c, nil, b.vms + c.vms), (a, c, b.vms + c.vms), (a, b, []), (c, b, []),
        ]
        for (checker, host, running) in pictures {
            let subject = host ?? checker
            let answer = try await poller.post(
                checker,
                "/v1/reconcile",
                reconcileBody(host: host?.ip, running: running)
            )
            timeline.check(
                "\(checker.letter): reconcile \(subject.letter) = \(running.isEmpty ? "nothing running" : "\(running.count) VMs Running")",
                reconcileText(answer),
                isClean(answer)
            )
        }
        try await checkNoConflicts(on: [a, c])
    }

    // MARK: Step 4

    func bComesBack() async throws {
        timeline.beginStep(
            4,
            "B comes back still running its old VMs (the dangerous case)",
            expect: String(
                format:
                    "every host reports B's VMs as split brain (on B and C) within one interval (%.1f s) of B's first record",
                timing.interval
            )
        )
        let old = lab.record(of: b)
        try await lab.powerOn(b)
        try await lab.restartLibvirtd(b)
        try await lab.startVMs(b.vms, on: b)
        _ = try await lab.startSidecar(b)
        timeline.record(
            "drill",
            "B powered on (links up), its libvirtd restarted with \(b.vms.map(\.name).joined(separator: ", ")) running; B's sidecar started",
            .info
        )
        // B's first record on storage that carries the VMs: from here every host can know.
        guard
            let landed = try await poll(
                every: 0.05,
                for: 15,
                {
                    () -> Double? in
                    guard let record = lab.record(of: b), record.incarnation != old?.incarnation,
                        Set(b.vms.map(\.name)).isSubset(
                            of: Set(record.vms.filter { $0.state.rawValue == "running" }.map(\.name))
                        )
                    else { return nil }
                    return clock.drillSeconds(unixMs: record.wallTimeMs)
                }
            )
        else {
            timeline.check("drill", "B's new record with its VMs never appeared on storage", false)
            return
        }
        timeline.record("drill", String(format: "B's first record listing its VMs written at t+%.2fs", landed), .info)

        // The conflicts route (issue 8's contract): every host, until each names every duplicate.
        let probe = try await poller.get(a, "/v1/conflicts")
        if probe.routeMissing {
            timeline.skip(
                "A, B, C: GET /v1/conflicts",
                because: "this daemon has no GET /v1/conflicts yet (404 not-found)"
            )
        } else {
            for host in lab.hosts {
                let answer = try await poll(every: 0.1, for: 10) { () -> DrillAnswer? in
                    let answer = try await poller.get(host, "/v1/conflicts")
                    return splitBrainCovers(answer) ? answer : nil
                }
                guard let answer else {
                    let last = try await poller.get(host, "/v1/conflicts")
                    timeline.check(
                        "\(host.letter): conflicts (GET /v1/conflicts)",
                        "no split brain for every one of B's VMs within 10 s; last: \(conflictsText(last))",
                        false
                    )
                    continue
                }
                let after = answer.receivedAt - landed
                timeline.timing("\(host.letter).splitBrainAfterRecordSeconds", after)
                timeline.check(
                    "\(host.letter): conflicts (GET /v1/conflicts)",
                    conflictsText(answer) + String(format: " — %.2f s after B's record", after),
                    after <= timing.interval + 0.5,
                    at: answer.receivedAt
                )
            }
        }

        // The same facts through reconcile: the manager's picture (B's VMs on C). Timed against the interval only
        // when the conflicts route was not there to be polled first (else these polls start late).
        let timed = probe.routeMissing
        for host in lab.hosts {
            let answer = try await poll(every: 0.1, for: 10) { () -> DrillAnswer? in
                let answer = try await poller.post(
                    host,
                    "/v1/reconcile",
                    reconcileBody(host: c.ip, running: b.vms + c.vms)
                )
                return severalHosts(answer) ? answer : nil
            }
            guard let answer else {
                timeline.check(
                    "\(host.letter): reconcile C = B's and C's VMs Running",
                    "B's VMs not reported on several hosts within 10 s",
                    false
                )
                continue
            }
            let after = answer.receivedAt - landed
            timeline.timing("\(host.letter).severalHostsAfterRecordSeconds", after)
            timeline.check(
                "\(host.letter): reconcile C = B's and C's VMs Running",
                reconcileText(answer) + String(format: " — %.2f s after B's record", after),
                !timed || after <= timing.interval + 0.5,
                at: answer.receivedAt
            )
        }
    }

    // MARK: Step 5

    func partition() async throws {
        let hold = timing.deadAfter + 2 * timing.interval
        timeline.beginStep(
            5,
            "partition: B's management link cut, its storage link up",
            expect: String(
                format:
                    "for %.0f s (deadAfter + 2 intervals) A and C keep saying B alive by storage, never dead; their verdict says the network is cut",
                hold
            )
        )
        // A partition of a healthy host: B, back from an unclean stop in step 4, may first be reported as
        // `rejoining` for one deadAfter; wait (bounded) until both peers call it plainly alive.
        for checker in [a, c] {
            let answer = try await poll(every: 0.25, for: timing.deadAfter + 3 * timing.interval) {
                () -> DrillAnswer? in
                let answer = try await poller.get(checker, "/v1/peers/\(b.ip)")
                return verdict(answer) == "alive" ? answer : nil
            }
            timeline.check(
                "\(checker.letter): CheckOnHost(B) before the cut",
                answer.map(verdictText) ?? "not alive within \(Int(timing.deadAfter + 3 * timing.interval)) s",
                answer != nil
            )
        }
        try await lab.setLink(b, "mgmt", up: false)
        let cutAt = clock.now
        timeline.record("drill", "B's management link down (inside B's namespace); B still reaches storage", .info)
        var answers: [String: [DrillAnswer]] = [:]
        var networkNote: [String: DrillAnswer] = [:]
        var sawAPIField = false
        while clock.now < cutAt + hold {
            for checker in [a, c] {
                let answer = try await poller.get(checker, "/v1/peers/\(b.ip)")
                answers[checker.letter, default: []].append(answer)
                if answer.json["api"] != nil { sawAPIField = true }
                if networkNote[checker.letter] == nil && saysNetworkCut(answer) { networkNote[checker.letter] = answer }
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        for checker in [a, c] {
            let all = answers[checker.letter] ?? []
            let verdicts = all.map { verdict($0) ?? $0.problem }
            let alive = verdicts.filter { $0 == "alive" }.count
            timeline.check(
                "\(checker.letter): CheckOnHost(B), \(all.count) times over \(Int(hold)) s",
                "alive \(alive)/\(all.count), dead \(verdicts.filter { $0 == "dead" }.count)"
                    + (alive == all.count ? "" : "; others: \(Set(verdicts).subtracting(["alive"]).sorted())")
                    + (all.last.map { "; last: \(verdictText($0))" } ?? ""),
                !all.isEmpty && alive == all.count
            )
        }
        // The manager is cut from B too (asked after the peers' polls, so as not to delay them).
        let unreachable = try await poller.get(b, "/v1/health", timeout: 2)
        timeline.check(
            "manager: B's health (GET /v1/health on B)",
            unreachable.ok ? "answered: the cut did not work" : unreachable.problem,
            !unreachable.ok
        )
        if !lab.peerProbe {
            timeline.skip(
                "A, C: CheckOnHost(B) says the network is cut",
                because: "kvmha serve has no --peer-probe option yet"
            )
        } else if !sawAPIField {
            timeline.skip(
                "A, C: CheckOnHost(B) says the network is cut",
                because: "--peer-probe is accepted but CheckOnHost has no \"api\" field yet"
            )
        } else {
            for checker in [a, c] {
                if let answer = networkNote[checker.letter] {
                    timeline.timing("\(checker.letter).networkCutReportedAfterSeconds", answer.receivedAt - cutAt)
                    timeline.check(
                        "\(checker.letter): CheckOnHost(B) names the cut",
                        verdictText(answer) + String(format: " — %.2f s after the cut", answer.receivedAt - cutAt),
                        true,
                        at: answer.receivedAt
                    )
                } else {
                    let last = answers[checker.letter]?.last
                    timeline.check(
                        "\(checker.letter): CheckOnHost(B) names the cut",
                        "no api unreachable + network note; last: \(last.map(verdictText) ?? "none")",
                        false
                    )
                }
            }
        }

        try await lab.setLink(b, "mgmt", up: true)
        timeline.record("drill", "B's management link up again", .info)
        let back = try await poll(every: 0.25, for: 15) { () -> DrillAnswer? in
            let answer = try await poller.get(b, "/v1/health", timeout: 1)
            return answer.ok ? answer : nil
        }
        timeline.check(
            "manager: B's health (GET /v1/health on B)",
            back.map { "answered: \($0.json["status"] ?? "?")" } ?? "no answer within 15 s",
            back != nil
        )
        if lab.peerProbe && sawAPIField {
            for checker in [a, c] {
                let answer = try await poll(every: 0.25, for: 15) { () -> DrillAnswer? in
                    let answer = try await poller.get(checker, "/v1/peers/\(b.ip)")
                    return nested(answer.json, "api", "state") == "reachable" ? answer : nil
                }
                timeline.check(
                    "\(checker.letter): CheckOnHost(B) after the repair",
                    answer.map(verdictText) ?? "API not reachable again within 15 s",
                    answer != nil
                )
            }
        }
    }

    // MARK: Step 6

    func storageCutForB() async throws {
        timeline.beginStep(
            6,
            "storage frozen for B only: B's storage link cut",
            expect: String(
                format:
                    "B's dry-run fence marker (after %.1f s + %.1f s without a beat) appears before A or C calls B dead (%.1f s)",
                timing.fenceAfter,
                timing.fenceDelay,
                timing.deadAfter
            )
        )
        if FileManager.default.fileExists(atPath: b.fenceMarker) {
            timeline.check("drill", "B's fence marker exists before the cut", false)
        }
        try await lab.setLink(b, "stor", up: false)
        let cutAt = clock.now
        timeline.record(
            "drill",
            "B's storage link down (inside B's namespace); its management link is up",
            .info,
            at: cutAt
        )
        var fencedAt: Double?
        var firstDead: [String: DrillAnswer] = [:]
        var nextPoll = clock.now
        let deadline = cutAt + timing.deadAfter + timing.interval + 10
        while (fencedAt == nil || firstDead.count < 2) && clock.now < deadline {
            if fencedAt == nil && FileManager.default.fileExists(atPath: b.fenceMarker) {
                fencedAt = clock.now
                timeline.record("B: fence marker \(b.fenceMarker)", "written (dry-run fence)", .info, at: fencedAt)
            }
            if clock.now >= nextPoll {
                for checker in [a, c] where firstDead[checker.letter] == nil {
                    let answer = try await poller.get(checker, "/v1/peers/\(b.ip)")
                    // B's API still answers (its management link is up): `isolated` is the precise form of dead.
                    if ["dead", "isolated"].contains(verdict(answer)) { firstDead[checker.letter] = answer }
                }
                nextPoll = clock.now + 0.2
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let lastBeat = lab.record(of: b).map { clock.drillSeconds(unixMs: $0.wallTimeMs) }
        if let lastBeat {
            timeline.record(
                "drill",
                String(format: "B's last record on storage was written at t+%.2fs", lastBeat),
                .info
            )
        }
        if let fencedAt {
            timeline.timing("fenceAfterCutSeconds", fencedAt - cutAt)
            if let lastBeat { timeline.timing("fenceAfterLastBeatSeconds", fencedAt - lastBeat) }
        }
        for checker in [a, c] {
            guard let answer = firstDead[checker.letter] else {
                timeline.check(
                    "\(checker.letter): CheckOnHost(B)",
                    "never said dead within \(Int(deadline - cutAt)) s of the cut",
                    false
                )
                continue
            }
            timeline.timing("\(checker.letter).deadAfterCutSeconds", answer.receivedAt - cutAt)
            if let lastBeat {
                timeline.timing("\(checker.letter).deadAfterLastBeatSeconds", answer.receivedAt - lastBeat)
            }
            let text =
                verdictText(answer) + String(format: " — %.2f s after the cut", answer.receivedAt - cutAt)
                + (fencedAt.map { String(format: "; B fenced itself %.2f s earlier", answer.sentAt - $0) }
                    ?? "; B never fenced")
            timeline.check(
                "\(checker.letter): CheckOnHost(B)",
                text,
                fencedAt.map { $0 < answer.sentAt } ?? false,
                at: answer.receivedAt
            )
        }
        // The heartbeat matrix as evidence: A's answer on B carries C's view of B (from C's record) and says
        // `isolated` (B's API answers). C's record catches up within an interval or two.
        var matrix: DrillAnswer?
        let matrixDeadline = clock.now + 3 * timing.interval + 2
        while clock.now < matrixDeadline {
            let answer = try await poller.get(a, "/v1/peers/\(b.ip)")
            matrix = answer
            let views = answer.json["views"] as? [[String: Any]] ?? []
            if views.contains(where: { $0["host"] as? String == c.ip && ["dead", "isolated"].contains($0["verdict"] as? String ?? "") }) {
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        if let matrix {
            let views = (matrix.json["views"] as? [[String: Any]] ?? []).map {
                "\($0["host"] as? String ?? "?") says \($0["verdict"] as? String ?? "?")"
            }
            let cSays = (matrix.json["views"] as? [[String: Any]] ?? []).first { $0["host"] as? String == c.ip }?["verdict"]
                as? String
            timeline.check(
                "A: CheckOnHost(B), heartbeat matrix",
                "\(verdictText(matrix)); other hosts' records on B: \(views.isEmpty ? "none" : views.joined(separator: ", "))",
                verdict(matrix) == "isolated" && ["dead", "isolated"].contains(cSays ?? ""),
                at: matrix.receivedAt
            )
        }
        // B, cut from storage, must not condemn anyone.
        for peer in [a, c] {
            let answer = try await poller.get(b, "/v1/peers/\(peer.ip)")
            timeline.check(
                "B (no storage): CheckOnHost(\(peer.letter))",
                verdictText(answer),
                verdict(answer) == "unknown"
            )
        }
    }

    // MARK: Conflicts

    func checkNoConflicts(on hosts: [DrillHost]) async throws {
        for host in hosts {
            let answer = try await poller.get(host, "/v1/conflicts")
            if answer.routeMissing {
                timeline.skip(
                    "\(host.letter): conflicts (GET /v1/conflicts)",
                    because: "this daemon has no GET /v1/conflicts yet (404 not-found)"
                )
                continue
            }
            let conflicts = answer.json["conflicts"] as? [[String: Any]]
            timeline.check(
                "\(host.letter): conflicts (GET /v1/conflicts)",
                conflictsText(answer),
                answer.ok && conflicts?.isEmpty == true
            )
        }
    }

    func showConflicts(on hosts: [DrillHost], expectation: String) async throws {
        for host in hosts {
            let answer = try await poller.get(host, "/v1/conflicts")
            if answer.routeMissing {
                timeline.skip(
                    "\(host.letter): conflicts (GET /v1/conflicts)",
                    because: "this daemon has no GET /v1/conflicts yet (404 not-found)"
                )
                continue
            }
            timeline.record(
                "\(host.letter): conflicts (GET /v1/conflicts), \(expectation)",
                conflictsText(answer),
                .info
            )
        }
    }

    /// Every one of B's VMs is a split-brain conflict naming B and C.
    func splitBrainCovers(_ answer: DrillAnswer) -> Bool {
        guard answer.ok, let conflicts = answer.json["conflicts"] as? [[String: Any]] else { return false }
        return b.vms.allSatisfy { vm in
            conflicts.contains { conflict in
                guard conflict["kind"] as? String == "split-brain", let subject = conflict["vm"] as? [String: Any]
                else { return false }
                let sameVM =
                    (subject["uuid"] as? String)?.lowercased() == vm.uuid.lowercased()
                    || subject["name"] as? String == vm.name
                let hosts = Set(conflict["hosts"] as? [String] ?? [])
                return sameVM && hosts.isSuperset(of: [b.ip, c.ip])
            }
        }
    }

    func conflictsText(_ answer: DrillAnswer) -> String {
        guard answer.ok, let conflicts = answer.json["conflicts"] as? [[String: Any]] else { return answer.problem }
        if conflicts.isEmpty { return "none" }
        return conflicts.map { conflict in
            let vm = (conflict["vm"] as? [String: Any])?["name"] as? String ?? "-"
            let hosts = (conflict["hosts"] as? [String] ?? []).map(letter).joined(separator: "+")
            return "\(conflict["kind"] as? String ?? "?") \(vm) on \(hosts)"
        }.joined(separator: "; ")
    }

    // MARK: Reconcile

    func reconcileBody(host: String?, running: [DrillVM]) -> [String: Any] {
        [
            "host": host ?? NSNull(),
            "vms": running.map { ["uuid": $0.uuid, "name": $0.name, "state": "Running"] },
        ]
    }

    func isClean(_ answer: DrillAnswer) -> Bool {
        guard answer.ok, let mismatches = answer.json["mismatches"] as? [Any] else { return false }
        return mismatches.isEmpty && answer.json["checked"] as? Int == answer.json["matched"] as? Int
    }

    /// Every one of B's VMs is `running-on-several-hosts`, seen running on B (alive) as well as on C.
    func severalHosts(_ answer: DrillAnswer) -> Bool {
        guard answer.ok, let mismatches = answer.json["mismatches"] as? [[String: Any]] else { return false }
        return b.vms.allSatisfy { vm in
            mismatches.contains { mismatch in
                mismatch["name"] as? String == vm.name && mismatch["kind"] as? String == "running-on-several-hosts"
                    && (mismatch["elsewhere"] as? [[String: Any]] ?? []).contains {
                        $0["host"] as? String == b.ip && $0["hostVerdict"] as? String == "alive"
                    }
            }
        }
    }

    /// No other host runs the VM: `elsewhere` is empty or lists it only in states that hold no disks, or on dead hosts.
    func runsNowhereElse(_ mismatch: [String: Any]) -> Bool {
        let elsewhere = mismatch["elsewhere"] as? [[String: Any]] ?? []
        return elsewhere.allSatisfy { sighting in
            sighting["hostVerdict"] as? String == "dead"
                || ["shutoff", "crashed", "nostate"].contains(sighting["state"] as? String ?? "")
        }
    }

    func reconcileText(_ answer: DrillAnswer) -> String {
        guard answer.ok else { return answer.problem }
        let checked = answer.json["checked"] as? Int ?? -1
        let matched = answer.json["matched"] as? Int ?? -1
        let mismatches = answer.json["mismatches"] as? [[String: Any]] ?? []
        var text = "\(matched)/\(checked) match, verdict on host \(answer.json["hostVerdict"] as? String ?? "?")"
        if mismatches.isEmpty { return text + ", no mismatch" }
        let kinds = Dictionary(grouping: mismatches) { $0["kind"] as? String ?? "?" }
        text +=
            ", mismatches: "
            + kinds.keys.sorted().map { kind in
                let names = kinds[kind]!.map { mismatch -> String in
                    let name = mismatch["name"] as? String ?? "?"
                    let elsewhere = (mismatch["elsewhere"] as? [[String: Any]] ?? []).map {
                        "\(letter($0["host"] as? String ?? "?")) \($0["state"] as? String ?? "?")/\($0["hostVerdict"] as? String ?? "?")"
                    }
                    return elsewhere.isEmpty ? name : "\(name) [also on \(elsewhere.joined(separator: ", "))]"
                }
                return "\(kind): \(names.joined(separator: ", "))"
            }.joined(separator: "; ")
        return text
    }

    // MARK: Reading answers

    func verdict(_ answer: DrillAnswer) -> String? {
        answer.ok ? nested(answer.json, "overall", "verdict") : nil
    }

    func verdictText(_ answer: DrillAnswer) -> String {
        guard answer.ok, let overall = answer.json["overall"] as? [String: Any] else { return answer.problem }
        var text = "\(overall["verdict"] as? String ?? "?") (\(overall["reasonCode"] as? String ?? "?")"
        if let since = overall["secondsSinceChange"] as? Double {
            text += String(format: ", record last changed %.1f s ago", since)
        }
        text += ")"
        if let api = answer.json["api"] as? [String: Any] {
            text += ", API \(api["state"] as? String ?? "?")"
            if let error = api["error"] as? String { text += " (\(error))" }
        }
        if let notes = answer.json["notes"] as? [String], !notes.isEmpty {
            text += ", notes: \(notes.joined(separator: "; "))"
        }
        return text
    }

    /// Alive by storage, API unreachable, and a note that says the network is cut.
    func saysNetworkCut(_ answer: DrillAnswer) -> Bool {
        guard verdict(answer) == "alive", nested(answer.json, "api", "state") == "unreachable" else { return false }
        return (answer.json["notes"] as? [String] ?? []).contains { $0.lowercased().contains("network") }
    }

    func activityText(_ answer: DrillAnswer) -> String {
        guard answer.ok else { return answer.problem }
        var text = "\(answer.json["activity"] as? String ?? "?") (\(answer.json["reasonCode"] as? String ?? "?")"
        if let age = answer.json["heartbeatAgeSeconds"] as? Int { text += ", heartbeat \(age) s old" }
        if let newest = answer.json["newestVolumeMtime"] as? Int, let compared = answer.json["comparedWith"] as? Int {
            text += ", newest volume mtime \(newest) compared with \(compared)"
        }
        return text + "), verdict on B \(answer.json["hostVerdict"] as? String ?? "none")"
    }

    func runningNames(_ answer: DrillAnswer) -> Set<String> {
        guard answer.ok, let vms = answer.json["vms"] as? [[String: Any]] else { return [] }
        return Set(vms.filter { $0["state"] as? String == "running" }.compactMap { $0["name"] as? String })
    }

    func sorted(_ names: Set<String>) -> String { names.sorted().joined(separator: ", ") }

    func letter(_ ip: String) -> String { lab.hosts.first { $0.ip == ip }?.letter ?? ip }

    /// Calls `attempt` every `every` seconds until it returns a value or `seconds` have passed (then nil).
    func poll<T>(every: Double, for seconds: Double, _ attempt: () async throws -> T?) async throws -> T? {
        let deadline = clock.now + seconds
        while true {
            if let value = try await attempt() { return value }
            if clock.now >= deadline { return nil }
            try await Task.sleep(for: .milliseconds(Int(every * 1000)))
        }
    }
}

func nested(_ object: [String: Any], _ first: String, _ second: String) -> String? {
    (object[first] as? [String: Any])?[second] as? String
}
