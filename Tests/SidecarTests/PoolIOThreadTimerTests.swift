import Foundation
import HeartbeatCore
import Logging
import Sidecar
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `PoolIOThread`'s timers and its timerfd watchdog, and the writer's beats that ride on them: pure thread
/// logic, with a backend whose calls block until the test opens its gate (`GatedPoolFiles`, a hung mount; the
/// process tests show the same with a frozen FUSE file system).
@Suite("Pool I/O thread: timers and the watchdog")
struct PoolIOThreadTimerTests {
    @Test("a timer runs on the pool thread, not before it is due; a cancelled one never runs")
    func timerRunsWhenDue() async throws {
        let folder = try TemporaryFolder(prefix: "kvmha-timer")
        let root = folder.path
        let thread = PoolIOThread(name: "timer-test") { DirectoryPoolFiles(root: root) }
        defer { thread.stop() }
        let due = ContinuousClock.now + .milliseconds(30)
        let poolThread = try await thread.run("whoami", timeout: .seconds(5)) { _ throws(PoolIOError) in ThreadID.current }
        let ran = Signal<(ContinuousClock.Instant, ThreadID)>()
        let cancelled = Mutex(false)
        let cancelledID = thread.scheduleTimer(at: due, { cancelled.withLock { $0 = true } }, orphaned: {})
        thread.cancelTimer(cancelledID)
        thread.scheduleTimer(
            at: due + .milliseconds(10),
            { ran.send((.now, ThreadID.current)) }, orphaned: {})
        let (at, ranOn) = try await ran.wait("timer")
        #expect(at >= due + .milliseconds(10))
        #expect(ranOn == poolThread)
        #expect(cancelled.withLock { $0 } == false)
    }

    @Test("a call blocked past its deadline: its caller gets timedOut, new calls are refused as stuck, a due timer still runs")
    func blockedCall() async throws {
        let folder = try TemporaryFolder(prefix: "kvmha-timer")
        let root = folder.path
        let gate = StorageGate()
        gate.close()
        let thread = PoolIOThread(name: "blocked-test") { GatedPoolFiles(root: root, gate: gate) }
        defer {
            gate.open()
            thread.stop()
        }
        let start = ContinuousClock.now
        // The watchdog delivers the timeout: remember its thread.
        let outcome: (result: Result<Int, PoolCallError>, thread: ThreadID) = await withCheckedContinuation { continuation in
            thread.submit("blocked read", timeout: .milliseconds(100), { files throws(PoolIOError) in
                _ = try files.read("x", maxBytes: 10)
                return 1
            }) { continuation.resume(returning: ($0, ThreadID.current)) }
        }
        let blockedThread = Box(outcome.thread)
        guard case .failure(.timedOut(let operation, _)) = outcome.result else {
            Issue.record("expected timedOut, got \(outcome.result)")
            return
        }
        #expect(operation == "blocked read")
        #expect(start.duration(to: .now) >= .milliseconds(100))
        #expect(thread.stuckSince != nil)

        let refused: Result<Int, PoolCallError> = await withCheckedContinuation { continuation in
            thread.submit("next", timeout: .seconds(5), { _ throws(PoolIOError) in 2 }) { continuation.resume(returning: $0) }
        }
        guard case .failure(.stuck(let blockedOperation, _)) = refused else {
            Issue.record("expected stuck, got \(refused)")
            return
        }
        #expect(blockedOperation == "blocked read")

        // The worker is still blocked: the watchdog runs the timer (it is the thread that reported the timeout).
        let ran = Signal<ThreadID>()
        thread.scheduleTimer(at: .now + .milliseconds(20), { ran.send(ThreadID.current) }, orphaned: {})
        #expect(try await ran.wait("timer while blocked") == blockedThread.value)

        // Released, the pool thread answers again.
        gate.open()
        let answer = try await runUntilAnswered(thread)
        #expect(answer == 3)
    }

    @Test("stopping the thread hands pending timers back (orphaned), also those scheduled after the stop")
    func orphanedOnStop() async throws {
        let folder = try TemporaryFolder(prefix: "kvmha-timer")
        let root = folder.path
        let thread = PoolIOThread(name: "stop-test") { DirectoryPoolFiles(root: root) }
        let orphaned = Mutex(0)
        let ran = Mutex(0)
        thread.scheduleTimer(at: .now + .seconds(60), { ran.withLock { $0 += 1 } }, orphaned: { orphaned.withLock { $0 += 1 } })
        thread.stop()
        #expect(orphaned.withLock { $0 } == 1)
        thread.scheduleTimer(at: .now, { ran.withLock { $0 += 1 } }, orphaned: { orphaned.withLock { $0 += 1 } })
        #expect(orphaned.withLock { $0 } == 2)
        #expect(ran.withLock { $0 } == 0)
    }

    @Test("beats go on landing on the other pool while the pool that holds the writer's timer is blocked")
    func beatsWhileTimerPoolBlocked() async throws {
        let gate = StorageGate()
        gate.close()
        let folder = try TemporaryFolder(prefix: "kvmha-timer-b")
        let root = folder.path
        let blockedFolder = try TemporaryFolder(prefix: "kvmha-timer-a")
        let blockedRoot = blockedFolder.path
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        // Pools are sorted by id: "a" (blocked) holds the writer's timer.
        let blocked = Pool(id: "a", location: blockedRoot, ioTimeout: .milliseconds(80), logger: logger) {
            GatedPoolFiles(root: blockedRoot, gate: gate)
        }
        let healthy = Pool(id: "b", location: root, ioTimeout: .milliseconds(80), logger: logger) {
            DirectoryPoolFiles(root: root)
        }
        var timing = TimingSettings()
        timing.interval = .milliseconds(100)
        timing.ioTimeout = .milliseconds(80)
        let landed = Signal<Int>()
        let count = Mutex(0)
        let identity = HostIdentity(address: HostAddress("10.0.0.1")!, hostUUID: "u", bootID: "b", incarnation: "i")
        let writer = BeatWriter(
            identity: identity, pools: [blocked, healthy], timing: timing, logger: logger,
            onRound: { round in
                guard round.succeeded == ["b"], round.failed["a"] != nil else { return }
                let now = count.withLock { value -> Int in
                    value += 1
                    return value
                }
                if now == 5 { landed.send(now) }
            })
        let running = Task { try await writer.run() }
        defer {
            running.cancel()
            gate.open()
            blocked.stop()
            healthy.stop()
        }
        #expect(try await landed.wait("five beats on b with a blocked") == 5)
        let record = try folder.record(of: identity.address)
        #expect(record.sequence >= 5)
    }

    /// Submits until the thread answers (it refuses as stuck until the blocked call has returned).
    private func runUntilAnswered(_ thread: PoolIOThread) async throws -> Int {
        let deadline = ContinuousClock.now + hangDeadline
        while ContinuousClock.now < deadline {
            do {
                return try await thread.run("after release", timeout: .seconds(5)) { _ throws(PoolIOError) in 3 }
            } catch .stuck {
                await Task.yield()
            } catch {
                throw error
            }
        }
        throw DeadlineExceeded(what: "pool thread after release", after: hangDeadline)
    }
}

/// Which thread runs this: the kernel's thread id (`/proc/thread-self`).
struct ThreadID: Equatable, Sendable {
    let tid: String
    static var current: ThreadID {
        ThreadID(tid: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")) ?? "?")
    }
}

struct Box<T: Sendable>: Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// A one-shot value that a test awaits; the wait fails after `hangDeadline` instead of hanging.
final class Signal<T: Sendable>: @unchecked Sendable {  // `value` is guarded by `condition`
    private let condition = NSCondition()
    private var value: T?

    func send(_ value: T) {
        condition.lock()
        if self.value == nil { self.value = value }
        condition.broadcast()
        condition.unlock()
    }

    func wait(_ what: String) async throws -> T {
        try await runOnThread(what) { [self] in
            let limit = Date().addingTimeInterval(Double(hangDeadline.components.seconds))
            condition.lock()
            defer { condition.unlock() }
            while value == nil {
                if !condition.wait(until: limit) { break }
            }
            guard let value else { throw DeadlineExceeded(what: what, after: hangDeadline) }
            return value
        }
    }
}
