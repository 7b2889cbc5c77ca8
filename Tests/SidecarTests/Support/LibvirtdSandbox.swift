import Foundation

#if canImport(Glibc)
import Glibc
#endif

struct LibvirtdFailed: Error, CustomStringConvertible {
    let description: String
}

/// A private libvirtd (Tests/Harness/libvirt/run-libvirtd.sh): its own config, socket and state under a
/// temporary folder, serving libvirt's test driver. Use `withLibvirtd`, which always stops it.
/// (A copy of LibvirtTests' helper: test targets cannot share code.)
final class LibvirtdSandbox: @unchecked Sendable {  // `process` is guarded by `lock`
    let stateDirectory: String
    private let lock = NSLock()
    private var process: Process?

    var socketPath: String { stateDirectory + "/sock/libvirt-sock" }
    /// The test driver's shared `/default` state through this daemon: every client sees the same domains.
    var uri: String { "test+unix:///default?socket=" + socketPath }
    private var notifyPath: String { stateDirectory + "/notify" }
    private var logPath: String { stateDirectory + "/run/libvirtd.log" }

    private init(stateDirectory: String) {
        self.stateDirectory = stateDirectory
    }

    static func make() throws -> LibvirtdSandbox {
        var template = Array("/tmp/kvmha-libvirtd.XXXXXX".utf8CString)
        guard let directory = mkdtemp(&template) else {
            throw LibvirtdFailed(description: "mkdtemp failed: errno \(errno)")
        }
        return LibvirtdSandbox(stateDirectory: String(cString: directory))
    }

    /// Starts libvirtd and returns once it accepts clients (it sends READY=1 to NOTIFY_SOCKET).
    func start() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/libvirtd") else {
            throw LibvirtdFailed(description: "libvirtd missing: apt-get install libvirt-daemon libvirt-clients")
        }
        let notify = try NotifySocket(path: notifyPath)
        defer { notify.close() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: HarnessFiles.path("run-libvirtd.sh"))
        process.arguments = [stateDirectory]
        process.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "NOTIFY_SOCKET": notifyPath]
        let outputPath = stateDirectory + "/libvirtd.out"
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = FileHandle(forWritingAtPath: outputPath)
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        lock.withLock { self.process = process }

        do {
            try await runOnThread("libvirtd to send READY=1") { try notify.waitForReady() }
        } catch {
            await stop()
            throw LibvirtdFailed(description: "libvirtd did not start: \(error)\n\(diagnostics())")
        }
    }

    /// Stops libvirtd with SIGTERM and waits for it to exit (SIGKILL if it hangs). Idempotent.
    func stop() async {
        guard
            let process = lock.withLock({ () -> Process? in
                defer { self.process = nil }
                return self.process
            })
        else {
            return
        }
        guard process.isRunning else {
            return
        }
        process.terminate()
        do {
            try await runOnThread("libvirtd to exit after SIGTERM") { process.waitUntilExit() }
        } catch {
            kill(process.processIdentifier, SIGKILL)
        }
    }

    /// Stops libvirtd and deletes the state folder.
    func destroy() async {
        await stop()
        try? FileManager.default.removeItem(atPath: stateDirectory)
    }

    /// libvirtd's own output and log, for failure messages.
    func diagnostics() -> String {
        let output = (try? String(contentsOfFile: stateDirectory + "/libvirtd.out", encoding: .utf8)) ?? ""
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        return "libvirtd output:\n\(output)\nlibvirtd log:\n\(log)"
    }
}

/// Starts a private libvirtd, runs `body`, and stops the daemon and deletes its files whatever happens.
func withLibvirtd<T: Sendable>(_ body: (LibvirtdSandbox) async throws -> T) async throws -> T {
    let daemon = try LibvirtdSandbox.make()
    do {
        try await daemon.start()
        let result = try await body(daemon)
        await daemon.destroy()
        return result
    } catch {
        await daemon.destroy()
        throw error
    }
}

/// The datagram socket a daemon's systemd-style readiness notification (READY=1) is sent to.
private struct NotifySocket: Sendable {
    let fd: Int32
    let path: String

    init(path: String) throws {
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw LibvirtdFailed(description: "socket(AF_UNIX) failed: errno \(errno)")
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            Glibc.close(fd)
            throw LibvirtdFailed(description: "socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        // The daemon runs as nobody: it must be allowed to send to the socket.
        guard bound == 0, chmod(path, 0o777) == 0 else {
            let error = errno
            Glibc.close(fd)
            throw LibvirtdFailed(description: "bind/chmod \(path) failed: errno \(error)")
        }
        var timeout = timeval(tv_sec: Int(hangDeadline.components.seconds), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        self.fd = fd
        self.path = path
    }

    /// Blocks until a datagram containing READY=1 arrives (or the receive timeout passes).
    func waitForReady() throws {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count >= 0 else {
                throw LibvirtdFailed(description: "no readiness notification (errno \(errno))")
            }
            let message = String(decoding: buffer[0..<count], as: UTF8.self)
            if message.split(separator: "\n").contains("READY=1") {
                return
            }
        }
    }

    func close() {
        Glibc.close(fd)
        unlink(path)
    }
}
