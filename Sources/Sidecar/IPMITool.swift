import Foundation
public import HeartbeatCore
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Asks a BMC for its chassis power state with `ipmitool -I lanplus … chassis power status`, under a hard
/// deadline.
///
/// ipmitool runs as a child process in a process group of its own, with default signal dispositions (the
/// daemon ignores SIGPIPE, and ignored signals survive exec), no inherited descriptors but its output pipe
/// and the password pipe, and the password read from that pipe (`-f /proc/self/fd/3`) so that it never
/// shows on a command line or touches a disk. When the deadline passes, the group is killed and the BMC
/// counts as unreachable. The waiting is blocking, so it happens on a thread of its own, never on Swift's
/// cooperative pool.
public struct IPMITool: Sendable {
    /// The ipmitool binary; nil when none is installed (every probe then says how to install it).
    public let executable: String?

    public static let installHint = "ipmitool is not installed: `apt install ipmitool`"
    static let maxOutputBytes = 65536
    /// The descriptor the child reads the password from.
    static let passwordDescriptor: Int32 = 3

    public init(executable: String?) {
        self.executable = executable
    }

    /// Finds `ipmitool` on PATH (and the usual sbin directories, which a non-root PATH may lack).
    public static func locate(path: String? = nil) -> IPMITool {
        let path = path ?? ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        for directory in directories where !directory.isEmpty {
            let candidate = directory + "/ipmitool"
            if access(candidate, X_OK) == 0 { return IPMITool(executable: candidate) }
        }
        return IPMITool(executable: nil)
    }

    /// The arguments after the program name; `-v` makes ipmitool say why a session failed.
    static func arguments(_ bmc: BMCSetting, user: String) -> [String] {
        [
            "-I", "lanplus", "-C", "3", "-N", "1", "-R", "1", "-v", "-H", bmc.address, "-p", String(bmc.port),
            "-U", user, "-f", "/proc/self/fd/\(passwordDescriptor)", "chassis", "power", "status",
        ]
    }

    /// One probe, on a thread of its own. Cancelling the task kills ipmitool at once.
    public func probe(_ bmc: BMCSetting, credentials: BMCCredentials) async -> BMCPowerReading {
        guard let executable else { return .error(Self.installHint) }
        let run = ProbeRun()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<BMCPowerReading, Never>) in
                let thread = Thread {
                    continuation.resume(
                        returning: Self.runBlocking(executable, bmc: bmc, credentials: credentials, run: run))
                }
                thread.name = "kvmha-ipmitool"
                thread.start()
            }
        } onCancel: {
            run.cancel()
        }
    }

    /// What a finished ipmitool said: its exit status (nil when we killed it at the deadline) and output.
    static func reading(exitCode: Int32?, output: String, bmc: BMCSetting, user: String) -> BMCPowerReading {
        guard let exitCode else {
            return .unreachable("no answer from \(bmc.address):\(bmc.port) within \(DurationText.format(bmc.timeout))")
        }
        let lines = output.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        if exitCode == 0 {
            if lines.contains("Chassis Power is on") { return .on }
            if lines.contains("Chassis Power is off") { return .off }
            return .error("unexpected answer from ipmitool: \(Self.summary(lines))")
        }
        func contains(_ text: String) -> Bool { lines.contains { $0.contains(text) } }
        if contains("Get Auth Capabilities error") || contains("No response") || contains("Insufficient resources")
            || contains("Unable to send")
        {
            return .unreachable("no answer from \(bmc.address):\(bmc.port) (ipmitool: \(Self.summary(lines)))")
        }
        if contains("RAKP 2 HMAC is invalid") || contains("invalid integrity check value") {
            return .error("authentication failed: wrong password for user '\(user)' (ipmitool: \(Self.summary(lines)))")
        }
        if contains("unauthorized name") {
            return .error("authentication failed: the BMC has no user '\(user)' (ipmitool: \(Self.summary(lines)))")
        }
        if contains("Address lookup for") {
            return .error("cannot resolve \(bmc.address) (ipmitool: \(Self.summary(lines)))")
        }
        return .error("ipmitool exited with \(exitCode): \(Self.summary(lines))")
    }

    /// The lines that say something, without ipmitool's `-v` chatter; short enough for a JSON field.
    static func summary(_ lines: [String]) -> String {
        let chatter = ["Loading IANA PEN Registry", "Running Get VSO Capabilities", "Discovered IPMB address"]
        let meaningful = lines.filter { line in !line.isEmpty && !chatter.contains { line.hasPrefix($0) } }
        guard !meaningful.isEmpty else { return "no output" }
        let text = meaningful.suffix(3).joined(separator: "; ")
        return text.count > 300 ? String(text.prefix(300)) + "…" : text
    }

    // MARK: The child process

    /// The one child of a probe, so that cancellation can kill it.
    final class ProbeRun: Sendable {
        private struct State {
            var processGroup: pid_t?
            var cancelled = false
        }
        private let state = Mutex(State())

        /// Records the child; false (and kills it) when the probe was cancelled meanwhile.
        func started(_ pid: pid_t) -> Bool {
            state.withLock { state in
                state.processGroup = pid
                if state.cancelled { Glibc.kill(-pid, SIGKILL) }
                return !state.cancelled
            }
        }

        /// `waitpid(pid, WNOHANG)` under the lock, so that `cancel` never signals a group whose leader was
        /// reaped (its id could then be reused). The raw status once it has exited, else nil.
        func reap(_ pid: pid_t) -> Int32? {
            state.withLock { state in
                var status: Int32 = 0
                while true {
                    let result = waitpid(pid, &status, WNOHANG)
                    if result < 0 && errno == EINTR { continue }
                    guard result != 0 else { return nil }
                    state.processGroup = nil
                    // < 0: reaped elsewhere, the status is lost.
                    return result == pid ? status : -1
                }
            }
        }

        var isCancelled: Bool { state.withLock { $0.cancelled } }

        func cancel() {
            state.withLock { state in
                state.cancelled = true
                // Only while the child is unreaped: its pid (the group's id) cannot be reused before.
                if let group = state.processGroup { Glibc.kill(-group, SIGKILL) }
            }
        }
    }

    private static func runBlocking(
        _ executable: String, bmc: BMCSetting, credentials: BMCCredentials, run: ProbeRun
    ) -> BMCPowerReading {
        if run.isCancelled { return .unreachable("probe cancelled") }
        let deadline = MonotonicSleeper.now() + bmc.timeout.nanoseconds
        let spawned: (pid: pid_t, output: Int32)
        do {
            spawned = try spawn(
                executable, arguments: arguments(bmc, user: credentials.user), password: credentials.password)
        } catch {
            return .error(error.description)
        }
        defer { close(spawned.output) }
        guard run.started(spawned.pid) else {
            _ = waitForExit(spawned.pid, run: run, deadline: nil)
            return .unreachable("probe cancelled")
        }
        var output: [UInt8] = []
        var timedOut = !readUntilEOF(spawned.output, into: &output, deadline: deadline)
        var exitCode: Int32?
        if !timedOut {
            // EOF: ipmitool is exiting; its exit status must still come before the deadline.
            if let status = waitForExit(spawned.pid, run: run, deadline: deadline) {
                exitCode = status
            } else {
                timedOut = true
            }
        }
        if timedOut {
            Glibc.kill(-spawned.pid, SIGKILL)
            _ = waitForExit(spawned.pid, run: run, deadline: nil)
        }
        if run.isCancelled { return .unreachable("probe cancelled") }
        return reading(
            exitCode: timedOut ? nil : exitCode, output: String(decoding: output, as: UTF8.self), bmc: bmc,
            user: credentials.user)
    }

    struct SpawnError: Error, CustomStringConvertible {
        var description: String
    }

    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32

    /// glibc has these, but declares them only for _GNU_SOURCE, which Swift's Glibc module does not define.
    private static func glibc<Function>(_ name: String, as type: Function.Type) -> Function? {
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, name) else { return nil }
        return unsafeBitCast(symbol, to: type)
    }

    /// A pipe whose ends are close-on-exec from the start (another thread may spawn meanwhile) and above
    /// the descriptors the child's file actions write to.
    private static func makePipe() throws(SpawnError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        let result: Int32
        if let pipe2 = glibc("pipe2", as: Pipe2.self) {
            result = fds.withUnsafeMutableBufferPointer { pipe2($0.baseAddress!, O_CLOEXEC) }
        } else {
            result = pipe(&fds)
            for fd in fds where fd >= 0 { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        }
        guard result == 0 else { throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))") }
        for index in fds.indices where fds[index] <= passwordDescriptor {
            let moved = fcntl(fds[index], F_DUPFD_CLOEXEC, passwordDescriptor + 1)
            close(fds[index])
            fds[index] = moved
        }
        guard fds.allSatisfy({ $0 > passwordDescriptor }) else {
            for fd in fds where fd >= 0 { close(fd) }
            throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))")
        }
        return (fds[0], fds[1])
    }

    /// Starts ipmitool; returns its pid (also its process group) and the read end of its stdout+stderr.
    private static func spawn(
        _ executable: String, arguments: [String], password: String
    ) throws(SpawnError) -> (pid: pid_t, output: Int32) {
        let output = try makePipe()
        let secret: (read: Int32, write: Int32)
        do {
            secret = try makePipe()
        } catch {
            close(output.read)
            close(output.write)
            throw error
        }
        var parentKeeps = [output.read]
        defer {
            close(output.write)
            close(secret.read)
            for fd in [secret.write] + parentKeeps { close(fd) }
        }
        // A password is at most 20 bytes: far below the pipe's capacity, so this write never blocks.
        let line = Array((password + "\n").utf8)
        let written = line.withUnsafeBytes { write(secret.write, $0.baseAddress, $0.count) }
        guard written == line.count else {
            throw SpawnError(description: "cannot hand ipmitool its password: \(String(cString: strerror(errno)))")
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, output.write, 1)
        posix_spawn_file_actions_adddup2(&actions, output.write, 2)
        posix_spawn_file_actions_adddup2(&actions, secret.read, passwordDescriptor)
        // Nothing else of the daemon's (sockets, pool files) reaches ipmitool.
        if let addCloseFrom = glibc("posix_spawn_file_actions_addclosefrom_np", as: AddCloseFrom.self) {
            _ = addCloseFrom(&actions, passwordDescriptor + 1)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        posix_spawnattr_setpgroup(&attributes, 0)
        // Every signal to its default, SIGPIPE above all (the daemon ignores it, and exec keeps ignored ones).
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let environment: [String] = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"]
        let envp = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw SpawnError(
                description: result == ENOENT
                    ? installHint : "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        parentKeeps = []
        return (pid, output.read)
    }

    /// Reads `fd` until EOF (true) or the deadline (false), keeping at most `maxOutputBytes`.
    private static func readUntilEOF(_ fd: Int32, into output: inout [UInt8], deadline: Int64) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let remaining = deadline - MonotonicSleeper.now()
            if remaining <= 0 { return false }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min((remaining + 999_999) / 1_000_000, 60_000)))
            if ready < 0 {
                if errno == EINTR { continue }
                return false
            }
            if ready == 0 { continue }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return true
            }
            if count == 0 { return true }
            if output.count < maxOutputBytes { output += buffer[..<min(count, maxOutputBytes - output.count)] }
        }
    }

    /// The exit code (128 + signal when killed), waiting until `deadline` (nil: as long as it takes, only
    /// after SIGKILL). nil when the deadline passed first.
    private static func waitForExit(_ pid: pid_t, run: ProbeRun, deadline: Int64?) -> Int32? {
        while true {
            if let status = run.reap(pid) {
                guard status >= 0 else { return -1 }
                let signal = status & 0x7f
                return signal == 0 ? (status >> 8) & 0xff : 128 + signal
            }
            if let deadline, MonotonicSleeper.now() >= deadline { return nil }
            // A child that closed its output is exiting (or was just killed): moments, on this dedicated thread.
            _ = poll(nil, 0, 2)
        }
    }
}
