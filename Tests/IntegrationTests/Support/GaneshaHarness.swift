import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// nfs-ganesha on loopback through `Tests/Harness/ganesha/ganesha-harness.sh`, for processes that reach a pool by
/// `nfs://` URL. Use ``with(v3:leaseSeconds:_:)``: the server is stopped and its folder removed however the test
/// ends, and the harness watches this process and cleans up by itself if the test process dies.
/// (A string-only sibling of NFSTests' `GaneshaServer`: test targets cannot share code, and this one has no NFS
/// module to lean on.)
struct GaneshaHarness: Sendable {
    /// The harness's state folder (config, logs, `export/`).
    let directory: String
    /// The exported folder on local disk: what a kernel mount of the export would show.
    let exportDirectory: String
    /// `nfs://127.0.0.1/export?version=3&nfsport=N&mountport=M` (only when started with NFSv3).
    let urlV3: String?
    /// `nfs://127.0.0.1/export?version=4&nfsport=N`.
    let urlV4: String

    static let script = RepositoryPaths.root.appendingPathComponent("Tests/Harness/ganesha/ganesha-harness.sh").path

    static func with<T>(v3: Bool, leaseSeconds: Int? = nil, _ body: (GaneshaHarness) async throws -> T) async throws -> T {
        let folder = try TempDir(prefix: "kvmha-ganesha")
        var arguments = ["start", folder.path, "--watch", String(getpid())]
        if v3 { arguments.append("--v3") }
        if let leaseSeconds { arguments += ["--lease", String(leaseSeconds)] }
        let server: GaneshaHarness
        do {
            let values = try await run(arguments)
            guard let export = values["GANESHA_EXPORT_DIR"], let v4 = values["GANESHA_URL_V4"] else {
                throw HarnessError("ganesha-harness.sh printed no export folder or URL: \(values)")
            }
            server = GaneshaHarness(directory: folder.path, exportDirectory: export, urlV3: values["GANESHA_URL_V3"], urlV4: v4)
        } catch {
            _ = try? await run(["stop", folder.path])
            throw error
        }
        do {
            let result = try await body(server)
            try await run(["stop", folder.path])
            return result
        } catch {
            _ = try? await run(["stop", folder.path])
            throw error
        }
    }

    /// SIGSTOP: the server keeps its connections and answers nothing.
    func freeze() async throws { try await Self.run(["freeze", directory]) }

    /// SIGCONT.
    func thaw() async throws { try await Self.run(["thaw", directory]) }

    /// Runs the script on a thread of its own; returns its KEY=VALUE lines. Output goes to files, not pipes: the
    /// daemons it starts would hold a pipe open for as long as they live.
    @discardableResult
    private static func run(_ arguments: [String]) async throws -> [String: String] {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("kvmha-ganesha-harness-\(UUID())").path
        defer {
            try? FileManager.default.removeItem(atPath: base + ".out")
            try? FileManager.default.removeItem(atPath: base + ".err")
        }
        guard FileManager.default.createFile(atPath: base + ".out", contents: nil),
            FileManager.default.createFile(atPath: base + ".err", contents: nil),
            let out = FileHandle(forWritingAtPath: base + ".out"), let err = FileHandle(forWritingAtPath: base + ".err")
        else { throw HarnessError("cannot create \(base).out/.err") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script] + arguments
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
        guard status == 0 else {
            let stderr = (try? String(contentsOfFile: base + ".err", encoding: .utf8)) ?? ""
            throw HarnessError("ganesha-harness.sh \(arguments.joined(separator: " ")) exited \(status): \(stderr)")
        }
        var values: [String: String] = [:]
        let stdout = (try? String(contentsOfFile: base + ".out", encoding: .utf8)) ?? ""
        for line in stdout.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            values[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return values
    }
}
