import Foundation
import Libvirt
import Testing

/// Lifecycle events and reconnection against a real libvirtd of the suite's own
/// (Tests/Harness/libvirt/run-libvirtd.sh), with `virsh` as a second client that changes state.
@Suite("libvirtd: lifecycle events and reconnect")
struct LibvirtdEventTests {
    static let eventDomainUUID = "0b7d9a51-2c3e-4f60-8a1b-9c2d3e4f5a6b"
    static let eventDomainName = "i-7-42-VM"

    @Test("state changes made by another client arrive as lifecycle events; libvirtd stopping closes the connection")
    func lifecycleEventsFromAnotherClient() async throws {
        try await withLibvirtd { daemon in
            let uri = daemon.uri
            let connection = try await runOnThread("open \(uri)") { try LibvirtConnection(uri: uri) }
            defer { connection.close() }
            let (closeReasons, closeContinuation) = AsyncStream.makeStream(of: String.self)
            connection.onClose { reason in
                closeContinuation.yield(reason)
                closeContinuation.finish()
            }
            let closes = await EventLog.collecting(closeReasons)
            let events = await EventLog.collecting(try connection.lifecycleEvents())

            let uuid = Self.eventDomainUUID
            let name = Self.eventDomainName
            let steps:
                [(command: [String], kind: DomainEventKind, detail: String, state: DomainState?, reason: String)] = [
                    (["define", HarnessFiles.path("event-domain.xml")], .defined, "added", .shutoff, "unknown"),
                    (["start", name], .started, "booted", .running, "booted"),
                    (["suspend", name], .suspended, "paused", .paused, "user"),
                    (["resume", name], .resumed, "unpaused", .running, "unpaused"),
                    (["destroy", name], .stopped, "destroyed", .shutoff, "destroyed"),
                    (["undefine", name], .undefined, "removed", nil, ""),
                ]
            for step in steps {
                _ = try await run("/usr/bin/virsh", ["--quiet", "-c", uri] + step.command)
                let event = try await events.next("\(step.kind) event after virsh \(step.command[0])") {
                    $0.uuid == uuid && $0.kind == step.kind
                }
                #expect(event == DomainLifecycleEvent(uuid: uuid, name: name, kind: step.kind, detail: event.detail))
                #expect(event.detailName == step.detail)

                let domain = try await runOnThread("read \(name)") { try connection.domain(uuid: uuid) }
                #expect(domain?.state == step.state, "after virsh \(step.command[0])")
                if let domain, let state = step.state {
                    #expect(domain.name == name)
                    #expect(domain.reason == step.reason, "after virsh \(step.command[0])")
                    #expect(domain.id == nil || state != .shutoff)
                    let virshState = try await virsh(uri, "domstate", "--reason", name)
                    #expect(
                        virshState.trimmingCharacters(in: .whitespacesAndNewlines)
                            == "\(state.virshName) (\(step.reason))"
                    )
                }
            }
            let sequence = await events.all.filter { $0.uuid == uuid }.map { "\($0.kind.rawValue)/\($0.detailName)" }
            #expect(
                sequence == [
                    "defined/added", "started/booted", "suspended/paused", "resumed/unpaused", "stopped/destroyed",
                    "undefined/removed",
                ]
            )

            // libvirtd going away: the close callback names the reason, the event stream finishes.
            await daemon.stop()
            let reason = try await closes.next("close callback after SIGTERM to libvirtd") { _ in true }
            #expect(!reason.isEmpty)
            try await events.waitForEnd("lifecycle stream after libvirtd stopped")
            #expect(!connection.isAlive)
        }
    }

    @Test("a lifecycle stream that is dropped deregisters; close() finishes the others")
    func streamTerminationAndClose() async throws {
        try await withLibvirtd { daemon in
            let uri = daemon.uri
            let connection = try await runOnThread("open \(uri)") { try LibvirtConnection(uri: uri) }
            defer { connection.close() }
            let dropped = await EventLog.collecting(try connection.lifecycleEvents())
            let kept = await EventLog.collecting(try connection.lifecycleEvents())
            await dropped.stop()  // cancels its consumer: the stream terminates and deregisters
            try await dropped.waitForEnd("dropped stream")

            _ = try await virsh(uri, "suspend", "test")
            let event = try await kept.next("suspended event on the kept stream") { $0.name == "test" }
            #expect(event.kind == .suspended)

            try await runOnThread("close") { connection.close() }
            try await kept.waitForEnd("kept stream after close()")
            #expect(await dropped.all.isEmpty)
        }
    }

    @Test("LibvirtSession reports disconnected when libvirtd stops, reconnects when it is back, events flow again")
    func sessionReconnectsAfterRestart() async throws {
        try await withLibvirtd { daemon in
            let session = LibvirtSession(
                uri: daemon.uri,
                backoff: ReconnectBackoff(initial: .milliseconds(50), multiplier: 2, maximum: .milliseconds(400))
            )
            defer { session.stop() }
            let log = await EventLog.collecting(session.events())
            session.start()

            try await log.next("first connect") { $0 == .connected }
            #expect(session.state.isConnected)
            #expect(try await session.domains().map(\.name) == ["test"])
            _ = try await virsh(daemon.uri, "suspend", "test")
            let suspended = try await log.next("suspended event") { Self.isEvent($0, .suspended, on: "test") }
            #expect(suspended != .connected)
            #expect(try await session.domains().first?.state == .paused)

            await daemon.stop()
            let lost = try await log.next("disconnected after SIGTERM") {
                if case .disconnected = $0 { true } else { false }
            }
            guard case .disconnected(let reason) = lost else {
                Issue.record("expected .disconnected, got \(lost)")
                return
            }
            #expect(!reason.isEmpty)
            guard case .disconnected(let since, _) = session.state else {
                Issue.record("state is \(session.state) while libvirtd is down")
                return
            }
            #expect(since <= Date())
            let refused = await #expect(throws: LibvirtError.self) { try await session.domains() }
            #expect(refused?.code == 5, "VIR_ERR_NO_CONNECT while disconnected: \(String(describing: refused))")

            try await daemon.start()
            try await log.next("reconnected after libvirtd restart") { $0 == .connected }
            #expect(session.state.isConnected)
            // A fresh libvirtd: the test driver's state starts over, so the resync shows `test` running again.
            #expect(try await session.domains().map(\.state) == [.running])
            _ = try await virsh(daemon.uri, "suspend", "test")
            try await log.next("event after reconnect") { Self.isEvent($0, .suspended, on: "test") }

            session.stop()
            try await log.waitForEnd("session events after stop()")
        }
    }

    @Test("LibvirtSession keeps retrying while libvirtd is not there yet, then connects")
    func sessionConnectsWhenLibvirtdAppears() async throws {
        let daemon = try LibvirtdSandbox.make()
        let session = LibvirtSession(
            uri: daemon.uri,
            backoff: ReconnectBackoff(initial: .milliseconds(20), multiplier: 2, maximum: .milliseconds(200))
        )
        let log = await EventLog.collecting(session.events())
        do {
            session.start()
            let first = try await log.next("initial state") { _ in true }
            #expect(first == .disconnected(reason: "not connected yet"))
            #expect(!session.state.isConnected)
            try await daemon.start()
            try await log.next("connected once libvirtd runs") { $0 == .connected }
            if case .connected = session.state {} else { Issue.record("state \(session.state)") }
            session.stop()
            try await log.waitForEnd("session events after stop()")
            await daemon.destroy()
        } catch {
            session.stop()
            await daemon.destroy()
            throw error
        }
    }

    static func isEvent(_ event: LibvirtSessionEvent, _ kind: DomainEventKind, on name: String) -> Bool {
        if case .domainEvent(let lifecycle) = event {
            return lifecycle.name == name && lifecycle.kind == kind
        }
        return false
    }
}
