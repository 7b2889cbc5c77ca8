import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A FUSE mount (Tests/Harness/freezefs/freezefs.py) that passes everything through to `backing`
/// and can be frozen like a hard NFS mount whose server stopped answering: after `freeze()`, every
/// new operation on `mountpoint` (stat, open, read, write, fsync, rename, readdir, …) blocks until
/// `thaw()`, and then completes normally.
///
/// Needs root (or /dev/fuse access), fuse + libfuse2 and the fusepy venv: scripts/install-test-deps.sh.
///
///     let mount = try FreezableMount()
///     defer { mount.stop() }
///     try mount.freeze()
///     try await mount.waitForBlockedOperation("write", path: "/hb/host-a")
///     try mount.thaw()
final class FreezableMount: Sendable {
    /// Where the file system is mounted.
    let mountpoint: URL
    /// The directory the mount shows; readable and writable directly (never frozen).
    let backing: URL
    /// While this file exists the mount is frozen. Lives outside the mount.
    let controlFile: URL

    private let workDirectory: TempDir
    private let server: ChildProcess
    private let stopped = Locked(false)

    /// Mounts a fresh freezable file system over `backing` (a new temporary directory if nil) and
    /// returns once the mount is live. Blocks the calling thread for the ~0.2 s the mount takes.
    init(backing: URL? = nil) throws {
        let python = RepositoryPaths.testPython
        guard access(python.path, X_OK) == 0 else {
            throw HarnessError("freezefs needs \(python.path), which is missing — \(HarnessError.installHint)")
        }
        guard access("/dev/fuse", R_OK | W_OK) == 0 else {
            throw HarnessError("freezefs needs read-write access to /dev/fuse (FUSE support; run the tests as root)")
        }
        guard ChildProcess.findExecutable("fusermount") != nil else {
            throw HarnessError("fusermount is not installed — \(HarnessError.installHint)")
        }

        let workDirectory = try TempDir(prefix: "kvmha-freezefs")
        self.workDirectory = workDirectory
        self.mountpoint = workDirectory.appending("mnt")
        self.controlFile = workDirectory.appending("frozen")
        if let backing {
            self.backing = backing.resolvingSymlinksInPath()
        } else {
            self.backing = workDirectory.appending("backing")
        }
        let fileManager = FileManager.default
        try fileManager.createDirectory(at: mountpoint, withIntermediateDirectories: false)
        try fileManager.createDirectory(at: self.backing, withIntermediateDirectories: true)

        self.server = try ChildProcess(
            executable: python,
            arguments: [
                RepositoryPaths.freezefsScript.path, self.backing.path, mountpoint.path,
                "--control", controlFile.path,
            ],
            label: "freezefs \(mountpoint.path)"
        )

        do {
            _ = try server.waitForLineBlocking(matching: "READY", timeout: .seconds(30))
        } catch {
            stop()
            let hint = server.exitStatus == .exited(3) ? " — \(HarnessError.installHint)" : ""
            throw HarnessError("freezefs did not mount\(hint): \(error)")
        }
        // READY is printed on FUSE_INIT, which comes after the mount; check the table anyway.
        let deadline = ContinuousClock.now + .seconds(10)
        while !isMounted {
            guard ContinuousClock.now < deadline, server.isRunning else {
                stop()
                throw HarnessError(
                    "freezefs said READY but \(mountpoint.path) is not in /proc/self/mountinfo:\n\(server.transcript)"
                )
            }
            usleep(1_000)  // polls a condition with a deadline
        }
    }

    deinit {
        stop()
    }

    /// Whether `mountpoint` is mounted (read from the mount table; never touches the mount).
    var isMounted: Bool {
        MountTable().isMountPoint(mountpoint.path)
    }

    var isFrozen: Bool {
        access(controlFile.path, F_OK) == 0
    }

    /// From now on every new operation on the mount blocks. Operations already inside the file
    /// system finish.
    func freeze() throws {
        let fd = open(controlFile.path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw HarnessError("cannot create \(controlFile.path): \(String(cString: strerror(errno)))")
        }
        close(fd)
    }

    /// Releases every blocked operation; they complete as if the server had come back.
    func thaw() throws {
        guard unlink(controlFile.path) == 0 || errno == ENOENT else {
            throw HarnessError("cannot remove \(controlFile.path): \(String(cString: strerror(errno)))")
        }
    }

    /// `mountpoint` joined with `relativePath`.
    func url(_ relativePath: String) -> URL {
        mountpoint.appendingPathComponent(relativePath)
    }

    // MARK: Observing the file system

    /// Index of the next line freezefs will print; pass it as `after:` to wait for later events.
    var eventMark: Int {
        server.lineCount
    }

    /// Waits until an operation blocks on the frozen mount, i.e. really reached the file system
    /// and is now stuck there; returns freezefs's `BLOCKED <op> <path>` line.
    ///
    /// Take `mark` (`eventMark`) before `freeze()` if something is already using the mount: it may
    /// block before the next statement runs.
    ///
    /// - Parameters:
    ///   - operation: a FUSE operation name (`getattr`, `write`, `fsync`, `rename`, `create`,
    ///     `open`, `readdir`, `mkdir`, `unlink`, …), or nil for any.
    ///   - path: as the file system sees it, relative to the mount root (`hb/host-a` or
    ///     `/hb/host-a`), or nil for any.
    @discardableResult
    func waitForBlockedOperation(
        _ operation: String? = nil,
        path: String? = nil,
        after mark: Int? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> String {
        let operationPattern = operation.map(NSRegularExpression.escapedPattern(for:)) ?? #"\S+"#
        let pathPattern = path.map { NSRegularExpression.escapedPattern(for: $0.hasPrefix("/") ? $0 : "/" + $0) }
        let pattern = "^BLOCKED \(operationPattern) " + (pathPattern.map { "\($0)( |$)" } ?? "")
        return try await server.waitForLine(matching: .regex(pattern), after: mark, timeout: timeout)
    }

    /// freezefs's own output (READY, BLOCKED/RESUMED lines, errors), for diagnostics.
    var serverTranscript: String {
        server.transcript
    }

    /// The python process serving the mount.
    var serverPID: pid_t {
        server.pid
    }

    // MARK: Stopping

    /// Unmounts, stops freezefs and removes the temporary directories (and `backing` if this mount
    /// created it). Idempotent, never throws, and does not hang on a frozen or wedged mount:
    ///
    /// 1. thaw, so blocked operations (and processes killed while blocked, stuck in D state until
    ///    their request is answered) finish;
    /// 2. `fusermount -u`, retried for up to 3 s while the mount is busy;
    /// 3. if it stays busy (open files, or freezefs itself wedged), abort the FUSE connection
    ///    through /sys/fs/fuse/connections/<minor>/abort, which fails every pending request and so
    ///    releases D-state processes, then `fusermount -u` again, then `fusermount -u -z`;
    /// 4. wait for freezefs to exit, SIGKILL it if it does not (closing /dev/fuse also aborts the
    ///    connection), lazily unmount whatever is left;
    /// 5. remove the temporary directories, unless something is still mounted in them.
    func stop() {
        let alreadyStopped = stopped.withLock { isStopped in
            defer { isStopped = true }
            return isStopped
        }
        guard !alreadyStopped else { return }
        var notes: [String] = []

        try? thaw()
        var wedged = false
        if isMounted && !unmountOnceIdle(within: .seconds(3), notes: &notes) {
            wedged = true
            if abortConnection(notes: &notes) {
                notes.append("aborted the FUSE connection")
            }
            if !unmount(lazy: false, notes: &notes) && !unmount(lazy: true, notes: &notes) {
                notes.append("could not unmount \(mountpoint.path)")
            }
        }

        // After a clean unmount freezefs exits by itself; a wedged one will not, so wait less.
        if server.waitForExitBlocking(timeout: wedged ? .seconds(1) : .seconds(5)) == nil {
            notes.append("freezefs did not exit after the unmount; killed it")
            server.killProcessGroup(signal: SIGKILL)
            if server.waitForExitBlocking(timeout: .seconds(5)) == nil {
                notes.append("freezefs (pid \(server.pid)) survived SIGKILL")
            }
        }
        if isMounted {
            // A dead server leaves an unconnected mount behind.
            _ = unmount(lazy: true, notes: &notes)
        }

        if isMounted {
            notes.append("\(mountpoint.path) is still mounted; leaving \(workDirectory.path) in place")
        } else {
            // Holds the mountpoint, the control file and, if this mount created it, the backing directory.
            workDirectory.remove()
        }
        if !notes.isEmpty {
            FileHandle.standardError.write(Data("FreezableMount.stop: \(notes.joined(separator: "; "))\n".utf8))
        }
    }

    /// Retries `fusermount -u` while the mount is busy: processes released by the thaw (or killed
    /// while blocked) need a moment to finish their calls and close their files.
    private func unmountOnceIdle(within limit: Duration, notes: inout [String]) -> Bool {
        let deadline = ContinuousClock.now + limit
        while true {
            var attemptNotes: [String] = []
            if unmount(lazy: false, notes: &attemptNotes) { return true }
            guard ContinuousClock.now < deadline else {
                notes += attemptNotes
                return false
            }
            usleep(10_000)  // polls a condition (mount no longer busy) with a deadline
        }
    }

    /// Runs `fusermount -u [-z]`; returns whether the mount is gone afterwards.
    private func unmount(lazy: Bool, notes: inout [String]) -> Bool {
        guard let fusermount = ChildProcess.findExecutable("fusermount") else {
            notes.append("fusermount not found")
            return !isMounted
        }
        do {
            let result = try ChildProcess.run(
                fusermount,
                ["-u"] + (lazy ? ["-z"] : []) + [mountpoint.path],
                timeout: .seconds(10)
            )
            if result.status != .exited(0) {
                let output = result.lines.joined(separator: " ")
                notes.append(
                    "fusermount -u\(lazy ? " -z" : ""): \(result.status.map { "\($0)" } ?? "timed out") \(output)"
                )
            }
        } catch {
            notes.append("fusermount: \(error)")
        }
        return !isMounted
    }

    /// Writes 1 to the connection's `abort` file in the fuse control file system (mounting that at
    /// /sys/fs/fuse/connections if nobody has). The connection is named by the mount's device minor.
    private func abortConnection(notes: inout [String]) -> Bool {
        let table = MountTable()
        guard let device = table.entry(at: mountpoint.path)?.device,
            let minor = device.split(separator: ":").last
        else { return false }
        let connections = "/sys/fs/fuse/connections"
        if !table.hasFuseControlFileSystem && mount("fusectl", connections, "fusectl", 0, nil) != 0 {
            notes.append("cannot mount fusectl on \(connections): \(String(cString: strerror(errno)))")
            return false
        }
        let abortFile = "\(connections)/\(minor)/abort"
        let fd = open(abortFile, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            notes.append("cannot open \(abortFile): \(String(cString: strerror(errno)))")
            return false
        }
        defer { close(fd) }
        return write(fd, "1", 1) == 1
    }
}
