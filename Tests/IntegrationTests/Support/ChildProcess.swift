import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A program a test runs (typically `kvmha serve`), with its stdout and stderr captured line by line.
///
/// The program runs in a process group of its own with stdin from /dev/null and default signal
/// handling. Two threads read its output and one waits for its exit, so waiting for a line or for
/// the exit is an event, not a poll. Dropping the last reference SIGKILLs the whole group (the
/// program and anything it left behind), so a failing test leaks no processes; tests should still
/// stop their daemons explicitly.
///
/// The exited process stays a zombie until then: its pid, which is also the group's id, cannot be
/// reused meanwhile (pid_max is small on these machines), so signalling the group never reaches
/// an unrelated one.
///
/// Spawned with `posix_spawn` rather than Foundation's `Process`, which cannot start a process group
/// or pick the signal dispositions the child inherits.
final class ChildProcess: Sendable {
    enum ExitStatus: Sendable, Hashable, CustomStringConvertible {
        case exited(Int32)
        case signaled(Int32)
        /// Reaped by someone else (a `waitpid(-1)` elsewhere in the test process).
        case unknown

        /// The shell's convention: the exit code, or 128 + the signal number, or -1.
        var code: Int32 {
            switch self {
            case .exited(let code): code
            case .signaled(let signal): 128 + signal
            case .unknown: -1
            }
        }

        var description: String {
            switch self {
            case .exited(let code): "exit code \(code)"
            case .signaled(let signal): "killed by signal \(signal) (\(String(cString: strsignal(signal))))"
            case .unknown: "exit status unknown (reaped elsewhere)"
            }
        }
    }

    /// Names the process in errors and diagnostics.
    let label: String
    /// The program's pid. With `withFakeTime`, the program that faketime forked, not faketime.
    let pid: pid_t
    /// The process group of everything launched; its leader is the launched process.
    let processGroup: pid_t
    private let output: Locked<OutputState>

    /// Starts `executable` (an absolute path) with `arguments`.
    ///
    /// - Parameters:
    ///   - environment: variables set for the child, over the test process's own environment
    ///     unless `inheritEnvironment` is false.
    ///   - label: names the process in errors; defaults to the executable's file name.
    convenience init(
        executable: URL,
        arguments: [String] = [],
        environment: [String: String] = [:],
        inheritEnvironment: Bool = true,
        workingDirectory: URL? = nil,
        label: String? = nil
    ) throws {
        try self.init(
            launching: executable,
            arguments: arguments,
            environment: environment,
            inheritEnvironment: inheritEnvironment,
            workingDirectory: workingDirectory,
            label: label ?? executable.lastPathComponent,
            programIsForked: false
        )
    }

    /// Starts `executable` under `faketime -f OFFSET`, which shifts `CLOCK_REALTIME` (`Date()`) but,
    /// with `FAKETIME_DONT_FAKE_MONOTONIC=1`, not the monotonic clocks.
    ///
    /// libfaketime 0.9.10 still shifts absolute deadlines of monotonic timerfds, so libdispatch's
    /// timers (and `Task.sleep`) would never fire; a small library built by
    /// scripts/install-test-deps.sh is preloaded first to keep it away from monotonic timers.
    ///
    /// faketime forks the program and waits for it without forwarding signals, so `pid` and
    /// `kill(signal:)` address the forked program; faketime exits with the program's exit code
    /// (1 if the program was killed by a signal), and that is what `waitForExit` reports.
    static func withFakeTime(
        offset: String = "+1h",
        executable: URL,
        arguments: [String] = [],
        environment: [String: String] = [:],
        workingDirectory: URL? = nil,
        label: String? = nil
    ) throws -> ChildProcess {
        guard let faketime = findExecutable("faketime") else {
            throw HarnessError("faketime is not installed — \(HarnessError.installHint)")
        }
        let fix = RepositoryPaths.faketimeMonotonicFix
        guard access(fix.path, R_OK) == 0 else {
            throw HarnessError("\(fix.path) is missing — \(HarnessError.installHint)")
        }
        var environment = environment
        environment["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
        // faketime appends libfaketime to LD_PRELOAD, so the fix's definitions come first.
        let preload = environment["LD_PRELOAD"] ?? ProcessInfo.processInfo.environment["LD_PRELOAD"]
        environment["LD_PRELOAD"] = ([fix.path] + (preload.map { [$0] } ?? [])).joined(separator: ":")
        return try ChildProcess(
            launching: faketime,
            arguments: ["-f", offset, executable.path] + arguments,
            environment: environment,
            inheritEnvironment: true,
            workingDirectory: workingDirectory,
            label: label ?? "\(executable.lastPathComponent) (faketime \(offset))",
            programIsForked: true
        )
    }

    private init(
        launching executable: URL,
        arguments: [String],
        environment: [String: String],
        inheritEnvironment: Bool,
        workingDirectory: URL?,
        label: String,
        programIsForked: Bool
    ) throws {
        var fullEnvironment = inheritEnvironment ? ProcessInfo.processInfo.environment : [:]
        fullEnvironment.merge(environment) { _, new in new }

        let spawned = try ProcessSpawner.spawn(
            path: executable.path,
            arguments: arguments,
            environment: fullEnvironment,
            workingDirectory: workingDirectory?.path
        )
        self.label = label
        self.processGroup = spawned.pid
        let output = Locked(OutputState(label: label))
        self.output = output

        Self.startReader(fd: spawned.stdout, source: .stdout, output: output, label: label)
        Self.startReader(fd: spawned.stderr, source: .stderr, output: output, label: label)
        Self.startReaper(pid: spawned.pid, output: output, label: label)

        self.pid = programIsForked ? Self.forkedChild(of: spawned.pid, output: output) : spawned.pid
    }

    deinit {
        let processGroup = processGroup
        output.withLock { state in
            // Safe even after the exit: the unreaped leader keeps the group's id ours.
            Glibc.kill(-processGroup, SIGKILL)
            state.released = true
            if state.exitStatus != nil {
                Self.reap(processGroup)
            }  // else the waiter thread reaps it when the SIGKILL lands
        }
    }

    // MARK: State

    /// Whether the launched process has not exited yet.
    var isRunning: Bool {
        output.withLock { $0.exitStatus == nil }
    }

    /// How the launched process ended, once it has.
    var exitStatus: ExitStatus? {
        output.withLock { $0.exitStatus }
    }

    // MARK: Signals

    /// Sends `signal` to the program (`pid`), if it is still running.
    func kill(signal: Int32 = SIGKILL) {
        guard isRunning else { return }
        Glibc.kill(pid, signal)
    }

    /// Sends `signal` to every process in the group (the program, faketime, anything they started),
    /// also after the program itself has exited.
    func killProcessGroup(signal: Int32 = SIGKILL) {
        Glibc.kill(-processGroup, signal)
    }

    // MARK: Output

    /// Number of lines so far; pass it as `after:` to wait only for lines that come later.
    var lineCount: Int {
        output.withLock { $0.lines.count }
    }

    /// All lines so far, both streams, in the order they arrived.
    func lines() -> [String] {
        output.withLock { $0.lines.map(\.text) }
    }

    /// Lines from index `mark` on, optionally of one stream only.
    func lines(after mark: Int, source: OutputLine.Source? = nil) -> [String] {
        output.withLock { state in
            state.lines.dropFirst(mark).filter { source == nil || $0.source == source }.map(\.text)
        }
    }

    func outputLines() -> [OutputLine] {
        output.withLock { $0.lines }
    }

    func lastLines(_ count: Int = 50) -> [String] {
        output.withLock { $0.tail(count) }
    }

    /// Everything the process wrote, one `[stdout] …`/`[stderr] …` line each, plus its exit status:
    /// print it when a test fails.
    var transcript: String {
        output.withLock { state in
            let status = state.exitStatus.map { "\($0)" } ?? "running"
            return (["--- \(label) (pid \(pid), \(status)) ---"] + state.lines.map(\.description)).joined(
                separator: "\n"
            )
        }
    }

    // MARK: Waiting

    /// Waits for a line matching `pattern` among the lines with index ≥ `mark` (all lines if nil)
    /// and returns it. Fails as soon as the process has exited and its output ended without one, or
    /// after `timeout` (a hang guard, not a timing assertion), with the last 50 lines in the error.
    @discardableResult
    func waitForLine(
        matching pattern: LinePattern,
        after mark: Int? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> String {
        try await waitForOutputLine(matching: pattern, after: mark, timeout: timeout).text
    }

    /// `waitForLine` for a substring held in a variable (a literal already works as a pattern).
    @discardableResult
    func waitForLine(
        containing text: String,
        after mark: Int? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> String {
        try await waitForLine(matching: .substring(text), after: mark, timeout: timeout)
    }

    /// As `waitForLine`, returning the line with its index and stream.
    func waitForOutputLine(
        matching pattern: LinePattern,
        after mark: Int? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> OutputLine {
        let resolution = try await waitFor(
            .line(pattern, from: mark ?? 0),
            timeout: timeout,
            timeoutProblem: "no line matching \(pattern) within \(timeout)"
        )
        guard case .line(let line) = resolution else { preconditionFailure("a line wait resolved with \(resolution)") }
        return line
    }

    /// Waits until the launched process has exited and its output is drained (unless processes it
    /// left behind keep the pipes open); returns `ExitStatus.code` (exit code, or 128 + signal).
    @discardableResult
    func waitForExit(timeout: Duration = .seconds(30)) async throws -> Int32 {
        try await waitForExitStatus(timeout: timeout).code
    }

    func waitForExitStatus(timeout: Duration = .seconds(30)) async throws -> ExitStatus {
        do {
            let resolution = try await waitFor(
                .exit,
                timeout: timeout,
                timeoutProblem: "still running after \(timeout)"
            )
            guard case .exit(let status) = resolution else {
                preconditionFailure("an exit wait resolved with \(resolution)")
            }
            return status
        } catch let error as HarnessError {
            // Exited, but something it started still holds the output pipes open: the exit is what counts.
            if let status = exitStatus { return status }
            throw error
        }
    }

    /// Blocking form of `waitForOutputLine`, for synchronous callers (never on the cooperative pool
    /// for long).
    func waitForLineBlocking(
        matching pattern: LinePattern,
        after mark: Int? = nil,
        timeout: Duration = .seconds(30)
    ) throws -> OutputLine {
        let matches = pattern.makeMatcher()
        var next = mark ?? 0
        var found: OutputLine?
        var ended = false
        let done = output.wait(until: .now + timeout) { state in
            if let line = state.lines.dropFirst(next).first(where: { matches($0.text) }) {
                found = line
                return true
            }
            next = state.lines.count
            ended = state.openStreams == 0 && state.exitStatus != nil
            return ended
        }
        if done, let found { return found }
        let problem =
            ended ? "output ended before a line matching \(pattern)" : "no line matching \(pattern) within \(timeout)"
        throw output.withLock { $0.failure(problem) }
    }

    /// Blocking form of `waitForExitStatus`; nil if the process is still running after `timeout`.
    func waitForExitBlocking(timeout: Duration = .seconds(30)) -> ExitStatus? {
        let deadline = ContinuousClock.now + timeout
        _ = output.wait(until: deadline) { $0.exitStatus != nil && $0.isDrained }
        return exitStatus
    }

    private func waitFor(
        _ kind: PendingWait.Kind,
        timeout: Duration,
        timeoutProblem: String
    ) async throws -> Resolution {
        let output = self.output
        let id = output.withLock { state in
            defer { state.nextWaitID += 1 }
            return state.nextWaitID
        }
        return try await withHangGuard(timeout, timeoutError: output.withLock { $0.failure(timeoutProblem) }) {
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation {
                    (continuation: CheckedContinuation<Resolution, any Error>) in
                    output.withLock { state in
                        guard !Task.isCancelled else {
                            continuation.resume(throwing: CancellationError())
                            return
                        }
                        state.pending[id] = PendingWait(kind: kind, continuation: continuation)
                        state.resolvePending()
                    }
                }
            } onCancel: {
                output.withLock { state in
                    state.pending.removeValue(forKey: id)?.continuation.resume(throwing: CancellationError())
                }
            }
        }
    }

    // MARK: Helpers for tests

    /// The first executable file named `name` in `PATH`.
    static func findExecutable(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
            if access(candidate.path, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Runs a short command to completion (blocking) and returns its exit status and output lines;
    /// SIGKILLs it and returns nil status if it is still running after `timeout`.
    static func run(
        _ executable: URL,
        _ arguments: [String] = [],
        timeout: Duration = .seconds(10)
    ) throws -> (status: ExitStatus?, lines: [String]) {
        let process = try ChildProcess(executable: executable, arguments: arguments)
        let status = process.waitForExitBlocking(timeout: timeout)
        if status == nil { process.killProcessGroup(signal: SIGKILL) }
        return (status, process.lines())
    }

    // MARK: Threads

    private static func startReader(fd: Int32, source: OutputLine.Source, output: Locked<OutputState>, label: String) {
        let thread = Thread {
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                output.withLock { $0.append(chunk[0..<count], from: source) }
            }
            close(fd)
            output.withLock { $0.finish(source) }
        }
        thread.name = "\(label) \(source)"
        thread.start()
    }

    /// Waits for the exit without reaping (`WNOWAIT`); `deinit` reaps, see the type's comment.
    private static func startReaper(pid: pid_t, output: Locked<OutputState>, label: String) {
        let thread = Thread {
            var info = siginfo_t()
            var result: Int32
            repeat {
                result = waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT)
            } while result < 0 && errno == EINTR
            let exit: ExitStatus
            if result < 0 {
                exit = .unknown
            } else if info.si_code == CLD_EXITED {
                exit = .exited(info._sifields._sigchld.si_status)
            } else {
                exit = .signaled(info._sifields._sigchld.si_status)
            }
            let othersRunning = groupHasOtherLiveMembers(pid)
            output.withLock { state in
                state.exitStatus = exit
                state.othersRunningAtExit = othersRunning
                if state.released {
                    reap(pid)
                }
                state.resolvePending()
            }
        }
        thread.name = "\(label) waiter"
        thread.start()
    }

    private static func reap(_ pid: pid_t) {
        var status: Int32 = 0
        while waitpid(pid, &status, WNOHANG) < 0 && errno == EINTR {}
    }

    /// Whether a process other than the exited leader `group` is still alive in its group (and so
    /// may hold the output pipes open).
    private static func groupHasOtherLiveMembers(_ group: pid_t) -> Bool {
        let processes = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return processes.contains { name in
            guard let pid = pid_t(name), pid != group, let stat = ProcFile.read("/proc/\(pid)/stat"),
                let commandEnd = stat.lastIndex(of: ")")
            else { return false }
            // After the command: state, ppid, pgrp, …
            let fields = stat[stat.index(after: commandEnd)...].split(separator: " ")
            return fields.count > 2 && fields[0] != "Z" && pid_t(fields[2]) == group
        }
    }

    /// The child `parent` forks right after it starts (faketime does), or `parent` if none appears.
    private static func forkedChild(of parent: pid_t, output: Locked<OutputState>) -> pid_t {
        let children = "/proc/\(parent)/task/\(parent)/children"
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if let first = ProcFile.read(children)?.split(separator: " ").first, let child = pid_t(first) {
                return child
            }
            if output.withLock({ $0.exitStatus != nil }) { break }
            usleep(1_000)  // polls a condition; faketime forks within milliseconds
        }
        return parent
    }
}

// MARK: - Output state

extension ChildProcess {
    fileprivate enum Resolution: Sendable {
        case line(OutputLine)
        case exit(ExitStatus)
    }

    fileprivate struct PendingWait {
        enum Kind {
            case line(LinePattern, from: Int)
            case exit
        }

        var kind: Kind
        let continuation: CheckedContinuation<Resolution, any Error>
        /// Built once per wait; see `LinePattern.makeMatcher`.
        let matches: (String) -> Bool
        /// Lines before this index have been looked at already.
        var nextIndex: Int

        init(kind: Kind, continuation: CheckedContinuation<Resolution, any Error>) {
            self.kind = kind
            self.continuation = continuation
            switch kind {
            case .line(let pattern, let from):
                matches = pattern.makeMatcher()
                nextIndex = from
            case .exit:
                matches = { _ in false }
                nextIndex = 0
            }
        }
    }

    /// Everything the threads and waiters share; only touched under the `Locked` lock.
    fileprivate struct OutputState {
        let label: String
        var lines: [OutputLine] = []
        var partial: [OutputLine.Source: [UInt8]] = [:]
        var openStreams = 2
        var exitStatus: ExitStatus?
        /// Processes of the group outlived the leader; they may keep the pipes open indefinitely.
        var othersRunningAtExit = false
        /// The `ChildProcess` is gone; the waiter thread reaps the leader when it exits.
        var released = false
        var pending: [Int: PendingWait] = [:]
        var nextWaitID = 0

        init(label: String) {
            self.label = label
        }

        mutating func append(_ bytes: ArraySlice<UInt8>, from source: OutputLine.Source) {
            var buffer = partial[source, default: []]
            buffer.append(contentsOf: bytes)
            var lineStart = buffer.startIndex
            while let newline = buffer[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
                addLine(buffer[lineStart..<newline], from: source)
                lineStart = newline + 1
            }
            partial[source] = Array(buffer[lineStart...])
            resolvePending()
        }

        mutating func finish(_ source: OutputLine.Source) {
            if let rest = partial.removeValue(forKey: source), !rest.isEmpty {
                addLine(rest[...], from: source)
            }
            openStreams -= 1
            resolvePending()
        }

        private mutating func addLine(_ bytes: ArraySlice<UInt8>, from source: OutputLine.Source) {
            lines.append(OutputLine(index: lines.count, source: source, text: String(decoding: bytes, as: UTF8.self)))
        }

        /// All output of an exited process is in `lines`, or will never come because processes it
        /// left behind hold the pipes.
        var isDrained: Bool {
            openStreams == 0 || othersRunningAtExit
        }

        func tail(_ count: Int) -> [String] {
            lines.suffix(count).map(\.description)
        }

        func failure(_ problem: String) -> HarnessError {
            let status = exitStatus.map { "\($0)" } ?? "still running"
            let shown = tail(50)
            return HarnessError(
                "\(label): \(problem) (\(status)); last \(shown.count) of \(lines.count) lines:\n"
                    + shown.joined(separator: "\n")
            )
        }

        /// Resumes every waiter whose event has happened (or can no longer happen).
        mutating func resolvePending() {
            for id in pending.keys.sorted() {
                guard var wait = pending[id] else { continue }
                switch wait.kind {
                case .line(let pattern, _):
                    if let line = lines.dropFirst(wait.nextIndex).first(where: { wait.matches($0.text) }) {
                        pending[id] = nil
                        wait.continuation.resume(returning: .line(line))
                    } else if openStreams == 0 && exitStatus != nil {
                        pending[id] = nil
                        wait.continuation.resume(throwing: failure("output ended before a line matching \(pattern)"))
                    } else {
                        wait.nextIndex = lines.count
                        pending[id] = wait
                    }
                case .exit:
                    if let exitStatus, isDrained {
                        pending[id] = nil
                        wait.continuation.resume(returning: .exit(exitStatus))
                    }
                }
            }
        }
    }
}
