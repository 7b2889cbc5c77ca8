import Foundation
import NFS

/// A thin Swift handle on `Tests/Harness/ganesha/ganesha-harness.sh`: nfs-ganesha on 127.0.0.1 with its
/// state under a fresh temporary directory. Use ``with(v3:leaseSeconds:_:)`` so the server is stopped
/// and its directory removed however the test ends; the harness also watches this process and cleans
/// up by itself if the test process dies. (A copy of NFSTests' helper: test targets cannot share code.)
struct GaneshaServer: Sendable {
    /// The harness's state directory (config, logs, `export/`).
    let directory: String
    /// The exported folder on local disk.
    let exportDirectory: String
    let nfsPort: UInt16
    let mountPort: UInt16?
    /// `nfs://127.0.0.1/export?version=4&nfsport=N`
    let urlV4: NFSURL
    /// With `mountport`; only when started with NFSv3.
    let urlV3: NFSURL?

    func url(_ version: NFSVersion) throws -> NFSURL {
        switch version {
        case .v4: return urlV4
        case .v3:
            guard let urlV3 else { throw GaneshaHarnessError(message: "server started without --v3") }
            return urlV3
        }
    }

    /// Starts a server, runs `body`, and stops the server and removes its directory — also when `body` throws.
    static func with<T>(
        v3: Bool,
        leaseSeconds: Int? = nil,
        _ body: (GaneshaServer) async throws -> T
    ) async throws -> T {
        let directory = try makeTemporaryDirectory()
        var arguments = ["start", directory, "--watch", String(getpid())]
        if v3 { arguments.append("--v3") }
        if let leaseSeconds { arguments += ["--lease", String(leaseSeconds)] }
        let server: GaneshaServer
        do {
            server = try GaneshaServer(directory: directory, values: try await runHarness(arguments))
        } catch {
            _ = try? await runHarness(["stop", directory])
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
        let result: T
        do {
            result = try await body(server)
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
        return result
    }

    /// Kills ganesha and starts it again on the same ports and export.
    func restart() async throws { _ = try await Self.runHarness(["restart", directory]) }

    /// SIGSTOP: the server keeps its connections but answers nothing.
    func freeze() async throws { _ = try await Self.runHarness(["freeze", directory]) }

    /// SIGCONT.
    func thaw() async throws { _ = try await Self.runHarness(["thaw", directory]) }

    private func stop() async throws {
        _ = try await Self.runHarness(["stop", directory])
        try FileManager.default.removeItem(atPath: directory)
    }

    private init(directory: String, values: [String: String]) throws {
        func value(_ key: String) throws -> String {
            guard let value = values[key], !value.isEmpty else {
                throw GaneshaHarnessError(message: "harness printed no \(key)")
            }
            return value
        }
        self.directory = directory
        self.exportDirectory = try value("GANESHA_EXPORT_DIR")
        guard let nfsPort = UInt16(try value("GANESHA_NFS_PORT")) else {
            throw GaneshaHarnessError(message: "bad GANESHA_NFS_PORT")
        }
        self.nfsPort = nfsPort
        self.mountPort = values["GANESHA_MOUNT_PORT"].flatMap(UInt16.init)
        self.urlV4 = try NFSURL(parsing: try value("GANESHA_URL_V4"))
        self.urlV3 = try values["GANESHA_URL_V3"].map { url throws in try NFSURL(parsing: url) }
    }

    static let scriptPath = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("Harness/ganesha/ganesha-harness.sh")
        .path

    private static func makeTemporaryDirectory() throws -> String {
        let base = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("kvmha-ganesha-XXXXXX").path
        var template = Array(base.utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw GaneshaHarnessError(message: "mkdtemp failed: errno \(errno)")
        }
        return String(cString: made)
    }

    /// Runs the harness script without blocking a cooperative thread; returns its KEY=VALUE lines.
    @discardableResult
    private static func runHarness(_ arguments: [String]) async throws -> [String: String] {
        // Output goes to files, not pipes: a pipe stays open as long as any process that inherited it lives.
        let base = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("kvmha-harness-\(UUID())").path
        let outPath = base + ".out"
        let errPath = base + ".err"
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        guard FileManager.default.createFile(atPath: outPath, contents: nil),
            FileManager.default.createFile(atPath: errPath, contents: nil),
            let out = FileHandle(forWritingAtPath: outPath),
            let err = FileHandle(forWritingAtPath: errPath)
        else {
            throw GaneshaHarnessError(message: "cannot create \(base).out/.err")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [scriptPath] + arguments
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        try? out.close()
        try? err.close()
        let stdout = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw GaneshaHarnessError(
                message: "ganesha-harness.sh \(arguments.joined(separator: " ")) exited \(status): \(stderr)"
            )
        }
        var values: [String: String] = [:]
        for line in stdout.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            values[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return values
    }
}

struct GaneshaHarnessError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
